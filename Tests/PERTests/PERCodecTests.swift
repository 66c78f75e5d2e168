// The generic aligned-PER codec on small hand-written schemas: each encoding rule against
// the bytes X.691 prescribes, fragmentation, extensions, and hostile input.
import PER
import Testing

let emptySchema = PERSchema(names: [], types: [])
let codec = PERCodec(schema: emptySchema)

func enc(_ v: PERValue, _ t: PERType) throws -> [UInt8] { try codec.encode(v, as: t) }
func dec(_ t: PERType, _ b: [UInt8], limits: PERLimits = .default) throws -> PERValue {
    try PERCodec(schema: emptySchema, limits: limits).decode(t, from: b)
}

@Suite struct IntegerTests {
    @Test func constrainedWholeNumbers() throws {
        // X.691 11.5.7: range <= 255 -> minimal bit field; 256 -> one aligned octet;
        // <= 64K -> two aligned octets; larger -> length in bits, then aligned octets.
        #expect(try enc(.integer(5), .integer(PERIntegerRange(0, 7))) == [0xA0])
        #expect(try enc(.integer(3), .integer(PERIntegerRange(3, 3))) == [0x00])     // empty -> one 0 octet
        #expect(try enc(.integer(0x12), .integer(PERIntegerRange(0, 255))) == [0x12])
        #expect(try enc(.integer(0x1234), .integer(PERIntegerRange(0, 65535))) == [0x12, 0x34])
        #expect(try enc(.integer(1_700_000_000), .integer(PERIntegerRange(1, 4_294_967_295))) == [0xC0, 0x65, 0x53, 0xF0, 0xFF])
        #expect(try enc(.integer(1), .integer(PERIntegerRange(1, 4_294_967_295))) == [0x00, 0x00])
        for (v, r) in [(5, PERIntegerRange(0, 7)), (0x1234, PERIntegerRange(0, 65535)), (300, PERIntegerRange(1, 4_294_967_295)),
                       (4_294_967_295, PERIntegerRange(0, 4_294_967_295)), (-5, PERIntegerRange(-10, 10))] {
            #expect(try dec(.integer(r), try enc(.integer(v), .integer(r))) == .integer(v))
        }
    }

    @Test func unconstrainedAndSemiConstrained() throws {
        #expect(try enc(.integer(-1), .integer(.unconstrained)) == [0x01, 0xFF])
        #expect(try enc(.integer(128), .integer(.unconstrained)) == [0x02, 0x00, 0x80])
        #expect(try enc(.integer(0), .integer(.unconstrained)) == [0x01, 0x00])
        #expect(try enc(.integer(Int.min), .integer(.unconstrained)) == [0x08, 0x80, 0, 0, 0, 0, 0, 0, 0])
        #expect(try enc(.integer(128), .integer(PERIntegerRange(0, nil))) == [0x01, 0x80])
        // X.691 11.7: the offset from the lower bound (asn1tools writes the value itself).
        #expect(try enc(.integer(5), .integer(PERIntegerRange(1, nil))) == [0x01, 0x04])
        #expect(try dec(.integer(PERIntegerRange(1, nil)), [0x01, 0x04]) == .integer(5))
        for v in [0, 1, -1, 127, 128, -128, -129, 65535, Int.max, Int.min] {
            #expect(try dec(.integer(.unconstrained), try enc(.integer(v), .integer(.unconstrained))) == .integer(v))
        }
    }

    @Test func extensibleRange() throws {
        let t = PERType.integer(PERIntegerRange(0, 16383, extensible: true))
        #expect(try enc(.integer(5), t) == [0x00, 0x00, 0x05])   // ext bit, then two aligned octets
        // Outside the root: extension bit, then an unconstrained number.
        #expect(try enc(.integer(20000), t) == [0x80, 0x02, 0x4E, 0x20])
        #expect(try dec(t, [0x80, 0x02, 0x4E, 0x20]) == .integer(20000))
    }

