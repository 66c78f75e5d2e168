// LAB TOOL: `bloo lab gateway`, an H.323 gateway stand-in for tests, demos and a
// technician's test call. Not part of the appliance's service. It answers every call,
// sends a tone or a WAV file, records what it receives (WAV, tone presence, DTMF), and
// can place a call itself. Its H.245 path is chosen: fast start, H.245 tunnelled, or a
// separate H.245 connection, so that each path of a peer gets exercised.
import Endpoint
import EndpointIO
import Glibc
import H323
import IO
import Log
import Phone
import RTP

public struct LabGatewayConfig {
    public var callSignalAddress: EndpointAddress
    /// Address put in OLC/fast start for RTP (the gateway binds ports on it).
    public var mediaIP: UInt32
    public var codecs: [AudioCodec] = [.pcmu, .pcma]
    public var options = CallOptions(terminalType: 60)
    /// Use a separate H.245 connection (listen per call) instead of tunnelling.
    public var separateH245 = false
    public var toneHz: Double = 2000
    public var wav: WAVFile?
    public var recordDirectory: String?
    /// Report how much of the received audio holds this tone.
    public var expectToneHz: Double?
    public var sendDTMF = ""
    public var answerDelayMs: UInt64 = 200
    /// Before answering, send Progress with the fast start answer and this tone (ringback),
    /// so that media flows before Connect (early media). Needs a fast start offer.
    public var earlyMediaHz: Double?
    public var hangupAfterMs: UInt64?
    public var hangupCause: UInt8 = Q850.normalClearing
    public var gatekeeper: EndpointAddress?
    public var rasAddress: EndpointAddress?
    public var aliases: [AliasAddress] = [.h323ID("labgw")]
    /// Place a call to this alias once registered (or at start without a gatekeeper).
    public var callTo: String?
    public var callToAddress: EndpointAddress?
    public var callDelayMs: UInt64 = 500
    /// Where its RTP/RTCP pairs come from; nil: a range picked from the process id
    /// (separate lab processes on one host rarely collide). The daemon's lab service
    /// sets it so that the gateway keeps out of the relay's ports.
    public var mediaPorts: ClosedRange<UInt16>?

    public init(callSignalAddress: EndpointAddress, mediaIP: UInt32) {
        self.callSignalAddress = callSignalAddress
        self.mediaIP = mediaIP
    }
}

public final class LabGateway {
    let loop: EventLoop
    let config: LabGatewayConfig
    let log = Logger(subsystem: "lab-gateway")
    var listener: TCPListener?
    var ras: UDPPort?
    /// Registration at the gatekeeper, when one is configured.
    var rasDriver: RASDriver?
    var calls: [Int: GatewayCall] = [:]
    var nextKey = 1
    var nextCRV: UInt16 = 1
    var nextPort: UInt16 = 0
    public private(set) var completedCalls = 0

    public init(loop: EventLoop, config: LabGatewayConfig) throws {
        self.loop = loop
        self.config = config
        let l = try TCPListener(loop: loop, address: config.callSignalAddress)
        l.onAccept = { [unowned self] socket, from in self.accept(socket, from: from) }
        listener = l
        if let gk = config.gatekeeper {
            let rasAddress = config.rasAddress ?? EndpointAddress(ip: config.callSignalAddress.ip, port: 0)
            let port = try UDPPort(loop: loop, address: rasAddress)
            port.onDatagram = { [unowned self] bytes, from in
                guard let m = try? RasMessage(decoding: Array(bytes)) else { return }
                self.ras(.received(m, from: from))
            }
            ras = port
            let driver = RASDriver(loop: loop, client: RASClient(config: RASConfig(
                gatekeeper: gk, rasAddress: port.address, callSignalAddress: l.address, aliases: config.aliases,
                discover: true, timeToLive: 60, endpointType: EndpointIdentity.gateway))
            ) { [unowned port] bytes, to in port.send(bytes, to: to) }
            driver.onAction = { [unowned self] action in self.rasAction(action) }
            rasDriver = driver
            driver.handle(.start)
        } else if config.callTo != nil {
            loop.schedule(afterNanoseconds: config.callDelayMs * 1_000_000) { [unowned self] in self.placeCall() }
        }
        log.notice("lab gateway started (LAB TOOL)", ["signalling": "\(l.address)",
            "mode": config.options.fastStart ? "fast-start" : (config.separateH245 ? "h245-separate" : "h245-tunnelled")])
    }

