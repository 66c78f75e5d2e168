// The mirror: for each authenticated tunnel client, the appliance is its H.323 endpoint
// towards the operator. Each client gets a public face (a RAS port and a call-signalling
// port from the pools) and registers to the gatekeeper with the client's aliases; calls
// go both ways between the tunnel and the operator's gateway, with media relayed on the
// client's worker through the appliance's own RTP ports (a client address never leaves
// the tunnel): a session of the worker's `LocalRelay` per call, the tunnel its client leg.
// One backend per worker, called on that worker's thread only.
import Endpoint
import Glibc
import EndpointIO
import H323
import IO
import Log
import Relay
import Tunnel

extension AudioCodec {
    init?(_ codec: Tunnel.Codec) { self.init(rawValue: codec.rawValue) }
    var tunnelCodec: Tunnel.Codec? { Tunnel.Codec(rawValue: rawValue) }
}

public final class MirrorBackend: TunnelBackend {
    unowned let worker: TerminatorWorker
    let config: MirrorConfig
    let cdr: CDRWriter?
    let log = Logger(subsystem: "mirror")
    var rasPool: PortPool
    var signallingPool: PortPool
    /// The calls' media: this worker's block of the RTP ports, on this worker's loop.
    /// Nil when it could not be set up (then calls are refused, and the log says why).
    let relay: LocalRelay?
    /// Clients whose tunnel ended, kept until their URQ is answered.
    var retiring: [ObjectIdentifier: MirrorClient] = [:]
    /// Worker 0's GRQ probe of the gatekeeper, when `reachability` was given.
    var monitor: GatekeeperMonitor?

    /// With `reachability`, worker 0 probes the gatekeeper and publishes whether it
    /// answers there (the daemon's health reads it).
    public init(worker: TerminatorWorker, config: MirrorConfig, cdr: CDRWriter?,
                reachability: GatekeeperReachability? = nil) {
        self.worker = worker
        self.config = config
        self.cdr = cdr
        let n = worker.shared.config.workers
        rasPool = PortPool(range: config.rasPorts, worker: worker.index, workers: n)
        signallingPool = PortPool(range: config.signallingPorts, worker: worker.index, workers: n)
        relay = Self.makeRelay(worker: worker, config: config, log: log)
        if let reachability, worker.index == 0 {
            do {
                monitor = try GatekeeperMonitor(loop: worker.loop, config: config, reachability: reachability)
            } catch {
                log.error("gatekeeper-probe-failed", ["error": "\(error)"])
            }
        }
    }

    var loop: EventLoop { worker.loop }

    private static func makeRelay(worker: TerminatorWorker, config: MirrorConfig, log: Logger) -> LocalRelay? {
        let workers = max(1, worker.shared.config.workers)
        guard let block = config.rtpBlock(worker: worker.index, workers: workers) else {
            log.error("mirror-no-media-ports", ["worker": "\(worker.index)", "rtp_ports": "\(config.rtpPorts)",
                                                "workers": "\(workers)", "reason": "fewer RTP/RTCP pairs than workers"])
            return nil
        }
        var relay = RelayConfiguration()
        relay.gatewayAddress = IPv4Endpoint(address: config.bindIP, port: 0)
        relay.gatewayPorts = block
        relay.clientAddress = relay.gatewayAddress  // no client-side sockets: the tunnel is the client leg
        relay.clientPorts = block
        relay.quarantineNanoseconds = config.mediaQuarantineNanoseconds
        do {
            return try LocalRelay(configuration: relay, loop: worker.loop, index: worker.index) { event in
                switch event {
                case let .timeout(id, idle):
                    log.info("mirror-media-idle", ["session": "\(id)", "idle_ms": "\(idle / 1_000_000)"])
                case let .firstPacket(id, side, from):
                    log.debug("mirror-media-latched", ["session": "\(id)", "side": "\(side)", "from": "\(from)"])
                default:
                    break
                }
            }
        } catch {
            log.error("mirror-no-media-ports", ["worker": "\(worker.index)", "error": "\(error)"])
            return nil
        }
    }

    func mirror(_ client: TunnelClient) -> MirrorClient? { client.context as? MirrorClient }

