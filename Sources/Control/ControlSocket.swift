// The control socket's I/O: a blocking client for `bloo cli` and scripts, and the
// daemon's server loop (one thread, poll, bounded buffers and deadlines).
import Glibc
import Log

/// The socket's default place; `BLOO_CONTROL_SOCKET` overrides it (tests, development).
public enum ControlSocketPath {
    public static let standard = "/run/bloo/control.sock"

    public static var `default`: String {
        if let value = getenv("BLOO_CONTROL_SOCKET"), value.pointee != 0 { return String(cString: value) }
        return standard
    }
}

/// Why a client call failed.
public enum ControlClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The daemon's socket could not be reached (not running, no permission).
    case unreachable(path: String, reason: String)
    /// The connection broke or timed out.
    case io(String)
    /// The daemon answered with an error reply.
    case refused(ControlErrorCode, String)
    /// The reply was not a valid reply.
    case badReply(String)

    public var description: String {
        switch self {
        case .unreachable(let path, let reason): "control socket \(path): \(reason)"
        case .io(let reason): "control socket: \(reason)"
        case .refused(let code, let message): "\(message) (\(code.rawValue))"
        case .badReply(let reason): "control socket: bad reply: \(reason)"
        }
    }
}

func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// Fills a sockaddr_un; nil when the path does not fit.
func unixAddress(_ path: String) -> sockaddr_un? {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard !path.isEmpty, path.utf8.count < capacity else { return nil }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
    }
    return address
}

func withSockaddr<R>(_ address: inout sockaddr_un, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

func setTimeouts(_ fd: Int32, seconds: Int) {
    var time = timeval(tv_sec: seconds, tv_usec: 0)
    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
}

/// Writes all of `bytes`; false when the peer went away or the send timed out.
func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
        if sent < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += sent
    }
    return true
}

// MARK: - Client

/// The client API of the control socket: one request per call, one connection per request.
public struct ControlClient: Sendable {
    public let socketPath: String
    public let timeoutSeconds: Int

    public init(socketPath: String = ControlSocketPath.default, timeoutSeconds: Int = 60) {
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds
    }

    /// Sends `request` and returns the daemon's reply, ok or error.
    public func send(_ request: ControlRequest) throws(ControlClientError) -> ControlReply {
        try exchange(ControlCodec.encode(request))
    }

    /// Sends raw bytes (scripts and tests of the daemon's parser) and returns the reply.
    public func exchange(_ bytes: [UInt8]) throws(ControlClientError) -> ControlReply {
        guard var address = unixAddress(socketPath) else {
            throw .unreachable(path: socketPath, reason: "path too long")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .io("socket: \(errnoText())") }
        defer { close(fd) }
        setTimeouts(fd, seconds: timeoutSeconds)
        guard withSockaddr(&address, { connect(fd, $0, $1) }) == 0 else {
            throw .unreachable(path: socketPath, reason: errnoText())
        }
        // The daemon may answer (denied, too large) before reading everything:
        // a failed send is not fatal as long as a reply can be read.
        _ = sendAll(fd, bytes)
        _ = shutdown(fd, Int32(SHUT_WR))
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw .io("no reply within \(timeoutSeconds) s") }
                if errno == ECONNRESET && !reply.isEmpty { break }
                throw .io("receive: \(errnoText())")
            }
            reply.append(contentsOf: chunk[0..<count])
            if reply.count > ControlLimits.maxReplyBytes { throw .badReply("longer than \(ControlLimits.maxReplyBytes) bytes") }
        }
        guard !reply.isEmpty else { throw .io("the daemon closed the connection without a reply") }
        do {
            return try ControlCodec.decodeReply(reply)
        } catch {
            throw .badReply(error.message)
        }
    }

    /// Sends `request`; returns the body of an ok reply, throws `.refused` for an error reply.
    public func call(_ request: ControlRequest) throws(ControlClientError) -> String {
        switch try send(request) {
        case .ok(let body): return body
        case .error(let code, let message): throw .refused(code, message)
        }
    }

    public func show(_ topic: String, argument: String? = nil, format: OutputFormat = .text) throws(ControlClientError) -> String {
        try call(.show(topic: topic, argument: argument, format: format))
    }

    public func configGet(_ source: ConfigSource) throws(ControlClientError) -> String {
        try call(.configGet(source))
    }

    public func configValidate(_ text: String) throws(ControlClientError) -> String {
        try call(.configValidate(text: text))
    }

    public func configCommit(_ text: String, confirmMinutes: Int? = nil, user: String? = nil,
                             comment: String? = nil) throws(ControlClientError) -> String {
        try call(.configCommit(text: text, confirmMinutes: confirmMinutes, user: user, comment: comment))
    }

    /// The kept commits, newest first (index = the N of `rollback N`).
    public func history() throws(ControlClientError) -> [ControlCommitEntry] {
        let body = try call(.configHistory)
        guard let entries = ControlCommitEntry.decode(body) else { throw .badReply("config history is not in its documented format") }
        return entries
    }

    /// The configuration text of kept commit `index` (admin role).
    public func configGetCommit(_ index: Int) throws(ControlClientError) -> String {
        try call(.configGetCommit(index))
    }

    public func confirm() throws(ControlClientError) -> String { try call(.confirm) }

    public func rollback(_ steps: Int) throws(ControlClientError) -> String { try call(.rollback(steps)) }

    public func reboot() throws(ControlClientError) -> String { try call(.reboot) }
}

