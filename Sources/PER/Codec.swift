// The one generic aligned-PER (X.691) encoder and decoder. They walk a PERType
// description and a PERValue tree; nothing here knows any particular protocol.

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
        try encoder.encode(value, type)
        return encoder.writer.bitCount == 0 ? [0] : encoder.writer.bytes
    }

    public func decode(_ type: PERType, from bytes: [UInt8]) throws(PERError) -> PERValue {
        var decoder = PERDecoder(reader: PERBitReader(bytes), schema: schema, limits: limits)
        return try decoder.decode(type, depth: 0)
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

// MARK: - Encoder

struct PEREncoder {
    var writer = PERBitWriter()
    let schema: PERSchema

    init(schema: PERSchema) { self.schema = schema }

    mutating func encode(_ value: PERValue, _ type: PERType) throws(PERError) {
        switch schema.resolve(type) {
        case .null:
            guard case .null = value else { throw .typeMismatch("NULL expected") }
        case .boolean:
            guard case .boolean(let b) = value else { throw .typeMismatch("BOOLEAN expected") }
            writer.writeBit(b)
        case .integer(let range):
            guard case .integer(let v) = value else { throw .typeMismatch("INTEGER expected") }
            try encodeInteger(v, range)
        case .enumerated(let e):
            guard case .enumerated(let i) = value, i >= 0 else { throw .typeMismatch("ENUMERATED expected") }
            if e.additions != nil {
                if i < e.root.count {
                    writer.writeBit(false)
                    try writeConstrained(i, 0, e.root.count - 1)
                } else {
                    writer.writeBit(true)
                    writeNormallySmall(UInt64(i - e.root.count))
                }
            } else {
                guard i < e.root.count else { throw .valueOutOfRange("enumeration index \(i)") }
                try writeConstrained(i, 0, e.root.count - 1)
            }
        case .bitString(let size):
            guard case .bitString(let bits) = value else { throw .typeMismatch("BIT STRING expected") }
            guard bits.count >= 0, bits.bytes.count * 8 >= bits.count else { throw .typeMismatch("BIT STRING bytes too short") }
            if try writeSize(bits.count, size) {
                writeFragmented(bits.count, unit: .bits(bits.bytes))
                return
            }
            if size.upper != size.lower || bits.count > 16 { writer.align() }
            writer.writeBits(from: bits.bytes, count: bits.count)
        case .octetString(let size):
            guard case .octetString(let octets) = value else { throw .typeMismatch("OCTET STRING expected") }
            if try writeSize(octets.count, size) {
                writeFragmented(octets.count, unit: .octets(octets))
                return
            }
            if size.upper != size.lower || octets.count > 2 { writer.align() }
            writer.writeOctets(octets)
        case .objectIdentifier:
            guard case .objectIdentifier(let oid) = value else { throw .typeMismatch("OBJECT IDENTIFIER expected") }
            let contents = try berContents(oid)
            writeFragmented(contents.count, unit: .octets(contents))
        case .characterString(let t):
            guard case .string(let s) = value else { throw .typeMismatch("character string expected") }
            try encodeString(s, t)
        case .generalString:
            guard case .string(let s) = value else { throw .typeMismatch("GeneralString expected") }
            var octets = [UInt8]()
            for scalar in s.unicodeScalars {
                guard scalar.value <= 0xFF else { throw .invalidCharacter("U+\(String(scalar.value, radix: 16)) in GeneralString") }
                octets.append(UInt8(scalar.value))
            }
            writeFragmented(octets.count, unit: .octets(octets))
        case .sequence(let t):
            guard case .sequence(let v) = value else { throw .typeMismatch("SEQUENCE \(t.name) expected") }
            try encodeSequence(v, t)
        case .choice(let t):
            guard case .choice(let index, let inner) = value, index >= 0 else { throw .typeMismatch("CHOICE \(t.name) expected") }
            try encodeChoice(index, inner, t)
        case .sequenceOf(let t):
            guard case .sequenceOf(let elements) = value else { throw .typeMismatch("SEQUENCE OF expected") }
            if try writeSize(elements.count, t.size) {
                var offset = 0
                while true {
                    let chunk = writeLengthFragmentHeader(elements.count - offset)
                    for element in elements[offset..<(offset + chunk.count)] { try encode(element, t.element) }
                    offset += chunk.count
                    if !chunk.more { break }
                }
                return
            }
            for element in elements { try encode(element, t.element) }
        case .openType:
            // Typed structures hold an open type's encoding as plain octets.
            switch value {
            case .openType(let octets), .octetString(let octets): writeFragmented(octets.count, unit: .octets(octets))
            default: throw .typeMismatch("open type expected")
            }
        case .reference:
            throw .typeMismatch("unresolvable type reference")
        }
    }

    mutating func encodeInteger(_ v: Int, _ range: PERIntegerRange) throws(PERError) {
        if range.extensible {
            let inRoot = (range.lower.map { v >= $0 } ?? true) && (range.upper.map { v <= $0 } ?? true)
            writer.writeBit(!inRoot)
            if !inRoot {
                writeUnconstrainedInteger(v)
                return
            }
        }
        switch (range.lower, range.upper) {
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
        let (first, overflow) = (arcs[0] * 40).addingReportingOverflow(arcs[1])
        guard !overflow else { throw .valueOutOfRange("object identifier \(oid)") }
        for arc in [first] + arcs.dropFirst(2) {
            var groups = [UInt8(arc & 0x7F)]
            var rest = arc >> 7
            while rest > 0 {
                groups.append(UInt8(rest & 0x7F) | 0x80)
                rest >>= 7
            }
            out.append(contentsOf: groups.reversed())
        }
        return out
    }

    mutating func encodeString(_ s: String, _ t: PERCharacterStringType) throws(PERError) {
        var codes = [UInt32]()
        if t.kind == .bmp {
            codes = s.utf16.map { UInt32($0) }
        } else {
            codes = s.unicodeScalars.map(\.value)
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
        if let upper = t.size.upper, upper == t.size.lower {
            if upper * b > 16 { writer.align() }
        } else if (t.size.upper ?? 0) > 1 && !codes.isEmpty {
            writer.align()
        }
        try writeCharacters(codes[...], t, b)
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

    mutating func encodeSequence(_ v: PERSequenceValue, _ t: PERSequenceType) throws(PERError) {
        var additionsPresent = false
        if let additions = t.additions {
            additionsPresent = v.unknownAdditions.contains { $0.encoding != nil }
            if !additionsPresent {
                for i in 0..<additions.count where v[t.root.count + i] != nil {
                    additionsPresent = true
                    break
                }
            }
            writer.writeBit(additionsPresent)
        }
        for (i, member) in t.root.enumerated() where member.optional {
            writer.writeBit(v[i] != nil)
        }
        for (i, member) in t.root.enumerated() {
            if let value = v[i] {
                try encode(value, member.type)
            } else if !member.optional {
                throw .typeMismatch("\(t.name).\(member.name) is missing")
            }
        }
        guard additionsPresent, let additions = t.additions else { return }
        var count = additions.count
        for unknown in v.unknownAdditions {
            guard unknown.position >= additions.count, unknown.position < 4096 else {
                throw .typeMismatch("\(t.name): unknown addition at a known position")
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
        var unknownByPosition = [Int: [UInt8]?]()
        if !v.unknownAdditions.isEmpty {
            for unknown in v.unknownAdditions { unknownByPosition[unknown.position] = unknown.encoding }
        }
        for position in 0..<count {
            let present = position < additions.count ? v[t.root.count + position] != nil : (unknownByPosition[position] ?? nil) != nil
            writer.writeBit(present)
        }
        for position in 0..<count {
            if position < additions.count {
                guard let value = v[t.root.count + position] else { continue }
                try writeOpenType(value, additions[position].type)
            } else if let entry = unknownByPosition[position], let encoding = entry {
                writeFragmented(encoding.count, unit: .octets(encoding))
            }
        }
    }

    mutating func encodeChoice(_ index: Int, _ inner: PERValue, _ t: PERChoiceType) throws(PERError) {
        if t.additions != nil {
            let inRoot = index < t.root.count
            writer.writeBit(!inRoot)
            if !inRoot {
                writeNormallySmall(UInt64(index - t.root.count))
                if let alternative = t.alternative(at: index) {
                    try writeOpenType(inner, alternative.type)
                } else if case .openType(let encoding) = inner {
                    writeFragmented(encoding.count, unit: .octets(encoding))
                } else {
                    throw .typeMismatch("\(t.name): unknown alternative \(index) must carry its encoding")
                }
                return
            }
        }
        guard index < t.root.count else { throw .typeMismatch("\(t.name): alternative \(index)") }
        if t.root.count > 1 { try writeConstrained(index, 0, t.root.count - 1) }
        try encode(inner, t.root[index].type)
    }

    /// An extension addition or extension alternative: its complete encoding as an open type.
    mutating func writeOpenType(_ value: PERValue, _ type: PERType) throws(PERError) {
        var inner = PEREncoder(schema: schema)
        try inner.encode(value, type)
        let contents = inner.writer.bitCount == 0 ? [0] : inner.writer.bytes
        writeFragmented(contents.count, unit: .octets(contents))
    }
}

// MARK: - Decoder

struct PERDecoder {
    var reader: PERBitReader
    let schema: PERSchema
    let limits: PERLimits
    var elements = 0

    init(reader: PERBitReader, schema: PERSchema, limits: PERLimits) {
        self.reader = reader
        self.schema = schema
        self.limits = limits
    }

    mutating func count(_ n: Int) throws(PERError) {
        let (total, overflow) = elements.addingReportingOverflow(n)
        guard !overflow, total <= limits.maxTotalElements else {
            throw .limitExceeded("more than \(limits.maxTotalElements) elements in one message")
        }
        elements = total
    }

    mutating func decode(_ type: PERType, depth: Int) throws(PERError) -> PERValue {
        guard depth <= limits.maxDepth else { throw .limitExceeded("nesting deeper than \(limits.maxDepth)") }
        switch schema.resolve(type) {
        case .null:
            return .null
        case .boolean:
            return .boolean(try reader.readBit())
        case .integer(let range):
            return .integer(try decodeInteger(range))
        case .enumerated(let e):
            if e.additions != nil, try reader.readBit() {
                let i = try readNormallySmall()
                guard i < UInt64(Int32.max) else { throw .valueOutOfRange("enumeration extension \(i)") }
                return .enumerated(e.root.count + Int(i))
            }
            return .enumerated(try readConstrained(0, e.root.count - 1))
        case .bitString(let size):
            let n = try readSize(size, unitsPerOctet: 8)
            if n.fragmented {
                var bits = [UInt8]()
                var total = 0
                var more = n.more
                var chunk = n.count
                while true {
                    let piece = try reader.readBits(chunk)
                    // Whole-octet fragments except possibly the last.
                    if total % 8 == 0 { bits += piece } else { throw .invalid("BIT STRING fragment alignment") }
                    total += chunk
                    if !more { break }
                    (chunk, more) = try readLengthFragment()
                    guard total + chunk <= limits.maxOctets * 8 else { throw .limitExceeded("BIT STRING longer than \(limits.maxOctets) octets") }
                }
                return .bitString(PERBitString(bytes: bits, count: total))
            }
            if size.upper != size.lower || n.count > 16 { reader.align() }
            return .bitString(PERBitString(bytes: try reader.readBits(n.count), count: n.count))
        case .octetString(let size):
            let n = try readSize(size, unitsPerOctet: 1)
            if n.fragmented { return .octetString(try readFragmentedOctets(n.count, n.more)) }
            if size.upper != size.lower || n.count > 2 { reader.align() }
            return .octetString(try reader.readOctets(n.count))
        case .objectIdentifier:
            let (length, more) = try readLengthFragment()
            let contents = try readFragmentedOctets(length, more)
            return .objectIdentifier(try decodeObjectIdentifier(contents))
        case .characterString(let t):
            return .string(try decodeString(t))
        case .generalString:
            let (length, more) = try readLengthFragment()
            let octets = try readFragmentedOctets(length, more)
            var scalars = String.UnicodeScalarView()
            for octet in octets { scalars.append(Unicode.Scalar(octet)) }
            return .string(String(scalars))
        case .sequence(let t):
            return .sequence(try decodeSequence(t, depth: depth))
        case .choice(let t):
            return try decodeChoice(t, depth: depth)
        case .sequenceOf(let t):
            let n = try readSize(t.size, unitsPerOctet: nil)
            var elements = [PERValue]()
            var chunk = n.count
            var more = n.more
            while true {
                guard elements.count + chunk <= limits.maxElements else {
                    throw .limitExceeded("SEQUENCE OF with more than \(limits.maxElements) elements")
                }
                try count(chunk)
                for _ in 0..<chunk { elements.append(try decode(t.element, depth: depth + 1)) }
                if !n.fragmented || !more { break }
                (chunk, more) = try readLengthFragment()
            }
            return .sequenceOf(elements)
        case .openType:
            let (length, more) = try readLengthFragment()
            return .openType(try readFragmentedOctets(length, more))
        case .reference:
            throw .invalid("unresolvable type reference")
        }
    }

    mutating func decodeInteger(_ range: PERIntegerRange) throws(PERError) -> Int {
        if range.extensible, try reader.readBit() {
            return try readUnconstrainedInteger()
        }
        switch (range.lower, range.upper) {
        case let (lower?, upper?):
            return try readConstrained(lower, upper)
        case let (lower?, nil):
            reader.align()
            let n = Int(try reader.read(bits: 8))
            guard n >= 1, n <= 8 else { throw .valueOutOfRange("semi-constrained INTEGER of \(n) octets") }
            let offset = try reader.read(bits: n * 8)
            guard offset <= UInt64(Int.max) else { throw .valueOutOfRange("INTEGER too large") }
            let (v, overflow) = lower.addingReportingOverflow(Int(offset))
            guard !overflow else { throw .valueOutOfRange("INTEGER too large") }
            return v
        default:
            return try readUnconstrainedInteger()
        }
    }

    mutating func readUnconstrainedInteger() throws(PERError) -> Int {
        reader.align()
        let n = Int(try reader.read(bits: 8))
        guard n >= 1, n <= 8 else { throw .valueOutOfRange("INTEGER of \(n) octets") }
        let raw = try reader.read(bits: n * 8)
        let shift = UInt64(64 - n * 8)
        return Int(Int64(bitPattern: raw << shift) >> Int64(shift))
    }

    mutating func readConstrained(_ lower: Int, _ upper: Int) throws(PERError) -> Int {
        guard let range = rangeSize(lower, upper) else { throw .invalid("empty range \(lower)..\(upper)") }
        var offset: UInt64 = 0
        if range == 1 {
            offset = 0
        } else if range <= 255 {
            offset = try reader.read(bits: bitLength(range - 1))
        } else if range == 256 {
            reader.align()
            offset = try reader.read(bits: 8)
        } else if range <= 65536 {
            reader.align()
            offset = try reader.read(bits: 16)
        } else {
            let maxOctets = octetLength(range - 1)
            let n = Int(try reader.read(bits: bitLength(UInt64(maxOctets - 1)))) + 1
            guard n <= maxOctets else { throw .valueOutOfRange("INTEGER of \(n) octets") }
            reader.align()
            offset = try reader.read(bits: n * 8)
        }
        guard offset <= range - 1 else { throw .valueOutOfRange("\(offset) above the range \(lower)..\(upper)") }
        let (v, overflow) = lower.addingReportingOverflow(Int(truncatingIfNeeded: offset))
        guard !overflow else { throw .valueOutOfRange("INTEGER too large") }
        return v
    }

    mutating func readNormallySmall() throws(PERError) -> UInt64 {
        if try !reader.readBit() { return try reader.read(bits: 6) }
        reader.align()
        let n = Int(try reader.read(bits: 8))
        guard n >= 1, n <= 8 else { throw .valueOutOfRange("normally small number of \(n) octets") }
        return try reader.read(bits: n * 8)
    }

    /// One unconstrained length determinant: the count and whether a fragment follows.
    mutating func readLengthFragment() throws(PERError) -> (Int, Bool) {
        reader.align()
        let first = try reader.read(bits: 8)
        if first & 0x80 == 0 { return (Int(first), false) }
        if first & 0xC0 == 0x80 {
            let second = try reader.read(bits: 8)
            return (Int((first & 0x3F) << 8 | second), false)
        }
        let m = Int(first & 0x3F)
        guard m >= 1, m <= 4 else { throw .invalid("length fragment multiplier \(m)") }
        return (m * 16384, true)
    }

    /// The length of a SIZE-constrained item. `fragmented` means an unconstrained length
    /// was read (`more`: further fragments follow). Limits are applied to the first part here.
    mutating func readSize(_ size: PERSize, unitsPerOctet: Int?) throws(PERError) -> (count: Int, fragmented: Bool, more: Bool) {
        var unconstrained = !size.isConstrainedLength
        if size.extensible, try reader.readBit() { unconstrained = true }
        if unconstrained {
            let (n, more) = try readLengthFragment()
            if !size.extensible, !more {
                guard n >= size.lower, size.upper.map({ n <= $0 }) ?? true else {
                    throw .sizeOutOfRange("\(n) not in \(size.lower)..\(size.upper.map(String.init) ?? "MAX")")
                }
            }
            try checkUnits(n, unitsPerOctet)
            return (n, true, more)
        }
        guard let upper = size.upper else { throw .invalid("unbounded size") }
        let n = upper == size.lower ? upper : try readConstrained(size.lower, upper)
        try checkUnits(n, unitsPerOctet)
        return (n, false, false)
    }

    func checkUnits(_ n: Int, _ unitsPerOctet: Int?) throws(PERError) {
        if let unitsPerOctet {
            guard n / unitsPerOctet <= limits.maxOctets else { throw .limitExceeded("string longer than \(limits.maxOctets) octets") }
        } else {
            guard n <= limits.maxElements else { throw .limitExceeded("SEQUENCE OF with more than \(limits.maxElements) elements") }
        }
    }

    mutating func readFragmentedOctets(_ first: Int, _ firstMore: Bool) throws(PERError) -> [UInt8] {
        guard first <= limits.maxOctets else { throw .limitExceeded("more than \(limits.maxOctets) octets") }
        if !firstMore { return try reader.readOctets(first) }
        var out = try reader.readOctets(first)
        var more = true
        while more {
            let (n, next) = try readLengthFragment()
            guard out.count + n <= limits.maxOctets else { throw .limitExceeded("more than \(limits.maxOctets) octets") }
            out += try reader.readOctets(n)
            more = next
        }
        return out
    }

    func decodeObjectIdentifier(_ contents: [UInt8]) throws(PERError) -> PERObjectIdentifier {
        var arcs = [UInt64]()
        var current: UInt64 = 0
        var started = false
        for octet in contents {
            if !started, octet == 0x80 { throw .invalid("object identifier arc with a leading 0x80") }
            guard current >> 57 == 0 else { throw .valueOutOfRange("object identifier arc too large") }
            current = current << 7 | UInt64(octet & 0x7F)
            started = true
            if octet & 0x80 == 0 {
                if arcs.isEmpty {
                    let first: UInt64 = current < 40 ? 0 : (current < 80 ? 1 : 2)
                    arcs = [first, current - first * 40]
                } else {
                    arcs.append(current)
                }
                current = 0
                started = false
            }
        }
        guard !started, !arcs.isEmpty else { throw .invalid("object identifier ends inside an arc") }
        return PERObjectIdentifier(arcs)
    }

    mutating func decodeString(_ t: PERCharacterStringType) throws(PERError) -> String {
        let b = t.bitsPerCharacter
        let n = try readSize(t.size, unitsPerOctet: 1)
        var units = [UInt32]()
        var chunk = n.count
        var more = n.more
        if !n.fragmented {
            if let upper = t.size.upper, upper == t.size.lower {
                if upper * b > 16 { reader.align() }
            } else if (t.size.upper ?? 0) > 1 && chunk > 0 {
                reader.align()
            }
        }
        while true {
            guard units.count + chunk <= limits.maxOctets else { throw .limitExceeded("string longer than \(limits.maxOctets) characters") }
            guard chunk * b <= reader.remainingBits else { throw .truncated(bit: reader.position) }
            for _ in 0..<chunk {
                let raw = try reader.read(bits: b)
                var code = UInt32(truncatingIfNeeded: raw)
                if let indexed = t.indexed {
                    guard raw < UInt64(indexed.count) else { throw .invalidCharacter("index \(raw)") }
                    code = indexed[Int(raw)]
                }
                guard t.allows(code) else { throw .invalidCharacter("U+\(String(code, radix: 16))") }
                units.append(code)
            }
            if !n.fragmented || !more { break }
            (chunk, more) = try readLengthFragment()
        }
        if t.kind == .bmp {
            return String(decoding: units.map { UInt16(truncatingIfNeeded: $0) }, as: UTF16.self)
        }
        var scalars = String.UnicodeScalarView()
        for code in units {
            guard let scalar = Unicode.Scalar(code) else { throw .invalidCharacter("U+\(String(code, radix: 16))") }
            scalars.append(scalar)
        }
        return String(scalars)
    }

    mutating func decodeSequence(_ t: PERSequenceType, depth: Int) throws(PERError) -> PERSequenceValue {
        let extended = t.additions != nil ? try reader.readBit() : false
        var present = [Bool]()
        present.reserveCapacity(t.optionalRootCount)
        for _ in 0..<t.optionalRootCount { present.append(try reader.readBit()) }
        try count(t.root.count)
        var members = [PERValue?](repeating: nil, count: t.memberCount)
        var optionalIndex = 0
        for (i, member) in t.root.enumerated() {
            if member.optional {
                let isPresent = present[optionalIndex]
                optionalIndex += 1
                if !isPresent { continue }
            }
            members[i] = try decode(member.type, depth: depth + 1)
        }
        var unknown = [PERUnknownAddition]()
        if extended, let additions = t.additions {
            let bitmap = try readBitmapLength()
            var bits = [Bool]()
            bits.reserveCapacity(bitmap)
            for _ in 0..<bitmap { bits.append(try reader.readBit()) }
            // Absent unknown positions are remembered so that re-encoding writes a bitmap of the
            // same length, but only when something is present (otherwise the extension bit
            // is not written again at all; found by FuzzRasMessage).
            let anyPresent = bits.contains(true)
            for (position, isPresent) in bits.enumerated() {
                guard isPresent else {
                    if anyPresent, position >= additions.count { unknown.append(PERUnknownAddition(position: position, encoding: nil)) }
                    continue
                }
                let (length, more) = try readLengthFragment()
                if position < additions.count {
                    let contents = more ? try readFragmentedOctets(length, more) : nil
                    members[t.root.count + position] = try decodeOpenType(additions[position].type, length: length, contents: contents, depth: depth + 1)
                } else {
                    try count(1)
                    unknown.append(PERUnknownAddition(position: position, encoding: try readFragmentedOctets(length, more)))
                }
            }
        }
        return PERSequenceValue(members: members, unknownAdditions: unknown)
    }

    mutating func readBitmapLength() throws(PERError) -> Int {
        if try !reader.readBit() { return Int(try reader.read(bits: 6)) + 1 }
        let (n, more) = try readLengthFragment()
        guard !more, n >= 1, n <= 4096 else { throw .limitExceeded("extension bitmap of \(n) bits") }
        return n
    }

    /// Decodes a known type carried in an open type of `length` octets at the reader.
    mutating func decodeOpenType(_ type: PERType, length: Int, contents: [UInt8]?, depth: Int) throws(PERError) -> PERValue {
        var inner: PERBitReader
        if let contents {
            inner = PERBitReader(contents)
        } else {
            inner = try reader.subReader(octets: length)
        }
        swap(&reader, &inner)
        defer { swap(&reader, &inner) }
        return try decode(type, depth: depth)
    }

    mutating func decodeChoice(_ t: PERChoiceType, depth: Int) throws(PERError) -> PERValue {
        if t.additions != nil, try reader.readBit() {
            let n = try readNormallySmall()
            guard n < 4096 else { throw .limitExceeded("choice extension index \(n)") }
            let index = t.root.count + Int(n)
            let (length, more) = try readLengthFragment()
            if let alternative = t.alternative(at: index) {
                let contents = more ? try readFragmentedOctets(length, more) : nil
                return .choice(index, try decodeOpenType(alternative.type, length: length, contents: contents, depth: depth + 1))
            }
            return .choice(index, .openType(try readFragmentedOctets(length, more)))
        }
        let index = t.root.count > 1 ? try readConstrained(0, t.root.count - 1) : 0
        guard index < t.root.count else { throw .invalid("\(t.name): no alternative") }
        return .choice(index, try decode(t.root[index].type, depth: depth + 1))
    }
}
