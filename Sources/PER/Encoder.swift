// The aligned-PER encoder: one primitive per X.691 construct, called by the generic PERValue
// driver (`encodeValue`) and by generated typed code alike.

public struct PEREncoder {
    @usableFromInline var writer = PERBitWriter()
    @usableFromInline let schema: PERSchema

    public init(schema: PERSchema) { self.schema = schema }

    /// The complete encoding (X.691 10.1): padded to whole octets, never empty.
    public func finish() -> [UInt8] {
        writer.bitCount == 0 ? [0] : writer.bytes
    }

    // MARK: Primitives

    @inlinable
    public mutating func encodeBoolean(_ value: Bool) {
        writer.writeBit(value)
    }

    public mutating func encodeInteger(_ v: Int, _ lower: Int?, _ upper: Int?, extensible: Bool = false) throws(PERError) {
        if extensible {
            let inRoot = (lower.map { v >= $0 } ?? true) && (upper.map { v <= $0 } ?? true)
            writer.writeBit(!inRoot)
            if !inRoot {
                writeUnconstrainedInteger(v)
                return
            }
        }
        switch (lower, upper) {
        case let (lower?, upper?):
            guard v >= lower, v <= upper else { throw .valueOutOfRange("\(v) not in \(lower)..\(upper)") }
            try writeConstrained(v, lower, upper)
        case let (lower?, nil):
            guard v >= lower else { throw .valueOutOfRange("\(v) below \(lower)") }
            let offset = UInt64(v.subtractingReportingOverflow(lower).partialValue)
            let n = octetLength(offset)
            writer.align()
            writer.write(UInt64(n), bits: 8)
            writer.write(offset, bits: n * 8)
        default:
            writeUnconstrainedInteger(v)
        }
    }

    /// `index`: root values first, then the additions; beyond them an unknown extension value.
    public mutating func encodeEnumerated(_ index: Int, rootCount: Int, extensible: Bool) throws(PERError) {
        guard index >= 0 else { throw .typeMismatch("ENUMERATED expected") }
        if extensible {
            if index < rootCount {
                writer.writeBit(false)
                try writeConstrained(index, 0, rootCount - 1)
            } else {
                writer.writeBit(true)
                writeNormallySmall(UInt64(index - rootCount))
            }
        } else {
            guard index < rootCount else { throw .valueOutOfRange("enumeration index \(index)") }
            try writeConstrained(index, 0, rootCount - 1)
        }
    }

    public mutating func encodeBitString(_ bits: PERBitString, _ size: PERSize) throws(PERError) {
        guard bits.count >= 0, bits.bytes.count * 8 >= bits.count else { throw .typeMismatch("BIT STRING bytes too short") }
        if try writeSize(bits.count, size) {
            writeFragmented(bits.count, unit: .bits(bits.bytes))
            return
        }
        if size.upper != size.lower || bits.count > 16 { writer.align() }
        writer.writeBits(from: bits.bytes, count: bits.count)
    }

    public mutating func encodeOctetString(_ octets: [UInt8], _ size: PERSize) throws(PERError) {
        if try writeSize(octets.count, size) {
            writeFragmented(octets.count, unit: .octets(octets))
            return
        }
        if size.upper != size.lower || octets.count > 2 { writer.align() }
        writer.writeOctets(octets)
    }

    public mutating func encodeObjectIdentifier(_ oid: PERObjectIdentifier) throws(PERError) {
        let arcs = oid.arcs
        guard arcs.count >= 2, arcs[0] <= 2, arcs[0] == 2 || arcs[1] < 40 else {
            throw .valueOutOfRange("object identifier \(oid)")
        }
        let (first, overflow) = (arcs[0] * 40).addingReportingOverflow(arcs[1])
        guard !overflow else { throw .valueOutOfRange("object identifier \(oid)") }
        var length = Self.berArcLength(first)
        for arc in arcs.dropFirst(2) { length += Self.berArcLength(arc) }
        guard length < 16384 else {
            let contents = try berContents(oid)
            writeFragmented(contents.count, unit: .octets(contents))
            return
        }
        _ = writeLengthFragmentHeader(length)
        writeBERArc(first)
        for arc in arcs.dropFirst(2) { writeBERArc(arc) }
    }

