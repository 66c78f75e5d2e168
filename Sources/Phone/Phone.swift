// The softphone: one object a GUI or the command line drives. It picks the
// nearest appliance, opens the tunnel (TLS with the CA checked, or TCP),
// authenticates, registers, places and answers calls, moves audio every 20 ms,
// measures quality, resumes a broken tunnel and fails over to the next
// appliance when the tunnel cannot be resumed.
//
// Threading: a Phone lives on one thread, the one that calls `run`. Every method
// and every event callback runs there. Other threads (a GUI's main thread) use
// `perform { phone in ... }`, which is safe from anywhere.
import Glibc
import Endpoint
import IO
import Log
import Synchronization
import Tunnel

public enum PhoneEvent: Sendable {
    /// What the phone is doing, in plain words.
    case progress(String)
    case applianceChosen(Appliance, reason: String)
    case registered(aliases: [String], path: String)
    case registrationRejected(reason: String)
    case incoming(CallID, from: String, to: String)
    case ringing(CallID)
    case connected(CallID, codec: Codec)
    case dtmf(CallID, digit: Character)
    case quality(CallID, CallQuality)
    case ended(CallID, reason: String, summary: CallQuality?)
    /// The tunnel broke; the phone resumes or fails over by itself.
    case tunnelLost(String)
    /// Nothing works: no appliance reachable, credentials refused.
    case failed(String)
}

public final class Phone {
    public let configuration: PhoneConfiguration
    /// Every event, on the phone's thread.
    public var onEvent: (PhoneEvent) -> Void = { _ in }
    /// A finished call's sink, after `finish()`: read a tone detector or a recording here.
    public var onCallFinished: (CallID, any AudioSink) -> Void = { _, _ in }

    let loop: EventLoop
    private let tlsContext: TLSContext?
    private let log = Logger(subsystem: "phone")
    private var selector = ApplianceSelector()
    private var lastScan: [ApplianceMeasurement] = []
    private var failedAppliances: Set<Appliance> = []

    private final class Connection: IOHandler {
        let stream: TunnelStream
        var handshake: ClientHandshake
        var registration: Registration?
        var established = false
        weak var phone: Phone?
        init(stream: TunnelStream, handshake: ClientHandshake) {
            self.stream = stream
            self.handshake = handshake
        }
        func handle(events: IOEvents, tag: UInt64) { phone?.service(self) }
    }
    private var connection: Connection?
    public private(set) var appliance: Appliance?
    private var resumeToken: [UInt8]?
    private var graceSeconds: UInt16 = 0
    private var resumeDeadline: UInt64?
    private var refusals = 0
    private var wantRegistration = false
    private var h235Stamps = H235TimeStamps()
    public private(set) var isRegistered = false

    private struct Call {
        var id: CallID
        var outgoing: Bool
        var media: CallMedia?
        var source: any AudioSource
        var sink: any AudioSink
        var connectedAt: UInt64?
        /// Media before the answer (ringback): played, while the phone itself sends silence.
        var early = false
        var dtmfQueue: [UInt8] = []
        var nextDTMFAt: UInt64 = 0
        var nextQualityAt: UInt64 = 0
        var nextReportAt: UInt64 = 0
    }
    private var calls: [UInt16: Call] = [:]
    private var nextChannel: UInt16 = 1
    private var rttSamples: [Double] = []
    private var nextMediaTick: UInt64 = 0
    private var nextPingAt: UInt64 = 0
    private var stopped = false

    private let inbox = Mutex<[@Sendable (Phone) -> Void]>([])
    private let wakeup: Wakeup

    public init(configuration: PhoneConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
        loop = try EventLoop()
        if let ca = configuration.caPath {
            do { tlsContext = try TLSContext.client(caPath: ca) } catch {
                throw PhoneError.configuration("cannot load CA file \(ca): \(error)")
            }
        } else {
            tlsContext = nil
        }
        wakeup = try Wakeup()
        try loop.register(fd: wakeup.fd, events: .readable, handler: ClosureHandler { [weak self] _ in self?.drainInbox() })
    }

    // MARK: API (call on the phone's thread, or through `perform`)

