// The value types a configuration leaf can hold: each one parses hostile text into a
// canonical spelling (so that the printed configuration is stable) or says what it expected.

/// The kind of value a leaf or a list key accepts.
public enum ValueKind: Sendable, Equatable {
    /// Host name: letters, digits, '-' and '.', 1...63 characters.
    case hostname
    /// A user, subscriber or other name: letters, digits, '-', '_', '.', 1...32 characters.
    case name
    /// A Linux interface name (at most 15 characters, IFNAMSIZ - 1).
    case interfaceName
    case integer(ClosedRange<Int>)
    /// One of a fixed set of words.
    case choice([String])
    case ipv4Address
    case ipAddress
    /// An address with a prefix length: 192.0.2.1/24 or 2001:db8::1/64.
    case ipPrefix
    /// A route destination: a network prefix (host bits must be zero).
    case ipNetwork
    /// address:port, [v6]:port.
    case socketAddress
    case absolutePath
    /// CPU numbers: 0-3,6.
    case cpuList
    /// Low-high port range: 20000-29999.
    case portRange
    /// A password hash produced by `PasswordHash.make` (never clear text).
    case passwordHash
    /// Free text of printable characters, at most 128 bytes (quoted when printed).
    case text

    /// What the user sees in help and in "expected ..." errors.
    public var placeholder: String {
        switch self {
        case .hostname: return "<hostname>"
        case .name: return "<name>"
        case .interfaceName: return "<interface>"
        case .integer(let range): return "<\(range.lowerBound)-\(range.upperBound)>"
        case .choice(let words): return words.joined(separator: "|")
        case .ipv4Address: return "<ipv4-address>"
        case .ipAddress: return "<ip-address>"
        case .ipPrefix: return "<address/length>"
        case .ipNetwork: return "<network/length>"
        case .socketAddress: return "<address:port>"
        case .absolutePath: return "<path>"
        case .cpuList: return "<cpu-list>"
        case .portRange: return "<low-high>"
        case .passwordHash: return "<password-hash>"
        case .text: return "<text>"
        }
    }

    /// Returns the canonical spelling of `word`, or a reason it is not acceptable.
    public func canonical(_ word: String) -> Result<String, ValueError> {
        func fail(_ why: String) -> Result<String, ValueError> { .failure(ValueError(reason: why)) }
        switch self {
        case .hostname:
            guard (1...63).contains(word.utf8.count),
                  word.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }),
                  word.first != "-", word.first != "."
            else { return fail("expected a host name (letters, digits, '-', '.', at most 63)") }
            return .success(word.lowercased())
        case .name:
            guard (1...32).contains(word.utf8.count), let first = word.utf8.first, isAlphanumeric(first) || first == UInt8(ascii: "_"),
                  word.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") })
            else { return fail("expected a name (letters, digits, '-', '_', '.', at most 32)") }
            return .success(word)
        case .interfaceName:
            guard (1...15).contains(word.utf8.count), word != ".", word != "..",
                  word.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") })
            else { return fail("expected an interface name (at most 15 letters, digits, '-', '_', '.')") }
            return .success(word)
        case .integer(let range):
            guard let number = parseDecimal(word), range.contains(number) else {
                return fail("expected a number in \(range.lowerBound)-\(range.upperBound)")
            }
            return .success(String(number))
        case .choice(let words):
            guard words.contains(word) else { return fail("expected one of: \(words.joined(separator: ", "))") }
            return .success(word)
        case .ipv4Address:
            guard let address = IPv4(word) else { return fail("expected an IPv4 address") }
            return .success(address.description)
        case .ipAddress:
            guard let address = IPAddress(word) else { return fail("expected an IPv4 or IPv6 address") }
            return .success(address.description)
        case .ipPrefix, .ipNetwork:
            guard let prefix = IPPrefix(word) else { return fail("expected address/length, e.g. 192.0.2.1/24") }
            if self == .ipNetwork, !prefix.isNetwork {
                return fail("expected a network: host bits of \(word) must be zero")
            }
            return .success(prefix.description)
        case .socketAddress:
            guard let address = SocketAddress(word) else {
                return fail("expected address:port, e.g. 0.0.0.0:443 or [::]:443")
            }
            return .success(address.description)
        case .absolutePath:
            guard word.hasPrefix("/"), word.utf8.count <= 255, !word.split(separator: "/").contains(".."),
                  word.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") })
            else { return fail("expected an absolute path without '..' or spaces") }
            return .success(word)
        case .cpuList:
            guard let cpus = CPUList(word) else { return fail("expected CPU numbers, e.g. 0 or 1-3,5") }
            return .success(cpus.description)
        case .portRange:
            guard let range = PortRange(word) else { return fail("expected a port range low-high within 1024-65535") }
            return .success(range.description)
        case .passwordHash:
            guard PasswordHash.isWellFormed(word) else {
                return fail("expected a password hash (pbkdf2-sha256$...); use 'set system user NAME password' to enter a password")
            }
            return .success(word)
        case .text:
            guard word.utf8.count <= 128, word.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f })
            else { return fail("expected printable text of at most 128 bytes") }
            return .success(word)
        }
    }
}

/// Why a word is not a valid value.
public struct ValueError: Error, Equatable, Sendable {
    public let reason: String
}

func isAlphanumeric(_ byte: UInt8) -> Bool {
    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
}