    public func clientStarted(_ client: TunnelClient) {
        if mirror(client) != nil { return }
        do {
            client.context = try MirrorClient(backend: self, client: client)
        } catch {
            log.warning("mirror-no-public-face", ["alias": client.alias, "error": "\(error)"])
        }
    }

    public func clientSignalling(_ client: TunnelClient, channel: UInt16, message: Message) {
        guard let m = mirror(client) else {
            if case .register = message { client.send(.rejected(reason: 503, text: "no free port on the appliance")) }
            if case .call = message { client.send(.hangup(cause: Q850.resourceUnavailable), channel: channel) }
            return
        }
        m.signalling(channel: channel, message: message)
    }

    public func clientMedia(_ client: TunnelClient, channel: UInt16, kind: MediaKind, packet: [UInt8]) {
        mirror(client)?.calls[channel]?.fromClient(kind: kind, packet: packet)
    }

    public func clientDetached(_ client: TunnelClient) {}

    public func clientResumed(_ client: TunnelClient) {}

    public func clientEnded(_ client: TunnelClient, graceExpired: Bool) {
        guard let m = mirror(client) else { return }
        client.context = nil
        retiring[ObjectIdentifier(m)] = m
        m.end(cause: graceExpired ? Q850.destinationOutOfOrder : Q850.normalClearing)
    }

    func retired(_ m: MirrorClient) {
        retiring[ObjectIdentifier(m)] = nil
    }

    func write(_ record: CallRecord) {
        cdr?.write(record)
        log.info("call-record", ["id": record.id, "cause": "\(record.cause)", "by": record.hungUpBy.rawValue])
    }
}

/// One client's public face: its RAS registration and its calls.
final class MirrorClient {
    unowned let backend: MirrorBackend
    weak var client: TunnelClient?
    let alias: String
    let rasPort: UInt16
    let signallingPort: UInt16
    let ras: UDPPort
    let listener: TCPListener
    /// The registration the client asked for (nil before REGISTER and after close).
    var rasDriver: RASDriver?
    var aliases: [String] = []
    /// The client's H.235 password token (CREDENTIALS), put in the RRQ as it is: the
    /// appliance never holds this subscriber's secret.
    var h235: (timeStamp: Int, hash: [UInt8])?
    var calls: [UInt16: MirrorCall] = [:]
    var callsByKey: [Int: MirrorCall] = [:]
    var nextKey = 1
    var nextIncoming: UInt16 = 2
    var nextCRV: UInt16 = 1
    var ending = false
    var log: Logger { backend.log }
    var config: MirrorConfig { backend.config }

    init(backend: MirrorBackend, client: TunnelClient) throws {
        self.backend = backend
        self.client = client
        alias = client.alias
        let ip = backend.config.bindIP
        let loop = backend.loop
        (ras, rasPort) = try backend.rasPool.open("RAS") { try UDPPort(loop: loop, address: EndpointAddress(ip: ip, port: $0)) }
        do {
            (listener, signallingPort) = try backend.signallingPool.open("call-signalling") {
                try TCPListener(loop: loop, address: EndpointAddress(ip: ip, port: $0))
            }
        } catch {
            ras.close()
            backend.rasPool.give(rasPort)
            throw error
        }
        ras.onDatagram = { [unowned self] bytes, from in
            guard let m = try? RasMessage(decoding: Array(bytes)) else { return }
            self.rasEvent(.received(m, from: from))
        }
        listener.onAccept = { [unowned self] socket, from in self.accept(socket, from: from) }
    }

    var publicRAS: EndpointAddress { EndpointAddress(ip: config.publicIP, port: rasPort) }
    var publicSignalling: EndpointAddress { EndpointAddress(ip: config.publicIP, port: signallingPort) }

    func send(_ message: Message, channel: UInt16 = 0) { client?.send(message, channel: channel) }

    static func alias(_ text: String) -> AliasAddress {
        !text.isEmpty && text.allSatisfy({ $0.isNumber || $0 == "+" || $0 == "*" || $0 == "#" })
            ? .dialledDigits(text.filter { $0 != "+" }) : .h323ID(text)
    }

    // MARK: Tunnel signalling

