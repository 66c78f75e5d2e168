// The control-socket protocol, sans-I/O: requests and replies, their bounded text
// encoding and a strict parser. The wire format is documented in
// docs/control-protocol.md; keep the two in step.
//
// One request per connection. The client writes the request and half-closes; the
// daemon writes one reply and closes. That makes the protocol usable from a shell
// (`printf 'show version\n' | socat - UNIX-CONNECT:/run/bloo/control.sock`).

/// Limits of the protocol. Anything larger is refused before it is parsed.
public enum ControlLimits {
    /// Largest request the daemon reads (head + configuration text).
    public static let maxRequestBytes = 256 * 1024
    /// Longest command line and header line.
    public static let maxLineBytes = 1024
    /// Most header lines in one request.
    public static let maxHeaders = 16
    /// Largest reply a client accepts.
    public static let maxReplyBytes = 8 * 1024 * 1024
    /// Longest commit comment and user name.
    public static let maxCommentBytes = 256
    /// Confirmation window of a commit, minutes.
    public static let confirmMinutes: ClosedRange<Int> = 1...1440
    /// How far back `rollback N` may reach.
    public static let rollbackRange: ClosedRange<Int> = 0...999
}

/// Which configuration `config get` returns.
public enum ConfigSource: String, Sendable, Equatable, CaseIterable {
    case running, candidate
}

/// How `show` renders: human text, or one `key=value` pair per line for scripts.
public enum OutputFormat: String, Sendable, Equatable, CaseIterable {
    case text, kv
}

/// What a caller may ask of the daemon.
public enum ControlRequest: Sendable, Equatable {
    /// `show <topic> [<argument>]`: version, system, interfaces, routes, health, ...
    case show(topic: String, argument: String?, format: OutputFormat)
    /// `config get running|candidate`
    case configGet(ConfigSource)
    /// `config get commit <n>`: the configuration text of kept commit n (the N of `rollback N`).
    case configGetCommit(Int)
    /// `config history`: the kept commits, newest first, one line each.
    case configHistory
    /// `config validate`: parse and check a configuration text without applying it.
    case configValidate(text: String)
    /// `config commit`: apply a full configuration text.
    case configCommit(text: String, confirmMinutes: Int?, user: String?, comment: String?)
    /// `confirm`: make a commit that awaits confirmation permanent.
    case confirm
    /// `rollback <n>`: return to the configuration n commits back.
    case rollback(Int)
    /// `reboot`
    case reboot

    /// Whether the request changes the appliance (admin group only).
    public var changesState: Bool {
        switch self {
        case .show, .configGet, .configGetCommit, .configHistory, .configValidate: false
        case .configCommit, .confirm, .rollback, .reboot: true
        }
    }

    /// Whether only the admin role may ask: every change, and reading an old commit
    /// whole (what `rollback N` loads into a candidate; operators read the history).
    public var needsAdmin: Bool {
        if case .configGetCommit = self { return true }
        return changesState
    }

    /// A short name for logs: never the configuration text.
    public var summary: String {
        switch self {
        case .show(let topic, let argument, _): "show " + topic + (argument.map { " " + $0 } ?? "")
        case .configGet(let source): "config get " + source.rawValue
        case .configGetCommit(let n): "config get commit \(n)"
        case .configHistory: "config history"
        case .configValidate: "config validate"
        case .configCommit: "config commit"
        case .confirm: "confirm"
        case .rollback(let n): "rollback \(n)"
        case .reboot: "reboot"
        }
    }
}

/// Machine-readable reasons of an error reply.
public enum ControlErrorCode: String, Sendable, Equatable, CaseIterable {
    /// The request could not be parsed.
    case malformed
    /// The request exceeded ControlLimits.maxRequestBytes.
    case tooLarge = "too-large"
    /// The command or topic does not exist.
    case unknown
    /// The caller's role does not allow the request.
    case denied
    /// The request was well formed but its content was refused (bad configuration).
    case invalid
    /// The daemon tried and failed (kernel or storage error).
    case failed
    /// The daemon is not ready for it (nothing to confirm, no candidate, shutting down).
    case unavailable
    /// The request did not arrive in time.
    case timeout
}

/// The daemon's answer.
public enum ControlReply: Sendable, Equatable {
    case ok(String)
    case error(ControlErrorCode, String)

    public var isOK: Bool { if case .ok = self { true } else { false } }
}