    @Test func outOfRangeIsAnError() throws {
        #expect(throws: PERError.valueOutOfRange("8 not in 0..7")) { try enc(.integer(8), .integer(PERIntegerRange(0, 7))) }
        // 0..9 in 4 bits: 15 decodes out of range.
        #expect(throws: PERError.valueOutOfRange("15 above the range 0..9")) { try dec(.integer(PERIntegerRange(0, 9)), [0xF0]) }
        #expect(throws: PERError.valueOutOfRange("INTEGER of 9 octets")) { try dec(.integer(.unconstrained), [0x09] + [UInt8](repeating: 0, count: 9)) }
    }
}

@Suite struct StringTests {
    static let digits = PERType.characterString(PERCharacterStringType(.ia5, size: PERSize(1, 128), from: "0123456789#*,"))

    @Test func permittedAlphabetIsIndexed() throws {
        // Length 4 in 7 bits (1..128), aligned; 13 characters -> 4 bits each, indices in code
        // order # * , 0..9: "1001" = 4 3 3 4.
        #expect(try enc(.string("1001"), Self.digits) == [0x06, 0x43, 0x34])
        #expect(try dec(Self.digits, [0x06, 0x43, 0x34]) == .string("1001"))
        #expect(throws: PERError.invalidCharacter("U+61")) { try enc(.string("12a"), Self.digits) }
        // Index 13..15 does not name a character.
        #expect(throws: PERError.invalidCharacter("index 15")) { try dec(Self.digits, [0x00, 0xF0]) }
    }

    @Test func bmpAndIA5() throws {
        let bmp = PERType.characterString(PERCharacterStringType(.bmp, size: PERSize(1, 256)))
        #expect(try enc(.string("ab"), bmp) == [0x01, 0x00, 0x61, 0x00, 0x62])
        #expect(try dec(bmp, [0x01, 0x00, 0x61, 0x00, 0x62]) == .string("ab"))
        #expect(try dec(bmp, try enc(.string("Grüße 😀"), bmp)) == .string("Grüße 😀"))
        let ia5 = PERType.characterString(PERCharacterStringType(.ia5))
        #expect(try enc(.string("hi"), ia5) == [0x02, 0x68, 0x69])
        #expect(throws: PERError.invalidCharacter("U+e9")) { try enc(.string("é"), ia5) }
        #expect(throws: PERError.invalidCharacter("U+80")) { try dec(ia5, [0x01, 0x80]) }
        let numeric = PERType.characterString(PERCharacterStringType(.numeric, size: PERSize(1, 4)))
        #expect(try dec(numeric, try enc(.string("1 23"), numeric)) == .string("1 23"))
        #expect(throws: PERError.invalidCharacter("U+41")) { try enc(.string("A"), numeric) }
        let printable = PERType.characterString(PERCharacterStringType(.printable, size: PERSize(1, 10)))
        #expect(throws: PERError.invalidCharacter("U+40")) { try enc(.string("a@b"), printable) }
    }

    @Test func sizeConstraints() throws {
        let ip = PERType.octetString(.fixed(4))
        #expect(try enc(.octetString([192, 168, 1, 10]), ip) == [192, 168, 1, 10])
        #expect(throws: PERError.sizeOutOfRange("3 not in 4..4")) { try enc(.octetString([1, 2, 3]), ip) }
        #expect(throws: PERError.sizeOutOfRange("0 not in 1..128")) { try enc(.string(""), Self.digits) }
        let bits = PERType.bitString(.fixed(32))
        let value = PERValue.bitString(PERBitString(bytes: [1, 2, 3, 4], count: 32))
        #expect(try dec(bits, try enc(value, bits)) == value)
    }
}

