// Every golden vector (encoded by the independent asn1tools oracle, see
// Vectors/make_vectors.py): our decoder yields the oracle's value, our encoder its bytes,
// and the typed structures round-trip the same bytes.
import Foundation
import PER
import H323
import Testing

@Suite struct GoldenVectorTests {
    @Test func vectorsAreLoaded() {
        #expect(Vector.all.count >= 80)
        let names = Set(Vector.all.map(\.name))
        for required in ["grq", "gcf", "grj", "rrq", "rrq-keepalive", "rcf", "rrj", "urq", "ucf", "urj", "arq", "acf",
                         "arj", "brq", "bcf", "brj", "drq", "dcf", "drj", "irq", "irr", "iack", "inak", "rip",
                         "setup-faststart", "callproceeding", "alerting", "connect", "releasecomplete", "facility",
                         "progress", "information", "notify", "status", "msd", "tcs", "olc", "clc", "endsession"] {
            #expect(names.contains(required), "missing vector \(required)")
        }
    }

    @Test(arguments: Vector.all.map(\.name))
    func decodeEqualsOracleValue(_ name: String) throws {
        let vector = try #require(Vector.named(name))
        let type = try #require(vector.perType)
        let expected = try OracleJSON.value(vector.json, type)
        let decoded = try H323Schema.codec.decode(type, from: vector.bytes)
        #expect(decoded == expected)
    }

    /// asn1tools 0.169.0 encodes an open type whose value is NULL (an extension addition or
    /// extension alternative of type NULL) with length 0. X.691 10.1.3 and 10.2.1 make it a
    /// complete encoding, one 0x00 octet: length 1, contents 00. Our encoder follows X.691
    /// (as OpenH323 and Wireshark do); our decoder accepts both forms (decode test above).
    static let x691Corrections: [String: String] = [
        "urq": "1b4000030100c0a8010a06b80240040061006c006900630065018043340a00450050003000300030003114880007040047004b003103800100",
        "facility-tunnel": "2810010010c00180080106010032403039",
        "sample-facility-tunnel": "2810010010c001803e02350270010600088175000f801380003c000100000100000100000cc0010001000180000020c01380000120401300800000010000000106010032403039",
    ]

    static func expectedBytes(_ vector: Vector) throws -> [UInt8] {
        if let corrected = x691Corrections[vector.name] { return try OracleJSON.bytes(hex: corrected) }
        return vector.bytes
    }

    @Test(arguments: Vector.all.map(\.name))
    func encodeIsByteIdentical(_ name: String) throws {
        let vector = try #require(Vector.named(name))
        let type = try #require(vector.perType)
        let value = try OracleJSON.value(vector.json, type)
        let encoded = try H323Schema.codec.encode(value, as: type)
        #expect(OracleJSON.hex(encoded) == OracleJSON.hex(try Self.expectedBytes(vector)))
    }

    @Test func correctedEncodingsDecodeToTheOracleValue() throws {
        for (name, hex) in Self.x691Corrections {
            let vector = try #require(Vector.named(name))
            let type = try #require(vector.perType)
            let decoded = try H323Schema.codec.decode(type, from: try OracleJSON.bytes(hex: hex))
            #expect(decoded == (try OracleJSON.value(vector.json, type)), "\(name)")
        }
    }

    @Test(arguments: Vector.all.map(\.name))
    func typedRoundTrip(_ name: String) throws {
        let vector = try #require(Vector.named(name))
        switch vector.type {
        case "RasMessage":
            let message = try RasMessage(decoding: vector.bytes)
            #expect(try message.encoded() == (try Self.expectedBytes(vector)))
        case "H323-UserInformation":
            let message = try H323UserInformation(decoding: vector.bytes)
            #expect(try message.encoded() == (try Self.expectedBytes(vector)))
        case "MultimediaSystemControlMessage":
            let message = try MultimediaSystemControlMessage(decoding: vector.bytes)
            #expect(try message.encoded() == (try Self.expectedBytes(vector)))
        case "OpenLogicalChannel":
            let message = try OpenLogicalChannel(decoding: vector.bytes)
            #expect(try message.encoded() == (try Self.expectedBytes(vector)))
        default:
            Issue.record("unexpected type \(vector.type)")
        }
    }
}