    /// Runs `body` on the phone's thread at its next turn; callable from any thread.
    public func perform(_ body: @escaping @Sendable (Phone) -> Void) {
        inbox.withLock { $0.append(body) }
        wakeup.signal()
    }

    /// Scans the appliances and returns what each answered, best first is the
    /// selector's business: see `ApplianceSelector.ranking`. Blocks for the scan.
    public func scan() -> [ApplianceMeasurement] {
        let results = ApplianceScanner.scan(configuration.appliances, tlsContext: tlsContext, options: configuration.scan) {
            [weak self] in self?.emit(.progress($0))
        }
        lastScan = results
        return results
    }

    /// Direct first when a gatekeeper is configured (unless this network needed the
    /// tunnel before), else the nearest appliance: opens the tunnel and registers the alias.
    public func register() {
        wantRegistration = true
        if let gatekeeper = configuration.gatekeeper {
            let network = NetworkKey.current(towards: gatekeeper)
            var memory = configuration.statePath.map { NetworkMemory(path: $0) }
            if let remembered = memory?.decision(for: network), remembered.tunnel {
                emit(.progress("this network (\(network)) needed the tunnel before (\(remembered.reason)): going straight to the tunnel"))
            } else {
                let outcome = DirectRegistration.attempt(gatekeeper: gatekeeper, alias: configuration.alias, retry: configuration.rasRetry) {
                    [weak self] in self?.emit(.progress($0))
                }
                memory?.remember(network, tunnel: !outcome.registered, reason: outcome.reason)
                if outcome.registered {
                    isRegistered = true
                    directRegistered = true
                    emit(.progress("direct: \(outcome.reason); no tunnel needed on this network (\(network))"))
                    emit(.registered(aliases: [configuration.alias], path: "direct to the gatekeeper \(gatekeeper)"))
                    return
                }
                emit(.progress("falling back to the tunnel: \(outcome.reason)"))
            }
        }
        connectToBest(reason: nil)
    }

    /// Registered straight at the gatekeeper, without a tunnel.
    public private(set) var directRegistered = false

    /// Opens the tunnel and registers through it, whatever direct mode found (this
    /// version carries calls through the tunnel only).
    public func openTunnel(because reason: String) {
        wantRegistration = true
        directRegistered = false
        isRegistered = false
        emit(.progress(reason))
        connectToBest(reason: nil)
    }

    /// Places a call; events follow (ringing, connected, quality, ended).
    @discardableResult
    public func call(_ number: String, source: any AudioSource = SilenceSource(), sink: any AudioSink = NullSink()) -> CallID? {
        guard let connection, connection.established else {
            emit(.failed("cannot call \(number): no tunnel is open"))
            return nil
        }
        let channel = nextChannel
        nextChannel = nextChannel >= 0xFFFD ? 1 : nextChannel + 2
        calls[channel] = Call(id: CallID(value: channel), outgoing: true, source: source, sink: sink)
        connection.stream.send(.call(destination: number, codecs: configuration.codecs), channel: channel)
        emit(.progress("calling \(number)"))
        flush()
        return CallID(value: channel)
    }

    /// Answers an incoming call.
    public func answer(_ id: CallID, source: any AudioSource = SilenceSource(), sink: any AudioSink = NullSink()) {
        guard var call = calls[id.value], !call.outgoing, let connection else { return }
        call.source = source
        call.sink = sink
        calls[id.value] = call
        connection.stream.send(.answer(codecs: configuration.codecs), channel: id.value)
        flush()
    }

    /// Ends a call (Q.850 cause 16, normal clearing, unless told otherwise).
    public func hangup(_ id: CallID, cause: UInt8 = 16) {
        guard calls[id.value] != nil else { return }
        connection?.stream.send(.hangup(cause: cause), channel: id.value)
        flush()
        endCall(id.value, reason: "hung up here")
    }

    /// Sends DTMF digits (0-9 * # A-D), one every 200 ms; others are ignored.
    public func sendDTMF(_ digits: String, on id: CallID) {
        calls[id.value]?.dtmfQueue.append(contentsOf: digits.compactMap { DTMF.tunnelByte($0) })
    }

    /// Quality of a call so far.
    public func quality(of id: CallID) -> CallQuality? {
        calls[id.value].flatMap { quality($0) }
    }