@Suite struct FragmentationTests {
    @Test func octetStringOf70000OctetsIsFragmented() throws {
        let payload = (0..<70000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let encoded = try enc(.octetString(payload), .octetString(.unconstrained))
        // 64K fragment (C4), then the remaining 4464 octets with a two-octet length.
        #expect(encoded[0] == 0xC4)
        #expect(Array(encoded[(1 + 65536)..<(1 + 65536 + 2)]) == [0x80 | 0x11, 0x70])
        #expect(encoded.count == 1 + 65536 + 2 + 4464)
        let limits = PERLimits(maxOctets: 100_000)
        #expect(try dec(.octetString(.unconstrained), encoded, limits: limits) == .octetString(payload))
        // Exactly 32K: C2 fragment and a final zero length.
        let exact = try enc(.octetString([UInt8](repeating: 1, count: 32768)), .openType)
        #expect(exact[0] == 0xC2 && exact.last == 0x00 && exact.count == 1 + 32768 + 1)
        #expect(try dec(.openType, exact, limits: limits) == .openType([UInt8](repeating: 1, count: 32768)))
    }

    @Test func sequenceOfWithMoreThan16KElements() throws {
        let t = PERType.sequenceOf(PERSequenceOfType(.boolean))
        let elements = (0..<20000).map { PERValue.boolean($0 % 3 == 0) }
        let encoded = try enc(.sequenceOf(elements), t)
        #expect(encoded[0] == 0xC1)
        let limits = PERLimits(maxElements: 20000, maxTotalElements: 20000)
        #expect(try dec(t, encoded, limits: limits) == .sequenceOf(elements))
        #expect(throws: PERError.limitExceeded("SEQUENCE OF with more than 1024 elements")) { try dec(t, encoded) }
    }

    @Test func bmpStringFragmented() throws {
        let t = PERType.characterString(PERCharacterStringType(.bmp))
        let text = String(repeating: "ab", count: 9000)
        #expect(try dec(t, try enc(.string(text), t)) == .string(text))
    }
}

@Suite struct ConstructedTests {
    // SEQUENCE { a INTEGER (0..7), b BOOLEAN OPTIONAL, ..., c INTEGER (0..255) OPTIONAL, d NULL OPTIONAL }
    static let v1 = PERSequenceType("S", root: [PERMember("a", .integer(PERIntegerRange(0, 7))),
                                                 PERMember("b", .boolean, optional: true)],
                                    additions: [PERMember("c", .integer(PERIntegerRange(0, 255)), optional: true),
                                                PERMember("d", .null, optional: true)])
    // The same type as an older peer knows it: no additions yet.
    static let v0 = PERSequenceType("S", root: v1.root, additions: [])

    @Test func sequenceWithAdditions() throws {
        let value = PERValue.sequence(PERSequenceValue(members: [.integer(5), .boolean(true), .integer(0x42), .null]))
        let bytes = try enc(value, .sequence(Self.v1))
        // ext=1, b present, a=101, b=1; bitmap length 2 -> 0000001, bitmap 11, pad;
        // open types: 01 42, 01 00 (NULL is one 0 octet, X.691 10.1.3).
        #expect(bytes == [0b1_1_101_1_00, 0b00001_11_0, 0x01, 0x42, 0x01, 0x00])
        #expect(try dec(.sequence(Self.v1), bytes) == value)
        // The older decoder skips both additions and keeps them for re-encoding.
        let old = try dec(.sequence(Self.v0), bytes)
        guard case .sequence(let s) = old else { throw PERError.invalid("not a sequence") }
        #expect(s.members == [.integer(5), .boolean(true)])
        #expect(s.unknownAdditions == [PERUnknownAddition(position: 0, encoding: [0x42]), PERUnknownAddition(position: 1, encoding: [0x00])])
        #expect(try enc(old, .sequence(Self.v0)) == bytes)
        // A zero-length open type (as asn1tools writes NULL) is accepted too.
        let short: [UInt8] = [0b1_0_101_000, 0b0001_01_00, 0x00]
        #expect(try dec(.sequence(Self.v1), short) == .sequence(PERSequenceValue(members: [.integer(5), nil, nil, .null])))
    }

    @Test func choiceWithUnknownAlternative() throws {
        let newer = PERChoiceType("C", root: [PERMember("x", .null), PERMember("y", .boolean)],
                                  additions: [PERMember("z", .integer(PERIntegerRange(0, 255)))])
        let older = PERChoiceType("C", root: newer.root, additions: [])
        let bytes = try enc(.choice(2, .integer(7)), .choice(newer))
        #expect(bytes == [0x80, 0x01, 0x07])
        #expect(try dec(.choice(older), bytes) == .choice(2, .openType([0x07])))
        #expect(try enc(.choice(2, .openType([0x07])), .choice(older)) == bytes)
        #expect(try dec(.choice(newer), [0x40]) == .choice(1, .boolean(false)))
    }

