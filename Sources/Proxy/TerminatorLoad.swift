// A load generator for the terminator (bench/tunnel): many tunnels, each carrying one
// G.711 call (20 ms, 172-byte RTP) to a UDP "far end" through the lab backend, audio
// in both directions. It runs on one thread with its own epoll loop; each packet
// carries its send time, so loss and one-way latency (client -> tunnel -> UDP, and
// UDP -> tunnel -> client) are measured on the same clock.

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
        public var latencies: [UInt64] = []
        /// Client -> tunnel -> UDP far end.
        public var upstream: [UInt64] = []

        public var loss: Double { sent == 0 ? 0 : max(0, Double(sent - received)) / Double(sent) }
        public func percentile(_ p: Double, of values: [UInt64]? = nil) -> Double {
            let values = values ?? latencies
            guard !values.isEmpty else { return 0 }
            let sorted = values.sorted()
            let index = min(sorted.count - 1, Int(Double(sorted.count - 1) * p))
            return Double(sorted[index]) / 1e6
        }
    }

    final class Call: IOHandler {
        unowned let load: TunnelLoad
        let index: Int
        let socket: TCPSocket
        let tls: TLSEngine?
        var handshake: ClientHandshake
        var decoder = FrameDecoder(maxPayload: 16384)
        var outgoing: [UInt8] = []
        var connected = false
        var established = false
        var inCall = false
        var relay: IPv4Endpoint?
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
            if let tls {
                guard tls.status == .established else { return }
                _ = tls.write(bytes)
                tls.takeCiphertext(appendingTo: &outgoing)
            } else {
                outgoing += bytes
            }
            flush()
        }

        func flush() {
            guard !outgoing.isEmpty else { return }
            let written = outgoing.withUnsafeBytes { socket.write($0) }
            if written < 0 { failed = true; return }
            outgoing.removeFirst(written)
        }

        func handle(events: IOEvents, tag: UInt64) {
            if !connected && events.contains(.writable) {
                connected = true
                try? load.loop.modify(registration!, events: .readable)
                if let tls {
                    tls.advance()
                    tls.takeCiphertext(appendingTo: &outgoing)
                    flush()
                } else {
                    send(handshake.hello())
                }
            }
            guard events.contains(.readable) || events.contains(.hangup) else { return }
            for _ in 0..<16 {
                let result = load.scratch.withUnsafeMutableBytes { socket.read(into: $0) }
                guard case let .bytes(count) = result else {
                    if result != .wouldBlock { failed = true; if let registration { load.loop.unregister(registration) }; registration = nil }
                    return
                }
                load.scratch.withUnsafeBytes { received(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            }
        }

        private func received(_ bytes: UnsafeRawBufferPointer) {
            if let tls {
                let wasHandshaking = tls.status == .handshaking
                tls.feed(bytes)
                tls.advance()
                tls.takeCiphertext(appendingTo: &outgoing)
                flush()
                if wasHandshaking && tls.status == .established { send(handshake.hello()) }
                while true {
                    let count = load.plain.withUnsafeMutableBytes { tls.read(into: $0) }
                    guard count > 0 else { break }
                    load.plain.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                }
            } else {
                decoder.feed(bytes)
            }
            while case let .success(frame)? = decoder.next() {
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
                case let .media(_, packet):
                    load.record(packet)
                default:
                    break
                }
            }
        }

        /// One 20 ms packet towards the far end.
        func tick(now: UInt64) {
            guard inCall else { return }
            sequence &+= 1
            load.sent += 1
            send(Message.media(kind: .rtp, packet: TunnelLoad.packet(sequence: sequence, call: index, sentAt: now)).frame(channel: 1))
        }
    }

    let options: Options
    let loop: EventLoop
    let far: UDPSocket
    let farEndpoint: IPv4Endpoint
    var calls: [Call] = []
    var scratch = [UInt8](repeating: 0, count: 65536)
    var plain = [UInt8](repeating: 0, count: 65536)
    var callsUp = 0
    var sent = 0
    var received = 0
    var latencies: [UInt64] = []
    var upstream: [UInt64] = []
    /// Relay address of each call, learnt from its first packet at the far end.
    var relays: [Int: IPv4Endpoint] = [:]
    private let context: TLSContext?

    public init(options: Options) throws {
        self.options = options
        loop = try EventLoop(maxEvents: 1024)
        far = try UDPSocket.bound(to: .loopback(port: 0))
        try? far.setReceiveBuffer(bytes: 8 << 20)
        try? far.setSendBuffer(bytes: 8 << 20)
        farEndpoint = try far.localEndpoint()
        context = try options.caPath.map { try TLSContext.client(caPath: $0) }
        try loop.register(fd: far.fd, events: .readable, handler: ClosureHandler { [unowned self] _ in self.farEndReadable() })
    }

    static func packet(sequence: UInt16, call: Int, sentAt: UInt64) -> [UInt8] {
        var packet = [UInt8](repeating: 0xFF, count: 172)
        packet[0] = 0x80
        packet[1] = 0
        packet[2] = UInt8(sequence >> 8)
        packet[3] = UInt8(sequence & 0xFF)
        for byte in 0..<8 { packet[12 + byte] = UInt8(truncatingIfNeeded: sentAt >> UInt64(56 - 8 * byte)) }
        for byte in 0..<4 { packet[20 + byte] = UInt8(truncatingIfNeeded: UInt32(call) >> UInt32(24 - 8 * byte)) }
        return packet
    }

    static func fields(_ packet: UnsafeRawBufferPointer) -> (sentAt: UInt64, call: Int)? {
        guard packet.count >= 24 else { return nil }
        var sentAt: UInt64 = 0
        for byte in 0..<8 { sentAt = sentAt << 8 | UInt64(packet[12 + byte]) }
        var call: UInt32 = 0
        for byte in 0..<4 { call = call << 8 | UInt32(packet[20 + byte]) }
        return (sentAt, Int(call))
    }

    func record(_ packet: [UInt8]) {
        packet.withUnsafeBytes { bytes in
            guard let (sentAt, _) = TunnelLoad.fields(bytes) else { return }
            received += 1
            latencies.append(monotonicNanoseconds() &- sentAt)
        }
    }

    /// Far end: counts what came through the tunnel, and sends its own audio back.
    private func farEndReadable() {
        for _ in 0..<256 {
            guard let (count, source) = scratch.withUnsafeMutableBytes({ far.receive(into: $0) }) else { return }
            scratch.withUnsafeBytes { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                guard let (sentAt, call) = TunnelLoad.fields(bytes) else { return }
                received += 1
                let latency = monotonicNanoseconds() &- sentAt
                latencies.append(latency)
                upstream.append(latency)
                relays[call] = source
            }
        }
    }

    /// Opens `count` more tunnels and places a call on each.
    public func addCalls(_ count: Int) throws {
        for _ in 0..<count {
            let index = calls.count
            let socket = try TCPSocket.connecting(to: options.endpoint)
            try? socket.setNoDelay()
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
        upstream.removeAll(keepingCapacity: true)
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
                    calls[index].tick(now: monotonicNanoseconds())
                    if calls[index].inCall, let relay = relays[index] {
                        sent += 1
                        _ = far.send(TunnelLoad.packet(sequence: 0, call: index, sentAt: monotonicNanoseconds()), to: relay)
                    }
                    index += slots
                }
                slot = (slot + 1) % slots
                nextSlot += slotLength
                now = monotonicNanoseconds()
                if nextSlot + options.packetInterval < now { nextSlot = now }  // the generator fell far behind
            }
            for call in calls where !call.outgoing.isEmpty { call.flush() }
            let wait = nextSlot > now ? Int32((nextSlot - now) / 1_000_000) : 0
            _ = try? loop.runOnce(timeoutMilliseconds: wait)
        }
        let drainEnd = monotonicNanoseconds() + 200_000_000
        while monotonicNanoseconds() < drainEnd {
            for call in calls where !call.outgoing.isEmpty { call.flush() }
            _ = try? loop.runOnce(timeoutMilliseconds: 5)
        }
        window.calls = callsUp
        window.sent = sent
        window.received = received
        window.latencies = latencies
        window.upstream = upstream
        return window
    }

    public var failedTunnels: Int { calls.filter { $0.failed }.count }
    public var tunnelCount: Int { calls.count }
}

struct LoadCrypto: TunnelCrypto {
    func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] { TLSCrypto.hmacSHA256(key: key, message: message) }
    func randomBytes(_ count: Int) -> [UInt8] { TLSCrypto.randomBytes(count) }
}
