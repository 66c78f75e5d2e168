// The H.323 ASN.1 schema (H.225.0, H.245, H.235.0) as PER type descriptions, and the glue
// that gives every generated top-level type `init(decoding:)` and `encoded()`.
import PER

public enum H323Schema {
    /// Every named type of the three modules, by "MODULE.Type" name.
    public static let schema = PERSchema(names: H323SchemaTable.names, types: H323SchemaTable.build())
    public static let codec = PERCodec(schema: schema)

    public static func type(_ qualifiedName: String) -> PERType? { schema.type(named: qualifiedName) }
}

/// A named ASN.1 type of the H.323 modules that can be encoded and decoded on its own.
public protocol H323Message: PERCodable {
    static var perType: PERType { get }
}

extension H323Message {
    /// Decodes straight into the typed structure (generated from the schema, no PERValue tree).
    public init(decoding bytes: [UInt8], limits: PERLimits = .default) throws(PERError) {
        var decoder = PERDecoder(bytes, schema: H323Schema.schema, limits: limits)
        self = try Self(perDecoder: &decoder)
    }

    public func encoded() throws(PERError) -> [UInt8] {
        var encoder = PEREncoder(schema: H323Schema.schema)
        try perEncode(to: &encoder)
        return encoder.finish()
    }

    /// The same through the generic codec and the PERValue tree: slower, kept as the reference
    /// that the tests and fuzz targets compare the generated path with.
    public init(decodingGeneric bytes: [UInt8], limits: PERLimits = .default) throws(PERError) {
        var codec = H323Schema.codec
        codec.limits = limits
        self = try Self(perValue: try codec.decode(Self.perType, from: bytes))
    }

    public func encodedGeneric() throws(PERError) -> [UInt8] {
        try H323Schema.codec.encode(perValue, as: Self.perType)
    }
}