    @Test func enumeratedWithExtension() throws {
        let e = PEREnumeratedType(root: ["a", "b", "c"], additions: ["d"])
        #expect(try enc(.enumerated(1), .enumerated(e)) == [0x20])
        #expect(try enc(.enumerated(3), .enumerated(e)) == [0x80])
        #expect(try dec(.enumerated(e), [0x81]) == .enumerated(4))   // unknown later value kept
        #expect(throws: PERError.valueOutOfRange("3 above the range 0..2")) {
            try dec(.enumerated(PEREnumeratedType(root: ["a", "b", "c"])), [0xC0])
        }
    }

    @Test func objectIdentifier() throws {
        let oid = try #require(PERObjectIdentifier("0.0.8.2250.0.7"))
        #expect(try enc(.objectIdentifier(oid), .objectIdentifier) == [0x06, 0x00, 0x08, 0x91, 0x4A, 0x00, 0x07])
        #expect(try dec(.objectIdentifier, [0x06, 0x00, 0x08, 0x91, 0x4A, 0x00, 0x07]) == .objectIdentifier(oid))
        #expect(throws: PERError.invalid("object identifier ends inside an arc")) { try dec(.objectIdentifier, [0x01, 0x81]) }
        #expect(PERObjectIdentifier("1.x") == nil)
    }
}

@Suite struct HostileInputTests {
    static let list = PERType.sequenceOf(PERSequenceOfType(.null))

    @Test func lengthClaimingTwoToTheThirtyElements() throws {
        // 2^30 NULLs cost zero bits each: only the limits stop the claim, before any allocation.
        // A fragmented length (C4 = 64K) keeps claiming; the first fragment already exceeds.
        #expect(throws: PERError.limitExceeded("SEQUENCE OF with more than 1024 elements")) { try dec(Self.list, [0xC4]) }
        #expect(throws: PERError.limitExceeded("SEQUENCE OF with more than 1024 elements")) {
            try dec(Self.list, [0xBF, 0xFF])
        }
        // With a generous per-list limit the message-wide budget still holds.
        let limits = PERLimits(maxElements: 1 << 30, maxTotalElements: 100_000)
        var claim: [UInt8] = []
        for _ in 0..<16384 { claim.append(0xC4) }
        #expect(throws: PERError.limitExceeded("more than 100000 elements in one message")) { try dec(Self.list, claim, limits: limits) }
    }

    @Test func truncatedAndOverlong() throws {
        #expect(throws: PERError.truncated(bit: 8)) { try dec(.octetString(.unconstrained), [0x05, 1, 2]) }
        #expect(throws: PERError.limitExceeded("more than 1000 octets")) {
            try dec(.openType, [0xC4] + [UInt8](repeating: 0, count: 10), limits: PERLimits(maxOctets: 1000))
        }
        #expect(throws: PERError.invalid("length fragment multiplier 5")) { try dec(.openType, [0xC5]) }
        #expect(throws: PERError.truncated(bit: 0)) { try dec(.boolean, []) }
        let seq = PERType.sequence(ConstructedTests.v1)
        #expect(throws: PERError.truncated(bit: 7)) { try dec(seq, [0b1_1_101_1_00]) }
    }

    @Test func depthLimit() throws {
        // T ::= SEQUENCE { next T OPTIONAL }: each level costs one bit.
        let schema = PERSchema(names: ["T"], types: [.sequence(PERSequenceType("T", root: [PERMember("next", .reference(0), optional: true)]))])
        let deep = [UInt8](repeating: 0xFF, count: 100)
        #expect(throws: PERError.limitExceeded("nesting deeper than 64")) { try PERCodec(schema: schema).decode(.reference(0), from: deep) }
    }
}
