// TCP/IPv4 sockets for the tunnel: listeners (optionally one per worker with
// SO_REUSEPORT), non-blocking accepted connections with TCP_NODELAY, and a
// blocking-free read/write surface. No protocol knowledge.

import CSystem
import Glibc

/// A TCP/IPv4 socket descriptor. A value type: whoever opened it closes it once.
public struct TCPSocket: Sendable {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    private static func open() throws -> TCPSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        return TCPSocket(fd: fd)
    }

    /// A listening socket on `endpoint` (port 0: a free port). With `reusePort`, several
    /// workers may each listen on the same port and the kernel spreads connections.
    public static func listening(on endpoint: IPv4Endpoint, reusePort: Bool, backlog: Int32 = 1024) throws -> TCPSocket {
        let socket = try open()
        do {
            try socket.setOption(SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR")
            if reusePort { try socket.setOption(SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT") }
            var raw = endpoint.sockaddr
            let bound = withUnsafePointer(to: &raw) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw SystemError("bind(\(endpoint))") }
            guard Glibc.listen(socket.fd, backlog) == 0 else { throw SystemError("listen(\(endpoint))") }
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// Starts a non-blocking connect (tests, benchmark clients). The connection is
    /// usable once the socket is writable.
    public static func connecting(to endpoint: IPv4Endpoint) throws -> TCPSocket {
        let socket = try open()
        var raw = endpoint.sockaddr
        let result = withUnsafePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 || csys_errno() == EINPROGRESS else {
            let error = SystemError("connect(\(endpoint))")
            socket.close()
            throw error
        }
        return socket
    }

    public enum AcceptResult {
        case accepted(TCPSocket, IPv4Endpoint)
        /// Nothing pending (EAGAIN) — or a transient error such as ECONNABORTED.
        case none
        /// Out of descriptors or memory: stop accepting for a moment.
        case exhausted(SystemError)
    }

    /// Accepts one pending connection, made non-blocking and close-on-exec.
    public func accept() -> AcceptResult {
        var raw = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = withUnsafeMutablePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.accept(self.fd, $0, &length)
            }
        }
        if fd >= 0 {
            // accept4's sockaddr argument is a transparent union Swift cannot pass; two fcntls instead.
            let flags = csys_fcntl_int(fd, F_GETFL, 0)
            _ = csys_fcntl_int(fd, F_SETFL, flags | O_NONBLOCK)
            _ = csys_fcntl_int(fd, F_SETFD, FD_CLOEXEC)
            return .accepted(TCPSocket(fd: fd), IPv4Endpoint(raw))
        }
        let code = csys_errno()
        if code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM {
            return .exhausted(SystemError("accept4", code))
        }
        return .none
    }

    public func close() { _ = Glibc.close(fd) }

    public func setOption(_ level: Int32, _ name: Int32, _ value: Int32, _ what: String) throws {
        var value = value
        guard setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SystemError("setsockopt(\(what))")
        }
    }

    /// Media frames must not wait for Nagle's algorithm.
    public func setNoDelay() throws { try setOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY") }

    public func localEndpoint() throws -> IPv4Endpoint {
        var raw = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { throw SystemError("getsockname") }
        return IPv4Endpoint(raw)
    }

    public enum ReadResult: Equatable {
        case bytes(Int)
        case wouldBlock
        case endOfStream
        case failed(Int32)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        let n = recv(fd, buffer.baseAddress, buffer.count, 0)
        if n > 0 { return .bytes(n) }
        if n == 0 { return .endOfStream }
        let code = csys_errno()
        return code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? .wouldBlock : .failed(code)
    }

    /// Writes what the kernel takes now; returns the count, 0 when it would block,
    /// or -errno on a broken connection. Never raises SIGPIPE.
    public func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard bytes.count > 0 else { return 0 }
        let n = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        if n >= 0 { return n }
        let code = csys_errno()
        return code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? 0 : -Int(code)
    }

    /// Half-closes the sending side (our data then FIN), keeping the receive side open.
    public func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
}