    /// Ends every call and closes every socket (the daemon's lab service restarts it).
    public func close() {
        let all = Array(calls.values)
        calls = [:]
        for call in all { call.finish() }
        rasDriver?.close()
        listener?.close()
        listener = nil
        ras?.close()
        ras = nil
    }

    // MARK: RAS

    func ras(_ event: RASEvent) { rasDriver?.handle(event) }

    private func rasAction(_ action: RASAction) {
        switch action {
        case .registered(let id, _):
            log.info("registered", ["endpoint": id])
            if config.callTo != nil {
                loop.schedule(afterNanoseconds: config.callDelayMs * 1_000_000) { [unowned self] in self.placeCall() }
            }
        case .registrationRejected(let r): log.warning("registration rejected", ["reason": "\(r)"])
        case .registrationLost(let why): log.warning("registration lost", ["why": why])
        case .admitted(let key, let destination, _):
            calls[key]?.admitted(destination: destination)
        case .admissionFailed(let key, let cause):
            log.info("call released", ["cause": "\(cause)", "by": "gatekeeper", "reason": Q850.text(cause)])
            calls[key]?.finish()
        case .disengageRequested(let key):
            calls[key]?.driver.event(.hangup(cause: Q850.normalClearing))
        default: break
        }
    }

    func mediaPort() throws -> (UDPPort, UDPPort) {
        // An even RTP port with RTCP on the next one.
        for _ in 0..<200 {
            if let range = config.mediaPorts {
                if nextPort < range.lowerBound || nextPort >= range.upperBound { nextPort = range.lowerBound + range.lowerBound % 2 }
                if nextPort >= range.upperBound { break }  // no pair fits the range
            } else if nextPort == 0 || nextPort > 60000 {
                nextPort = 20000 + UInt16(getpid() % 1000) * 40
            }
            let port = nextPort
            nextPort &+= 2
            guard let rtp = try? UDPPort(loop: loop, address: EndpointAddress(ip: config.mediaIP, port: port)) else { continue }
            guard let rtcp = try? UDPPort(loop: loop, address: EndpointAddress(ip: config.mediaIP, port: port + 1)) else {
                rtp.close()
                continue
            }
            return (rtp, rtcp)
        }
        throw SystemError("no free RTP port pair")
    }

    func newKey() -> Int {
        defer { nextKey += 1 }
        return nextKey
    }

    // MARK: Calls

    func accept(_ socket: TCPSocket, from: EndpointAddress) {
        TPKTConnection.awaitingSetup(loop: loop, socket: socket, from: from) { [unowned self] setup, connection in
            self.incoming(setup, on: connection)
        }
    }

    func incoming(_ setup: Q931Message, on connection: TPKTConnection) {
        let key = newKey()
        do {
            let (rtp, rtcp) = try mediaPort()
            var options = config.options
            var h245Listener: TCPListener?
            if config.separateH245 {
                let l = try TCPListener(loop: loop, address: EndpointAddress(ip: config.callSignalAddress.ip, port: 0))
                options.h245Listen = l.address
                options.tunnelling = false
                h245Listener = l
            }
            let call = try H323Call(incoming: setup, localRTP: rtp.address, acceptable: config.codecs, options: options,
                                    endpointType: EndpointIdentity.gateway)
            let info = try H323Call.describe(setup: setup)
            let gc = GatewayCall(gateway: self, key: key, call: call, signalling: connection, rtp: rtp, rtcp: rtcp, h245Listener: h245Listener)
            calls[key] = gc
            log.info("incoming call", ["from": IncomingCallInfo.text(info.source) ?? "?",
                                       "to": info.calledNumber ?? IncomingCallInfo.text(info.destination) ?? "?",
                                       "offered": info.offeredCodecs.map(\.description).joined(separator: ",")])
            gc.start()
            if rasDriver != nil {
                ras(.admit(AdmissionParameters(callKey: key, callReferenceValue: Int(call.callReference), conferenceID: call.conferenceID,
                                               callIdentifier: call.callIdentifier, destination: config.aliases, source: info.source,
                                               answerCall: true)))
            } else {
                gc.admitted(destination: nil)
            }
        } catch {
            log.warning("setup refused", ["error": "\(error)"])
            connection.send(packet: (try? H323Call.rejectSetup(setup, cause: Q850.temporaryFailure).encoded()) ?? [])
            connection.close()
        }
    }

