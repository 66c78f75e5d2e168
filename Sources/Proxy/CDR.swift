// Call detail records: one logfmt line per call, appended to a file on the data partition
// (O_APPEND: records from several workers never interleave, and the file outlives a
// restart). The relay's per-direction RTP statistics (RFC 3550 A.3 loss, A.8 jitter) feed it.
import Glibc
import RTP

/// One direction of a call's media as the CDR gives it: RTP packets, loss (RFC 3550 A.3)
/// and jitter (A.8), taken from the relay's counters of that direction when the call ends.
public struct MediaSummary: Sendable, Equatable {
    public var packets: UInt64 = 0
    public var lost: UInt64 = 0
    public var jitterMs: Double = 0

    public init() {}

    /// `clockRate`: the stream's RTP timestamp units per second (8000 for G.711).
    public init(_ stream: StreamStatistics, clockRate: UInt32 = 8000) {
        packets = stream.received
        lost = stream.lost
        jitterMs = Double(stream.jitter) * 1000 / Double(max(clockRate, 1))
    }
}

public struct CallRecord: Sendable {
    public enum Direction: String, Sendable { case outgoing = "out", incoming = "in" }
    public enum Party: String, Sendable { case client, network, appliance }
    public var id: String
    public var subscriber: String
    public var direction: Direction
    public var caller: String
    public var callee: String
    public var startMs: UInt64
    public var connectMs: UInt64?
    public var endMs: UInt64 = 0
    public var cause: UInt8 = 16
    public var hungUpBy: Party = .appliance
    public var codec: String = "-"
    /// client -> network and network -> client, as received by the appliance.
    public var toNetwork = MediaSummary()
    public var fromNetwork = MediaSummary()

    public init(id: String, subscriber: String, direction: Direction, caller: String, callee: String, startMs: UInt64) {
        self.id = id
        self.subscriber = subscriber
        self.direction = direction
        self.caller = caller
        self.callee = callee
        self.startMs = startMs
    }

    static func quoted(_ s: String) -> String {
        let safe = s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "\\" && $0 != "=" }
        if safe && !s.isEmpty { return s }
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out += scalar.value >= 0x20 && scalar.value < 0x7F ? String(scalar) : "?"
            }
        }
        return out + "\""
    }

    public static func timestamp(_ ms: UInt64) -> String {
        var seconds = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T" +
            "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ms % 1000), 3))Z"
    }

    static func fixed(_ v: Double, _ digits: Int) -> String {
        let scale = digits == 3 ? 1000.0 : 10.0
        let n = Int((v * scale).rounded())
        let whole = n / Int(scale)
        let frac = String(n % Int(scale))
        return "\(whole).\(String(repeating: "0", count: digits - frac.count))\(frac)"
    }

    /// One line, no newline.
    public var line: String {
        let duration = connectMs.map { endMs > $0 ? Double(endMs - $0) / 1000 : 0 } ?? 0
        var fields: [(String, String)] = [
            ("cdr", "1"), ("id", id), ("subscriber", Self.quoted(subscriber)), ("direction", direction.rawValue),
            ("caller", Self.quoted(caller)), ("callee", Self.quoted(callee)),
            ("start", Self.timestamp(startMs)), ("connect", connectMs.map(Self.timestamp) ?? "-"), ("end", Self.timestamp(endMs)),
            ("duration_s", Self.fixed(duration, 3)), ("cause", String(cause)), ("hangup_by", hungUpBy.rawValue), ("codec", codec),
        ]
        fields += [("pkts_to_net", String(toNetwork.packets)), ("lost_to_net", String(toNetwork.lost)),
                   ("jitter_ms_to_net", Self.fixed(toNetwork.jitterMs, 1)),
                   ("pkts_from_net", String(fromNetwork.packets)), ("lost_from_net", String(fromNetwork.lost)),
                   ("jitter_ms_from_net", Self.fixed(fromNetwork.jitterMs, 1))]
        return fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
    }
}

/// Appends records to the CDR file. Shared by the workers: each write is one line.
public final class CDRWriter: Sendable {
    public let path: String
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw CDRError.open(path, errno) }
        self.fd = fd
    }

    deinit { close(fd) }

    public func write(_ record: CallRecord) {
        let bytes = Array((record.line + "\n").utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    /// The last `count` records of a CDR file (the CLI's view), read from its end: at most
    /// `window` bytes (default 2 KiB a record, at least 256 KiB), whatever the file's size.
    public static func tail(path: String, count: Int, window: Int? = nil) throws -> [String] {
        let window = window ?? max(256 << 10, min(count, 1 << 20) * 2048)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CDRError.open(path, errno) }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0 else { return [] }
        let start = max(0, Int(size) - window)
        var bytes = [UInt8](repeating: 0, count: Int(size) - start)
        var filled = 0
        while filled < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return pread(fd, base + filled, buffer.count - filled, off_t(start + filled))
            }
            if n <= 0 { break }
            filled += n
        }
        var lines = bytes[0..<filled].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        if start > 0, !lines.isEmpty { lines.removeFirst() }  // began inside a record
        return lines.suffix(count).map { String(decoding: $0, as: UTF8.self) }
    }
}

public enum CDRError: Error, CustomStringConvertible {
    case open(String, Int32)
    public var description: String {
        switch self {
        case .open(let path, let code): return "cannot open CDR file \(path): \(String(cString: strerror(code)))"
        }
    }
}