// MARK: - Server

/// Why the server could not start.
public struct ControlServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The daemon's side. Created (bound) while still root, served on one thread after
/// privileges are dropped. Handlers run on the serving thread, one request at a time.
public final class ControlServer: Sendable {
    public let path: String
    public let policy: ControlAccessPolicy
    private let listenFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private static let log = Logger(subsystem: "control")
    /// Connections served at once; more wait in the listen backlog.
    static let maxConnections = 16
    /// A request must arrive completely within this time.
    static let requestDeadlineMs = 5000
    /// A reply must be taken by the client within this time.
    static let replyTimeoutSeconds = 2

    /// Binds the socket at `path` (mode `mode`: roles are checked per connection, so the
    /// file can stay connectable by all). A stale socket file is replaced; a live one is an error.
    public init(path: String, policy: ControlAccessPolicy, mode: mode_t = 0o666) throws(ControlServerError) {
        guard var address = unixAddress(path) else { throw ControlServerError("\(path): path too long") }
        self.path = path
        self.policy = policy
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ControlServerError("socket: \(errnoText())") }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                Glibc.close(fd)
                throw ControlServerError("\(path): exists and is not a socket")
            }
            let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let live = probe >= 0 && withSockaddr(&address, { connect(probe, $0, $1) }) == 0
            if probe >= 0 { Glibc.close(probe) }
            if live {
                Glibc.close(fd)
                throw ControlServerError("\(path): another daemon is listening")
            }
            unlink(path)
        }
        let previousMask = umask(0o777 & ~mode)
        let bound = withSockaddr(&address) { bind(fd, $0, $1) }
        let bindError = errno
        umask(previousMask)
        guard bound == 0 else {
            Glibc.close(fd)
            throw ControlServerError("\(path): bind: \(errnoText(bindError))")
        }
        guard listen(fd, 32) == 0 else {
            Glibc.close(fd)
            throw ControlServerError("\(path): listen: \(errnoText())")
        }
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            Glibc.close(fd)
            throw ControlServerError("pipe: \(errnoText())")
        }
        for end in pipeFDs {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        listenFD = fd
        wakeRead = pipeFDs[0]
        wakeWrite = pipeFDs[1]
    }

    /// Makes `serve` return (from any thread or a signal handler's thread).
    public func stop() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Removes the socket file and closes the descriptors. Call after `serve` returned.
    public func close() {
        unlink(path)
        Glibc.close(listenFD)
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    private struct Connection {
        let fd: Int32
        let caller: ControlCaller
        let role: ControlRole
        var buffer: [UInt8] = []
        var deadline: Int
        /// Answered early (too large, denied): the rest of the request is read and
        /// discarded until EOF or the deadline, because closing a Unix socket with unread
        /// data resets it and the client could lose the reply.
        var draining = false
    }

    /// How long an early-answered connection is drained before it is closed.
    static let drainMs = 1000

    /// Serves until `stop()`. `handler` answers authorised, well-formed requests.
    public func serve(_ handler: (ControlRequest, ControlCaller, ControlRole) -> ControlReply) {
        var connections: [Connection] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            if connections.count < Self.maxConnections {
                fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0))
            }
            let first = fds.count
            for connection in connections { fds.append(pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)) }
            let now = Self.monotonicMs()
            let nextDeadline = connections.map(\.deadline).min().map { max(0, $0 - now) } ?? 1000
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(nextDeadline, 1000)))
            if ready < 0 && errno != EINTR { Self.log.error("poll failed", ["error": errnoText()]); return }
            if fds[0].revents != 0 { break }

            // Existing connections: read, then answer complete or overdue requests.
            var finished: Set<Int32> = []
            let after = Self.monotonicMs()
            for index in connections.indices {
                let revents = fds[first + index].revents
                var connection = connections[index]
                if connection.draining {
                    // The deadline holds even for a client that never stops sending.
                    if after >= connection.deadline {
                        finished.insert(connection.fd)
                    } else if revents != 0 {
                        let count = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
                        if count > 0 || (count < 0 && (errno == EAGAIN || errno == EINTR)) { continue }
                        finished.insert(connection.fd)
                    }
                    continue
                }
                if after >= connection.deadline && revents == 0 || after >= connection.deadline + Self.requestDeadlineMs {
                    // Overdue; a client still trickling bytes gets one more deadline at most.
                    reply(connection.fd, .error(.timeout, "incomplete request after \(Self.requestDeadlineMs) ms (half-close the socket to end a request)"))
                    finished.insert(connection.fd)
                    continue
                }
                if revents != 0 {
                    let count = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
                    if count > 0 {
                        connection.buffer.append(contentsOf: chunk[0..<count])
                        if connection.buffer.count > ControlLimits.maxRequestBytes {
                            Self.log.warning("request refused", ["reason": "too large", "uid": String(connection.caller.uid)])
                            reply(connection.fd, .error(.tooLarge, "request exceeds \(ControlLimits.maxRequestBytes) bytes"), keepOpen: true)
                            connection.buffer = []
                            connection.draining = true
                            connection.deadline = Self.monotonicMs() + Self.drainMs
                        }
                        connections[index] = connection
                        continue
                    }
                    if count < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                    if count < 0 { finished.insert(connection.fd); continue }
                    // End of request: the client half-closed.
                    reply(connection.fd, answer(connection, handler))
                    finished.insert(connection.fd)
                }
            }
            if !finished.isEmpty {
                for fd in finished { Glibc.close(fd) }
                connections.removeAll { finished.contains($0.fd) }
            }

            // New connections: authorised at once from the kernel's credentials.
            if fds.count > 1, fds[1].fd == listenFD, fds[1].revents != 0 {
                while connections.count < Self.maxConnections {
                    let fd = accept(listenFD, nil, nil)
                    if fd < 0 { break }
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                    _ = fcntl(fd, F_SETFL, O_NONBLOCK)
                    guard let caller = ControlCaller.of(socket: fd) else {
                        Glibc.close(fd)
                        continue
                    }
                    guard let role = policy.role(for: caller) else {
                        Self.log.warning("caller refused", ["uid": String(caller.uid), "gid": String(caller.gid), "pid": String(caller.pid)])
                        reply(fd, .error(.denied, "uid \(caller.uid) is in neither the admin nor the operator group"), keepOpen: true)
                        connections.append(Connection(fd: fd, caller: caller, role: .operator,
                                                      deadline: Self.monotonicMs() + Self.drainMs, draining: true))
                        continue
                    }
                    connections.append(Connection(fd: fd, caller: caller, role: role,
                                                  deadline: Self.monotonicMs() + Self.requestDeadlineMs))
                }
            }
        }
        for connection in connections { Glibc.close(connection.fd) }
    }

    private func answer(_ connection: Connection,
                        _ handler: (ControlRequest, ControlCaller, ControlRole) -> ControlReply) -> ControlReply {
        let request: ControlRequest
        do {
            request = try ControlCodec.decodeRequest(connection.buffer)
        } catch {
            Self.log.warning("request refused", ["reason": error.message, "uid": String(connection.caller.uid)])
            return .error(error.code, error.message)
        }
        if request.needsAdmin && connection.role != .admin {
            Self.log.warning("request denied", ["request": request.summary, "uid": String(connection.caller.uid)])
            return .error(.denied, "'\(request.summary)' needs the admin role; uid \(connection.caller.uid) is an operator")
        }
        if request.changesState {
            Self.log.notice("request", ["request": request.summary, "uid": String(connection.caller.uid)])
        }
        return handler(request, connection.caller, connection.role)
    }

    private func reply(_ fd: Int32, _ reply: ControlReply, keepOpen: Bool = false) {
        // Blocking with a send timeout: a client that does not read cannot hold the loop long.
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        setTimeouts(fd, seconds: Self.replyTimeoutSeconds)
        _ = sendAll(fd, ControlCodec.encode(reply))
        _ = shutdown(fd, Int32(SHUT_WR))
        // Draining reads without blocking the loop.
        if keepOpen && flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    static func monotonicMs() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
    }
}
