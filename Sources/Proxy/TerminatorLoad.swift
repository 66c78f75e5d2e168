// A load generator for the terminator (bench/tunnel): many tunnels, each carrying one
// G.711 call (20 ms, 172-byte RTP) to a UDP "far end" through the lab backend, audio
// in both directions. It runs on one thread with its own epoll loop; each packet
// carries its send time, so loss and one-way latency (client -> tunnel -> UDP, and
// UDP -> tunnel -> client) are measured on the same clock.

import Glibc
import IO
import Log
import Tunnel

public final class TunnelLoad {
    public struct Options: Sendable {
        public var endpoint = IPv4Endpoint.loopback(port: 443)
        /// CA file for TLS; nil: plain TCP.
        public var caPath: String?
        public var aliasPrefix = "load"
        public var secretPrefix = "load-secret-"
        public var packetInterval: UInt64 = 20_000_000
        public init() {}
    }

    public struct Window: Sendable {
        public var calls = 0
        public var sent = 0
        public var received = 0
        /// Send time to the moment this generator read the packet: includes the generator's
        /// own delay in getting to it, which grows as the generator nears saturation.
        public var latencies: [UInt64] = []
        /// Send time to the kernel's receive stamp on the generator's socket: what the
        /// terminator (and the kernel) added, without the generator's reading delay.
        public var arrivals: [UInt64] = []
        /// Client -> tunnel -> UDP far end (generator-read latency).
        public var upstream: [UInt64] = []
        /// CPU the generator itself used in the window, percent of one core.
        public var generatorCPU = 0.0

        public var loss: Double { sent == 0 ? 0 : max(0, Double(sent - received)) / Double(sent) }
        public func percentile(_ p: Double, of values: [UInt64]? = nil) -> Double {
            let values = values ?? latencies
            guard !values.isEmpty else { return 0 }
            let sorted = values.sorted()
            let index = min(sorted.count - 1, Int(Double(sorted.count - 1) * p))
            return Double(sorted[index]) / 1e6
        }
    }

    /// What a received frame is, taken from the decoder's buffer without copying it.
    enum Received {
        case media(sentAt: UInt64)
        case frame(Frame)
        case other
    }

    final class Call: IOHandler {
        unowned let load: TunnelLoad
        let index: Int
        let socket: TCPSocket
        let tls: TLSEngine?
        var handshake: ClientHandshake
        var decoder = FrameDecoder(maxPayload: 16384)
        /// Bytes the kernel did not take yet (ciphertext on TLS).
        var outgoing: [UInt8] = []
        var awaitingFlush = false
        var connected = false
        var established = false
        var inCall = false
        var sequence: UInt16 = 0
        var registration: Registration?
        var failed = false

        init(load: TunnelLoad, index: Int, socket: TCPSocket, tls: TLSEngine?, handshake: ClientHandshake) {
            self.load = load
            self.index = index
            self.socket = socket
            self.tls = tls
            self.handshake = handshake
        }

        func send(_ frame: Frame) {
            var bytes: [UInt8] = []
            frame.encode(into: &bytes)
            bytes.withUnsafeBytes { send($0) }
        }

        /// Encrypts (on TLS) and writes `bytes` now; what the kernel refuses waits in `outgoing`.
        func send(_ bytes: UnsafeRawBufferPointer) {
            if let tls {
                guard tls.status == .established else { return }
                _ = tls.write(bytes)
                sendCiphertext()
            } else {
                write(bytes)
            }
        }

        private func sendCiphertext() {
            guard let tls else { return }
            while tls.pendingCiphertext > 0 {
                let count = load.cipher.withUnsafeMutableBytes { tls.takeCiphertext(into: $0) }
                guard count > 0 else { return }
                load.cipher.withUnsafeBytes { write(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            }
        }

        private func write(_ bytes: UnsafeRawBufferPointer) {
            guard outgoing.isEmpty else {
                outgoing.append(contentsOf: bytes)
                return
            }
            let written = socket.write(bytes)
            if written < 0 { failed = true; return }
            if written < bytes.count {
                outgoing.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[written...]))
                if !awaitingFlush {
                    awaitingFlush = true
                    load.awaitingFlush.append(self)
                }
            }
        }

