// Thin I/O drivers for the Endpoint state machines over IO's EventLoop: a TPKT stream
// (H.225.0 call signalling, separate H.245), a TCP listener and a UDP port (RAS, RTP).
// They move bytes and report; every protocol decision stays in Endpoint.
import Endpoint
import Glibc
import H323
import IO

public func millisecondsNow() -> UInt64 { monotonicNanoseconds() / 1_000_000 }

extension EndpointAddress {
    public init(_ e: IPv4Endpoint) { self.init(ip: e.address, port: e.port) }
    public var ioEndpoint: IPv4Endpoint { IPv4Endpoint(address: ip, port: port) }
}

/// One TCP connection carrying TPKT packets. Output is queued while the kernel is full;
/// the queue is bounded (a peer that never reads is cut off).
public final class TPKTConnection: IOHandler {
    public let socket: TCPSocket
    public let remote: EndpointAddress
    unowned let loop: EventLoop
    private var registration: Registration?
    private var reassembler = TPKTReassembler(maxPayload: 16_384)
    private var output: [UInt8] = []
    private var connecting: Bool
    private var wantsWritable = false
    public private(set) var isClosed = false
    public var onPacket: ((TPKTConnection, [UInt8]) -> Void)?
    public var onConnected: ((TPKTConnection) -> Void)?
    public var onClose: ((TPKTConnection) -> Void)?
    public static let maxQueued = 256 * 1024

    public init(loop: EventLoop, socket: TCPSocket, remote: EndpointAddress, connecting: Bool = false) throws {
        self.loop = loop
        self.socket = socket
        self.remote = remote
        self.connecting = connecting
        try? socket.setNoDelay()
        registration = try loop.register(fd: socket.fd, events: connecting ? [.readable, .writable] : .readable, handler: self)
        wantsWritable = connecting
    }

    public static func connect(loop: EventLoop, to remote: EndpointAddress) throws -> TPKTConnection {
        let socket = try TCPSocket.connecting(to: remote.ioEndpoint)
        do {
            return try TPKTConnection(loop: loop, socket: socket, remote: remote, connecting: true)
        } catch {
            socket.close()
            throw error
        }
    }

    public var localAddress: EndpointAddress? { (try? socket.localEndpoint()).map(EndpointAddress.init) }

    public func send(packet: [UInt8]) {
        guard !isClosed, let framed = try? TPKT.frame(packet) else { return }
        sendRaw(framed)
    }

    public func sendRaw(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        if output.isEmpty && !connecting {
            let n = bytes.withUnsafeBytes { socket.write($0) }
            if n < 0 { return close() }
            if n == bytes.count { return }
            output.append(contentsOf: bytes[n...])
        } else {
            output.append(contentsOf: bytes)
        }
        guard output.count <= Self.maxQueued else { return close() }
        setWritable(true)
    }

    private func setWritable(_ on: Bool) {
        guard on != wantsWritable, let registration else { return }
        wantsWritable = on
        try? loop.modify(registration, events: on ? [.readable, .writable] : .readable)
    }

    public func handle(events: IOEvents, tag: UInt64) {
        if connecting && (events.contains(.writable) || events.contains(.error) || events.contains(.hangup)) {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(socket.fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else { return close() }
            connecting = false
            onConnected?(self)
        }
        if events.contains(.writable) && !connecting {
            let n = output.withUnsafeBytes { socket.write($0) }
            if n < 0 { return close() }
            output.removeFirst(n)
            if output.isEmpty { setWritable(false) }
        }
        if events.contains(.readable) || events.contains(.hangup) || events.contains(.error) {
            var buffer = [UInt8](repeating: 0, count: 8192)
            for _ in 0..<16 {
                guard !isClosed else { return }
                switch buffer.withUnsafeMutableBytes({ socket.read(into: $0) }) {
                case .bytes(let n):
                    let packets: [[UInt8]]
                    do { packets = try reassembler.append(buffer[0..<n]) } catch { return close() }
                    for packet in packets where !isClosed { onPacket?(self, packet) }
                case .wouldBlock:
                    return
                case .endOfStream, .failed:
                    return close()
                }
            }
        }
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        if let registration { loop.unregister(registration) }
        registration = nil
        socket.close()
        let callback = onClose
        onClose = nil
        onPacket = nil
        onConnected = nil
        callback?(self)
    }
}

public final class TCPListener: IOHandler {
    public let socket: TCPSocket
    public let address: EndpointAddress
    unowned let loop: EventLoop
    private var registration: Registration?
    public var onAccept: ((TCPSocket, EndpointAddress) -> Void)?

    public init(loop: EventLoop, address: EndpointAddress) throws {
        self.loop = loop
        socket = try TCPSocket.listening(on: address.ioEndpoint, reusePort: false, backlog: 1024)
        self.address = (try? socket.localEndpoint()).map(EndpointAddress.init) ?? address
        registration = try loop.register(fd: socket.fd, events: .readable, handler: self)
    }

    public func handle(events: IOEvents, tag: UInt64) {
        for _ in 0..<64 {
            switch socket.accept() {
            case .accepted(let s, let from): onAccept?(s, EndpointAddress(from))
            case .none, .exhausted: return
            }
        }
    }

    public func close() {
        if let registration { loop.unregister(registration) }
        registration = nil
        socket.close()
    }
}

/// A UDP port (RAS or RTP/RTCP) on the loop.
public final class UDPPort: IOHandler {
    public let socket: UDPSocket
    public let address: EndpointAddress
    unowned let loop: EventLoop
    private var registration: Registration?
    private var buffer = [UInt8](repeating: 0, count: 4096)
    public var onDatagram: ((UnsafeRawBufferPointer, EndpointAddress) -> Void)?

    public init(loop: EventLoop, address: EndpointAddress) throws {
        self.loop = loop
        socket = try UDPSocket.bound(to: address.ioEndpoint)
        self.address = (try? socket.localEndpoint()).map(EndpointAddress.init) ?? address
        do {
            registration = try loop.register(fd: socket.fd, events: .readable, handler: self)
        } catch {
            socket.close()
            throw error
        }
    }

    public func send(_ bytes: [UInt8], to: EndpointAddress) { _ = socket.send(bytes, to: to.ioEndpoint) }
    public func send(_ bytes: UnsafeRawBufferPointer, to: EndpointAddress) { _ = socket.send(bytes, to: to.ioEndpoint) }

    public func handle(events: IOEvents, tag: UInt64) {
        for _ in 0..<64 {
            guard let (count, from) = buffer.withUnsafeMutableBytes({ socket.receive(into: $0) }) else { return }
            buffer.withUnsafeBytes { onDatagram?(UnsafeRawBufferPointer(rebasing: $0[0..<count]), EndpointAddress(from)) }
        }
    }

    public func close() {
        if let registration { loop.unregister(registration) }
        registration = nil
        socket.close()
    }
}