/// A parse failure, with the reply that reports it.
public struct ControlProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: ControlErrorCode
    public let message: String
    public init(_ code: ControlErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

public enum ControlCodec {
    // MARK: Requests

    /// The bytes a client sends for `request`.
    public static func encode(_ request: ControlRequest) -> [UInt8] {
        var head: String
        var headers: [(String, String)] = []
        var body: String?
        switch request {
        case .show(let topic, let argument, let format):
            head = "show " + topic + (argument.map { " " + $0 } ?? "")
            if format != .text { headers.append(("format", format.rawValue)) }
        case .configGet(let source):
            head = "config get " + source.rawValue
        case .configGetCommit(let n):
            head = "config get commit \(n)"
        case .configHistory:
            head = "config history"
        case .configValidate(let text):
            head = "config validate"
            body = text
        case .configCommit(let text, let minutes, let user, let comment):
            head = "config commit"
            if let minutes { headers.append(("confirm", String(minutes))) }
            if let user { headers.append(("user", user)) }
            if let comment { headers.append(("comment", comment)) }
            body = text
        case .confirm:
            head = "confirm"
        case .rollback(let n):
            head = "rollback \(n)"
        case .reboot:
            head = "reboot"
        }
        var text = head + "\n"
        for (name, value) in headers { text += name + ": " + value + "\n" }
        if let body { text += "\n" + body }
        return Array(text.utf8)
    }

    /// Parses a complete request. Throws a ControlProtocolError naming what is wrong.
    public static func decodeRequest(_ bytes: some Collection<UInt8>) throws(ControlProtocolError) -> ControlRequest {
        guard bytes.count <= ControlLimits.maxRequestBytes else {
            throw ControlProtocolError(.tooLarge, "request exceeds \(ControlLimits.maxRequestBytes) bytes")
        }
        let data = Array(bytes)
        guard !data.isEmpty else { throw ControlProtocolError(.malformed, "empty request") }

        // Split the head (command line and headers) from the body at the first blank line.
        var lines: [[UInt8]] = []
        var bodyStart: Int?
        var lineStart = 0
        var index = 0
        while index < data.count {
            if data[index] == 0x0A {
                let line = Array(data[lineStart..<index])
                if line.isEmpty && !lines.isEmpty {
                    bodyStart = index + 1
                    break
                }
                lines.append(line)
                lineStart = index + 1
                guard lines.count <= ControlLimits.maxHeaders + 1 else {
                    throw ControlProtocolError(.malformed, "more than \(ControlLimits.maxHeaders) header lines")
                }
            } else if index - lineStart >= ControlLimits.maxLineBytes {
                throw ControlProtocolError(.malformed, "line longer than \(ControlLimits.maxLineBytes) bytes")
            }
            index += 1
        }
        if bodyStart == nil && lineStart < data.count {
            lines.append(Array(data[lineStart...]))  // last line without a newline
        }
        guard let first = lines.first else { throw ControlProtocolError(.malformed, "empty request") }
        let command = try headLine(first, what: "command line")
        var headers: [String: String] = [:]
        for raw in lines.dropFirst() {
            let line = try headLine(raw, what: "header")
            guard let colon = line.firstIndex(of: ":") else {
                throw ControlProtocolError(.malformed, "header without ':'")
            }
            let name = String(line[..<colon])
            var value = Substring(line[line.index(after: colon)...])
            while value.first == " " { value = value.dropFirst() }
            guard !name.isEmpty, name.utf8.allSatisfy({ isLowerWordByte($0) }) else {
                throw ControlProtocolError(.malformed, "bad header name")
            }
            guard headers[name] == nil else { throw ControlProtocolError(.malformed, "header '\(name)' repeated") }
            headers[name] = String(value)
        }
        var body: String?
        if let bodyStart {
            guard let text = String(validating: data[bodyStart...], as: UTF8.self) else {
                throw ControlProtocolError(.malformed, "body is not UTF-8")
            }
            body = text
        }

        let words = command.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard !words.contains(where: \.isEmpty) else {
            throw ControlProtocolError(.malformed, "words must be separated by exactly one space")
        }
        var allowed: Set<String> = []
        let request: ControlRequest
        switch words[0] {
        case "show":
            allowed = ["format"]
            guard words.count == 2 || words.count == 3 else {
                throw ControlProtocolError(.malformed, "usage: show <topic> [<argument>]")
            }
            guard isTopic(words[1]) else { throw ControlProtocolError(.malformed, "bad topic") }
            let argument = words.count == 3 ? words[2] : nil
            if let argument, !isArgument(argument) { throw ControlProtocolError(.malformed, "bad argument") }
            var format = OutputFormat.text
            if let name = headers["format"] {
                guard let parsed = OutputFormat(rawValue: name) else {
                    throw ControlProtocolError(.malformed, "format must be text or kv")
                }
                format = parsed
            }
            request = .show(topic: words[1], argument: argument, format: format)
        case "config":
            guard words.count >= 2 else { throw ControlProtocolError(.malformed, "usage: config get|history|validate|commit") }
            switch words[1] {
            case "get" where words.count == 4 && words[2] == "commit":
                guard let n = decimal(words[3]), ControlLimits.rollbackRange.contains(n) else {
                    throw ControlProtocolError(.malformed, "usage: config get commit <0-999>")
                }
                request = .configGetCommit(n)
            case "history":
                guard words.count == 2 else { throw ControlProtocolError(.malformed, "usage: config history") }
                request = .configHistory
            case "get":
                guard words.count == 3, let source = ConfigSource(rawValue: words[2]) else {
                    throw ControlProtocolError(.malformed, "usage: config get running|candidate|commit <n>")
                }
                request = .configGet(source)
            case "validate":
                guard words.count == 2 else { throw ControlProtocolError(.malformed, "usage: config validate") }
                guard let body else { throw ControlProtocolError(.malformed, "config validate needs a body") }
                request = .configValidate(text: body)
            case "commit":
                allowed = ["confirm", "user", "comment"]
                guard words.count == 2 else { throw ControlProtocolError(.malformed, "usage: config commit") }
                guard let body else { throw ControlProtocolError(.malformed, "config commit needs a body") }
                var minutes: Int?
                if let text = headers["confirm"] {
                    guard let value = decimal(text), ControlLimits.confirmMinutes.contains(value) else {
                        throw ControlProtocolError(.malformed, "confirm must be minutes in 1...1440")
                    }
                    minutes = value
                }
                for name in ["user", "comment"] {
                    if let value = headers[name], value.utf8.count > ControlLimits.maxCommentBytes {
                        throw ControlProtocolError(.malformed, "\(name) longer than \(ControlLimits.maxCommentBytes) bytes")
                    }
                }
                request = .configCommit(text: body, confirmMinutes: minutes,
                                        user: headers["user"], comment: headers["comment"])
            default:
                throw ControlProtocolError(.unknown, "unknown command 'config \(words[1])'")
            }
        case "confirm":
            guard words.count == 1 else { throw ControlProtocolError(.malformed, "usage: confirm") }
            request = .confirm
        case "rollback":
            guard words.count == 2, let n = decimal(words[1]), ControlLimits.rollbackRange.contains(n) else {
                throw ControlProtocolError(.malformed, "usage: rollback <0-999>")
            }
            request = .rollback(n)
        case "reboot":
            guard words.count == 1 else { throw ControlProtocolError(.malformed, "usage: reboot") }
            request = .reboot
        default:
            throw ControlProtocolError(.unknown, "unknown command '\(words[0])'")
        }
        if let extra = headers.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw ControlProtocolError(.malformed, "header '\(extra)' not allowed here")
        }
        switch request {
        case .configCommit, .configValidate: break
        default:
            if let body, !body.isEmpty { throw ControlProtocolError(.malformed, "this command takes no body") }
        }
        return request
    }

    // MARK: Replies

    /// The bytes the daemon sends for `reply`. Error messages are forced onto one line.
    public static func encode(_ reply: ControlReply) -> [UInt8] {
        switch reply {
        case .ok(let body):
            return Array(("ok\n" + body).utf8)
        case .error(let code, let message):
            let line = String(message.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
            return Array(("error " + code.rawValue + " " + line + "\n").utf8)
        }
    }

    /// Parses a reply (client side). The daemon is trusted less than blindly: bounded, strict.
    public static func decodeReply(_ bytes: some Collection<UInt8>) throws(ControlProtocolError) -> ControlReply {
        guard bytes.count <= ControlLimits.maxReplyBytes else {
            throw ControlProtocolError(.tooLarge, "reply exceeds \(ControlLimits.maxReplyBytes) bytes")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ControlProtocolError(.malformed, "reply is not UTF-8")
        }
        let firstLine: Substring
        let rest: Substring
        if let newline = text.firstIndex(of: "\n") {
            firstLine = text[..<newline]
            rest = text[text.index(after: newline)...]
        } else {
            firstLine = Substring(text)
            rest = ""
        }
        if firstLine == "ok" { return .ok(String(rest)) }
        guard firstLine.hasPrefix("error ") else {
            throw ControlProtocolError(.malformed, "reply starts neither with 'ok' nor 'error'")
        }
        let words = firstLine.dropFirst("error ".count)
        let codeText = words.prefix { $0 != " " }
        guard let code = ControlErrorCode(rawValue: String(codeText)) else {
            throw ControlProtocolError(.malformed, "unknown error code '\(codeText)'")
        }
        return .error(code, String(words.dropFirst(codeText.count).drop { $0 == " " }))
    }

    // MARK: Lexical rules

    private static func headLine(_ bytes: [UInt8], what: String) throws(ControlProtocolError) -> String {
        // Printable ASCII and UTF-8 only; no control characters (a stray CR, NUL, escape).
        guard let text = String(validating: bytes, as: UTF8.self),
              !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw ControlProtocolError(.malformed, "\(what) contains control characters or is not UTF-8")
        }
        guard !text.isEmpty else { throw ControlProtocolError(.malformed, "empty \(what)") }
        return text
    }

    private static func isLowerWordByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D
    }

    static func isTopic(_ word: String) -> Bool {
        (1...32).contains(word.utf8.count) && word.utf8.allSatisfy(isLowerWordByte)
    }

    static func isArgument(_ word: String) -> Bool {
        (1...64).contains(word.utf8.count) && word.utf8.allSatisfy { byte in
            isLowerWordByte(byte) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x2E || byte == 0x5F
                || byte == 0x3A || byte == 0x2F || byte == 0x40
        }
    }

    /// A non-negative decimal of at most 6 digits (no sign, no overflow possible).
    static func decimal(_ text: String) -> Int? {
        guard (1...6).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }
}