    static func berArcLength(_ arc: UInt64) -> Int { max(1, (bitLength(arc) + 6) / 7) }

    /// Base-128 groups, most significant first, all but the last with the top bit set.
    mutating func writeBERArc(_ arc: UInt64) {
        var shift = Self.berArcLength(arc) * 7
        while shift > 7 {
            shift -= 7
            writer.write(((arc >> UInt64(shift)) & 0x7F) | 0x80, bits: 8)
        }
        writer.write(arc & 0x7F, bits: 8)
    }

    public mutating func encodeGeneralString(_ s: String) throws(PERError) {
        var octets = [UInt8]()
        for scalar in s.unicodeScalars {
            guard scalar.value <= 0xFF else { throw .invalidCharacter("U+\(String(scalar.value, radix: 16)) in GeneralString") }
            octets.append(UInt8(scalar.value))
        }
        writeFragmented(octets.count, unit: .octets(octets))
    }

    /// An open type (or any length-prefixed complete encoding) given as its octets.
    public mutating func encodeOpenType(_ octets: [UInt8]) {
        writeFragmented(octets.count, unit: .octets(octets))
    }

    public mutating func encodeString(_ s: String, _ t: PERCharacterStringType) throws(PERError) {
        var ascii = true
        for byte in s.utf8 where byte >= 0x80 {
            ascii = false
            break
        }
        guard ascii else { return try encodeWideString(s, t) }
        // ASCII: a character is one UTF-8 octet (and one UTF-16 unit); the table gives what to write.
        for byte in s.utf8 where t.ascii[Int(byte)] < 0 {
            throw .invalidCharacter("U+\(String(byte, radix: 16))")
        }
        let count = s.utf8.count
        let b = t.bitsPerCharacter
        if try writeSize(count, t.size) {
            var offset = 0
            var characters = s.utf8.makeIterator()
            while true {
                let chunk = writeLengthFragmentHeader(count - offset)
                for _ in 0..<chunk.count {
                    guard let byte = characters.next() else { break }
                    writer.write(UInt64(t.ascii[Int(byte)]), bits: b)
                }
                offset += chunk.count
                if !chunk.more { break }
            }
            return
        }
        alignCharacters(count, t)
        for byte in s.utf8 { writer.write(UInt64(t.ascii[Int(byte)]), bits: b) }
    }

    /// X.691 30.5.7: octet-aligned unless the whole string fits in 16 bits.
    mutating func alignCharacters(_ count: Int, _ t: PERCharacterStringType) {
        if let upper = t.size.upper, upper == t.size.lower {
            if upper * t.bitsPerCharacter > 16 { writer.align() }
        } else if (t.size.upper ?? 0) > 1 && count > 0 {
            writer.align()
        }
    }

    mutating func encodeWideString(_ s: String, _ t: PERCharacterStringType) throws(PERError) {
        var codes = [UInt32]()
        if t.kind == .bmp {
            codes.reserveCapacity(s.utf16.count)
            for unit in s.utf16 { codes.append(UInt32(unit)) }
        } else {
            for scalar in s.unicodeScalars { codes.append(scalar.value) }
        }
        for code in codes where !t.allows(code) {
            throw .invalidCharacter("U+\(String(code, radix: 16))")
        }
        let b = t.bitsPerCharacter
        if try writeSize(codes.count, t.size) {
            var offset = 0
            while true {
                let chunk = writeLengthFragmentHeader(codes.count - offset)
                try writeCharacters(codes[offset..<(offset + chunk.count)], t, b)
                offset += chunk.count
                if !chunk.more { break }
            }
            return
        }
        alignCharacters(codes.count, t)
        try writeCharacters(codes[...], t, b)
    }

