// The aligned-PER decoder: one primitive per X.691 construct, called by the generic PERValue
// driver (`decodeValue`) and by generated typed code alike. Every length is checked against
// the input and against PERLimits before anything is allocated; nesting is bounded.

public struct PERDecoder {
    @usableFromInline var reader: PERBitReader
    @usableFromInline let schema: PERSchema
    @usableFromInline let limits: PERLimits
    /// Elements and components decoded so far (bounded by `limits.maxTotalElements`).
    @usableFromInline var elements = 0
    /// Constructed types currently open (bounded by `limits.maxDepth`).
    @usableFromInline var depth = 0
    /// Reused for the characters of each string.
    var scratch: [UInt8] = []

    public init(_ bytes: [UInt8], schema: PERSchema, limits: PERLimits = .default) {
        self.reader = PERBitReader(bytes)
        self.schema = schema
        self.limits = limits
    }

    @usableFromInline
    mutating func count(_ n: Int) throws(PERError) {
        let (total, overflow) = elements.addingReportingOverflow(n)
        guard !overflow, total <= limits.maxTotalElements else {
            throw .limitExceeded("more than \(limits.maxTotalElements) elements in one message")
        }
        elements = total
    }

    @usableFromInline
    mutating func enter() throws(PERError) {
        guard depth <= limits.maxDepth else { throw .limitExceeded("nesting deeper than \(limits.maxDepth)") }
        depth += 1
    }

    // MARK: Primitives

    @inlinable
    public mutating func decodeBoolean() throws(PERError) -> Bool {
        try reader.readBit()
    }