        /// Retries what the kernel refused earlier; true when nothing is left.
        func flush() -> Bool {
            guard !outgoing.isEmpty else { return true }
            let written = outgoing.withUnsafeBytes { socket.write($0) }
            if written < 0 { failed = true; outgoing.removeAll(); return true }
            outgoing.removeFirst(written)
            return outgoing.isEmpty
        }

        func handle(events: IOEvents, tag: UInt64) {
            if !connected && events.contains(.writable) {
                connected = true
                if let registration { try? load.loop.modify(registration, events: .readable) }
                if let tls {
                    tls.advance()
                    sendCiphertext()
                } else {
                    send(handshake.hello())
                }
            }
            guard events.contains(.readable) || events.contains(.hangup) else { return }
            for _ in 0..<16 {
                var stamp: Int64 = 0
                let result = load.scratch.withUnsafeMutableBytes { socket.read(into: $0, stamp: &stamp) }
                guard case let .bytes(count) = result else {
                    if result != .wouldBlock { failed = true; if let registration { load.loop.unregister(registration) }; registration = nil }
                    return
                }
                load.arrivalStamp = stamp
                load.scratch.withUnsafeBytes { received(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                // A short read emptied the socket; level-triggered epoll reports what comes later.
                if count < load.scratch.count { return }
            }
        }

        private func received(_ bytes: UnsafeRawBufferPointer) {
            if let tls {
                let wasHandshaking = tls.status == .handshaking
                tls.feed(bytes)
                tls.advance()
                sendCiphertext()
                if wasHandshaking && tls.status == .established { send(handshake.hello()) }
                while tls.status == .established {
                    let count = load.plain.withUnsafeMutableBytes { tls.read(into: $0) }
                    guard count > 0 else { break }
                    load.plain.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    if !tls.hasBufferedInput { break }
                }
                sendCiphertext()  // a TLS 1.3 key update answer, if any
            } else {
                decoder.feed(bytes)
            }
            while case let .success(frame)? = decoder.nextView(TunnelLoad.classify) {
                switch frame {
                case let .media(sentAt):
                    load.record(sentAt: sentAt, upstream: false)
                case .other:
                    break
                case let .frame(frame):
                    guard case let .message(message) = Message.decode(frame) else { continue }
                    switch message {
                    case .welcome, .authOK, .error:
                        guard !established else { continue }
                        switch handshake.handle(message) {
                        case let .send(reply): send(reply)
                        case .established:
                            established = true
                            send(Message.call(destination: "udp:\(load.farEndpoint)", codecs: [.pcmu]).frame(channel: 1))
                        case .failed, .deferred: failed = true
                        }
                    case .connected:
                        inCall = true
                        load.callsUp += 1
                    default:
                        break
                    }
                }
            }
        }

        /// One 20 ms packet towards the far end.
        func tick(now: UInt64) {
            guard inCall else { return }
            sequence &+= 1
            load.sent += 1
            load.mediaFrame.withUnsafeMutableBytes { frame in
                TunnelLoad.stamp(UnsafeMutableRawBufferPointer(rebasing: frame[TunnelLoad.mediaHeader...]),
                                 sequence: sequence, call: index, sentAt: monotonicNanoseconds())
                send(UnsafeRawBufferPointer(frame))
            }
        }
    }

    let options: Options
    let loop: EventLoop
    let far: UDPSocket
    let farEndpoint: IPv4Endpoint
    var calls: [Call] = []
    var scratch = [UInt8](repeating: 0, count: 65536)
    var plain = [UInt8](repeating: 0, count: 65536)
    var cipher = [UInt8](repeating: 0, count: 65536)
    /// One MEDIA frame (channel 1, RTP) and one far-end datagram, rewritten for every packet.
    static let mediaHeader = Frame.headerSize + 1
    var mediaFrame: [UInt8]
    var farPacket = [UInt8](repeating: 0xFF, count: TunnelLoad.packetSize)
    /// Calls with bytes the kernel refused, retried every iteration.
    var awaitingFlush: [Call] = []
    var callsUp = 0
    var sent = 0
    var received = 0
    var latencies: [UInt64] = []
    var arrivals: [UInt64] = []
    var upstream: [UInt64] = []
    /// The kernel receive stamp of the read being processed (0: none).
    var arrivalStamp: Int64 = 0
    var receiveClock = ReceiveClock()
    /// Relay address of each call, learnt from its first packet at the far end.
    var relays: [Int: IPv4Endpoint] = [:]
    private let context: TLSContext?

    public init(options: Options) throws {
        self.options = options
        loop = try EventLoop(maxEvents: 1024)
        far = try UDPSocket.bound(to: .loopback(port: 0))
        try? far.setReceiveBuffer(bytes: 8 << 20)
        try? far.setSendBuffer(bytes: 8 << 20)
        try? far.enableReceiveTimestamps()
        farEndpoint = try far.localEndpoint()
        context = try options.caPath.map { try TLSContext.client(caPath: $0) }
        var frame = [UInt8](repeating: 0xFF, count: TunnelLoad.mediaHeader + TunnelLoad.packetSize)
        let length = UInt32(1 + TunnelLoad.packetSize)
        frame.replaceSubrange(0..<TunnelLoad.mediaHeader, with: [tunnelFramingVersion, MessageType.media.rawValue, 0, 1,
                                                               UInt8(length >> 24), UInt8(length >> 16 & 0xFF),
                                                               UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), MediaKind.rtp.rawValue])
        mediaFrame = frame
        try loop.register(fd: far.fd, events: .readable, handler: ClosureHandler { [unowned self] _ in self.farEndReadable() })
    }

