import Glibc
import CSystem

/// An IPv4 address and UDP port, both in host byte order: compact and cheap to compare
/// on the hot path (latching compares these, not sockaddr structures).
public struct IPv4Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: UInt32
    public var port: UInt16

    public init(address: UInt32, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Parses a dotted-quad address; nil when it is not one.
    public init?(_ text: String, port: UInt16) {
        var raw = in_addr()
        guard inet_pton(AF_INET, text, &raw) == 1 else { return nil }
        self.init(address: UInt32(bigEndian: raw.s_addr), port: port)
    }

    /// Parses "a.b.c.d:port".
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"),
              let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        self.init(String(text[..<colon]), port: port)
    }

    @inline(__always)
    public init(_ raw: sockaddr_in) {
        address = UInt32(bigEndian: raw.sin_addr.s_addr)
        port = UInt16(bigEndian: raw.sin_port)
    }

    @inline(__always)
    public var sockaddr: sockaddr_in {
        var raw = sockaddr_in()
        raw.sin_family = sa_family_t(AF_INET)
        raw.sin_port = port.bigEndian
        raw.sin_addr.s_addr = address.bigEndian
        return raw
    }

    public static let any = IPv4Endpoint(address: 0, port: 0)
    public static func loopback(port: UInt16) -> IPv4Endpoint { IPv4Endpoint(address: 0x7F00_0001, port: port) }

    public var addressText: String {
        "\(address >> 24).\((address >> 16) & 0xFF).\((address >> 8) & 0xFF).\(address & 0xFF)"
    }
    public var description: String { "\(addressText):\(port)" }
}

/// A UDP/IPv4 socket descriptor with the options the data plane needs.
/// A value type: whoever opened it calls `close()` exactly once.
public struct UDPSocket: Sendable {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    /// A new non-blocking, close-on-exec UDP socket.
    public static func open() throws -> UDPSocket {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        return UDPSocket(fd: fd)
    }

    /// Opens and binds in one step; port 0 picks a free port.
    public static func bound(to endpoint: IPv4Endpoint, reusePort: Bool = false) throws -> UDPSocket {
        let socket = try open()
        do {
            if reusePort { try socket.setOption(SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT") }
            try socket.bind(endpoint)
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    public func close() { _ = Glibc.close(fd) }

    public func setOption(_ level: Int32, _ name: Int32, _ value: Int32, _ what: String) throws {
        var v = value
        guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SystemError("setsockopt(\(what))")
        }
    }

    public func getOption(_ level: Int32, _ name: Int32, _ what: String) throws -> Int32 {
        var v: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, level, name, &v, &length) == 0 else { throw SystemError("getsockopt(\(what))") }
        return v
    }

    public func bind(_ endpoint: IPv4Endpoint) throws {
        var raw = endpoint.sockaddr
        let rc = withUnsafePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw SystemError("bind(\(endpoint))") }
    }

    /// Fixes the peer: the kernel then skips the per-packet route lookup on send.
    public func connect(_ endpoint: IPv4Endpoint) throws {
        var raw = endpoint.sockaddr
        let rc = withUnsafePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw SystemError("connect(\(endpoint))") }
    }

    public func localEndpoint() throws -> IPv4Endpoint {
        var raw = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw SystemError("getsockname") }
        return IPv4Endpoint(raw)
    }

    /// Lets sockets of this user join this socket's port (SO_REUSEPORT). Set after `bind`,
    /// the bind itself still fails with EADDRINUSE when any other socket holds the port.
    public func allowPortSharing() throws { try setOption(SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT") }

    /// Makes this socket, the first of its port's SO_REUSEPORT group, the one that
    /// receives every datagram for the port: the others only send.
    public func receiveAllOfPort() throws {
        guard csys_steer_reuseport_to_first(fd) == 0 else { throw SystemError("setsockopt(SO_ATTACH_REUSEPORT_CBPF)") }
    }

    /// Kernel receive buffer in bytes. As root SO_RCVBUFFORCE exceeds net.core.rmem_max.
    public func setReceiveBuffer(bytes: Int) throws {
        let value = Int32(clamping: bytes)
        if (try? setOption(SOL_SOCKET, SO_RCVBUFFORCE, value, "SO_RCVBUFFORCE")) == nil {
            try setOption(SOL_SOCKET, SO_RCVBUF, value, "SO_RCVBUF")
        }
    }

    public func setSendBuffer(bytes: Int) throws {
        let value = Int32(clamping: bytes)
        if (try? setOption(SOL_SOCKET, SO_SNDBUFFORCE, value, "SO_SNDBUFFORCE")) == nil {
            try setOption(SOL_SOCKET, SO_SNDBUF, value, "SO_SNDBUF")
        }
    }

    /// The TOS byte of outgoing packets; DSCP EF (46) is TOS 0xB8.
    public func setTOS(_ tos: UInt8) throws { try setOption(Int32(IPPROTO_IP), IP_TOS, Int32(tos), "IP_TOS") }

    public static func tos(dscp: UInt8) -> UInt8 { dscp << 2 }

    /// Sets Don't Fragment on every datagram and never fragments locally (a datagram
    /// larger than the path MTU fails with EMSGSIZE). The IPv4 ID of such an atomic
    /// datagram is then 0 (RFC 6864) instead of coming from the kernel's shared, hashed
    /// ID generator, which cost about 1% of the relay's CPU per packet. Media datagrams
    /// (a few hundred bytes) never come near a path MTU.
    public func setDontFragment() throws {
        try setOption(Int32(IPPROTO_IP), IP_MTU_DISCOVER, IP_PMTUDISC_DO, "IP_MTU_DISCOVER")
    }

    /// Asks the kernel to report its receive-queue overflow counter with every datagram.
    public func enableDropCounter() throws { try setOption(SOL_SOCKET, csys_so_rxq_ovfl, 1, "SO_RXQ_OVFL") }

    /// Asks the kernel to report the TOS byte of every received datagram.
    public func enableReceiveTOS() throws { try setOption(Int32(IPPROTO_IP), IP_RECVTOS, 1, "IP_RECVTOS") }

    /// Sends one datagram (control and test path, not the hot path).
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, to endpoint: IPv4Endpoint) -> Int {
        var raw = endpoint.sockaddr
        return withUnsafePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    public func send(_ bytes: [UInt8], to endpoint: IPv4Endpoint) -> Int {
        bytes.withUnsafeBytes { send($0, to: endpoint) }
    }

    /// Receives one datagram without blocking; nil when none is queued.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> (count: Int, from: IPv4Endpoint)? {
        var raw = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = withUnsafeMutablePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), $0, &length)
            }
        }
        return n >= 0 ? (n, IPv4Endpoint(raw)) : nil
    }
}
