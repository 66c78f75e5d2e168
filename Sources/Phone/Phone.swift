// The softphone: one object a GUI or the command line drives. It picks the
// nearest appliance, opens the tunnel (TLS with the CA checked, or TCP),
// authenticates, registers, places and answers calls, moves audio every 20 ms,
// measures quality, resumes a broken tunnel and fails over to the next
// appliance when the tunnel cannot be resumed.
//
// Threading: a Phone lives on one thread, the one that calls `run`. Every method
// and every event callback runs there. Other threads (a GUI's main thread) use
// `perform { phone in ... }`, which is safe from anywhere.
import Endpoint
import EndpointIO
import Glibc
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
        /// The UDP upgrade of this call's audio, when the appliance offered it.
        var udp: ClientUDPLeg?
        var udpSocket: UDPSocket?
        var udpTarget: IPv4Endpoint?
        var udpRegistration: Registration?
        var tunnelMedia = MediaCounts()
        var udpMedia = MediaCounts()
        var usesUDP: Bool { udp?.usesUDP == true }
        /// Placed or received in direct mode (RTP straight to the far end, no tunnel).
        var direct = false
    }
    /// The phone's own H.323 endpoint while registered directly.
    private var directLine: DirectLine?
    /// The network direct mode was tried on, for remembering what it needed.
    private var network: NetworkKey?
    /// Why direct mode was given up during this run (a call's media never arrived).
    public private(set) var directFallbackReason: String?
    private var udpBuffer = [UInt8](repeating: 0, count: 2048)
    private var calls: [UInt16: Call] = [:]
    private var nextChannel: UInt16 = 1
    private var rttSamples: [Double] = []
    private var nextMediaTick: UInt64 = 0
    private var nextPingAt: UInt64 = 0
    private var stopped = false

    /// What other threads hand to the phone's thread (`perform`), and the doorbell.
    private final class Door: Sendable {
        let inbox = Mutex<[@Sendable (Phone) -> Void]>([])
        let wakeup: Wakeup
        init() throws { wakeup = try Wakeup() }
        func post(_ body: @escaping @Sendable (Phone) -> Void) {
            inbox.withLock { $0.append(body) }
            wakeup.signal()
        }
    }
    private let door: Door
    private var wakeup: Wakeup { door.wakeup }
    /// The scan that picks the next appliance runs on its own thread: the loop keeps
    /// moving audio and timers meanwhile.
    private var scanThread: WorkerThread?
    private var scanning = false

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
        door = try Door()
        try loop.register(fd: door.wakeup.fd, events: .readable, handler: ClosureHandler { [weak self] _ in self?.drainInbox() })
    }

    // MARK: API (call on the phone's thread, or through `perform`)

    /// Runs `body` on the phone's thread at its next turn; callable from any thread.
    public func perform(_ body: @escaping @Sendable (Phone) -> Void) {
        door.post(body)
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
                self.network = network
                // Incoming direct calls arrive here; its port goes into the RRQ.
                let listener = try? TCPListener(loop: loop, address: EndpointAddress(ip: 0, port: 0))
                let (outcome, live) = DirectRegistration.attempt(
                    gatekeeper: gatekeeper, alias: configuration.alias, retry: configuration.rasRetry,
                    callSignalPort: listener?.address.port ?? 1720, keep: listener != nil) { [weak self] in self?.emit(.progress($0)) }
                memory?.remember(network, tunnel: !outcome.registered, reason: outcome.reason)
                if outcome.registered, let live, let listener {
                    startDirectLine(live, listener: listener)
                    isRegistered = true
                    directRegistered = true
                    emit(.progress("direct: \(outcome.reason); no tunnel needed on this network (\(network))"))
                    emit(.registered(aliases: [configuration.alias], path: "direct to the gatekeeper \(gatekeeper)"))
                    return
                }
                listener?.close()
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
        for channel in calls.keys.sorted() where calls[channel]?.direct == true {
            endCall(channel, reason: "the direct registration ended: \(reason)")
        }
        directLine?.close()
        directLine = nil
        directRegistered = false
        isRegistered = false
        emit(.progress(reason))
        connectToBest(reason: nil)
    }

    /// Places a call; events follow (ringing, connected, quality, ended).
    @discardableResult
    public func call(_ number: String, source: any AudioSource = SilenceSource(), sink: any AudioSink = NullSink()) -> CallID? {
        if let directLine {
            let channel = nextChannel
            nextChannel = nextChannel >= 0xFFFD ? 1 : nextChannel + 2
            var call = Call(id: CallID(value: channel), outgoing: true, source: source, sink: sink)
            call.direct = true
            calls[channel] = call
            if let failure = directLine.place(channel: channel, number: number) {
                calls[channel] = nil
                emit(.failed("cannot call \(number) directly: \(failure)"))
                return nil
            }
            emit(.progress("calling \(number) directly (ARQ to the gatekeeper, then Setup with fast start)"))
            return CallID(value: channel)
        }
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
        guard var call = calls[id.value], !call.outgoing else { return }
        call.source = source
        call.sink = sink
        calls[id.value] = call
        if call.direct {
            directLine?.answer(channel: id.value)
            return
        }
        guard let connection else { return }
        connection.stream.send(.answer(codecs: configuration.codecs), channel: id.value)
        flush()
    }

    /// Ends a call (Q.850 cause 16, normal clearing, unless told otherwise).
    public func hangup(_ id: CallID, cause: UInt8 = 16) {
        guard let call = calls[id.value] else { return }
        if call.direct {
            directLine?.hangup(channel: id.value, cause: cause)
        } else {
            connection?.stream.send(.hangup(cause: cause), channel: id.value)
        }
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
            if calls[channel]?.direct == true {
                directLine?.hangup(channel: channel, cause: 16)
            } else {
                connection?.stream.send(.hangup(cause: 16), channel: channel)
            }
            endCall(channel, reason: "phone shut down")
        }
        if let directLine {
            directLine.close()
            self.directLine = nil
            // Let the ReleaseComplete and URQ leave.
            let deadline = monotonicNanoseconds() + 200_000_000
            while monotonicNanoseconds() < deadline { _ = try? loop.runOnce(timeoutMilliseconds: 20) }
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
        let bodies = door.inbox.withLock { bodies -> [@Sendable (Phone) -> Void] in
            defer { bodies.removeAll() }
            return bodies
        }
        for body in bodies { body(self) }
    }

    private func connectToBest(reason: String?) {
        guard !scanning else { return }
        scanning = true
        let appliances = configuration.appliances
        let tls = tlsContext
        let options = configuration.scan
        let door = self.door
        scanThread?.join()
        do {
            scanThread = try WorkerThread.start(name: "phone-scan") {
                let results = ApplianceScanner.scan(appliances, tlsContext: tls, options: options) { text in
                    door.post { $0.emit(.progress(text)) }
                }
                door.post { $0.scanFinished(results, reason: reason) }
            }
        } catch {
            // No thread to spare: scan here, blocking the loop for the scan's duration.
            scanFinished(ApplianceScanner.scan(appliances, tlsContext: tls, options: options) { [weak self] in self?.emit(.progress($0)) },
                         reason: reason)
        }
    }

    private func scanFinished(_ results: [ApplianceMeasurement], reason: String?) {
        scanning = false
        lastScan = results
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
                                        capabilities: configuration.udpAudio ? [.resume, .dtmf, .rtcp, .udpUpgrade] : [.resume, .dtmf, .rtcp],
                                        resumeToken: resumeToken)
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
            callConnected(channel, codec: codec)
        case let .hangup(cause):
            if calls[channel] != nil { endCall(channel, reason: "the far end hung up (\(causeText(cause)))") }
        default:
            handleMore(message, channel: channel, on: connection)
        }
    }

    private func callConnected(_ channel: UInt16, codec: Codec) {
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
    }

    private func handleMore(_ message: Message, channel: UInt16, on connection: Connection) {
        switch message {
        case let .dtmf(digit, _):
            // The byte is the digit's ASCII code; anything else from the appliance is ignored.
            if calls[channel] != nil, let c = DTMF.character(tunnelByte: digit) { emit(.dtmf(CallID(value: channel), digit: c)) }
        case let .media(kind, packet):
            guard var media = calls[channel]?.media else { return }
            if kind == .rtp { media.receiveRTP(packet, nowNanos: monotonicNanoseconds()) } else { media.receiveRTCP(packet) }
            calls[channel]?.media = media
            calls[channel]?.tunnelMedia.received += 1
        case let .udpOffer(port, address, key):
            if channel != 0, calls[channel] != nil { offerUDP(channel: channel, port: port, address: address, key: key, on: connection) }
        case let .udpPath(path):
            guard var call = calls[channel], var leg = call.udp else { return }
            let actions = leg.peerReported(path, now: monotonicNanoseconds())
            call.udp = leg
            calls[channel] = call
            perform(actions, channel: channel)
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
        let tunnel = connection.flatMap { $0.established ? $0 : nil }
        guard tunnel != nil || directLine != nil else { return }
        var sent = false
        if let tunnel, now >= nextPingAt {
            tunnel.stream.send(.ping(clientTime: nowMicros()))
            nextPingAt = now + UInt64(configuration.pingIntervalSeconds * 1e9)
            sent = true
        }
        for channel in calls.keys.sorted() where calls[channel]?.udp != nil {
            guard var call = calls[channel], var leg = call.udp else { continue }
            let actions = leg.tick(now: now)
            call.udp = leg
            calls[channel] = call
            if !actions.isEmpty {
                perform(actions, channel: channel)
                sent = true
            }
        }
        checkDirectMedia(now: now)
        if nextMediaTick == 0 || now > nextMediaTick + 200_000_000 { nextMediaTick = now }
        while now >= nextMediaTick {
            for channel in calls.keys.sorted() {
                guard var call = calls[channel], var media = call.media else { continue }
                let packet = media.nextPacket()
                sendMedia(&call, kind: .rtp, packet: packet, on: tunnel)
                if now >= call.nextDTMFAt, !call.dtmfQueue.isEmpty {
                    let digit = call.dtmfQueue.removeFirst()
                    if call.direct {
                        directLine?.dtmf(channel: channel, digit: Character(Unicode.Scalar(digit)))
                    } else {
                        tunnel?.stream.send(.dtmf(digit: digit, durationMs: 100), channel: channel)
                    }
                    emit(.progress("sent DTMF \(Character(Unicode.Scalar(digit)))"))
                    call.nextDTMFAt = now + 200_000_000
                }
                if now >= call.nextReportAt {
                    if let report = media.receiverReport() {
                        sendMedia(&call, kind: .rtcp, packet: report, on: tunnel)
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
        if sent, let tunnel { service(tunnel) }
    }

    // MARK: Direct mode calls

    private func startDirectLine(_ live: DirectRegistration.Live, listener: TCPListener) {
        let codecs = configuration.codecs.compactMap { AudioCodec(rawValue: $0.rawValue) }
        guard let line = try? DirectLine(loop: loop, live: live, listener: listener, alias: configuration.alias, codecs: codecs) else {
            live.socket.close()
            listener.close()
            return
        }
        line.onProgress = { [weak self] in self?.emit(.progress($0)) }
        line.onRegistrationLost = { [weak self] reason in
            guard let self, self.directLine === line else { return }
            // The gatekeeper no longer answers this network (a firewall came up, the laptop
            // moved): the tunnel takes over; this is not remembered, it may be passing.
            self.openTunnel(because: "falling back to the tunnel: the direct registration was lost (\(reason))")
        }
        line.allocateIncoming = { [weak self] in
            guard let self else { return 2 }
            var channel: UInt16 = 2
            while self.calls[channel] != nil { channel += 2 }
            return channel
        }
        line.onCall = { [weak self] channel, event in self?.directEvent(channel, event) }
        directLine = line
    }

    private func directEvent(_ channel: UInt16, _ event: DirectLine.CallEvent) {
        switch event {
        case let .incoming(from, to):
            var call = Call(id: CallID(value: channel), outgoing: false, source: SilenceSource(), sink: NullSink())
            call.direct = true
            calls[channel] = call
            emit(.incoming(CallID(value: channel), from: from, to: to))
        case .ringing:
            if calls[channel] != nil { emit(.ringing(CallID(value: channel))) }
        case let .connected(codec):
            callConnected(channel, codec: codec)
        case let .dtmf(digit):
            if calls[channel] != nil { emit(.dtmf(CallID(value: channel), digit: digit)) }
        case let .media(kind, packet):
            guard var call = calls[channel], var media = call.media else { return }
            if kind == .rtp { media.receiveRTP(packet, nowNanos: monotonicNanoseconds()) } else { media.receiveRTCP(packet) }
            call.media = media
            call.udpMedia.received += 1
            calls[channel] = call
        case let .released(cause, _):
            if calls[channel] != nil { endCall(channel, reason: "the far end hung up (\(causeText(cause)))") }
        }
    }

    /// A direct call whose audio never arrived: an H.323-unaware NAT or a firewall eats
    /// the media although signalling passes. Hang up, remember that this network needs
    /// the tunnel, and open it.
    private func checkDirectMedia(now: UInt64) {
        let limit = UInt64(configuration.directMediaTimeoutSeconds * 1e9)
        for channel in calls.keys.sorted() {
            guard let call = calls[channel], call.direct, let connectedAt = call.connectedAt, now >= connectedAt + limit,
                  let media = call.media, media.reception.received == 0 else { continue }
            let seconds = configuration.directMediaTimeoutSeconds
            let reason = "the direct call connected but no audio arrived within \(seconds == seconds.rounded() ? "\(Int(seconds))" : "\(seconds)") s "
                + "(\(call.udpMedia.sent) packets sent): a NAT or firewall on this network lets H.323 signalling through but not the media"
            directFallbackReason = reason
            if let gatekeeper = configuration.gatekeeper, let path = configuration.statePath {
                var memory = NetworkMemory(path: path)
                memory.remember(network ?? NetworkKey.current(towards: gatekeeper), tunnel: true, reason: reason)
            }
            directLine?.hangup(channel: channel, cause: Q850.temporaryFailure)
            endCall(channel, reason: "no audio: \(reason)")
            openTunnel(because: "falling back to the tunnel: \(reason)")
            return
        }
    }

    private func quality(_ call: Call) -> CallQuality? {
        guard let media = call.media, let connectedAt = call.connectedAt else { return nil }
        let received = media.stats(received: true)
        let sentStats = media.stats(received: false)
        let loss = max(received.lossPercent, sentStats.lossPercent)
        let jitter = max(received.jitterMs ?? 0, sentStats.jitterMs ?? 0)
        var result = CallQuality(durationSeconds: Double(monotonicNanoseconds() - connectedAt) / 1e9, codec: media.codec,
                           path: call.direct ? .direct : call.usesUDP ? .tunnelUDP : .tunnelTCP, sent: sentStats, received: received, rttMs: rttMs,
                           mos: estimatedMOS(rttMs: rttMs, jitterMs: jitter, lossPercent: loss))
        result.tunnelMedia = call.tunnelMedia
        result.udpMedia = call.udpMedia
        return result
    }

    // MARK: UDP audio (docs/tunnel-protocol.md §8)

    /// One RTP or RTCP packet of a call: on UDP once the upgrade proved it, else in the tunnel.
    private func sendMedia(_ call: inout Call, kind: MediaKind, packet: [UInt8], on connection: Connection?) {
        if call.direct {
            if directLine?.sendMedia(channel: call.id.value, kind: kind, packet: packet) == true { call.udpMedia.sent += 1 }
        } else if call.usesUDP, let socket = call.udpSocket, let target = call.udpTarget {
            _ = socket.send(packet, to: target)
            call.udpMedia.sent += 1
        } else if let connection {
            connection.stream.send(.media(kind: kind, packet: packet), channel: call.id.value)
            call.tunnelMedia.sent += 1
        }
    }

    private func offerUDP(channel: UInt16, port: UInt16, address: UInt32, key: [UInt8], on connection: Connection) {
        guard configuration.udpAudio, var call = calls[channel], call.udp == nil else { return }
        let target = IPv4Endpoint(address: address == 0 ? connection.stream.appliance.endpoint.address : address, port: port)
        let socket: UDPSocket
        do {
            socket = try UDPSocket.open()
            try socket.connect(target)  // the kernel then drops datagrams from anyone else
        } catch {
            emit(.progress("cannot open UDP towards \(target) for \(call.id) (\(error)): audio stays in the tunnel"))
            return
        }
        let fd = socket.fd
        guard let registration = try? loop.register(fd: fd, events: .readable, handler: ClosureHandler { [weak self] _ in
            self?.udpReadable(channel: channel, fd: fd)
        }) else {
            socket.close()
            return
        }
        var leg = ClientUDPLeg(channel: channel, config: configuration.udpUpgrade, crypto: PhoneCrypto())
        leg.offer(key: key, now: monotonicNanoseconds())
        call.udp = leg
        call.udpSocket = socket
        call.udpTarget = target
        call.udpRegistration = registration
        calls[channel] = call
        emit(.progress("the appliance offers UDP audio for \(call.id) at \(target): proving that UDP gets through"))
    }

    private func udpReadable(channel: UInt16, fd: Int32) {
        guard var call = calls[channel], let socket = call.udpSocket, socket.fd == fd, var leg = call.udp else { return }
        let now = monotonicNanoseconds()
        var actions: [ClientUDPLeg.Action] = []
        for _ in 0..<8 {
            guard let (count, _) = udpBuffer.withUnsafeMutableBytes({ socket.receive(into: $0) }) else { break }
            let verdict = udpBuffer.withUnsafeBytes { leg.receive(UnsafeRawBufferPointer(rebasing: $0[0..<count]), now: now) }
            switch verdict {
            case let .media(kind):
                call.udpMedia.received += 1
                guard var media = call.media else { continue }
                let packet = Array(udpBuffer[0..<count])
                if kind == .rtp { media.receiveRTP(packet, nowNanos: now) } else { media.receiveRTCP(packet) }
                call.media = media
            case let .control(more):
                actions += more
            case .dropped:
                break
            }
        }
        call.udp = leg
        calls[channel] = call
        perform(actions, channel: channel)
        if !actions.isEmpty { flush() }
    }

    private func perform(_ actions: [ClientUDPLeg.Action], channel: UInt16) {
        guard let call = calls[channel] else { return }
        for action in actions {
            switch action {
            case let .send(bytes):
                if let socket = call.udpSocket, let target = call.udpTarget { _ = socket.send(bytes, to: target) }
            case let .pathChanged(path, tellAppliance, reason):
                if tellAppliance { connection?.stream.send(.udpPath(path), channel: channel) }
                emit(.progress(path == .udp ? "audio of \(call.id) moved to UDP: \(reason)"
                                            : "audio of \(call.id) back in the tunnel: \(reason)"))
            }
        }
    }

    private func closeUDP(_ call: Call) {
        if let registration = call.udpRegistration { loop.unregister(registration) }
        call.udpSocket?.close()
    }

    private func endCall(_ channel: UInt16, reason: String) {
        guard let call = calls.removeValue(forKey: channel) else { return }
        let summary = quality(call)
        closeUDP(call)
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