/// One kept commit as `config history` reports it. The reply body has one line per
/// commit, newest first (line i is the N of `rollback N`), fields separated by TAB:
/// `<sequence>\t<time>\t<confirm-deadline|->\t<revert-to|->\t<user>\t<comment>`.
/// Times are seconds since the epoch; TAB and newline in user or comment become spaces.
public struct ControlCommitEntry: Sendable, Equatable {
    public var sequence: Int
    public var time: Int64
    public var confirmDeadline: Int64?
    public var revertTo: Int?
    public var user: String
    public var comment: String

    public init(sequence: Int, time: Int64, confirmDeadline: Int64?, revertTo: Int?, user: String, comment: String) {
        self.sequence = sequence
        self.time = time
        self.confirmDeadline = confirmDeadline
        self.revertTo = revertTo
        self.user = user
        self.comment = comment
    }

    public static func encode(_ entries: [ControlCommitEntry]) -> String {
        func clean(_ text: String) -> String {
            String(text.map { $0 == "\t" || $0 == "\n" || $0 == "\r" ? " " : $0 })
        }
        return entries.map { entry in
            [String(entry.sequence), String(entry.time), entry.confirmDeadline.map { String($0) } ?? "-",
             entry.revertTo.map { String($0) } ?? "-", clean(entry.user), clean(entry.comment)].joined(separator: "\t") + "\n"
        }.joined()
    }

    /// Parses a `config history` body; nil when any line is not in the format above.
    public static func decode(_ body: String) -> [ControlCommitEntry]? {
        var entries: [ControlCommitEntry] = []
        for line in body.split(separator: "\n", omittingEmptySubsequences: true) {
            guard entries.count <= ControlLimits.rollbackRange.upperBound else { return nil }
            // Exactly six fields: a TAB or CR inside the user or comment is never sent.
            guard !line.contains("\r") else { return nil }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 6, let sequence = number(fields[0]), let time = number(fields[1]) else { return nil }
            var deadline: Int64?
            var revertTo: Int?
            if fields[2] != "-" { guard let value = number(fields[2]) else { return nil }; deadline = Int64(value) }
            if fields[3] != "-" { guard let value = number(fields[3]) else { return nil }; revertTo = value }
            entries.append(ControlCommitEntry(sequence: sequence, time: Int64(time), confirmDeadline: deadline,
                                              revertTo: revertTo, user: fields[4], comment: fields[5]))
        }
        return entries
    }

    /// A non-negative decimal of at most 18 digits (fits Int64, no overflow possible).
    private static func number(_ text: String) -> Int? {
        guard (1...18).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }
}