/// A strict decimal: digits only, no sign, at most 9 digits (no overflow possible).
func parseDecimal<S: StringProtocol>(_ text: S) -> Int? {
    guard !text.isEmpty, text.utf8.count <= 9 else { return nil }
    var value = 0
    for byte in text.utf8 {
        guard byte >= 0x30, byte <= 0x39 else { return nil }
        value = value * 10 + Int(byte - 0x30)
    }
    return value
}

public struct IPv4: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let octets: [UInt8]

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [UInt8] = []
        for part in parts {
            guard part.utf8.count <= 3, let value = parseDecimal(part), value <= 255 else { return nil }
            if part.utf8.count > 1, part.hasPrefix("0") { return nil }  // no octal look-alikes
            octets.append(UInt8(value))
        }
        self.octets = octets
    }

    public var description: String { octets.map(String.init).joined(separator: ".") }
}

public struct IPv6: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Eight 16-bit groups.
    public let groups: [UInt16]

    public init?(_ text: String) {
        guard text.utf8.count <= 45, !text.isEmpty else { return nil }
        let halves = text.components(separatedByString: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            for piece in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(piece.utf8.count), let value = UInt16(piece, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            self.groups = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard head.count == 8 else { return nil }
            self.groups = head
        }
    }

    /// RFC 5952 text: lower case, longest run of zero groups (at least two) compressed.
    public var description: String {
        var bestStart = -1, bestLength = 1
        var index = 0
        while index < 8 {
            if groups[index] == 0 {
                var end = index
                while end < 8, groups[end] == 0 { end += 1 }
                if end - index > bestLength { bestStart = index; bestLength = end - index }
                index = end
            } else {
                index += 1
            }
        }
        let hex = groups.map { String($0, radix: 16) }
        if bestStart < 0 { return hex.joined(separator: ":") }
        let head = hex[..<bestStart].joined(separator: ":")
        let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
        return head + "::" + tail
    }
}

public enum IPAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4)
    case v6(IPv6)

    public init?(_ text: String) {
        if let v4 = IPv4(text) { self = .v4(v4) } else if let v6 = IPv6(text) { self = .v6(v6) } else { return nil }
    }

    public var description: String {
        switch self {
        case .v4(let address): return address.description
        case .v6(let address): return address.description
        }
    }

    public var isIPv4: Bool { if case .v4 = self { return true } else { return false } }

    /// The address as bytes (4 or 16), most significant first.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let address): return address.octets
        case .v6(let address): return address.groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
        }
    }
}

public struct IPPrefix: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])), parts[1].utf8.count <= 3,
              let length = parseDecimal(parts[1]), length <= (address.isIPv4 ? 32 : 128)
        else { return nil }
        self.address = address
        self.length = length
    }

    /// True when every bit after the prefix length is zero.
    public var isNetwork: Bool {
        for (index, byte) in address.bytes.enumerated() {
            let keep = max(0, min(8, length - index * 8))
            let mask: UInt8 = keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
            if byte & ~mask != 0 { return false }
        }
        return true
    }

    public var description: String { "\(address)/\(length)" }
}

public struct SocketAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let port: Int

    public init?(_ text: String) {
        let host: String, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
            guard IPv6(host) != nil else { return nil }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            guard IPv4(host) != nil else { return nil }
        }
        guard let address = IPAddress(host), portText.utf8.count <= 5, let port = parseDecimal(portText),
              (1...65535).contains(port) else { return nil }
        self.address = address
        self.port = port
    }

    public var description: String {
        switch address {
        case .v4: return "\(address):\(port)"
        case .v6: return "[\(address)]:\(port)"
        }
    }
}

/// A set of CPU numbers written as "0-2,5".
public struct CPUList: Equatable, Sendable, CustomStringConvertible {
    public let cpus: [Int]

    public init?(_ text: String) {
        var set = Set<Int>()
        guard !text.isEmpty, text.utf8.count <= 256 else { return nil }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = parseDecimal(bounds[0]), low < 1024 else { return nil }
            let high = bounds.count == 2 ? parseDecimal(bounds[1]) : low
            guard let high, high < 1024, high >= low else { return nil }
            for cpu in low...high { set.insert(cpu) }
        }
        cpus = set.sorted()
    }

    public init(cpus: [Int]) { self.cpus = Array(Set(cpus)).sorted() }

    public var description: String {
        var parts: [String] = []
        var index = 0
        while index < cpus.count {
            var end = index
            while end + 1 < cpus.count, cpus[end + 1] == cpus[end] + 1 { end += 1 }
            parts.append(end == index ? "\(cpus[index])" : "\(cpus[index])-\(cpus[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }
}

public struct PortRange: Equatable, Sendable, CustomStringConvertible {
    public let low: Int
    public let high: Int

    public init?(_ text: String) {
        let bounds = text.split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let low = parseDecimal(bounds[0]), let high = parseDecimal(bounds[1]),
              low >= 1024, high <= 65535, low < high else { return nil }
        self.low = low
        self.high = high
    }

    public var description: String { "\(low)-\(high)" }
}

extension String {
    /// Splits on a multi-character separator (FoundationEssentials-free).
    func components(separatedByString separator: String) -> [String] {
        var result: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            result.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        result.append(String(rest))
        return result
    }
}