    public mutating func decodeInteger(_ lower: Int?, _ upper: Int?, extensible: Bool = false) throws(PERError) -> Int {
        if extensible, try reader.readBit() {
            return try readUnconstrainedInteger()
        }
        switch (lower, upper) {
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

    /// The value's index: root values first, then additions; an unknown extension value
    /// keeps its index (>= the known count).
    public mutating func decodeEnumerated(rootCount: Int, extensible: Bool) throws(PERError) -> Int {
        if extensible, try reader.readBit() {
            let i = try readNormallySmall()
            guard i < UInt64(Int32.max) else { throw .valueOutOfRange("enumeration extension \(i)") }
            return rootCount + Int(i)
        }
        return try readConstrained(0, rootCount - 1)
    }

    public mutating func decodeBitString(_ size: PERSize) throws(PERError) -> PERBitString {
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
            return PERBitString(bytes: bits, count: total)
        }
        if size.upper != size.lower || n.count > 16 { reader.align() }
        return PERBitString(bytes: try reader.readBits(n.count), count: n.count)
    }

    public mutating func decodeOctetString(_ size: PERSize) throws(PERError) -> [UInt8] {
        let n = try readSize(size, unitsPerOctet: 1)
        if n.fragmented { return try readFragmentedOctets(n.count, n.more) }
        if size.upper != size.lower || n.count > 2 { reader.align() }
        return try reader.readOctets(n.count)
    }

    public mutating func decodeObjectIdentifier() throws(PERError) -> PERObjectIdentifier {
        let (length, more) = try readLengthFragment()
        if more { return try decodeObjectIdentifier(try readFragmentedOctets(length, more)) }
        guard length <= limits.maxOctets else { throw .limitExceeded("more than \(limits.maxOctets) octets") }
        guard length <= (reader.end - reader.position) / 8 else { throw .truncated(bit: reader.position) }
        // Aligned after the length: the contents are parsed where they are.
        let start = reader.position >> 3
        let oid = try decodeObjectIdentifier(reader.bytes[start..<(start + length)])
        reader.position += length * 8
        return oid
    }

    public mutating func decodeGeneralString() throws(PERError) -> String {
        let (length, more) = try readLengthFragment()
        let octets = try readFragmentedOctets(length, more)
        var scalars = String.UnicodeScalarView()
        for octet in octets { scalars.append(Unicode.Scalar(octet)) }
        return String(scalars)
    }

    /// An open type's contents, kept as octets.
    public mutating func decodeOpenType() throws(PERError) -> [UInt8] {
        let (length, more) = try readLengthFragment()
        return try readFragmentedOctets(length, more)
    }

    public mutating func decodeString(_ t: PERCharacterStringType) throws(PERError) -> String {
        let b = t.bitsPerCharacter
        let n = try readSize(t.size, unitsPerOctet: 1)
        var chunk = n.count
        var more = n.more
        if !n.fragmented {
            if let upper = t.size.upper, upper == t.size.lower {
                if upper * b > 16 { reader.align() }
            } else if (t.size.upper ?? 0) > 1 && chunk > 0 {
                reader.align()
            }
        }
        // Characters are collected as UTF-8 while they are ASCII (every kind but BMPString is
        // ASCII only), in a buffer the decoder reuses; a BMPString beyond ASCII goes to UTF-16.
        scratch.removeAll(keepingCapacity: true)
        var wide: [UInt16]? = nil
        while true {
            let total = (wide?.count ?? scratch.count) + chunk
            guard total <= limits.maxOctets else { throw .limitExceeded("string longer than \(limits.maxOctets) characters") }
            guard chunk * b <= reader.remainingBits else { throw .truncated(bit: reader.position) }
            for _ in 0..<chunk {
                let code = try readCharacter(t, b)
                if code < 0x80, wide == nil {
                    scratch.append(UInt8(code))
                } else if t.kind == .bmp {
                    if wide == nil { wide = scratch.map { UInt16($0) } }
                    wide?.append(UInt16(truncatingIfNeeded: code))
                } else {
                    throw .invalidCharacter("U+\(String(code, radix: 16))")
                }
            }
            if !n.fragmented || !more { break }
            (chunk, more) = try readLengthFragment()
        }
        if let wide { return String(decoding: wide, as: UTF16.self) }
        return String(decoding: scratch, as: UTF8.self)
    }

    @inline(__always)
    mutating func readCharacter(_ t: PERCharacterStringType, _ b: Int) throws(PERError) -> UInt32 {
        let raw = try reader.read(bits: b)
        var code = UInt32(truncatingIfNeeded: raw)
        if let indexed = t.indexed {
            guard raw < UInt64(indexed.count) else { throw .invalidCharacter("index \(raw)") }
            code = indexed[Int(raw)]
        }
        guard t.allows(code) else { throw .invalidCharacter("U+\(String(code, radix: 16))") }
        return code
    }

    // MARK: Constructed types

    /// Opens a SEQUENCE: its extension bit and the presence bits of its OPTIONAL root components.
    public mutating func beginSequence(extensible: Bool, optionalCount: Int, rootCount: Int) throws(PERError) -> PERSequenceHeader {
        try enter()
        guard optionalCount <= 64 else { throw .invalid("SEQUENCE with more than 64 optional components") }
        let extended = extensible ? try reader.readBit() : false
        let presence = optionalCount > 0 ? try reader.read(bits: optionalCount) : 0
        try count(rootCount)
        return PERSequenceHeader(extended: extended, presence: presence, optionalCount: optionalCount)
    }

    /// Closes a SEQUENCE or SEQUENCE OF.
    @inlinable
    public mutating func endConstructed() {
        depth -= 1
    }

    /// Reads the additions' presence bitmap of an extended SEQUENCE with `known` additions.
    public mutating func beginAdditions(known: Int) throws(PERError) -> PERAdditionCursor {
        let length = try readBitmapLength()
        var low: UInt64 = 0
        var high = [Bool]()
        for position in 0..<length {
            let present = try reader.readBit()
            if position < 64 {
                if present { low |= 1 << UInt64(position) }
            } else {
                high.append(present)
            }
        }
        return PERAdditionCursor(known: known, length: length, low: low, high: high)
    }

    /// The next present known addition: the reader is then inside its open type until the next
    /// call. Present unknown additions are kept as their encoding in `cursor.unknown`; absent
    /// unknown positions too, when something is present, so that re-encoding writes a bitmap
    /// of the same length (found by FuzzRasMessage). nil at the end.
    public mutating func nextAddition(_ cursor: inout PERAdditionCursor) throws(PERError) -> Int? {
        if let frame = cursor.frame {
            leaveOpenType(frame)
            cursor.frame = nil
        }
        while cursor.position < cursor.length {
            let position = cursor.position
            cursor.position += 1
            guard cursor.isPresent(position) else {
                if cursor.anyPresent, position >= cursor.known { cursor.unknown.append(PERUnknownAddition(position: position, encoding: nil)) }
                continue
            }
            let (length, more) = try readLengthFragment()
            if position < cursor.known {
                cursor.frame = try enterOpenType(length: length, more: more)
                return position
            }
            try count(1)
            cursor.unknown.append(PERUnknownAddition(position: position, encoding: try readFragmentedOctets(length, more)))
        }
        return nil
    }

    /// Opens a CHOICE: the alternative's index. A known extension alternative is then read from
    /// inside its open type; an unknown one is already read, as `unknownEncoding`.
    public mutating func beginChoice(rootCount: Int, knownCount: Int, extensible: Bool) throws(PERError) -> PERChoiceHeader {
        try enter()
        if extensible, try reader.readBit() {
            let n = try readNormallySmall()
            guard n < 4096 else { throw .limitExceeded("choice extension index \(n)") }
            let index = rootCount + Int(n)
            let (length, more) = try readLengthFragment()
            if index < knownCount {
                return PERChoiceHeader(index: index, unknownEncoding: [], frame: try enterOpenType(length: length, more: more))
            }
            return PERChoiceHeader(index: index, unknownEncoding: try readFragmentedOctets(length, more), frame: nil)
        }
        let index = rootCount > 1 ? try readConstrained(0, rootCount - 1) : 0
        guard index < rootCount else { throw .invalid("CHOICE without alternatives") }
        return PERChoiceHeader(index: index, unknownEncoding: [], frame: nil)
    }

    public mutating func endChoice(_ header: PERChoiceHeader) {
        if let frame = header.frame { leaveOpenType(frame) }
        depth -= 1
    }

    /// SEQUENCE OF: the size (bounded by the limits before anything is allocated), then each
    /// element; lengths of 16K and more come in fragments.
    @inlinable
    public mutating func decodeSequenceOf<Element>(_ size: PERSize,
                                                   _ decodeElement: (inout PERDecoder) throws(PERError) -> Element) throws(PERError) -> [Element] {
        try enter()
        let n = try readSize(size, unitsPerOctet: nil)
        var elements = [Element]()
        var chunk = n.count
        var more = n.more
        while true {
            guard elements.count + chunk <= limits.maxElements else {
                throw .limitExceeded("SEQUENCE OF with more than \(limits.maxElements) elements")
            }
            try count(chunk)
            elements.reserveCapacity(elements.count + min(chunk, reader.remainingBits))
            for _ in 0..<chunk { elements.append(try decodeElement(&self)) }
            if !n.fragmented || !more { break }
            (chunk, more) = try readLengthFragment()
        }
        depth -= 1
        return elements
    }

    // MARK: The generic driver

    /// Decodes a PERValue tree as `type` describes it.
    public mutating func decodeValue(_ type: PERType) throws(PERError) -> PERValue {
        switch schema.resolve(type) {
        case .null:
            return .null
        case .boolean:
            return .boolean(try decodeBoolean())
        case .integer(let range):
            return .integer(try decodeInteger(range.lower, range.upper, extensible: range.extensible))
        case .enumerated(let e):
            return .enumerated(try decodeEnumerated(rootCount: e.root.count, extensible: e.additions != nil))
        case .bitString(let size):
            return .bitString(try decodeBitString(size))
        case .octetString(let size):
            return .octetString(try decodeOctetString(size))
        case .objectIdentifier:
            return .objectIdentifier(try decodeObjectIdentifier())
        case .characterString(let t):
            return .string(try decodeString(t))
        case .generalString:
            return .string(try decodeGeneralString())
        case .sequence(let t):
            return .sequence(try decodeSequenceValue(t))
        case .choice(let t):
            return try decodeChoiceValue(t)
        case .sequenceOf(let t):
            return .sequenceOf(try decodeSequenceOf(t.size) { (decoder: inout PERDecoder) throws(PERError) in
                try decoder.decodeValue(t.element)
            })
        case .openType:
            return .openType(try decodeOpenType())
        case .reference:
            throw .invalid("unresolvable type reference")
        }
    }

    mutating func decodeSequenceValue(_ t: PERSequenceType) throws(PERError) -> PERSequenceValue {
        let header = try beginSequence(extensible: t.additions != nil, optionalCount: t.optionalRootCount, rootCount: t.root.count)
        var members = [PERValue?](repeating: nil, count: t.memberCount)
        var optionalIndex = 0
        for (i, member) in t.root.enumerated() {
            if member.optional {
                let present = header.isPresent(optionalIndex)
                optionalIndex += 1
                if !present { continue }
            }
            members[i] = try decodeValue(member.type)
        }
        var unknown = [PERUnknownAddition]()
        if header.extended, let additions = t.additions {
            var cursor = try beginAdditions(known: additions.count)
            while let position = try nextAddition(&cursor) {
                members[t.root.count + position] = try decodeValue(additions[position].type)
            }
            unknown = cursor.unknown
        }
        endConstructed()
        return PERSequenceValue(members: members, unknownAdditions: unknown)
    }

    mutating func decodeChoiceValue(_ t: PERChoiceType) throws(PERError) -> PERValue {
        let header = try beginChoice(rootCount: t.root.count, knownCount: t.alternativeCount, extensible: t.additions != nil)
        let value: PERValue
        if let alternative = t.alternative(at: header.index) {
            value = .choice(header.index, try decodeValue(alternative.type))
        } else {
            value = .choice(header.index, .openType(header.unknownEncoding))
        }
        endChoice(header)
        return value
    }

    // MARK: Building blocks

    /// Narrows the reader to an open type's contents of `length` octets (or, when fragmented,
    /// reads them and switches to them); `leaveOpenType` continues after them.
    mutating func enterOpenType(length: Int, more: Bool) throws(PERError) -> PERReaderFrame {
        if more {
            let contents = try readFragmentedOctets(length, more)
            let frame = PERReaderFrame(resume: 0, end: 0, outer: reader)
            reader = PERBitReader(contents)
            return frame
        }
        guard length >= 0, length <= (reader.end - reader.position) / 8 else { throw .truncated(bit: reader.position) }
        let inner = reader.position + length * 8
        let frame = PERReaderFrame(resume: inner, end: reader.end, outer: nil)
        reader.end = inner
        return frame
    }

    mutating func leaveOpenType(_ frame: PERReaderFrame) {
        if let outer = frame.outer {
            reader = outer
        } else {
            reader.position = frame.resume
            reader.end = frame.end
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
    @usableFromInline
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
    @usableFromInline
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

    func decodeObjectIdentifier<Contents: Collection<UInt8>>(_ contents: Contents) throws(PERError) -> PERObjectIdentifier {
        var arcs = [UInt64]()
        arcs.reserveCapacity(contents.count + 1)
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
                    arcs.append(first)
                    arcs.append(current - first * 40)
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

    mutating func readBitmapLength() throws(PERError) -> Int {
        if try !reader.readBit() { return Int(try reader.read(bits: 6)) + 1 }
        let (n, more) = try readLengthFragment()
        guard !more, n >= 1, n <= 4096 else { throw .limitExceeded("extension bitmap of \(n) bits") }
        return n
    }
}

/// A SEQUENCE's extension bit and the presence bits of its OPTIONAL root components.
public struct PERSequenceHeader: Sendable {
    public let extended: Bool
    @usableFromInline let presence: UInt64
    @usableFromInline let optionalCount: Int

    init(extended: Bool, presence: UInt64, optionalCount: Int) {
        self.extended = extended
        self.presence = presence
        self.optionalCount = optionalCount
    }

    /// Whether the `index`th OPTIONAL root component is present.
    @inlinable
    public func isPresent(_ index: Int) -> Bool {
        presence >> UInt64(optionalCount - 1 - index) & 1 != 0
    }
}

/// Where the reader continues after an open type.
struct PERReaderFrame: Sendable {
    let resume: Int
    let end: Int
    /// The enclosing reader when the contents were fragmented and copied.
    let outer: PERBitReader?
}

/// Progress through an extended SEQUENCE's additions (see `PERDecoder.nextAddition`).
public struct PERAdditionCursor: Sendable {
    let known: Int
    let length: Int
    let low: UInt64
    let high: [Bool]
    var position = 0
    var frame: PERReaderFrame?
    /// Additions beyond the schema, as `PERSequenceValue.unknownAdditions` holds them.
    public internal(set) var unknown: [PERUnknownAddition] = []

    init(known: Int, length: Int, low: UInt64, high: [Bool]) {
        self.known = known
        self.length = length
        self.low = low
        self.high = high
    }

    var anyPresent: Bool { low != 0 || high.contains(true) }

    func isPresent(_ position: Int) -> Bool {
        position < 64 ? low >> UInt64(position) & 1 != 0 : high[position - 64]
    }
}

/// A CHOICE's alternative (see `PERDecoder.beginChoice`).
public struct PERChoiceHeader: Sendable {
    public let index: Int
    /// The contents of an alternative this schema does not know.
    public let unknownEncoding: [UInt8]
    let frame: PERReaderFrame?
}