    public var activeCalls: [CallID] { calls.keys.sorted().map { CallID(value: $0) } }

    /// Median PING/PONG round trip to the current appliance.
    public var rttMs: Double? {
        guard !rttSamples.isEmpty else { return nil }
        let sorted = rttSamples.sorted()
        return sorted[sorted.count / 2]
    }

    /// Runs the phone until `stop()` or `condition` returns true (checked every turn).
    public func run(until condition: () -> Bool = { false }) {
        stopped = false
        while !stopped && !condition() {
            _ = try? loop.runOnce(timeoutMilliseconds: 5)
            tick()
        }
    }

    public func stop() { stopped = true }

    /// Ends calls, says BYE and closes the tunnel.
    public func shutdown() {
        for channel in calls.keys.sorted() {
            connection?.stream.send(.hangup(cause: 16), channel: channel)
            endCall(channel, reason: "phone shut down")
        }
        if let connection {
            connection.stream.send(.bye)
            // Give the BYE a moment to leave.
            let deadline = monotonicNanoseconds() + 300_000_000
            while connection.stream.wantsWrite && connection.stream.isOpen && monotonicNanoseconds() < deadline {
                connection.stream.pump()
                usleep(5_000)
            }
            close(connection)
        }
        wantRegistration = false
    }

    // MARK: Tunnel

    private func emit(_ event: PhoneEvent) { onEvent(event) }

    private func drainInbox() {
        _ = wakeup.drain()
        let bodies = inbox.withLock { bodies -> [@Sendable (Phone) -> Void] in
            defer { bodies.removeAll() }
            return bodies
        }
        for body in bodies { body(self) }
    }

    private func connectToBest(reason: String?) {
        let results = scan()
        let usable = results.filter { !failedAppliances.contains($0.appliance) }
        var pick = selector.choose(usable)
        if pick == nil, !failedAppliances.isEmpty {
            // Every appliance failed once: give them all another chance.
            failedAppliances.removeAll()
            pick = selector.choose(results)
        }
        guard let (chosen, why) = pick else {
            let details = results.map { "\($0.appliance): \($0.failure ?? ($0.isFull ? "full" : "no answer"))" }.joined(separator: "; ")
            emit(.failed("no appliance reachable (\(details))"))
            return
        }
        emit(.applianceChosen(chosen, reason: (reason.map { $0 + "; " } ?? "") + why))
        resumeToken = nil
        open(chosen)
    }

    private func open(_ target: Appliance) {
        appliance = target
        var handshake = ClientHandshake(alias: configuration.alias, secret: configuration.secret, crypto: PhoneCrypto(),
                                        capabilities: [.resume, .dtmf, .rtcp], resumeToken: resumeToken)
        handshake.acceptsGatekeeperVerification = configuration.gatekeeperVerification
        do {
            let stream = try TunnelStream(appliance: target, tlsContext: tlsContext)
            let connection = Connection(stream: stream, handshake: handshake)
            connection.phone = self
            connection.registration = try loop.register(fd: stream.socket.fd, events: [.readable, .writable], handler: connection)
            stream.send(handshake.hello(client: configuration.clientName))
            self.connection = connection
            emit(.progress("connecting to \(target)" + (resumeToken != nil ? " to resume the session" : "")))
            service(connection)
        } catch {
            connectionLost("cannot open a connection to \(target): \(error)", refused: true)
        }
    }

    private func close(_ connection: Connection) {
        if let registration = connection.registration { loop.unregister(registration) }
        connection.registration = nil
        connection.stream.close("closed here")
        if self.connection === connection { self.connection = nil }
    }

    private func flush() {
        guard let connection else { return }
        service(connection)
    }

    /// Socket readiness, and after anything was queued: move bytes, handle frames.
    private func service(_ connection: Connection) {
        let stream = connection.stream
        // Pump again after handling frames: answers they produced go out now.
        var frames: [Frame]
        repeat {
            stream.pump()
            frames = stream.takeFrames()
            for frame in frames {
                switch Message.decode(frame) {
                case let .message(message): handle(message, channel: frame.channel, on: connection)
                case .unknownType: continue  // a newer appliance; skipped
                case let .malformed(type):
                    stream.close("malformed \(type) from the appliance")
                }
                if self.connection !== connection { return }
            }
        } while !frames.isEmpty && stream.status != .connecting && !isClosed(stream)
        if case let .closed(reason) = stream.status {
            close(connection)
            connectionLost(reason, refused: !connection.established)
            return
        }
        if let registration = connection.registration {
            try? loop.modify(registration, events: stream.wantsWrite ? [.readable, .writable] : .readable)
        }
    }