    // MARK: Constructed types

    /// Writes a SEQUENCE's extension bit (when it has a marker) and says whether the
    /// additions follow. `knownAdditions`: presence of the known additions, bit i = addition i.
    public mutating func beginSequence(extensible: Bool, knownAdditions: UInt64, unknownAdditions: [PERUnknownAddition]) -> Bool {
        guard extensible else { return false }
        let present = knownAdditions != 0 || unknownAdditions.contains { $0.encoding != nil }
        writer.writeBit(present)
        return present
    }

    /// A presence bit of an OPTIONAL root component.
    @inlinable
    public mutating func encodePresence(_ present: Bool) {
        writer.writeBit(present)
    }

    /// The additions' presence bitmap (X.691 19.7), of the `known` additions and of unknown ones.
    public mutating func encodeAdditionBitmap(known: Int, present: UInt64, unknownAdditions: [PERUnknownAddition]) throws(PERError) {
        var count = known
        for unknown in unknownAdditions {
            guard unknown.position >= known, unknown.position < 4096 else {
                throw .typeMismatch("unknown addition at a known position \(unknown.position)")
            }
            count = max(count, unknown.position + 1)
        }
        // Normally small length of the presence bitmap.
        if count <= 64 {
            writer.write(UInt64(count - 1), bits: 7)
        } else {
            writer.writeBit(true)
            _ = writeLengthFragmentHeader(count)
        }
        for position in 0..<known { writer.writeBit(present & (1 << UInt64(position)) != 0) }
        guard count > known else { return }
        // The last entry for a position wins, as the typed value lists them.
        var unknownPresent = [Bool](repeating: false, count: count - known)
        for unknown in unknownAdditions { unknownPresent[unknown.position - known] = unknown.encoding != nil }
        for present in unknownPresent { writer.writeBit(present) }
    }

    /// The open types of the unknown additions, after the known ones (their positions are higher).
    public mutating func encodeUnknownAdditions(_ unknownAdditions: [PERUnknownAddition]) {
        guard !unknownAdditions.isEmpty else { return }
        var latest = [Int: [UInt8]?]()
        for unknown in unknownAdditions { latest[unknown.position] = unknown.encoding }
        for position in latest.keys.sorted() {
            if let entry = latest[position], let encoding = entry { encodeOpenType(encoding) }
        }
    }

    /// Starts an open type whose contents are encoded next, in place (an extension addition or
    /// extension alternative); `endOpenType` writes its length in front.
    public mutating func beginOpenType() -> Int {
        writer.align()
        writer.bytes.append(0)
        writer.bitCount = writer.bytes.count * 8
        return writer.bytes.count
    }

    public mutating func endOpenType(_ start: Int) {
        // A complete encoding is at least one octet (X.691 10.1.3).
        if writer.bitCount == start * 8 {
            writer.bytes.append(0)
        }
        writer.align()
        let length = writer.bytes.count - start
        if length < 128 {
            writer.bytes[start - 1] = UInt8(length)
        } else if length < 16384 {
            writer.bytes[start - 1] = UInt8(0x80 | (length >> 8))
            writer.bytes.insert(UInt8(length & 0xFF), at: start)
        } else {
            let contents = Array(writer.bytes[start...])
            writer.bytes.removeSubrange((start - 1)...)
            writer.bitCount = writer.bytes.count * 8
            writeFragmented(contents.count, unit: .octets(contents))
        }
        writer.bitCount = writer.bytes.count * 8
    }

    /// The index of a CHOICE alternative; an extension alternative's value is then written
    /// between `beginOpenType` and `endOpenType`.
    public mutating func encodeChoiceIndex(_ index: Int, rootCount: Int, extensible: Bool) throws(PERError) {
        guard index >= 0 else { throw .typeMismatch("CHOICE alternative \(index)") }
        if extensible {
            let inRoot = index < rootCount
            writer.writeBit(!inRoot)
            if !inRoot {
                writeNormallySmall(UInt64(index - rootCount))
                return
            }
        }
        guard index < rootCount else { throw .typeMismatch("CHOICE alternative \(index)") }
        if rootCount > 1 { try writeConstrained(index, 0, rootCount - 1) }
    }

