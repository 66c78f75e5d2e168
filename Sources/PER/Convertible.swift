// Conversions between Swift values and the generic PERValue tree, used by typed structures
// (generated per protocol) so that one generic codec serves them all.

public protocol PERConvertible: Sendable {
    init(perValue: PERValue) throws(PERError)
    var perValue: PERValue { get }
}

extension PERValue: PERConvertible {
    public init(perValue: PERValue) throws(PERError) { self = perValue }
    public var perValue: PERValue { self }
}

extension Int: PERConvertible {
    public init(perValue: PERValue) throws(PERError) {
        guard case .integer(let v) = perValue else { throw .typeMismatch("INTEGER expected") }
        self = v
    }
    public var perValue: PERValue { .integer(self) }
}

/// An octet of an OCTET STRING: `[UInt8]` converts to and from `.octetString`.
extension UInt8: PERConvertible {
    public init(perValue: PERValue) throws(PERError) {
        guard case .integer(let v) = perValue, let octet = UInt8(exactly: v) else { throw .typeMismatch("octet expected") }
        self = octet
    }
    public var perValue: PERValue { .integer(Int(self)) }
}

extension Bool: PERConvertible {
    public init(perValue: PERValue) throws(PERError) {
        guard case .boolean(let v) = perValue else { throw .typeMismatch("BOOLEAN expected") }
        self = v
    }
    public var perValue: PERValue { .boolean(self) }
}

extension String: PERConvertible {
    public init(perValue: PERValue) throws(PERError) {
        guard case .string(let v) = perValue else { throw .typeMismatch("character string expected") }
        self = v
    }
    public var perValue: PERValue { .string(self) }
}

extension PERBitString: PERConvertible {
    public init(perValue: PERValue) throws(PERError) {
        guard case .bitString(let v) = perValue else { throw .typeMismatch("BIT STRING expected") }
        self = v
    }
    public var perValue: PERValue { .bitString(self) }
}

extension PERObjectIdentifier: PERConvertible {
    public init(perValue: PERValue) throws(PERError) {
        guard case .objectIdentifier(let v) = perValue else { throw .typeMismatch("OBJECT IDENTIFIER expected") }
        self = v
    }
    public var perValue: PERValue { .objectIdentifier(self) }
}

extension PERNull: PERConvertible {
    public init(perValue: PERValue) throws(PERError) {
        guard case .null = perValue else { throw .typeMismatch("NULL expected") }
        self.init()
    }
    public var perValue: PERValue { .null }
}

/// SEQUENCE OF, and `[UInt8]` as an OCTET STRING or open type.
extension Array: PERConvertible where Element: PERConvertible {
    public init(perValue: PERValue) throws(PERError) {
        switch perValue {
        case .sequenceOf(let elements):
            var out = [Element]()
            out.reserveCapacity(elements.count)
            for element in elements { out.append(try Element(perValue: element)) }
            self = out
        case .octetString(let bytes), .openType(let bytes):
            // Same type, checked above: a cast that costs nothing (`as?` would cast per element).
            guard Element.self == UInt8.self else { throw .typeMismatch("SEQUENCE OF expected") }
            self = unsafeBitCast(bytes, to: [Element].self)
        default:
            throw .typeMismatch("SEQUENCE OF expected")
        }
    }
    public var perValue: PERValue {
        if Element.self == UInt8.self { return .octetString(unsafeBitCast(self, to: [UInt8].self)) }
        return .sequenceOf(map { $0.perValue })
    }
}

public func perRequired<T: PERConvertible>(_ s: PERSequenceValue, _ index: Int, _ name: String) throws(PERError) -> T {
    guard let value = s[index] else { throw .typeMismatch("\(name) is missing") }
    return try T(perValue: value)
}

public func perOptional<T: PERConvertible>(_ s: PERSequenceValue, _ index: Int, _ name: String) throws(PERError) -> T? {
    guard let value = s[index] else { return nil }
    return try T(perValue: value)
}
