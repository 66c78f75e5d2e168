// Schema values: every ASN.1 type is described once as data, and one generic codec
// (PEREncoder/PERDecoder) walks these descriptions. Named types live in a PERSchema
// table and are referenced by index, which allows recursion without reference cycles.

/// An ASN.1 type as aligned PER sees it (tags and WITH COMPONENTS are invisible in PER).
public indirect enum PERType: Sendable {
    case null
    case boolean
    case integer(PERIntegerRange)
    case enumerated(PEREnumeratedType)
    case bitString(PERSize)
    case octetString(PERSize)
    case objectIdentifier
    case characterString(PERCharacterStringType)
    /// GeneralString and other non-known-multiplier strings: length in octets plus octets.
    case generalString
    case sequence(PERSequenceType)
    case choice(PERChoiceType)
    case sequenceOf(PERSequenceOfType)
    /// TYPE-IDENTIFIER.&Type and similar: length-prefixed complete encoding, kept opaque.
    case openType
    /// A named type in the schema table.
    case reference(Int)
}

/// INTEGER value range; nil bounds mean MIN/MAX.
public struct PERIntegerRange: Sendable, Equatable {
    public let lower: Int?
    public let upper: Int?
    public let extensible: Bool
    public init(_ lower: Int? = nil, _ upper: Int? = nil, extensible: Bool = false) {
        self.lower = lower
        self.upper = upper
        self.extensible = extensible
    }
    public static let unconstrained = PERIntegerRange()
}

/// SIZE constraint of strings and SEQUENCE OF; `upper == nil` means unbounded.
public struct PERSize: Sendable, Equatable {
    public let lower: Int
    public let upper: Int?
    public let extensible: Bool
    public init(_ lower: Int = 0, _ upper: Int? = nil, extensible: Bool = false) {
        self.lower = lower
        self.upper = upper
        self.extensible = extensible
    }
    public static let unconstrained = PERSize()
    public static func fixed(_ n: Int) -> PERSize { PERSize(n, n) }

    /// PER uses a constrained length only for an upper bound below 64K (X.691 11.9.3.3).
    var isConstrainedLength: Bool {
        guard let upper else { return false }
        return upper < 65536
    }
}

public final class PEREnumeratedType: Sendable {
    /// Root identifiers in index order (sorted by their numbers), then the additions.
    public let root: [String]
    public let additions: [String]?
    public init(root: [String], additions: [String]? = nil) {
        self.root = root
        self.additions = additions
    }
    public var count: Int { root.count + (additions?.count ?? 0) }
    public func name(of index: Int) -> String? {
        if index < root.count { return root[index] }
        let addition = index - root.count
        guard let additions, addition < additions.count else { return nil }
        return additions[addition]
    }
    public func index(of name: String) -> Int? {
        if let i = root.firstIndex(of: name) { return i }
        if let i = additions?.firstIndex(of: name) { return root.count + i }
        return nil
    }
}

/// One component of a SEQUENCE or one alternative of a CHOICE.
public struct PERMember: Sendable {
    public let name: String
    public let type: PERType
    public let optional: Bool
    public init(_ name: String, _ type: PERType, optional: Bool = false) {
        self.name = name
        self.type = type
        self.optional = optional
    }
}

public final class PERSequenceType: Sendable {
    public let name: String
    public let root: [PERMember]
    /// nil: no extension marker; []: extensible without known additions.
    public let additions: [PERMember]?
    let optionalRootCount: Int
    public init(_ name: String, root: [PERMember], additions: [PERMember]? = nil) {
        self.name = name
        self.root = root
        self.additions = additions
        self.optionalRootCount = root.filter(\.optional).count
    }
    public var memberCount: Int { root.count + (additions?.count ?? 0) }
    public func member(at index: Int) -> PERMember? {
        if index < root.count { return root[index] }
        let addition = index - root.count
        guard let additions, addition < additions.count else { return nil }
        return additions[addition]
    }
    public func index(of name: String) -> Int? {
        if let i = root.firstIndex(where: { $0.name == name }) { return i }
        if let i = additions?.firstIndex(where: { $0.name == name }) { return root.count + i }
        return nil
    }
}

public final class PERChoiceType: Sendable {
    public let name: String
    public let root: [PERMember]
    public let additions: [PERMember]?
    public init(_ name: String, root: [PERMember], additions: [PERMember]? = nil) {
        self.name = name
        self.root = root
        self.additions = additions
    }
    public var alternativeCount: Int { root.count + (additions?.count ?? 0) }
    public func alternative(at index: Int) -> PERMember? {
        if index < root.count { return root[index] }
        let addition = index - root.count
        guard let additions, addition < additions.count else { return nil }
        return additions[addition]
    }
    public func index(of name: String) -> Int? {
        if let i = root.firstIndex(where: { $0.name == name }) { return i }
        if let i = additions?.firstIndex(where: { $0.name == name }) { return root.count + i }
        return nil
    }
}

public final class PERSequenceOfType: Sendable {
    public let element: PERType
    public let size: PERSize
    public init(_ element: PERType, size: PERSize = .unconstrained) {
        self.element = element
        self.size = size
    }
}