    /// A CHOICE alternative this schema does not know, carried as its encoding.
    public mutating func encodeUnknownAlternative(_ index: Int, _ encoding: [UInt8], knownCount: Int, rootCount: Int, extensible: Bool) throws(PERError) {
        guard extensible, index >= knownCount else {
            throw .typeMismatch("CHOICE alternative \(index) must be a known one")
        }
        try encodeChoiceIndex(index, rootCount: rootCount, extensible: true)
        encodeOpenType(encoding)
    }

    /// SEQUENCE OF: the size, then each element (lengths of 16K and more are fragmented).
    @inlinable
    public mutating func encodeSequenceOf<Element>(_ elements: [Element], _ size: PERSize,
                                                   _ encodeElement: (inout PEREncoder, Element) throws(PERError) -> Void) throws(PERError) {
        if try writeSize(elements.count, size) {
            var offset = 0
            while true {
                let chunk = writeLengthFragmentHeader(elements.count - offset)
                for element in elements[offset..<(offset + chunk.count)] { try encodeElement(&self, element) }
                offset += chunk.count
                if !chunk.more { break }
            }
            return
        }
        for element in elements { try encodeElement(&self, element) }
    }

    // MARK: The generic driver

    /// Encodes a PERValue tree as `type` describes it.
    public mutating func encodeValue(_ value: PERValue, _ type: PERType) throws(PERError) {
        switch schema.resolve(type) {
        case .null:
            guard case .null = value else { throw .typeMismatch("NULL expected") }
        case .boolean:
            guard case .boolean(let b) = value else { throw .typeMismatch("BOOLEAN expected") }
            encodeBoolean(b)
        case .integer(let range):
            guard case .integer(let v) = value else { throw .typeMismatch("INTEGER expected") }
            try encodeInteger(v, range.lower, range.upper, extensible: range.extensible)
        case .enumerated(let e):
            guard case .enumerated(let i) = value else { throw .typeMismatch("ENUMERATED expected") }
            try encodeEnumerated(i, rootCount: e.root.count, extensible: e.additions != nil)
        case .bitString(let size):
            guard case .bitString(let bits) = value else { throw .typeMismatch("BIT STRING expected") }
            try encodeBitString(bits, size)
        case .octetString(let size):
            guard case .octetString(let octets) = value else { throw .typeMismatch("OCTET STRING expected") }
            try encodeOctetString(octets, size)
        case .objectIdentifier:
            guard case .objectIdentifier(let oid) = value else { throw .typeMismatch("OBJECT IDENTIFIER expected") }
            try encodeObjectIdentifier(oid)
        case .characterString(let t):
            guard case .string(let s) = value else { throw .typeMismatch("character string expected") }
            try encodeString(s, t)
        case .generalString:
            guard case .string(let s) = value else { throw .typeMismatch("GeneralString expected") }
            try encodeGeneralString(s)
        case .sequence(let t):
            guard case .sequence(let v) = value else { throw .typeMismatch("SEQUENCE \(t.name) expected") }
            try encodeSequenceValue(v, t)
        case .choice(let t):
            guard case .choice(let index, let inner) = value, index >= 0 else { throw .typeMismatch("CHOICE \(t.name) expected") }
            try encodeChoiceValue(index, inner, t)
        case .sequenceOf(let t):
            guard case .sequenceOf(let elements) = value else { throw .typeMismatch("SEQUENCE OF expected") }
            try encodeSequenceOf(elements, t.size) { (encoder: inout PEREncoder, element: PERValue) throws(PERError) in
                try encoder.encodeValue(element, t.element)
            }
        case .openType:
            // Typed structures hold an open type's encoding as plain octets.
            switch value {
            case .openType(let octets), .octetString(let octets): encodeOpenType(octets)
            default: throw .typeMismatch("open type expected")
            }
        case .reference:
            throw .typeMismatch("unresolvable type reference")
        }
    }