    func signalling(channel: UInt16, message: Message) {
        switch message {
        case .credentials(.h235PasswordMD5, let timeStamp, let hash):
            h235 = (Int(timeStamp), hash)
        case .register(let list):
            aliases = list.isEmpty ? [alias] : Array(list.prefix(8))
            var tokens: [CryptoH323Token]?
            if let h235 {
                tokens = [H235PasswordHash.cryptoToken(alias: alias, timeStamp: h235.timeStamp, hash: h235.hash)]
            } else if client?.verifiedByGatekeeper == true {
                return send(.rejected(reason: RegistrationRejectReason.securityDenial.index,
                                      text: "no H.235 credentials were sent before REGISTER"))
            }
            rasDriver?.close()
            let driver = RASDriver(loop: backend.loop, client: RASClient(config: RASConfig(
                gatekeeper: config.gatekeeper, rasAddress: publicRAS, callSignalAddress: publicSignalling,
                aliases: aliases.map(Self.alias), discover: config.discover, timeToLive: config.timeToLive, cryptoTokens: tokens))
            ) { [unowned self] bytes, to in self.ras.send(bytes, to: to) }
            driver.onAction = { [unowned self] action in self.rasAction(action) }
            rasDriver = driver
            driver.handle(.start)
        case .unregister:
            rasEvent(.unregister)
        case .call(let destination, let codecs):
            placeCall(channel: channel, destination: destination, codecs: codecs.compactMap(AudioCodec.init))
        case .ringing:
            calls[channel]?.driver.event(.alert)
        case .answer(let codecs):
            calls[channel]?.answered(codecs.compactMap(AudioCodec.init))
        case .hangup(let cause):
            calls[channel]?.hangupFromClient(cause: cause)
        case .dtmf(let digit, let duration):
            if let c = DTMF.character(tunnelByte: digit) { calls[channel]?.driver.event(.dtmf(c, durationMs: Int(duration))) }
        default:
            break
        }
    }

    func newKey() -> Int {
        defer { nextKey += 1 }
        return nextKey
    }

    func placeCall(channel: UInt16, destination: String, codecs: [AudioCodec]) {
        guard channel != 0, channel % 2 == 1, calls[channel] == nil else {
            return send(.hangup(cause: Q850.invalidCallReference), channel: channel)
        }
        guard rasDriver?.isRegistered == true else {
            return send(.hangup(cause: Q850.temporaryFailure), channel: channel)
        }
        guard !codecs.isEmpty, let call = try? MirrorCall(owner: self, channel: channel, key: newKey(), direction: .outgoing,
                                                          caller: aliases.first ?? alias, callee: destination) else {
            return send(.hangup(cause: codecs.isEmpty ? Q850.incompatibleDestination : Q850.resourceUnavailable), channel: channel)
        }
        var guid = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { guid[i] = UInt8.random(in: 0...255) }
        let crv = nextCRV
        nextCRV = nextCRV >= 0x7FFF ? 1 : nextCRV + 1
        let info = OutgoingCallInfo(callReference: crv, callIdentifier: guid, conferenceID: guid, source: aliases.map(Self.alias),
                                    destination: [Self.alias(destination)])
        call.driver.call = H323Call(outgoing: info, codecs: codecs, localRTP: call.publicRTP, options: config.options)
        register(call)
        log.info("mirror-call-out", ["alias": alias, "channel": "\(channel)", "to": destination])
        rasEvent(.admit(AdmissionParameters(callKey: call.key, callReferenceValue: Int(crv), conferenceID: guid, callIdentifier: guid,
                                            destination: info.destination, source: info.source, answerCall: false)))
    }

    func register(_ call: MirrorCall) {
        calls[call.channel] = call
        callsByKey[call.key] = call
        backend.worker.shared.activeCalls.add(1, ordering: .relaxed)
    }

    func forget(_ call: MirrorCall) {
        guard callsByKey.removeValue(forKey: call.key) != nil else { return }
        calls[call.channel] = nil
        backend.worker.shared.activeCalls.subtract(1, ordering: .relaxed)
        if rasDriver?.isRegistered == true {
            rasEvent(.disengage(callKey: call.key, cause: call.record.cause))
        }
        if ending && calls.isEmpty { finishEnding() }
    }