    func placeCall() {
        guard let destination = config.callTo else { return }
        let key = newKey()
        do {
            let (rtp, rtcp) = try mediaPort()
            var guid = [UInt8](repeating: 0, count: 16)
            for i in 0..<16 { guid[i] = UInt8.random(in: 0...255) }
            let crv = nextCRV
            nextCRV = nextCRV >= 0x7FFF ? 1 : nextCRV + 1
            let digits = destination.allSatisfy { $0.isNumber || $0 == "*" || $0 == "#" }
            let info = OutgoingCallInfo(callReference: crv, callIdentifier: guid, conferenceID: guid, source: config.aliases,
                                        destination: [digits ? .dialledDigits(destination) : .h323ID(destination)])
            var options = config.options
            if config.separateH245 { options.tunnelling = false }
            let call = H323Call(outgoing: info, codecs: config.codecs, localRTP: rtp.address, options: options,
                                endpointType: EndpointIdentity.gateway)
            let gc = GatewayCall(gateway: self, key: key, call: call, signalling: nil, rtp: rtp, rtcp: rtcp, h245Listener: nil)
            calls[key] = gc
            log.info("placing call", ["to": destination])
            if rasDriver != nil {
                ras(.admit(AdmissionParameters(callKey: key, callReferenceValue: Int(crv), conferenceID: guid, callIdentifier: guid,
                                               destination: info.destination, source: config.aliases, answerCall: false)))
            } else {
                gc.admitted(destination: config.callToAddress)
            }
        } catch {
            log.warning("cannot place call", ["error": "\(error)"])
        }
    }

    func ended(_ call: GatewayCall, cause: UInt8) {
        calls[call.key] = nil
        completedCalls += 1
        if rasDriver != nil { ras(.disengage(callKey: call.key, cause: cause)) }
    }
}

/// One call of the lab gateway: its signalling, H.245 and media.
final class GatewayCall {
    unowned let gateway: LabGateway
    let key: Int
    let driver: CallDriver
    let rtp: UDPPort
    let rtcp: UDPPort
    var transmit: MediaChannel?
    var receiveCodec: AudioCodec?
    var mediaTimer: TimerID?
    var source: any AudioSource
    var sequence: UInt16 = UInt16.random(in: 0...0xFFFF)
    var timestamp: UInt32 = UInt32.random(in: 0...0xFFFF_FFFF)
    let ssrc = UInt32.random(in: 1...0xFFFF_FFFF)
    var received: [Int16] = []
    var detector: ToneDetector?
    var packetsIn = 0
    var packetsOut = 0
    var digits = ""
    var log: Logger { gateway.log }

    init(gateway: LabGateway, key: Int, call: H323Call, signalling: TPKTConnection?, rtp: UDPPort, rtcp: UDPPort, h245Listener: TCPListener?) {
        self.gateway = gateway
        self.key = key
        driver = CallDriver(loop: gateway.loop, call: call)
        self.rtp = rtp
        self.rtcp = rtcp
        if let wav = gateway.config.wav { source = WAVSource(wav: wav) } else { source = ToneSource(frequency: gateway.config.toneHz) }
        if let hz = gateway.config.expectToneHz { detector = ToneDetector(frequency: hz) }
        rtp.onDatagram = { [unowned self] bytes, _ in self.media(bytes) }
        if let h245Listener { driver.acceptH245(on: h245Listener) }
        if let signalling { driver.attachSignalling(signalling) }
        driver.onAction = { [unowned self] action in self.perform(action) }
    }

    /// Incoming: proceed at once.
    func start() { driver.event(.proceed) }

    func admitted(destination: EndpointAddress?) {
        if driver.call?.role == .incoming {
            driver.event(.alert)
            if let hz = gateway.config.earlyMediaHz {
                source = ToneSource(frequency: hz)
                driver.event(.earlyMedia(codecs: gateway.config.codecs))
            }
            gateway.loop.schedule(afterNanoseconds: gateway.config.answerDelayMs * 1_000_000) { [weak self] in
                guard let self else { return }
                self.driver.event(.answer(codecs: self.gateway.config.codecs))
            }
            return
        }
        guard driver.place(to: destination) else {
            log.info("call released", ["cause": "\(Q850.noRouteToDestination)", "by": "local", "reason": "no route"])
            return finish()
        }
    }