    mutating func encodeSequenceValue(_ v: PERSequenceValue, _ t: PERSequenceType) throws(PERError) {
        var known: UInt64 = 0
        let additionCount = t.additions?.count ?? 0
        guard additionCount <= 64 else { throw .typeMismatch("\(t.name): more than 64 known additions") }
        for i in 0..<additionCount where v[t.root.count + i] != nil { known |= 1 << UInt64(i) }
        let extended = beginSequence(extensible: t.additions != nil, knownAdditions: known, unknownAdditions: v.unknownAdditions)
        for (i, member) in t.root.enumerated() where member.optional {
            encodePresence(v[i] != nil)
        }
        for (i, member) in t.root.enumerated() {
            if let value = v[i] {
                try encodeValue(value, member.type)
            } else if !member.optional {
                throw .typeMismatch("\(t.name).\(member.name) is missing")
            }
        }
        guard extended, let additions = t.additions else { return }
        try encodeAdditionBitmap(known: additions.count, present: known, unknownAdditions: v.unknownAdditions)
        for (i, addition) in additions.enumerated() {
            guard let value = v[t.root.count + i] else { continue }
            let start = beginOpenType()
            try encodeValue(value, addition.type)
            endOpenType(start)
        }
        encodeUnknownAdditions(v.unknownAdditions)
    }

    mutating func encodeChoiceValue(_ index: Int, _ inner: PERValue, _ t: PERChoiceType) throws(PERError) {
        let extensible = t.additions != nil
        if let alternative = t.alternative(at: index) {
            try encodeChoiceIndex(index, rootCount: t.root.count, extensible: extensible)
            if index < t.root.count {
                try encodeValue(inner, alternative.type)
            } else {
                let start = beginOpenType()
                try encodeValue(inner, alternative.type)
                endOpenType(start)
            }
            return
        }
        guard case .openType(let encoding) = inner, extensible else {
            throw .typeMismatch("\(t.name): unknown alternative \(index) must carry its encoding")
        }
        try encodeUnknownAlternative(index, encoding, knownCount: t.alternativeCount, rootCount: t.root.count, extensible: extensible)
    }

    // MARK: Building blocks

    mutating func writeUnconstrainedInteger(_ v: Int) {
        // Minimal two's complement octets.
        var n = 1
        while n < 8 {
            let shift = n * 8 - 1
            if v >= -(1 << shift) && v < (1 << shift) { break }
            n += 1
        }
        writer.align()
        writer.write(UInt64(n), bits: 8)
        writer.write(UInt64(bitPattern: Int64(v)) & (n == 8 ? ~0 : ((1 << UInt64(n * 8)) - 1)), bits: n * 8)
    }

    /// Constrained whole number (X.691 11.5.7, ALIGNED variant).
    @usableFromInline
    mutating func writeConstrained(_ v: Int, _ lower: Int, _ upper: Int) throws(PERError) {
        guard let range = rangeSize(lower, upper), v >= lower, v <= upper else {
            throw .valueOutOfRange("\(v) not in \(lower)..\(upper)")
        }
        let offset = UInt64(v - lower)
        if range == 1 { return }
        if range <= 255 {
            writer.write(offset, bits: bitLength(range - 1))
        } else if range == 256 {
            writer.align()
            writer.write(offset, bits: 8)
        } else if range <= 65536 {
            writer.align()
            writer.write(offset, bits: 16)
        } else {
            let n = octetLength(offset)
            let maxOctets = octetLength(range - 1)
            writer.write(UInt64(n - 1), bits: bitLength(UInt64(maxOctets - 1)))
            writer.align()
            writer.write(offset, bits: n * 8)
        }
    }