    // MARK: Inbound calls

    func accept(_ socket: TCPSocket, from: EndpointAddress) {
        TPKTConnection.awaitingSetup(loop: backend.loop, socket: socket, from: from) { [unowned self] setup, connection in
            self.incoming(setup, on: connection)
        }
    }

    func incoming(_ setup: Q931Message, on connection: TPKTConnection) {
        guard !ending, rasDriver?.isRegistered == true, let info = try? H323Call.describe(setup: setup) else {
            connection.send(packet: (try? H323Call.rejectSetup(setup, cause: Q850.temporaryFailure).encoded()) ?? [])
            return connection.close()
        }
        var channel = nextIncoming
        while calls[channel] != nil { channel = channel >= 0xFFFE ? 2 : channel + 2 }
        nextIncoming = channel >= 0xFFFE ? 2 : channel + 2
        let from = info.callingNumber ?? IncomingCallInfo.text(info.source) ?? ""
        let to = info.calledNumber ?? IncomingCallInfo.text(info.destination) ?? aliases.first ?? alias
        guard let call = try? MirrorCall(owner: self, channel: channel, key: newKey(), direction: .incoming, caller: from, callee: to) else {
            connection.send(packet: (try? H323Call.rejectSetup(setup, cause: Q850.resourceUnavailable).encoded()) ?? [])
            return connection.close()
        }
        // Without fast start the client may pick any codec it has; H.245 then offers just that one.
        let acceptable = info.offeredCodecs.isEmpty ? AudioCodec.allCases : info.offeredCodecs
        do {
            call.driver.call = try H323Call(incoming: setup, localRTP: call.publicRTP, acceptable: acceptable, options: config.options)
        } catch {
            call.releasePorts()
            connection.send(packet: (try? H323Call.rejectSetup(setup, cause: Q850.protocolError).encoded()) ?? [])
            return connection.close()
        }
        call.offered = acceptable
        call.driver.attachSignalling(connection)
        register(call)
        log.info("mirror-call-in", ["alias": alias, "channel": "\(channel)", "from": from, "to": to])
        call.driver.event(.proceed)
        rasEvent(.admit(AdmissionParameters(callKey: call.key, callReferenceValue: Int(call.driver.call?.callReference ?? 0),
                                            conferenceID: info.conferenceID, callIdentifier: info.callIdentifier,
                                            destination: aliases.map(Self.alias), source: info.source, answerCall: true)))
    }

    // MARK: RAS

    func rasEvent(_ event: RASEvent) { rasDriver?.handle(event) }

    private func rasAction(_ action: RASAction) {
        switch action {
        case .send:
            break  // sent by the driver
        case .registered(let id, let ttl):
            log.info("mirror-registered", ["alias": alias, "endpoint": id, "ras": "\(publicRAS)"])
            send(.registered(aliases: aliases, ttlSeconds: UInt16(clamping: ttl ?? config.timeToLive)))
        case .registrationRejected(let reason):
            log.info("mirror-rejected", ["alias": alias, "reason": "\(reason)", "h235": h235 == nil ? "no" : "yes"])
            send(.rejected(reason: reason.index, text: reason.displayText))
        case .registrationLost(let why):
            log.warning("mirror-registration-lost", ["alias": alias, "why": why])
        case .unregistered:
            if ending { finishEnding() } else { send(.rejected(reason: 410, text: "unregistered")) }
        case .admitted(let key, let destination, _):
            callsByKey[key]?.admitted(destination: destination)
        case .admissionFailed(let key, let cause):
            callsByKey[key]?.failed(cause: cause, by: .network)
        case .disengageRequested(let key):
            callsByKey[key]?.driver.event(.hangup(cause: Q850.normalClearing))
        case .disengaged:
            if ending && calls.isEmpty { finishEnding() }
        }
    }

    // MARK: End of the tunnel session

    func end(cause: UInt8) {
        ending = true
        for call in Array(calls.values) { call.applianceHangup(cause: cause) }
        if calls.isEmpty { finishEnding() }
    }

    private var urqSent = false