    func perform(_ action: CallAction) {
        switch action {
        case .sendSignalling, .sendH245, .connectH245:
            break  // the driver's
        case .proceeding: log.info("call proceeding", [:])
        case .ringing: log.info("call ringing", [:])
        case .progress: log.info("call progress", [:])
        case .connected:
            log.info("call connected", ["key": "\(key)"])
            if gateway.config.earlyMediaHz != nil, gateway.config.wav == nil { source = ToneSource(frequency: gateway.config.toneHz) }
            scheduleScript()
        case .transmit(let channel):
            transmit = channel
            log.info("media transmit", ["codec": channel.codec.description, "to": channel.remoteRTP.map(\.description) ?? "?"])
            startMedia()
        case .receive(let codec):
            receiveCodec = codec
            log.info("media receive", ["codec": codec.description])
        case .dtmf(let c, let duration):
            digits.append(c)
            log.info("dtmf received", ["digit": String(c), "duration_ms": "\(duration)", "digits": digits])
        case .roundTripDelay(let ms): log.info("round trip delay", ["ms": "\(ms)"])
        case .released(let cause, let byRemote):
            log.info("call released", ["cause": "\(cause)", "by": byRemote ? "remote" : "local", "reason": Q850.text(cause),
                                       "packets_in": "\(packetsIn)", "packets_out": "\(packetsOut)", "digits": digits,
                                       "tone_presence": detector.map { String(format2($0.presence)) } ?? "-"])
            finish()
            gateway.ended(self, cause: cause)
        }
    }

    func scheduleScript() {
        let config = gateway.config
        var delay: UInt64 = 500
        for c in config.sendDTMF {
            gateway.loop.schedule(afterNanoseconds: delay * 1_000_000) { [weak self] in self?.driver.event(.dtmf(c, durationMs: 100)) }
            delay += 150
        }
        if let after = config.hangupAfterMs {
            gateway.loop.schedule(afterNanoseconds: after * 1_000_000) { [weak self] in self?.driver.event(.hangup(cause: config.hangupCause)) }
        }
    }

    // MARK: Media

    func startMedia() {
        guard mediaTimer == nil else { return }
        tickMedia()
    }

    func tickMedia() {
        mediaTimer = gateway.loop.schedule(afterNanoseconds: 20_000_000) { [weak self] in self?.tickMedia() }
        guard let transmit, let to = transmit.remoteRTP, transmit.codec != .g729 else { return }
        let law: G711.Law = transmit.codec == .pcmu ? .muLaw : .aLaw
        let payload = G711.encode(source.nextFrame(), law: law)
        var packet: [UInt8] = [0x80, transmit.codec.rawValue, UInt8(sequence >> 8), UInt8(sequence & 0xFF),
                               UInt8(timestamp >> 24), UInt8((timestamp >> 16) & 0xFF), UInt8((timestamp >> 8) & 0xFF), UInt8(timestamp & 0xFF),
                               UInt8(ssrc >> 24), UInt8((ssrc >> 16) & 0xFF), UInt8((ssrc >> 8) & 0xFF), UInt8(ssrc & 0xFF)]
        packet += payload
        sequence &+= 1
        timestamp &+= UInt32(payload.count)
        rtp.send(packet, to: to)
        packetsOut += 1
    }

    func media(_ bytes: UnsafeRawBufferPointer) {
        // RTP: 12 octets, CSRCs, optional extension.
        guard bytes.count >= 12, bytes[0] >> 6 == 2 else { return }
        var offset = 12 + Int(bytes[0] & 0x0F) * 4
        if bytes[0] & 0x10 != 0 {
            guard bytes.count >= offset + 4 else { return }
            offset += 4 + (Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])) * 4
        }
        guard bytes.count > offset else { return }
        packetsIn += 1
        let pt = bytes[1] & 0x7F
        guard pt == 0 || pt == 8 else { return }
        let samples = G711.decode(bytes[offset...], law: pt == 0 ? .muLaw : .aLaw)
        detector?.feed(samples)
        if gateway.config.recordDirectory != nil && received.count < 8000 * 600 { received += samples }
    }

    func finish() {
        guard !driver.isClosed else { return }
        driver.close()
        if let t = mediaTimer { gateway.loop.cancel(t) }
        rtp.close()
        rtcp.close()
        if let dir = gateway.config.recordDirectory {
            let path = "\(dir)/call-\(getpid())-\(key).wav"
            do {
                try WAVFile(samples: received).write(to: path)
                log.info("recorded", ["path": path, "samples": "\(received.count)"])
            } catch {
                log.warning("recording failed", ["path": path, "error": "\(error)"])
            }
        }
    }
}

func format2(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    return "\(hundredths / 100).\(String(format0(hundredths % 100)))"
}

private func format0(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