    mutating func writeNormallySmall(_ v: UInt64) {
        if v < 64 {
            writer.write(v, bits: 7)
        } else {
            writer.writeBit(true)
            let n = octetLength(v)
            writer.align()
            writer.write(UInt64(n), bits: 8)
            writer.write(v, bits: n * 8)
        }
    }

    /// Writes the length part of a SIZE-constrained item. Returns true when the caller must
    /// use an unconstrained (possibly fragmented) length instead, which it then writes itself.
    @usableFromInline
    mutating func writeSize(_ count: Int, _ size: PERSize) throws(PERError) -> Bool {
        let inRoot = count >= size.lower && (size.upper.map { count <= $0 } ?? true)
        if size.extensible {
            writer.writeBit(!inRoot)
            if !inRoot { return true }
        } else if !inRoot {
            throw .sizeOutOfRange("\(count) not in \(size.lower)..\(size.upper.map(String.init) ?? "MAX")")
        }
        guard size.isConstrainedLength, let upper = size.upper else { return true }
        if upper != size.lower { try writeConstrained(count, size.lower, upper) }
        return false
    }

    /// An unconstrained length determinant for the next fragment of `remaining` items.
    @usableFromInline
    mutating func writeLengthFragmentHeader(_ remaining: Int) -> (count: Int, more: Bool) {
        writer.align()
        if remaining < 128 {
            writer.write(UInt64(remaining), bits: 8)
            return (remaining, false)
        }
        if remaining < 16384 {
            writer.write(0x8000 | UInt64(remaining), bits: 16)
            return (remaining, false)
        }
        let m = min(remaining / 16384, 4)
        writer.write(0xC0 | UInt64(m), bits: 8)
        return (m * 16384, true)
    }

    enum Unit { case octets([UInt8]), bits([UInt8]) }

    /// Unconstrained length plus contents, fragmented at 16K units (X.691 11.9.3.8).
    mutating func writeFragmented(_ total: Int, unit: Unit) {
        var offset = 0
        while true {
            let chunk = writeLengthFragmentHeader(total - offset)
            switch unit {
            case .octets(let octets):
                writer.writeOctets(octets[offset..<(offset + chunk.count)])
            case .bits(let bytes):
                // Fragments are multiples of 16K bits, hence whole octets except the last.
                if offset % 8 == 0 {
                    let slice = Array(bytes[(offset / 8)...])
                    writer.writeBits(from: slice, count: chunk.count)
                }
            }
            offset += chunk.count
            if !chunk.more { break }
        }
    }

    func berContents(_ oid: PERObjectIdentifier) throws(PERError) -> [UInt8] {
        let arcs = oid.arcs
        guard arcs.count >= 2, arcs[0] <= 2, arcs[0] == 2 || arcs[1] < 40 else {
            throw .valueOutOfRange("object identifier \(oid)")
        }
        var out = [UInt8]()
        out.reserveCapacity(arcs.count * 2)
        let (first, overflow) = (arcs[0] * 40).addingReportingOverflow(arcs[1])
        guard !overflow else { throw .valueOutOfRange("object identifier \(oid)") }
        func append(_ arc: UInt64) {
            // Base-128 groups, most significant first, all but the last with the top bit set.
            var shift = (bitLength(arc) + 6) / 7 * 7
            if shift == 0 { shift = 7 }
            while shift > 7 {
                shift -= 7
                out.append(UInt8((arc >> UInt64(shift)) & 0x7F) | 0x80)
            }
            out.append(UInt8(arc & 0x7F))
        }
        append(first)
        for arc in arcs.dropFirst(2) { append(arc) }
        return out
    }

    mutating func writeCharacters(_ codes: ArraySlice<UInt32>, _ t: PERCharacterStringType, _ b: Int) throws(PERError) {
        for code in codes {
            if let indexed = t.indexed {
                guard let i = indexed.firstIndex(of: code) else { throw .invalidCharacter("U+\(String(code, radix: 16))") }
                writer.write(UInt64(i), bits: b)
            } else {
                writer.write(UInt64(code), bits: b)
            }
        }
    }
}