/// The known-multiplier character strings of X.691 clause 30.
public enum PERStringKind: Sendable {
    case ia5, printable, numeric, visible, bmp

    /// Canonical alphabet (X.680 clause 41) as Unicode scalar values in canonical order.
    var canonicalAlphabet: [UInt32] {
        switch self {
        case .ia5: return Array(0...127)
        case .visible: return Array(0x20...0x7E)
        case .numeric: return [0x20] + Array(0x30...0x39)
        case .printable:
            let extra = " '()+,-./:=?".unicodeScalars.map(\.value)
            return (Array(0x41...0x5A) + Array(0x61...0x7A) + Array(0x30...0x39) + extra).sorted()
        case .bmp: return Array(0...0xFFFF)
        }
    }
}

/// A known-multiplier string type with its effective alphabet and PER bit width precomputed.
public final class PERCharacterStringType: Sendable {
    public let kind: PERStringKind
    public let size: PERSize
    /// Bits per character in the ALIGNED variant (a power of two).
    let bitsPerCharacter: Int
    /// nil: a character is encoded as its own code; otherwise as its index in this sorted list.
    let indexed: [UInt32]?
    /// Permitted codes when a FROM constraint narrows the canonical alphabet.
    let permitted: Set<UInt32>?
    let maximumCode: UInt32
    /// For each ASCII code: what is written for it (its index in `indexed`, or the code), or
    /// -1 when it is not permitted. Every string kind here but BMPString is ASCII only.
    let ascii: [Int32]

    /// `from`: the permitted-alphabet constraint, e.g. "0123456789#*,".
    public init(_ kind: PERStringKind, size: PERSize = .unconstrained, from: String? = nil) {
        self.kind = kind
        self.size = size
        let alphabet: [UInt32]
        let permitted: Set<UInt32>?
        if let from {
            alphabet = Array(Set(from.unicodeScalars.map { $0.value })).sorted()
            permitted = Set(alphabet)
        } else {
            alphabet = kind.canonicalAlphabet
            permitted = (kind == .numeric || kind == .printable) ? Set(alphabet) : nil
        }
        self.permitted = permitted
        maximumCode = kind == .bmp ? 0xFFFF : (alphabet.last ?? 0)
        let count = kind == .bmp && from == nil ? 65536 : alphabet.count
        var bits = 0
        while (1 << bits) < count { bits += 1 }
        var aligned = bits == 0 ? 0 : 1
        while aligned < bits { aligned *= 2 }
        bitsPerCharacter = aligned
        // X.691 30.5.4: codes are used as they are when the largest fits in b bits.
        let indexed: [UInt32]?
        if UInt64(alphabet.last ?? 0) < (UInt64(1) << UInt64(aligned)) || (kind == .bmp && from == nil) {
            indexed = nil
        } else {
            indexed = alphabet
        }
        self.indexed = indexed
        var ascii = [Int32](repeating: -1, count: 128)
        for code in 0..<UInt32(128) where Self.allows(code, kind: kind, permitted: permitted) {
            if let indexed {
                if let i = indexed.firstIndex(of: code) { ascii[Int(code)] = Int32(i) }
            } else {
                ascii[Int(code)] = Int32(code)
            }
        }
        self.ascii = ascii
    }

    /// The permitted characters (for BMPString without FROM, a representative subset).
    public var characters: [UInt32] {
        if let indexed { return indexed }
        if let permitted { return permitted.sorted() }
        switch kind {
        case .bmp: return Array(0x20...0x7E) + [0xE9, 0xFC, 0x3B1, 0x4E2D, 0xFFFD]
        default: return kind.canonicalAlphabet
        }
    }

    @inline(__always)
    func allows(_ code: UInt32) -> Bool {
        if code < 128 { return ascii[Int(code)] >= 0 }
        return Self.allows(code, kind: kind, permitted: permitted)
    }

    static func allows(_ code: UInt32, kind: PERStringKind, permitted: Set<UInt32>?) -> Bool {
        if let permitted { return permitted.contains(code) }
        switch kind {
        case .ia5: return code <= 127
        case .visible: return code >= 0x20 && code <= 0x7E
        case .bmp: return code <= 0xFFFF
        case .numeric, .printable: return false
        }
    }
}

/// A table of named types, so that types can refer to each other (and to themselves).
public final class PERSchema: Sendable {
    public let names: [String]
    public let types: [PERType]
    public init(names: [String], types: [PERType]) {
        self.names = names
        self.types = types
    }
    public func index(of name: String) -> Int? { names.firstIndex(of: name) }
    public func type(named name: String) -> PERType? {
        guard let i = index(of: name) else { return nil }
        return .reference(i)
    }

    /// Follows references until a structural type.
    @inline(__always)
    func resolve(_ type: PERType) -> PERType {
        var current = type
        var hops = 0
        while case .reference(let i) = current, i >= 0, i < types.count, hops < 64 {
            current = types[i]
            hops += 1
        }
        return current
    }
}
