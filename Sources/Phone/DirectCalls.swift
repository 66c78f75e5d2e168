// Direct mode, once registered: the phone is its own H.323 endpoint, with the same
// Endpoint state machines as the appliance's mirror (RASClient for ARQ/DRQ and the
// registration's keep-alive, H323Call for Setup with fast start), EndpointIO's thin
// drivers for the call-signalling connections, and RTP over UDP straight to the far end.
// No tunnel. The phone (Phone.swift) owns the audio and decides when media that never
// arrives means this network needs the tunnel after all.
import Endpoint
import EndpointIO
import Glibc
import H323
import IO
import Log
import Tunnel

final class DirectLine {
    enum CallEvent {
        case incoming(from: String, to: String)
        case ringing
        case connected(Codec)
        case dtmf(Character)
        case media(MediaKind, [UInt8])
        case released(cause: UInt8, byRemote: Bool)
    }

    unowned let loop: EventLoop
    let gatekeeper: EndpointAddress
    let localIP: UInt32
    let alias: String
    let codecs: [AudioCodec]
    private let ras: UDPSocket
    private var rasRegistration: Registration?
    private let rasDriver: RASDriver
    private let listener: TCPListener
    private var calls: [UInt16: DirectCall] = [:]
    private var byKey: [Int: DirectCall] = [:]
    private var nextKey = 1
    private var nextCRV: UInt16 = 1
    private var buffer = [UInt8](repeating: 0, count: 4096)
    private let log = Logger(subsystem: "phone")
    private(set) var closed = false

    /// Call events, keyed by the phone's call channel.
    var onCall: (UInt16, CallEvent) -> Void = { _, _ in }
    var onProgress: (String) -> Void = { _ in }
    /// The gatekeeper stopped confirming the registration (keep-alive unanswered or refused).
    var onRegistrationLost: (String) -> Void = { _ in }
    /// A channel for an incoming call (even, not in use).
    var allocateIncoming: () -> UInt16 = { 2 }

    init(loop: EventLoop, live: DirectRegistration.Live, listener: TCPListener, alias: String, codecs: [AudioCodec]) throws {
        self.loop = loop
        gatekeeper = live.gatekeeper
        localIP = live.local.address
        ras = live.socket
        // The socket is connected to the gatekeeper: every message goes there.
        rasDriver = RASDriver(loop: loop, client: live.client) { [socket = live.socket] bytes, _ in
            _ = bytes.withUnsafeBytes { send(socket.fd, $0.baseAddress, $0.count, 0) }
        }
        self.listener = listener
        self.alias = alias
        self.codecs = codecs
        rasRegistration = try loop.register(fd: ras.fd, events: .readable, handler: ClosureHandler { [weak self] _ in self?.rasReadable() })
        listener.onAccept = { [weak self] socket, from in self?.accept(socket, from: from) }
        rasDriver.onAction = { [unowned self] action in self.rasAction(action) }
        rasDriver.armTimer()
    }

    var isRegistered: Bool { rasDriver.isRegistered }

    // MARK: RAS