    static let packetSize = 172

    /// Writes the RTP header fields the generator uses into a 172-byte packet: sequence,
    /// send time (where the RTP timestamp and SSRC would be) and the call index.
    static func stamp(_ packet: UnsafeMutableRawBufferPointer, sequence: UInt16, call: Int, sentAt: UInt64) {
        guard packet.count >= 24 else { return }
        packet[0] = 0x80
        packet[1] = 0
        packet[2] = UInt8(sequence >> 8)
        packet[3] = UInt8(sequence & 0xFF)
        for byte in 0..<8 { packet[12 + byte] = UInt8(truncatingIfNeeded: sentAt >> UInt64(56 - 8 * byte)) }
        for byte in 0..<4 { packet[20 + byte] = UInt8(truncatingIfNeeded: UInt32(truncatingIfNeeded: call) >> UInt32(24 - 8 * byte)) }
    }

    static func fields(_ packet: UnsafeRawBufferPointer) -> (sentAt: UInt64, call: Int)? {
        guard packet.count >= 24 else { return nil }
        var sentAt: UInt64 = 0
        for byte in 0..<8 { sentAt = sentAt << 8 | UInt64(packet[12 + byte]) }
        var call: UInt32 = 0
        for byte in 0..<4 { call = call << 8 | UInt32(packet[20 + byte]) }
        return (sentAt, Int(call))
    }

    static func classify(type: UInt8, channel: UInt16, payload: UnsafeRawBufferPointer) -> Received {
        if type == MessageType.media.rawValue {
            guard payload.count > 1, let (sentAt, _) = fields(UnsafeRawBufferPointer(rebasing: payload[1...])) else { return .other }
            return .media(sentAt: sentAt)
        }
        return .frame(Frame(type: type, channel: channel, payload: Array(payload)))
    }

    func record(sentAt: UInt64, upstream isUpstream: Bool) {
        received += 1
        let latency = monotonicNanoseconds() &- sentAt
        latencies.append(latency)
        if isUpstream { upstream.append(latency) }
        if let arrived = receiveClock.monotonic(arrivalStamp), arrived >= sentAt { arrivals.append(arrived &- sentAt) }
    }

    /// Far end: counts what came through the tunnel, and sends its own audio back.
    private func farEndReadable() {
        for _ in 0..<256 {
            var stamp: Int64 = 0
            guard let (count, source) = scratch.withUnsafeMutableBytes({ far.receive(into: $0, stamp: &stamp) }) else { return }
            arrivalStamp = stamp
            scratch.withUnsafeBytes { raw in
                guard let (sentAt, call) = TunnelLoad.fields(UnsafeRawBufferPointer(rebasing: raw[0..<count])) else { return }
                record(sentAt: sentAt, upstream: true)
                if relays[call] == nil { relays[call] = source }
            }
        }
    }