    func finishEnding() {
        if !urqSent, rasDriver?.isRegistered == true {
            urqSent = true
            rasEvent(.unregister)
            return
        }
        // Wait for UCF (or the URQ's last timeout): the RAS port must stay open for it.
        if urqSent, let state = rasDriver?.client.state, state == .unregistering { return }
        close()
    }

    private var closed = false

    func close() {
        guard !closed else { return }  // ports go back to the pools exactly once
        closed = true
        rasDriver?.close()
        rasDriver = nil
        ras.close()
        listener.close()
        backend.rasPool.give(rasPort)
        backend.signallingPool.give(signallingPort)
        backend.retired(self)
        log.info("mirror-closed", ["alias": alias])
    }
}

/// One call of a mirror: the H.323 side, the tunnel channel and the media relay.
final class MirrorCall {
    unowned let owner: MirrorClient
    let channel: UInt16
    let key: Int
    let driver: CallDriver
    /// The call's relay session: gateway-facing RTP port (RTCP above), the tunnel as the
    /// client leg. Set once in init; destroyed by `releasePorts`, or at the latest with
    /// the call.
    let relay: LocalRelay
    private(set) var rtpPort: UInt16 = 0
    private(set) var media = SessionID(0)
    private var mediaReleased = false
    var transmit: MediaChannel? {
        // Where the gateway receives: announced to the relay, which also accepts the
        // gateway's media from that address only (and latches its source port).
        didSet {
            if let remote = transmit?.remoteRTP, remote != oldValue?.remoteRTP || transmit?.remoteRTCP != oldValue?.remoteRTCP {
                // RTCP where H.245's mediaControlChannel says, else the RTP port + 1.
                relay.updateRemote(media, side: .gateway, to: IPv4Endpoint(address: remote.ip, port: remote.port),
                                   rtcp: transmit?.remoteRTCP.map { IPv4Endpoint(address: $0.ip, port: $0.port) })
            }
        }
    }
    var connected = false
    var connectedSent = false
    var earlyMediaSent = false
    var offered: [AudioCodec] = []
    var record: CallRecord
    var hangupBy: CallRecord.Party?

    init(owner: MirrorClient, channel: UInt16, key: Int, direction: CallRecord.Direction, caller: String, callee: String) throws {
        self.owner = owner
        self.channel = channel
        self.key = key
        let backend = owner.backend
        driver = CallDriver(loop: backend.loop)
        guard let relay = backend.relay else { throw SystemError("no media ports on this worker", 0) }
        self.relay = relay
        let now = wallClockMilliseconds()
        record = CallRecord(id: "\(owner.alias)-\(now)-\(channel)", subscriber: owner.alias, direction: direction,
                            caller: direction == .outgoing ? caller : caller, callee: callee, startMs: now)
        let dscp = backend.worker.shared.mediaDSCP
        let session = try relay.createSession(gatewayAnnounced: nil, sink: MirrorMediaSink(call: self),
                                              dscp: dscp == 0 ? nil : dscp)
        rtpPort = session.gatewayPort
        media = session.id
        driver.onAction = { [unowned self] action in self.perform(action) }
    }

    var publicRTP: EndpointAddress { EndpointAddress(ip: owner.config.publicIP, port: rtpPort) }
    var log: Logger { owner.log }

    func admitted(destination: EndpointAddress?) {
        guard let call = driver.call else { return }
        if call.role == .incoming {
            owner.send(.incoming(from: record.caller, to: record.callee, codecs: offered.compactMap(\.tunnelCodec)), channel: channel)
            return
        }
        guard driver.place(to: destination) else { return failed(cause: Q850.noRouteToDestination, by: .network) }
    }

    func answered(_ codecs: [AudioCodec]) {
        driver.event(.answer(codecs: codecs))
    }

    func hangupFromClient(cause: UInt8) {
        hangupBy = .client
        if driver.call?.state == .null || driver.signalling == nil {
            return failed(cause: cause, by: .client, notifyClient: false)
        }
        driver.event(.hangup(cause: cause))
    }

    func applianceHangup(cause: UInt8) {
        hangupBy = .appliance
        if driver.call?.state == .null || driver.signalling == nil { return failed(cause: cause, by: .appliance) }
        driver.event(.hangup(cause: cause))
    }