    private func rasReadable() {
        for _ in 0..<16 {
            let count = buffer.withUnsafeMutableBytes { recv(ras.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count > 0 else { return }
            guard let message = try? RasMessage(decoding: Array(buffer[0..<count])) else { continue }
            rasEvent(.received(message, from: gatekeeper))
        }
    }

    private func rasEvent(_ event: RASEvent) {
        guard !closed || event.isUnregisterTraffic else { return }
        rasDriver.handle(event)
    }

    private func rasAction(_ action: RASAction) {
        switch action {
        case let .registrationRejected(reason):
            onRegistrationLost("the gatekeeper refused its renewal (\(reason))")
        case let .registrationLost(reason):
            onRegistrationLost(reason)
        case let .admitted(key, destination, _):
            byKey[key]?.admitted(destination: destination)
        case let .admissionFailed(key, cause):
            byKey[key]?.finish(cause: cause, byRemote: true)
        case let .disengageRequested(key):
            byKey[key]?.driver.event(.hangup(cause: Q850.normalClearing))
        case .send, .registered, .unregistered, .disengaged:
            break  // sent by the driver; a keep-alive confirmed; nothing waits for these
        }
    }

    // MARK: Calls

    static func alias(_ text: String) -> AliasAddress {
        !text.isEmpty && text.allSatisfy({ "+0123456789#*".contains($0) }) ? .dialledDigits(text.filter { $0 != "+" }) : .h323ID(text)
    }

    /// ARQ, then Setup to where the gatekeeper says. Nil when no call could be started.
    func place(channel: UInt16, number: String) -> String? {
        guard rasDriver.isRegistered else { return "not registered at the gatekeeper" }
        let call: DirectCall
        do { call = try DirectCall(line: self, channel: channel, key: nextKey) } catch {
            return "no RTP port: \(error)"
        }
        nextKey += 1
        let guid = PhoneCrypto().randomBytes(16)
        let crv = nextCRV
        nextCRV = nextCRV >= 0x7FFF ? 1 : nextCRV + 1
        let info = OutgoingCallInfo(callReference: crv, callIdentifier: guid, conferenceID: guid, source: [Self.alias(alias)],
                                    destination: [Self.alias(number)])
        call.driver.call = H323Call(outgoing: info, codecs: codecs, localRTP: call.localRTP)
        add(call)
        rasEvent(.admit(AdmissionParameters(callKey: call.key, callReferenceValue: Int(crv), conferenceID: guid, callIdentifier: guid,
                                            destination: info.destination, source: info.source, answerCall: false)))
        return nil
    }

    func answer(channel: UInt16) { calls[channel]?.driver.event(.answer(codecs: codecs)) }

    func hangup(channel: UInt16, cause: UInt8) { calls[channel]?.hangupHere(cause: cause) }

    func dtmf(channel: UInt16, digit: Character) { calls[channel]?.driver.event(.dtmf(digit, durationMs: 100)) }

    func sendMedia(channel: UInt16, kind: MediaKind, packet: [UInt8]) -> Bool {
        calls[channel]?.send(kind: kind, packet: packet) ?? false
    }

    private func add(_ call: DirectCall) {
        calls[call.channel] = call
        byKey[call.key] = call
    }

    fileprivate func forget(_ call: DirectCall, cause: UInt8) {
        guard byKey.removeValue(forKey: call.key) != nil else { return }
        calls[call.channel] = nil
        if rasDriver.isRegistered { rasEvent(.disengage(callKey: call.key, cause: cause)) }
    }

    private func accept(_ socket: TCPSocket, from: EndpointAddress) {
        TPKTConnection.awaitingSetup(loop: loop, socket: socket, from: from) { [weak self] setup, connection in
            guard let self else { return connection.close() }
            self.incoming(setup, on: connection)
        }
    }

    private func incoming(_ setup: Q931Message, on connection: TPKTConnection) {
        guard !closed, rasDriver.isRegistered, let info = try? H323Call.describe(setup: setup) else {
            connection.send(packet: (try? H323Call.rejectSetup(setup, cause: Q850.temporaryFailure).encoded()) ?? [])
            return connection.close()
        }
        let channel = allocateIncoming()
        guard let call = try? DirectCall(line: self, channel: channel, key: nextKey) else {
            connection.send(packet: (try? H323Call.rejectSetup(setup, cause: Q850.resourceUnavailable).encoded()) ?? [])
            return connection.close()
        }
        nextKey += 1
        do {
            call.driver.call = try H323Call(incoming: setup, localRTP: call.localRTP, acceptable: codecs)
        } catch {
            call.close()
            connection.send(packet: (try? H323Call.rejectSetup(setup, cause: Q850.protocolError).encoded()) ?? [])
            return connection.close()
        }
        call.from = info.callingNumber ?? IncomingCallInfo.text(info.source) ?? ""
        call.to = info.calledNumber ?? IncomingCallInfo.text(info.destination) ?? alias
        call.driver.attachSignalling(connection)
        add(call)
        call.driver.event(.proceed)
        rasEvent(.admit(AdmissionParameters(callKey: call.key, callReferenceValue: Int(call.driver.call?.callReference ?? 0),
                                            conferenceID: info.conferenceID, callIdentifier: info.callIdentifier,
                                            destination: [Self.alias(alias)], source: info.source, answerCall: true)))
    }

    /// Hangs up every call and unregisters (URQ sent; the UCF is not waited for).
    func close() {
        guard !closed else { return }
        for call in Array(calls.values) { call.hangupHere(cause: Q850.normalClearing) }
        closed = true
        if rasDriver.isRegistered { rasEvent(.unregister) }
        rasDriver.close()
        if let rasRegistration { loop.unregister(rasRegistration) }
        rasRegistration = nil
        ras.close()
        listener.close()
    }
}

private extension RASEvent {
    var isUnregisterTraffic: Bool {
        if case .unregister = self { return true }
        return false
    }
}

/// One direct call: its H.323 side and its RTP socket.
final class DirectCall {
    unowned let line: DirectLine
    let channel: UInt16
    let key: Int
    let driver: CallDriver
    let rtp: UDPPort
    let rtcp: UDPPort?
    var transmit: MediaChannel?
    var from = ""
    var to = ""
    private var connected = false
    private var announced = false
    private var hungUpHere = false

    init(line: DirectLine, channel: UInt16, key: Int) throws {
        self.line = line
        self.channel = channel
        self.key = key
        driver = CallDriver(loop: line.loop)
        // An even RTP port with RTCP on the next one, as fast start advertises.
        var pair: (UDPPort, UDPPort?)?
        for _ in 0..<32 {
            let port = UInt16(20_000 + 2 * Int.random(in: 0..<5_000))
            guard let rtp = try? UDPPort(loop: line.loop, address: EndpointAddress(ip: line.localIP, port: port)) else { continue }
            pair = (rtp, try? UDPPort(loop: line.loop, address: EndpointAddress(ip: line.localIP, port: port + 1)))
            break
        }
        guard let pair else { throw PhoneError.failed("no free RTP port on this machine") }
        (rtp, rtcp) = pair
        rtp.onDatagram = { [unowned self] bytes, from in self.received(.rtp, bytes, from: from) }
        rtcp?.onDatagram = { [unowned self] bytes, from in self.received(.rtcp, bytes, from: from) }
        driver.onAction = { [unowned self] action in self.perform(action) }
    }

    var localRTP: EndpointAddress { rtp.address }

    func admitted(destination: EndpointAddress?) {
        guard let call = driver.call, !driver.isClosed else { return }
        if call.role == .incoming {
            line.onCall(channel, .incoming(from: from, to: to))
            driver.event(.alert)
            return
        }
        guard driver.place(to: destination) else { return finish(cause: Q850.noRouteToDestination, byRemote: true) }
    }

    func hangupHere(cause: UInt8) {
        hungUpHere = true
        if driver.call == nil || driver.call?.state == .null || driver.signalling == nil { return finish(cause: cause, byRemote: false) }
        driver.event(.hangup(cause: cause))
    }

    private func perform(_ action: CallAction) {
        switch action {
        case .sendSignalling, .sendH245, .connectH245:
            break  // the driver's
        case .ringing:
            if driver.call?.role == .outgoing { line.onCall(channel, .ringing) }
        case .connected:
            connected = true
            announce()
        case let .transmit(media):
            transmit = media
            announce()
        case let .dtmf(c, _):
            line.onCall(channel, .dtmf(c))
        case let .released(cause, byRemote):
            finish(cause: cause, byRemote: byRemote)
        case .proceeding, .progress, .receive, .roundTripDelay:
            break
        }
    }

    /// CONNECTED for the phone once the call is up and the far end's media address known.
    private func announce() {
        guard connected, !announced, let transmit, let codec = Codec(rawValue: transmit.codec.rawValue) else { return }
        announced = true
        line.onCall(channel, .connected(codec))
    }

    func send(kind: MediaKind, packet: [UInt8]) -> Bool {
        guard let transmit else { return false }
        switch kind {
        case .rtp:
            guard let to = transmit.remoteRTP else { return false }
            rtp.send(packet, to: to)
        case .rtcp:
            guard let to = transmit.remoteRTCP ?? transmit.remoteRTP.map({ EndpointAddress(ip: $0.ip, port: $0.port &+ 1) }) else { return false }
            (rtcp ?? rtp).send(packet, to: to)
        }
        return true
    }

    private func received(_ kind: MediaKind, _ bytes: UnsafeRawBufferPointer, from: EndpointAddress) {
        // Only the far end the call negotiated may play into the call.
        guard let expected = transmit?.remoteRTP, from.ip == expected.ip else { return }
        line.onCall(channel, .media(kind, Array(bytes)))
    }

    func finish(cause: UInt8, byRemote: Bool) {
        guard !driver.isClosed else { return }
        driver.close()
        close()
        line.forget(self, cause: cause)
        if !hungUpHere { line.onCall(channel, .released(cause: cause, byRemote: byRemote)) }
    }

    func close() {
        rtp.close()
        rtcp?.close()
    }
}