    /// CREDENTIALS for the gatekeeper: the H.235.1 MD5 password hash over this alias, the
    /// secret as password and a timestamp that never repeats (replay protection).
    private func h235Credentials() -> Message? {
        guard let password = H235PasswordHash.password(fromSecret: configuration.secret) else { return nil }
        let timeStamp = h235Stamps.next(nowSeconds: Int(time(nil)))
        guard let bytes = try? H235PasswordHash.hashedBytes(alias: configuration.alias, password: password, timeStamp: timeStamp) else {
            return nil
        }
        return .credentials(method: .h235PasswordMD5, timeStamp: UInt32(clamping: timeStamp), hash: TLSCrypto.md5(bytes))
    }

    private func isClosed(_ stream: TunnelStream) -> Bool {
        if case .closed = stream.status { return true }
        return false
    }

    private func handle(_ message: Message, channel: UInt16, on connection: Connection) {
        if !connection.established {
            switch connection.handshake.handle(message) {
            case let .send(frame):
                connection.stream.send(frame)
            case .deferred(.h235PasswordMD5):
                // The appliance does not hold this secret: prove it to the operator's gatekeeper
                // with an H.235 password hash that the mirror puts in its RRQ.
                guard let credentials = h235Credentials() else {
                    wantRegistration = false
                    connection.stream.close("the secret of \(configuration.alias) cannot serve as an H.235 password")
                    emit(.failed("the secret of \(configuration.alias) cannot serve as an H.235 password (BMP text needed)"))
                    return
                }
                connection.stream.send(credentials)
                connection.stream.send(.register(aliases: [configuration.alias]))
                emit(.progress("the appliance leaves the credentials to the operator's gatekeeper (H.235); registering \(configuration.alias)"))
            case let .established(_, token, grace, resumed):
                connection.established = true
                refusals = 0
                resumeDeadline = nil
                resumeToken = token
                graceSeconds = grace
                failedAppliances.removeAll()
                let via = "\(connection.stream.appliance) (\(pathDescription))"
                if resumed {
                    emit(.progress("tunnel resumed on \(via); calls continue"))
                } else {
                    emit(.progress("tunnel open to \(via), authenticated as \(configuration.alias)"))
                    // A fresh session: whatever the old one carried is gone.
                    for channel in calls.keys.sorted() { endCall(channel, reason: "the tunnel was lost and could not be resumed") }
                    if wantRegistration && !connection.handshake.deferred {  // a deferred REGISTER is already on its way
                        connection.stream.send(.register(aliases: [configuration.alias]))
                        emit(.progress("registering \(configuration.alias)"))
                    }
                }
                nextPingAt = 0
            case let .failed(reason) where connection.handshake.deferred:
                // The gatekeeper's RRJ (REJECTED): the credentials are wrong, not the appliance.
                connection.stream.close("authentication with \(connection.stream.appliance) failed: \(reason)")
                wantRegistration = false
                isRegistered = false
                emit(.registrationRejected(reason: reason))
            case let .failed(reason):
                connection.stream.close("authentication with \(connection.stream.appliance) failed: \(reason)")
                if reason.contains("error 200") || reason.contains("secret") {
                    wantRegistration = false
                    emit(.failed("the appliance refused the credentials of \(configuration.alias): \(reason)"))
                }
            }
            return
        }
        switch message {
        case let .registered(aliases, _):
            isRegistered = true
            emit(.registered(aliases: aliases, path: "\(pathDescription) via \(connection.stream.appliance)"))
        case let .rejected(reason, text):
            isRegistered = false
            emit(.registrationRejected(reason: "the gatekeeper rejected the registration (reason \(reason)): \(text)"))
        case let .incoming(from, to, _):
            guard channel != 0, calls[channel] == nil else { return }
            calls[channel] = Call(id: CallID(value: channel), outgoing: false, source: SilenceSource(), sink: NullSink())
            connection.stream.send(.ringing, channel: channel)
            emit(.incoming(CallID(value: channel), from: from, to: to))
        case .ringing, .progress:
            if calls[channel] != nil, message == .ringing { emit(.ringing(CallID(value: channel))) }
        case let .earlyMedia(codec, _):
            // Ringback or an announcement before the answer: played to the user; the phone
            // sends silence until CONNECTED.
            guard var call = calls[channel], call.media == nil else { return }
            call.media = CallMedia(codec: codec, source: SilenceSource(), sink: call.sink, random: PhoneCrypto().randomBytes(10))
            call.early = true
            calls[channel] = call
            emit(.progress("early media from the far end (codec \(codec)), call \(channel): playing it until the answer"))
        case let .connected(codec, _):
            guard var call = calls[channel], call.media == nil || call.early else { return }
            call.early = false
            let now = monotonicNanoseconds()
            // The sink goes on from the early media (a recording keeps the ringback); the
            // statistics start afresh with the answer.
            call.media = CallMedia(codec: codec, source: call.source, sink: call.media?.sink ?? call.sink,
                                   random: PhoneCrypto().randomBytes(10))
            call.connectedAt = now
            call.nextQualityAt = now + UInt64(configuration.qualityIntervalSeconds * 1e9)
            call.nextReportAt = now + 2_000_000_000  // first report early: short calls get one too
            call.nextDTMFAt = now + 500_000_000
            calls[channel] = call
            nextPingAt = 0  // measure the round trip now
            emit(.connected(CallID(value: channel), codec: codec))
        case let .hangup(cause):
            if calls[channel] != nil { endCall(channel, reason: "the far end hung up (\(causeText(cause)))") }
        case let .dtmf(digit, _):
            // The byte is the digit's ASCII code; anything else from the appliance is ignored.
            if calls[channel] != nil, let c = DTMF.character(tunnelByte: digit) { emit(.dtmf(CallID(value: channel), digit: c)) }
        case let .media(kind, packet):
            guard var media = calls[channel]?.media else { return }
            if kind == .rtp { media.receiveRTP(packet, nowNanos: monotonicNanoseconds()) } else { media.receiveRTCP(packet) }
            calls[channel]?.media = media
        case let .ping(time):
            connection.stream.send(.pong(clientTime: time, serverTime: nowMicros(), activeCalls: UInt32(calls.count), capacity: 1))
        case let .pong(clientTime, _, _, _):
            let rtt = Double(nowMicros() &- clientTime) / 1000
            if rtt >= 0 && rtt < 60_000 {
                rttSamples.append(rtt)
                if rttSamples.count > 15 { rttSamples.removeFirst() }
            }
        case let .error(code, text):
            connection.stream.close("the appliance reported error \(code): \(text)")
        case .bye:
            resumeToken = nil  // the appliance is shutting down: nothing to resume
            connection.stream.close("the appliance is shutting down (BYE)")
        default:
            break
        }
    }

