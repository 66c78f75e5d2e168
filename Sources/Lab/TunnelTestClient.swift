// LAB TOOL: `bloo lab client`, a minimal tunnelled client (plain TCP) for the mirror's
// end-to-end tests and benchmark: the Tunnel module's client handshake, REGISTER, one call
// out or answering calls in, a tone as G.711 RTP in MEDIA frames, a ToneDetector on what
// comes back, DTMF and hangups. The real softphone is `bloo phone`.
import Endpoint
import EndpointIO
import Glibc
import IO
import Log
import RTP
import Tunnel

public struct LabTunnelClientConfig {
    public var server: EndpointAddress
    public var alias: String
    public var secret: [UInt8]
    public var register: [String] = []
    public var callTo: String?
    /// Calls placed one after the other (the benchmark's setup/teardown loop).
    public var calls = 1
    public var answer = true
    public var codecs: [Tunnel.Codec] = [.pcmu, .pcma]
    public var toneHz: Double = 1000
    public var expectToneHz: Double?
    /// Report how much of the media received before CONNECTED (early media) holds this tone.
    public var expectEarlyToneHz: Double?
    public var sendDTMF = ""
    public var hangupAfterMs: UInt64?
    public var hangupCause: UInt8 = 16
    public var answerDelayMs: UInt64 = 100
    /// Drop the TCP connection without BYE this long after a call connected (grace tests).
    public var dropAfterMs: UInt64?

    public init(server: EndpointAddress, alias: String, secret: [UInt8]) {
        self.server = server
        self.alias = alias
        self.secret = secret
    }
}

struct LabCrypto: TunnelCrypto {
    func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] { TLSCrypto.hmacSHA256(key: key, message: message) }
    func randomBytes(_ count: Int) -> [UInt8] { TLSCrypto.randomBytes(count) }
}

public final class LabTunnelClient: IOHandler {
    let loop: EventLoop
    let config: LabTunnelClientConfig
    let log = Logger(subsystem: "lab-client")
    let socket: TCPSocket
    var registration: Registration?
    var decoder = FrameDecoder(maxPayload: 65536)
    var handshake: ClientHandshake
    var established = false
    var output: [UInt8] = []
    public private(set) var completedCalls = 0
    public private(set) var connectedCalls = 0
    public private(set) var placedCalls = 0
    public private(set) var registered = false
    public private(set) var failed = false
    var nextChannel: UInt16 = 1
    /// Quiet: no line per call (benchmark).
    public var quiet = false
    var calls: [UInt16: ClientCall] = [:]

    final class ClientCall {
        let channel: UInt16
        var codec: Tunnel.Codec = .pcmu
        var generator: ToneGenerator
        var detector: ToneDetector?
        var earlyDetector: ToneDetector?
        var connected = false
        var earlyPackets = 0
        var mediaTimer: TimerID?
        var sequence: UInt16 = 0
        var timestamp: UInt32 = 0
        var packetsIn = 0
        var packetsOut = 0
        var digits = ""
        init(channel: UInt16, toneHz: Double, expect: Double?) {
            self.channel = channel
            generator = ToneGenerator(frequency: toneHz)
            detector = expect.map { ToneDetector(frequency: $0) }
        }
        var earlyPresencePct: String { earlyDetector.map { String(Int(($0.presence * 100).rounded())) } ?? "-" }
    }

    public init(loop: EventLoop, config: LabTunnelClientConfig) throws {
        self.loop = loop
        self.config = config
        handshake = ClientHandshake(alias: config.alias, secret: config.secret, crypto: LabCrypto())
        socket = try TCPSocket.connecting(to: config.server.ioEndpoint)
        try? socket.setNoDelay()
        registration = try loop.register(fd: socket.fd, events: [.readable, .writable], handler: self)
        write(handshake.hello(client: "bloo-lab-client").encoded)
    }

    public var isClosed: Bool { registration == nil }

    func write(_ bytes: [UInt8]) {
        guard registration != nil else { return }
        output += bytes
        flush()
    }

    func flush() {
        guard !output.isEmpty, let registration else { return }
        let n = output.withUnsafeBytes { socket.write($0) }
        if n < 0 { return close() }
        output.removeFirst(n)
        try? loop.modify(registration, events: output.isEmpty ? .readable : [.readable, .writable])
    }

