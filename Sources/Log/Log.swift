// One logging facility for the whole program.
//
// A line per significant event, as `time level subsystem: event key=value ...`,
// written to stderr and, when /dev/log exists, to syslog. Each line is built in
// one buffer and handed to the kernel with a single write, so lines from
// different threads never interleave and no lock is taken. Never log per media
// packet: the data plane reports through counters instead.

import Glibc
import Synchronization

/// Severity, ordered. Raw values are the syslog severities (RFC 5424).
public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case debug = 7, info = 6, notice = 5, warning = 4, error = 3, critical = 2

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue > rhs.rawValue }

    public var name: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    public init?(name: String) {
        guard let level = LogLevel.allCases.first(where: { $0.name == name }) else { return nil }
        self = level
    }
}

/// Where log lines go; configured once at start-up, read lock-free afterwards.
public enum LogSink {
    private static let minimumLevel = Atomic<Int>(LogLevel.info.rawValue)
    private static let stderrEnabled = Atomic<Bool>(true)
    private static let syslogDescriptor = Atomic<Int32>(-1)
    /// Program name used as the syslog tag.
    private static let tag = Mutex<String>("bloo")

    /// Lines below `level` are discarded before they are formatted.
    public static var level: LogLevel {
        get { LogLevel(rawValue: minimumLevel.load(ordering: .relaxed)) ?? .info }
        set { minimumLevel.store(newValue.rawValue, ordering: .relaxed) }
    }

    /// Lines (or their ends) not written because standard error would have blocked.
    private static let droppedLineCount = Atomic<UInt64>(0)
    public static var droppedLines: UInt64 { droppedLineCount.load(ordering: .relaxed) }

    /// Makes writes to standard error fail rather than wait when it is a terminal or a
    /// pipe (a serial console at 115200 baud, or one nobody reads, fills up): a log line
    /// is then dropped and counted, and no thread, least of all a data-plane worker,
    /// stalls on it. The descriptor is reopened, so the O_NONBLOCK flag stays ours and
    /// does not change the open file that other processes share. Regular files are left
    /// as they are (they do not block, and a reopen would lose O_APPEND).
    @discardableResult
    public static func makeStandardErrorNonBlocking() -> Bool {
        reopenNonBlocking(STDERR_FILENO)
    }

    static func reopenNonBlocking(_ target: Int32) -> Bool {
        var info = stat()
        guard fstat(target, &info) == 0 else { return false }
        let type = info.st_mode & S_IFMT
        guard type == S_IFCHR || type == S_IFIFO else { return false }
        let fd = open("/proc/self/fd/\(target)", O_WRONLY | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return dup2(fd, target) == target
    }

    public static var writesToStandardError: Bool {
        get { stderrEnabled.load(ordering: .relaxed) }
        set { stderrEnabled.store(newValue, ordering: .relaxed) }
    }

    /// Connects to the syslog socket if one exists. Returns whether it did.
    @discardableResult
    public static func openSyslog(path: String = "/dev/log", tag newTag: String = "bloo") -> Bool {
        tag.withLock { $0 = newTag }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { close(fd); return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else { close(fd); return false }
        let previous = syslogDescriptor.exchange(fd, ordering: .acquiringAndReleasing)
        if previous >= 0 { close(previous) }
        return true
    }

    public static func closeSyslog() {
        let previous = syslogDescriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if previous >= 0 { close(previous) }
    }

    static func emit(level: LogLevel, line: String) {
        if stderrEnabled.load(ordering: .relaxed) {
            var text = line
            text.append("\n")
            writeAll(STDERR_FILENO, text)
        }
        let fd = syslogDescriptor.load(ordering: .acquiring)
        if fd >= 0 {
            // RFC 3164 framing as /dev/log expects; facility daemon (3).
            let priority = 3 * 8 + level.rawValue
            let name = tag.withLock { $0 }
            let datagram = "<\(priority)>\(name)[\(getpid())]: \(line)"
            // Never block a thread on a stuck syslog daemon: drop instead.
            _ = datagram.utf8CString.withUnsafeBufferPointer {
                send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            }
        }
    }

    static func writeAll(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    // EAGAIN on a full console, or any error: the line (or its end) is lost.
                    droppedLineCount.add(1, ordering: .relaxed)
                    return
                }
                offset += written
            }
        }
    }
}

/// A named source of log lines: `Logger(subsystem: "relay")`.
public struct Logger: Sendable {
    public let subsystem: String

    public init(subsystem: String) { self.subsystem = subsystem }

    public func isEnabled(_ level: LogLevel) -> Bool { level >= LogSink.level }

    public func log(_ level: LogLevel, _ event: String, _ fields: KeyValuePairs<String, String> = [:]) {
        guard isEnabled(level) else { return }
        LogSink.emit(level: level, line: LogFormat.line(
            time: LogFormat.timestamp(), level: level, subsystem: subsystem, event: event, fields: fields))
    }

    public func debug(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.debug, event, fields) }
    public func info(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.info, event, fields) }
    public func notice(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.notice, event, fields) }
    public func warning(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.warning, event, fields) }
    public func error(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.error, event, fields) }
    public func critical(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.critical, event, fields) }
}

/// Pure formatting, separate from the sinks so it can be tested.
public enum LogFormat {
    /// `2026-11-28T16:40:00.123Z info relay: session created id=5 peer="a b"`
    public static func line(time: String, level: LogLevel, subsystem: String, event: String,
                            fields: KeyValuePairs<String, String>) -> String {
        var line = "\(time) \(level.name) \(subsystem): \(sanitized(event))"
        for (key, value) in fields {
            line += " \(sanitized(key))=\(quotedIfNeeded(value))"
        }
        return line
    }

    /// A value is quoted when it is empty or holds spaces, quotes, `=` or
    /// control characters; control characters are escaped so that a hostile
    /// value (a peer's alias, say) can never forge a second log line.
    public static func quotedIfNeeded(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains {
            $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7f
        }
        guard needsQuotes else { return value }
        var quoted = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\r": quoted += "\\r"
            case "\t": quoted += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    quoted += "\\x" + hexByte(UInt8(scalar.value))
                } else {
                    quoted.unicodeScalars.append(scalar)
                }
            }
        }
        return quoted + "\""
    }

    /// Events and keys are program text, but strip control characters anyway.
    static func sanitized(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map {
            ($0.value < 0x20 || $0.value == 0x7f) ? "?" : $0
        }))
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xf)]])
    }

    /// UTC, millisecond precision, without Foundation.
    public static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let millis = Int32(now.tv_nsec / 1_000_000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
    }
}
