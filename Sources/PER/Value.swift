// The generic value tree that the codec produces and consumes. Typed H.323 structures
// convert to and from it; tests compare it with the oracle's JSON.

public enum PERValue: Sendable, Equatable {
    case null
    case boolean(Bool)
    case integer(Int)
    /// Index into root identifiers then additions; an unknown extension value keeps its
    /// index (>= the known count).
    case enumerated(Int)
    case bitString(PERBitString)
    case octetString([UInt8])
    case objectIdentifier(PERObjectIdentifier)
    case string(String)
    case sequence(PERSequenceValue)
    /// Alternative index (root first, then additions). An unknown extension alternative keeps
    /// its index and its encoding as `.openType`.
    indirect case choice(Int, PERValue)
    case sequenceOf([PERValue])
    case openType([UInt8])
}

/// Members by position (root components, then the known extension additions).
public struct PERSequenceValue: Sendable, Equatable {
    public var members: [PERValue?]
    /// Extension additions this schema does not know (later versions, H.460 features):
    /// kept as their open-type contents so that a relay can forward them unchanged.
    public var unknownAdditions: [PERUnknownAddition]
    public init(members: [PERValue?], unknownAdditions: [PERUnknownAddition] = []) {
        self.members = members
        self.unknownAdditions = unknownAdditions
    }
    public subscript(_ index: Int) -> PERValue? {
        get { index < members.count ? members[index] : nil }
        set {
            if index >= members.count { members += Array(repeating: nil, count: index - members.count + 1) }
            members[index] = newValue
        }
    }
}

/// An extension addition beyond the schema: its open-type contents, or nil when the sender's
/// presence bitmap listed it as absent (kept so that re-encoding writes the same bitmap).
public struct PERUnknownAddition: Sendable, Equatable {
    /// Position among the extension additions (0 = first addition).
    public var position: Int
    public var encoding: [UInt8]?
    public init(position: Int, encoding: [UInt8]?) {
        self.position = position
        self.encoding = encoding
    }
}

public struct PERBitString: Sendable, Equatable, Hashable {
    public var bytes: [UInt8]
    public var count: Int
    public init(bytes: [UInt8], count: Int) {
        self.bytes = bytes
        self.count = count
    }
    /// "0101..." text, as ASN.1 writes it.
    public init?(bits text: String) {
        var bytes = [UInt8](repeating: 0, count: (text.utf8.count + 7) / 8)
        for (i, c) in text.utf8.enumerated() {
            switch c {
            case UInt8(ascii: "0"): break
            case UInt8(ascii: "1"): bytes[i / 8] |= 0x80 >> UInt8(i % 8)
            default: return nil
            }
        }
        self.init(bytes: bytes, count: text.utf8.count)
    }
    public func bit(_ i: Int) -> Bool {
        guard i >= 0, i < count, i / 8 < bytes.count else { return false }
        return bytes[i / 8] & (0x80 >> UInt8(i % 8)) != 0
    }
}

public struct PERObjectIdentifier: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var arcs: [UInt64]
    public init(_ arcs: [UInt64]) { self.arcs = arcs }
    /// Dotted form, "0.0.8.2250.0.7".
    public init?(_ dotted: String) {
        var arcs: [UInt64] = []
        for part in dotted.split(separator: ".", omittingEmptySubsequences: false) {
            guard let arc = UInt64(part) else { return nil }
            arcs.append(arc)
        }
        guard arcs.count >= 2 else { return nil }
        self.arcs = arcs
    }
    public var description: String { arcs.map(String.init).joined(separator: ".") }
}

/// The NULL value, for typed structures.
public struct PERNull: Sendable, Equatable, Hashable {
    public init() {}
}