    private var pathDescription: String {
        guard let appliance else { return "no tunnel" }
        return appliance.transport == .tls ? "tunnel over TCP, TLS" : "tunnel over TCP"
    }

    private func connectionLost(_ reason: String, refused: Bool) {
        isRegistered = false
        let now = monotonicNanoseconds()
        guard let target = appliance else { return }
        emit(.tunnelLost(reason))
        if refused { refusals += 1 }
        if resumeToken != nil && graceSeconds > 0 {
            let window = min(Double(graceSeconds), configuration.resumeWindowSeconds)
            if resumeDeadline == nil { resumeDeadline = now + UInt64(window * 1e9) }
            if let deadline = resumeDeadline, now < deadline, refusals < configuration.refusalsBeforeFailover {
                emit(.progress("resuming the session on \(target) in 1 s"))
                loop.schedule(afterNanoseconds: 1_000_000_000) { [weak self] in
                    guard let self, self.connection == nil, self.wantRegistration || !self.calls.isEmpty else { return }
                    self.open(target)
                }
                return
            }
        } else if !wantRegistration && calls.isEmpty {
            return
        }
        // The session cannot be resumed here: move to the next appliance.
        failedAppliances.insert(target)
        selector.drop(target)
        resumeToken = nil
        resumeDeadline = nil
        refusals = 0
        for channel in calls.keys.sorted() { endCall(channel, reason: "the tunnel to \(target) was lost and could not be resumed") }
        loop.schedule(afterNanoseconds: 200_000_000) { [weak self] in
            guard let self, self.connection == nil else { return }
            self.connectToBest(reason: "\(target) failed (\(reason)), failing over")
        }
    }