    func perform(_ action: CallAction) {
        switch action {
        case .sendSignalling, .sendH245, .connectH245:
            break  // the driver's
        case .proceeding:
            break
        case .ringing:
            if driver.call?.role == .outgoing { owner.send(.ringing, channel: channel) }
        case .progress:
            owner.send(.progress, channel: channel)
        case .connected:
            connected = true
            record.connectMs = wallClockMilliseconds()
            sendConnectedIfReady()
        case .transmit(let media):
            transmit = media
            record.codec = media.codec.description
            if !connected, !earlyMediaSent, driver.call?.role == .outgoing, let codec = media.codec.tunnelCodec {
                // Fast start answered in Progress/Alerting: the far end's ringback or
                // announcement flows into the tunnel before CONNECTED.
                earlyMediaSent = true
                owner.send(.earlyMedia(codec: codec, packetTimeMs: UInt8(AudioCodec.packetTimeMs)), channel: channel)
                log.info("mirror-early-media", ["alias": owner.alias, "channel": "\(channel)", "codec": media.codec.description])
            }
            sendConnectedIfReady()
        case .receive:
            break
        case .dtmf(let c, let duration):
            if let digit = DTMF.tunnelByte(c) { owner.send(.dtmf(digit: digit, durationMs: UInt16(clamping: duration)), channel: channel) }
        case .roundTripDelay:
            break
        case .released(let cause, let byRemote):
            let party: CallRecord.Party = byRemote ? .network : (hangupBy ?? .appliance)
            finish(cause: cause, by: party, notifyClient: party != .client)
        }
    }

    /// CONNECTED tells the client the codec: wait for the Q.931 Connect and the media address.
    func sendConnectedIfReady() {
        guard connected, !connectedSent, let transmit, let codec = transmit.codec.tunnelCodec else { return }
        connectedSent = true
        owner.send(.connected(codec: codec, packetTimeMs: UInt8(AudioCodec.packetTimeMs)), channel: channel)
    }

    func failed(cause: UInt8, by: CallRecord.Party, notifyClient: Bool = true) {
        if let c = driver.call, c.state != .null, !c.isReleased, driver.signalling != nil {
            driver.event(.hangup(cause: cause))
            return
        }
        finish(cause: cause, by: by, notifyClient: notifyClient)
    }

    func finish(cause: UInt8, by: CallRecord.Party, notifyClient: Bool) {
        guard !driver.isClosed else { return }
        driver.close()
        if notifyClient { owner.send(.hangup(cause: cause), channel: channel) }
        record.cause = cause
        record.hungUpBy = by
        record.endMs = wallClockMilliseconds()
        if let counters = relay.stats(media) {
            record.toNetwork = MediaSummary(counters.fromClient.stream)
            record.fromNetwork = MediaSummary(counters.fromGateway.stream)
        }
        owner.backend.write(record)
        releasePorts()
        owner.forget(self)
    }

    func releasePorts() {
        guard !mediaReleased else { return }
        mediaReleased = true
        relay.destroy(media)
    }

    deinit { releasePorts() }

    // MARK: Media relay

    /// From the gateway, accepted by the relay's latching (the negotiated far end only).
    func fromNetwork(_ kind: Channel, _ bytes: UnsafeRawBufferPointer) {
        owner.client?.sendMedia(channel: channel, kind: kind == .rtp ? .rtp : .rtcp, packet: bytes)
    }

    /// From the client. The relay tells RTP from RTCP by the packet itself (RFC 5761).
    func fromClient(kind: MediaKind, packet: [UInt8]) {
        // Nothing goes out before the far end is known (the relay would only count it).
        guard transmit?.remoteRTP != nil else { return }
        packet.withUnsafeBytes { relay.receiveFromClient(session: media, bytes: $0) }
    }
}

/// The relay's client leg of a mirror call: what the gateway sends goes into the tunnel.
/// Weak: the session must not keep the call alive (the call ends the session).
final class MirrorMediaSink: MediaSink {
    weak var call: MirrorCall?

    init(call: MirrorCall) { self.call = call }

    func deliver(session: SessionID, channel: Channel, bytes: UnsafeRawBufferPointer) {
        call?.fromNetwork(channel, bytes)
    }
}

func wallClockMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}