    /// Opens `count` more tunnels and places a call on each.
    public func addCalls(_ count: Int) throws {
        for _ in 0..<count {
            let index = calls.count
            let socket = try TCPSocket.connecting(to: options.endpoint)
            try? socket.setNoDelay()
            try? socket.enableReceiveTimestamps()
            let tls = try context.map { try TLSEngine(context: $0, serverName: "localhost") }
            let handshake = ClientHandshake(alias: "\(options.aliasPrefix)\(index)", secret: Array("\(options.secretPrefix)\(index)".utf8),
                                            crypto: LoadCrypto())
            let call = Call(load: self, index: index, socket: socket, tls: tls, handshake: handshake)
            call.registration = try loop.register(fd: socket.fd, events: [.readable, .writable], handler: call)
            calls.append(call)
        }
    }

    /// Runs the loop for `seconds`, sending one packet per call and direction every 20 ms,
    /// and returns what was measured in that window (packets still in flight at its end excluded
    /// by a 200 ms drain without sending).
    public func run(seconds: Double) -> Window {
        sent = 0
        received = 0
        latencies.removeAll(keepingCapacity: true)
        arrivals.removeAll(keepingCapacity: true)
        upstream.removeAll(keepingCapacity: true)
        receiveClock.resync()
        let cpuBefore = TunnelLoad.threadCPUNanoseconds()
        let start = monotonicNanoseconds()
        let end = start + UInt64(seconds * 1e9)
        // Calls are spread over the 20 ms period in 1 ms slots, as real calls are not
        // synchronised; each packet carries the time it was handed to the kernel.
        let slots = 20
        let slotLength = options.packetInterval / UInt64(slots)
        var nextSlot = start
        var slot = 0
        var window = Window()
        while true {
            var now = monotonicNanoseconds()
            if now >= end { break }
            if now >= nextSlot {
                var index = slot
                while index < calls.count {
                    let call = calls[index]
                    call.tick(now: now)
                    if call.inCall, let relay = relays[index] {
                        sent += 1
                        farPacket.withUnsafeMutableBytes { packet in
                            TunnelLoad.stamp(packet, sequence: 0, call: index, sentAt: monotonicNanoseconds())
                            _ = far.send(UnsafeRawBufferPointer(packet), to: relay)
                        }
                    }
                    index += slots
                }
                slot = (slot + 1) % slots
                nextSlot += slotLength
                now = monotonicNanoseconds()
                // Behind (another process had this core for a while): the missed slots are sent
                // now, late, so that the offered load stays what was asked (each packet carries
                // its real send time). Only a generator a whole second behind gives up on them.
                if nextSlot + 50 * options.packetInterval < now { nextSlot = now }
            }
            flushRefused()
            // Rounded up: sleeping until the slot (at most 1 ms late) rather than polling
            // keeps the generator's CPU use a measure of its work.
            let wait = nextSlot > now ? Int32((nextSlot - now + 999_999) / 1_000_000) : 0
            _ = try? loop.runOnce(timeoutMilliseconds: wait)
        }
        let drainEnd = monotonicNanoseconds() + 200_000_000
        while monotonicNanoseconds() < drainEnd {
            flushRefused()
            _ = try? loop.runOnce(timeoutMilliseconds: 5)
        }
        window.generatorCPU = Double(TunnelLoad.threadCPUNanoseconds() &- cpuBefore) / Double(monotonicNanoseconds() - start) * 100
        window.calls = callsUp
        window.sent = sent
        window.received = received
        window.latencies = latencies
        window.arrivals = arrivals
        window.upstream = upstream
        return window
    }

    private func flushRefused() {
        guard !awaitingFlush.isEmpty else { return }
        var kept = 0
        for call in awaitingFlush {
            if call.flush() { call.awaitingFlush = false } else { awaitingFlush[kept] = call; kept += 1 }
        }
        awaitingFlush.removeLast(awaitingFlush.count - kept)
    }

    /// CPU time of the calling thread (the generator runs on one thread).
    static func threadCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    public var failedTunnels: Int { calls.filter { $0.failed }.count }
    public var tunnelCount: Int { calls.count }
}

struct LoadCrypto: TunnelCrypto {
    func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] { TLSCrypto.hmacSHA256(key: key, message: message) }
    func randomBytes(_ count: Int) -> [UInt8] { TLSCrypto.randomBytes(count) }
}