    func send(_ message: Message, channel: UInt16 = 0) { write(message.frame(channel: channel).encoded) }

    public func handle(events: IOEvents, tag: UInt64) {
        if events.contains(.writable) { flush() }
        var buffer = [UInt8](repeating: 0, count: 16384)
        for _ in 0..<16 {
            guard registration != nil else { return }
            switch buffer.withUnsafeMutableBytes({ socket.read(into: $0) }) {
            case .bytes(let n):
                decoder.feed(buffer[0..<n])
                while let next = decoder.next() {
                    guard case .success(let frame) = next, case .message(let m) = Message.decode(frame) else {
                        log.warning("bad frame from the appliance", [:])
                        return close()
                    }
                    received(m, channel: frame.channel)
                }
            case .wouldBlock: return
            case .endOfStream, .failed:
                log.info("tunnel closed by the appliance", [:])
                return close()
            }
        }
    }

    public func close() {
        guard let registration else { return }
        loop.unregister(registration)
        self.registration = nil
        socket.close()
        for call in calls.values { if let t = call.mediaTimer { loop.cancel(t) } }
    }

    func received(_ message: Message, channel: UInt16) {
        if !established {
            switch handshake.handle(message) {
            case .send(let frame): write(frame.encoded)
            case .established:
                established = true
                log.info("authenticated", ["alias": config.alias])
                send(.register(aliases: config.register.isEmpty ? [config.alias] : config.register))
            case .deferred:  // the lab client is not configured for gatekeeper verification
                log.warning("handshake failed", ["why": "the appliance defers to the gatekeeper; use bloo phone --gatekeeper-auth"])
                failed = true
                close()
            case .failed(let why):
                log.warning("handshake failed", ["why": why])
                failed = true
                close()
            }
            return
        }
        switch message {
        case .registered(let aliases, let ttl):
            registered = true
            if !quiet { log.info("registered", ["aliases": aliases.joined(separator: ","), "ttl": "\(ttl)"]) }
            placeNextCall()
        case .rejected(let reason, let text):
            log.warning("registration rejected", ["reason": "\(reason)", "text": text])
            failed = true
        case .incoming(let from, let to, let codecs):
            log.info("incoming call", ["from": from, "to": to, "codecs": codecs.map { "\($0)" }.joined(separator: ","), "channel": "\(channel)"])
            calls[channel] = ClientCall(channel: channel, toneHz: config.toneHz, expect: config.expectToneHz)
            send(.ringing, channel: channel)
            if config.answer {
                let mine = config.codecs.filter { codecs.contains($0) }
                loop.schedule(afterNanoseconds: config.answerDelayMs * 1_000_000) { [weak self] in
                    self?.send(.answer(codecs: mine.isEmpty ? codecs : mine), channel: channel)
                }
            }
        case .progress: log.info("call progress", ["channel": "\(channel)"])
        case .earlyMedia(let codec, let ptime):
            guard let call = calls[channel] else { return }
            call.earlyDetector = config.expectEarlyToneHz.map { ToneDetector(frequency: $0) }
            log.info("early media", ["channel": "\(channel)", "codec": "\(codec)", "ptime": "\(ptime)"])
        case .ringing: log.info("call ringing", ["channel": "\(channel)"])
        case .connected(let codec, let ptime):
            guard let call = calls[channel] else { return }
            connectedCalls += 1
            if config.hangupAfterMs == 0 {
                // Setup/teardown loop: hang up at once.
                send(.hangup(cause: config.hangupCause), channel: channel)
                return ended(call, cause: config.hangupCause, by: "local")
            }
            call.connected = true
            log.info("call connected", ["channel": "\(channel)", "codec": "\(codec)", "ptime": "\(ptime)",
                                        "early_packets": "\(call.earlyPackets)", "early_tone_presence_pct": call.earlyPresencePct])
            call.codec = codec
            startMedia(call)
            var delay: UInt64 = 500
            for c in config.sendDTMF {
                if let d = DTMF.tunnelByte(c) {
                    loop.schedule(afterNanoseconds: delay * 1_000_000) { [weak self] in self?.send(.dtmf(digit: d, durationMs: 100), channel: channel) }
                }
                delay += 120
            }
            if let drop = config.dropAfterMs {
                loop.schedule(afterNanoseconds: drop * 1_000_000) { [weak self] in
                    self?.log.info("dropping the tunnel without BYE", [:])
                    self?.close()
                }
            }
            if let after = config.hangupAfterMs {
                let cause = config.hangupCause
                loop.schedule(afterNanoseconds: after * 1_000_000) { [weak self] in
                    guard let self, let call = self.calls[channel] else { return }
                    self.send(.hangup(cause: cause), channel: channel)
                    self.ended(call, cause: cause, by: "local")
                }
            }
        case .hangup(let cause):
            guard let call = calls[channel] else { return }
            ended(call, cause: cause, by: "remote")
        case .dtmf(let digit, let duration):
            guard let call = calls[channel], let c = DTMF.character(tunnelByte: digit) else { return }
            call.digits.append(c)
            log.info("dtmf received", ["digit": String(c), "duration_ms": "\(duration)", "digits": call.digits])
        case .media(let kind, let packet):
            guard kind == .rtp, let call = calls[channel], packet.count > 12 else { return }
            call.packetsIn += 1
            let pt = packet[1] & 0x7F
            guard pt == 0 || pt == 8 else { return }
            let offset = 12 + Int(packet[0] & 0x0F) * 4
            guard packet.count > offset else { return }
            let samples = G711.decode(packet[offset...], law: pt == 0 ? .muLaw : .aLaw)
            if call.connected {
                call.detector?.feed(samples)
            } else {
                call.earlyPackets += 1
                call.earlyDetector?.feed(samples)
            }
        case .error(let code, let text):
            log.warning("appliance error", ["code": "\(code)", "text": text])
        default:
            break
        }
    }

