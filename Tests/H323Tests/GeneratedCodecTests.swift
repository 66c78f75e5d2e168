// The typed structures encode and decode themselves (code generated from the schema by
// scripts/h323/gen_h323.py, calling the PER primitives directly). The generic codec walking the
// PERValue tree is the reference: on every input, valid or hostile, both paths must agree on
// the value, the bytes, and the error.
import Foundation
import PER
import H323
import Testing

@Suite struct GeneratedCodecTests {
    /// Decodes `bytes` both ways: the same typed value, or the same error.
    static func agree<M: H323Message & Equatable>(_ type: M.Type, _ bytes: [UInt8], limits: PERLimits = .default) -> (agreed: Bool, accepted: Bool) {
        let direct = Result { () throws(PERError) in try M(decoding: bytes, limits: limits) }
        let generic = Result { () throws(PERError) in try M(decodingGeneric: bytes, limits: limits) }
        switch (direct, generic) {
        case (.success(let a), .success(let b)):
            guard a == b else {
                Issue.record("\(M.self) \(OracleJSON.hex(bytes)): the two decoders give different values")
                return (false, true)
            }
            let encodedDirect = Result { () throws(PERError) in try a.encoded() }
            let encodedGeneric = Result { () throws(PERError) in try a.encodedGeneric() }
            guard encodedDirect == encodedGeneric else {
                Issue.record("\(M.self) \(OracleJSON.hex(bytes)): the two encoders differ: \(encodedDirect) vs \(encodedGeneric)")
                return (false, true)
            }
            return (true, true)
        case (.failure(let a), .failure(let b)):
            guard a == b else {
                Issue.record("\(M.self) \(OracleJSON.hex(bytes)): different errors: \(a) vs \(b)")
                return (false, false)
            }
            return (true, false)
        default:
            Issue.record("\(M.self) \(OracleJSON.hex(bytes)): one decoder accepts, the other not: \(direct) vs \(generic)")
            return (false, false)
        }
    }

    static func agree(typeName: String, _ bytes: [UInt8], limits: PERLimits = .default) -> (agreed: Bool, accepted: Bool) {
        switch typeName {
        case "RasMessage": return agree(RasMessage.self, bytes, limits: limits)
        case "H323-UserInformation": return agree(H323UserInformation.self, bytes, limits: limits)
        case "MultimediaSystemControlMessage": return agree(MultimediaSystemControlMessage.self, bytes, limits: limits)
        case "OpenLogicalChannel": return agree(OpenLogicalChannel.self, bytes, limits: limits)
        default:
            Issue.record("unexpected type \(typeName)")
            return (false, false)
        }
    }

    @Test func goldenVectorsDecodeAndEncodeTheSameBothWays() throws {
        #expect(Vector.all.count >= 85)
        for vector in Vector.all {
            #expect(Self.agree(typeName: vector.type, vector.bytes) == (true, true), "\(vector.name)")
        }
    }

    @Test func randomValuesGiveTheSameBytesAndValuesBothWays() throws {
        var generator = RandomValues(random: SeededRandom(state: 0x6E4E_2026))
        var checked = 0
        for (module, name) in RandomRoundTripTests.types {
            let type = try #require(H323Schema.type("\(module).\(name)"))
            for _ in 0..<400 {
                let value = generator.value(type)
                let bytes = try H323Schema.codec.encode(value, as: type)
                // The typed value built from the tree encodes to the generic bytes directly.
                let direct: [UInt8]
                switch name {
                case "RasMessage": direct = try RasMessage(perValue: value).encoded()
                case "H323-UserInformation": direct = try H323UserInformation(perValue: value).encoded()
                default: direct = try MultimediaSystemControlMessage(perValue: value).encoded()
                }
                #expect(direct == bytes)
                #expect(Self.agree(typeName: name, bytes) == (true, true))
                checked += 1
            }
        }
        #expect(checked == 1200)
    }

    /// Hostile input: truncations, flipped bits and overwritten octets of valid encodings,
    /// with default and with tight limits. Neither path traps; both say the same.
    @Test func mutatedEncodingsGiveTheSameResultBothWays() throws {
        var random = SeededRandom(state: 0xBAD_C0DE)
        let tight = PERLimits(maxElements: 4, maxTotalElements: 64, maxOctets: 16, maxDepth: 6)
        var inputs = 0
        var accepted = 0
        var refused = 0
        var disagreements = 0
        for vector in Vector.all {
            let original = vector.bytes
            var variants: [[UInt8]] = [[]]
            for cut in stride(from: 1, to: original.count, by: max(1, original.count / 8)) { variants.append(Array(original.prefix(cut))) }
            for _ in 0..<40 {
                var bytes = original
                for _ in 0..<(1 + random.below(3)) {
                    let i = random.below(bytes.count)
                    if random.chance(50) {
                        bytes[i] ^= UInt8(1) << UInt8(random.below(8))
                    } else {
                        bytes[i] = UInt8(truncatingIfNeeded: random.next())
                    }
                }
                variants.append(bytes)
            }
            for bytes in variants {
                for limits in [PERLimits.default, tight] {
                    inputs += 1
                    let result = Self.agree(typeName: vector.type, bytes, limits: limits)
                    if !result.agreed { disagreements += 1 }
                    if result.accepted { accepted += 1 } else { refused += 1 }
                }
            }
        }
        #expect(disagreements == 0)
        #expect(inputs > 7000)
        // Both outcomes are exercised.
        #expect(accepted > 500)
        #expect(refused > 500)
    }

    /// A length that claims 2^30 elements, through the typed API: a clear error, no allocation.
    @Test func hugeClaimsAreRefusedByTheTypedDecoder() throws {
        // RRQ (alternative 6) whose callSignalAddress claims 2^30 - 1 entries via 4 fragments.
        let sample = try OracleJSON.bytes(hex: H323Benchmark.oracleRRQ)
        #expect(try RasMessage(decoding: sample).encoded() == sample)
        // 0e c0 00 01 | OID 06 00 08 91 4a 00 07 | discoveryComplete 80 | callSignalAddress count 01 ...:
        // the count becomes a first fragment of 4 x 16K elements.
        #expect(sample[12] == 0x01)
        let bytes = Array(sample.prefix(12)) + [0xC4] + [UInt8](repeating: 0, count: 64)
        #expect(throws: PERError.limitExceeded("SEQUENCE OF with more than 1024 elements")) { try RasMessage(decoding: bytes) }
        #expect(Self.agree(RasMessage.self, bytes).agreed)
    }
}