    // MARK: Media and timers

    /// Media every 20 ms on a fixed schedule (no drift), DTMF, RTCP, PING, quality events.
    private func tick() {
        let now = monotonicNanoseconds()
        guard let connection, connection.established else { return }
        var sent = false
        if now >= nextPingAt {
            connection.stream.send(.ping(clientTime: nowMicros()))
            nextPingAt = now + UInt64(configuration.pingIntervalSeconds * 1e9)
            sent = true
        }
        if nextMediaTick == 0 || now > nextMediaTick + 200_000_000 { nextMediaTick = now }
        while now >= nextMediaTick {
            for channel in calls.keys.sorted() {
                guard var call = calls[channel], var media = call.media else { continue }
                let packet = media.nextPacket()
                connection.stream.send(.media(kind: .rtp, packet: packet), channel: channel)
                if now >= call.nextDTMFAt, !call.dtmfQueue.isEmpty {
                    let digit = call.dtmfQueue.removeFirst()
                    connection.stream.send(.dtmf(digit: digit, durationMs: 100), channel: channel)
                    emit(.progress("sent DTMF \(Character(Unicode.Scalar(digit)))"))
                    call.nextDTMFAt = now + 200_000_000
                }
                if now >= call.nextReportAt {
                    if let report = media.receiverReport() {
                        connection.stream.send(.media(kind: .rtcp, packet: report), channel: channel)
                    }
                    call.nextReportAt = now + 5_000_000_000
                }
                call.media = media
                calls[channel] = call
                if now >= call.nextQualityAt, let q = quality(call) {
                    calls[channel]?.nextQualityAt = now + UInt64(configuration.qualityIntervalSeconds * 1e9)
                    emit(.quality(call.id, q))
                }
            }
            nextMediaTick += 20_000_000
            sent = true
        }
        if sent { service(connection) }
    }

    private func quality(_ call: Call) -> CallQuality? {
        guard let media = call.media, let connectedAt = call.connectedAt else { return nil }
        let received = media.stats(received: true)
        let sentStats = media.stats(received: false)
        let loss = max(received.lossPercent, sentStats.lossPercent)
        let jitter = max(received.jitterMs ?? 0, sentStats.jitterMs ?? 0)
        return CallQuality(durationSeconds: Double(monotonicNanoseconds() - connectedAt) / 1e9, codec: media.codec,
                           path: .tunnelTCP, sent: sentStats, received: received, rttMs: rttMs,
                           mos: estimatedMOS(rttMs: rttMs, jitterMs: jitter, lossPercent: loss))
    }

    private func endCall(_ channel: UInt16, reason: String) {
        guard let call = calls.removeValue(forKey: channel) else { return }
        let summary = quality(call)
        if var media = call.media {
            do { try media.sink.finish() } catch { emit(.progress("could not finish the recording: \(error)")) }
            if let error = media.sinkError { emit(.progress("audio sink failed during the call: \(error)")) }
            onCallFinished(call.id, media.sink)
        }
        log.info("call-ended", ["channel": "\(channel)", "reason": reason])
        emit(.ended(call.id, reason: reason, summary: summary))
    }

    /// The sink of a call in progress (to read a tone detector, for example).
    public func sink(of id: CallID) -> (any AudioSink)? { calls[id.value]?.media?.sink }
}

func causeText(_ cause: UInt8) -> String {
    switch cause {
    case 1: "unallocated number"
    case 16: "normal clearing"
    case 17: "user busy"
    case 18: "no user responding"
    case 19: "no answer"
    case 21: "call rejected"
    case 27: "destination out of order"
    case 34: "no circuit available"
    case 41: "temporary failure"
    case 81: "invalid call reference"
    default: "Q.850 cause \(cause)"
    }
}