    func placeNextCall() {
        guard let to = config.callTo, placedCalls < config.calls, registration != nil else { return }
        let channel = nextChannel
        nextChannel = nextChannel >= 0xFFFD ? 1 : nextChannel + 2
        placedCalls += 1
        calls[channel] = ClientCall(channel: channel, toneHz: config.toneHz, expect: config.expectToneHz)
        if !quiet { log.info("calling", ["to": to, "channel": "\(channel)"]) }
        send(.call(destination: to, codecs: config.codecs), channel: channel)
    }

    func ended(_ call: ClientCall, cause: UInt8, by: String) {
        guard calls.removeValue(forKey: call.channel) != nil else { return }
        if let t = call.mediaTimer { loop.cancel(t) }
        defer { placeNextCall() }
        if quiet {
            completedCalls += 1
            return
        }
        let presence = call.detector.map { Int(($0.presence * 100).rounded()) }
        log.info("call released", ["channel": "\(call.channel)", "cause": "\(cause)", "by": by, "reason": Q850.text(cause),
                                   "packets_in": "\(call.packetsIn)", "packets_out": "\(call.packetsOut)", "digits": call.digits,
                                   "tone_presence_pct": presence.map(String.init) ?? "-"])
        completedCalls += 1
    }

    func startMedia(_ call: ClientCall) {
        call.mediaTimer = loop.schedule(afterNanoseconds: 20_000_000) { [weak self, weak call] in
            guard let self, let call, self.calls[call.channel] != nil else { return }
            self.startMedia(call)
        }
        let samples = call.generator.next(samples: 160)
        let payload = G711.encode(samples, law: call.codec == .pcma ? .aLaw : .muLaw)
        let ssrc: UInt32 = 0x0B100000 | UInt32(call.channel)
        var packet: [UInt8] = [0x80, call.codec.rawValue, UInt8(call.sequence >> 8), UInt8(call.sequence & 0xFF),
                               UInt8(call.timestamp >> 24), UInt8((call.timestamp >> 16) & 0xFF), UInt8((call.timestamp >> 8) & 0xFF),
                               UInt8(call.timestamp & 0xFF), UInt8(ssrc >> 24), UInt8((ssrc >> 16) & 0xFF), UInt8((ssrc >> 8) & 0xFF),
                               UInt8(ssrc & 0xFF)]
        packet += payload
        call.sequence &+= 1
        call.timestamp &+= 160
        call.packetsOut += 1
        send(.media(kind: .rtp, packet: packet), channel: call.channel)
    }
}
