// The aligned-PER (X.691) codec. PEREncoder/PERDecoder (Encoder.swift, Decoder.swift) hold
// every encoding rule as primitives; two drivers call them: the generic one here walks a
// PERType description and a PERValue tree, and code generated from the same schema (the
// H.323 typed structures) calls the same primitives directly, without building a tree.
// Nothing here knows any particular protocol.

/// Bounds on what a decoder will build, whatever lengths a peer claims.
public struct PERLimits: Sendable, Equatable {
    /// Elements of one SEQUENCE OF.
    public var maxElements: Int
    /// Elements and components over the whole message.
    public var maxTotalElements: Int
    /// Octets (or characters, or bits/8) of one string or open type.
    public var maxOctets: Int
    /// Nesting depth of constructed types.
    public var maxDepth: Int

    public init(maxElements: Int = 1024, maxTotalElements: Int = 32768, maxOctets: Int = 65536, maxDepth: Int = 64) {
        self.maxElements = maxElements
        self.maxTotalElements = maxTotalElements
        self.maxOctets = maxOctets
        self.maxDepth = maxDepth
    }
    public static let `default` = PERLimits()
}

public struct PERCodec: Sendable {
    public let schema: PERSchema
    public var limits: PERLimits

    public init(schema: PERSchema, limits: PERLimits = .default) {
        self.schema = schema
        self.limits = limits
    }

    /// The complete encoding (X.691 10.1): padded to whole octets, never empty.
    public func encode(_ value: PERValue, as type: PERType) throws(PERError) -> [UInt8] {
        var encoder = PEREncoder(schema: schema)
        try encoder.encodeValue(value, type)
        return encoder.finish()
    }

    public func decode(_ type: PERType, from bytes: [UInt8]) throws(PERError) -> PERValue {
        var decoder = PERDecoder(bytes, schema: schema, limits: limits)
        return try decoder.decodeValue(type)
    }

    public func encode(_ value: PERValue, typeNamed name: String) throws(PERError) -> [UInt8] {
        guard let type = schema.type(named: name) else { throw .typeMismatch("no type \(name)") }
        return try encode(value, as: type)
    }

    public func decode(typeNamed name: String, from bytes: [UInt8]) throws(PERError) -> PERValue {
        guard let type = schema.type(named: name) else { throw .typeMismatch("no type \(name)") }
        return try decode(type, from: bytes)
    }
}

// MARK: - Shared number helpers

@inline(__always)
func bitLength(_ value: UInt64) -> Int { value == 0 ? 0 : 64 - value.leadingZeroBitCount }

@inline(__always)
func octetLength(_ value: UInt64) -> Int { max(1, (bitLength(value) + 7) / 8) }

/// ub - lb + 1 as UInt64, or nil when it does not fit.
@inline(__always)
func rangeSize(_ lower: Int, _ upper: Int) -> UInt64? {
    let (difference, overflow) = upper.subtractingReportingOverflow(lower)
    guard !overflow, difference >= 0 else { return nil }
    return UInt64(difference) + 1
}

/// A Swift type whose encoding and decoding are generated from its schema: it calls the
/// PEREncoder/PERDecoder primitives itself instead of going through a PERValue tree. The
/// PERConvertible conversions remain, and give the same values and bytes.
public protocol PERCodable: PERConvertible {
    init(perDecoder decoder: inout PERDecoder) throws(PERError)
    func perEncode(to encoder: inout PEREncoder) throws(PERError)
}
