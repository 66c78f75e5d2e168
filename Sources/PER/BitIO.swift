// Bit-level writer and reader for aligned PER. The reader never reads past its window and
// reports truncation as an error; all length arithmetic is checked by the callers.

public struct PERBitWriter: Sendable {
    public internal(set) var bytes: [UInt8] = []
    public internal(set) var bitCount = 0

    public init() {
        bytes.reserveCapacity(256)
    }

    @inline(__always)
    public mutating func writeBit(_ bit: Bool) {
        write(bit ? 1 : 0, bits: 1)
    }

    /// Writes the low `count` bits of `value`, most significant first (count <= 64).
    @inline(__always)
    public mutating func write(_ value: UInt64, bits count: Int) {
        var remaining = count
        while remaining > 0 {
            let used = bitCount & 7
            if used == 0 { bytes.append(0) }
            let free = 8 - used
            let take = min(free, remaining)
            let shift = UInt64(remaining - take)
            let chunk = UInt8(truncatingIfNeeded: (value >> shift) & ((1 << UInt64(take)) - 1))
            bytes[bytes.count - 1] |= chunk << UInt8(free - take)
            bitCount += take
            remaining -= take
        }
    }

    @inline(__always)
    public mutating func align() {
        bitCount = bytes.count * 8
    }

    public mutating func writeOctets<C: Collection>(_ octets: C) where C.Element == UInt8 {
        if bitCount & 7 == 0 {
            bytes.append(contentsOf: octets)
            bitCount = bytes.count * 8
        } else {
            for octet in octets { write(UInt64(octet), bits: 8) }
        }
    }

    /// Appends `count` bits taken from the start of `source`.
    public mutating func writeBits(from source: [UInt8], count: Int) {
        var i = 0
        while i + 8 <= count {
            write(UInt64(source[i / 8]), bits: 8)
            i += 8
        }
        if i < count {
            let rest = count - i
            write(UInt64(source[i / 8] >> UInt8(8 - rest)), bits: rest)
        }
    }
}

public struct PERBitReader: Sendable {
    let bytes: [UInt8]
    public internal(set) var position: Int
    /// End of the window in bits: narrowed while an open type's contents are read.
    var end: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.position = 0
        self.end = bytes.count * 8
    }

    init(_ bytes: [UInt8], from start: Int, to end: Int) {
        self.bytes = bytes
        self.position = start
        self.end = end
    }

    public var remainingBits: Int { end - position }

    @inline(__always)
    public mutating func readBit() throws(PERError) -> Bool {
        guard position < end else { throw .truncated(bit: position) }
        let bit = bytes[position >> 3] & (0x80 >> UInt8(position & 7)) != 0
        position += 1
        return bit
    }

    /// Reads `count` bits (count <= 64) as an unsigned number.
    @inline(__always)
    public mutating func read(bits count: Int) throws(PERError) -> UInt64 {
        guard count >= 0, count <= 64 else { throw .invalid("bit field of \(count) bits") }
        guard count <= end - position else { throw .truncated(bit: position) }
        var value: UInt64 = 0
        var remaining = count
        while remaining > 0 {
            let used = position & 7
            let available = 8 - used
            let take = min(available, remaining)
            let byte = UInt64(bytes[position >> 3])
            let chunk = (byte >> UInt64(available - take)) & ((1 << UInt64(take)) - 1)
            value = (value << UInt64(take)) | chunk
            position += take
            remaining -= take
        }
        return value
    }

    @inline(__always)
    public mutating func align() {
        position = (position + 7) & ~7
    }

    public mutating func readOctets(_ count: Int) throws(PERError) -> [UInt8] {
        guard count >= 0, count <= (end - position) / 8 else { throw .truncated(bit: position) }
        if position & 7 == 0 {
            let start = position >> 3
            position += count * 8
            return Array(bytes[start..<(start + count)])
        }
        var out = [UInt8]()
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(UInt8(try read(bits: 8))) }
        return out
    }

    public mutating func readBits(_ count: Int) throws(PERError) -> [UInt8] {
        guard count >= 0, count <= end - position else { throw .truncated(bit: position) }
        var out = [UInt8](repeating: 0, count: (count + 7) / 8)
        var i = 0
        while i + 8 <= count {
            out[i / 8] = UInt8(try read(bits: 8))
            i += 8
        }
        if i < count {
            let rest = count - i
            out[i / 8] = UInt8(try read(bits: rest)) << UInt8(8 - rest)
        }
        return out
    }

    /// A reader over the next `octets` octets (an open type's contents); skips them here.
    mutating func subReader(octets: Int) throws(PERError) -> PERBitReader {
        guard octets >= 0, octets <= (end - position) / 8 else { throw .truncated(bit: position) }
        let sub = PERBitReader(bytes, from: position, to: position + octets * 8)
        position += octets * 8
        return sub
    }
}

public enum PERError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended at this bit offset.
    case truncated(bit: Int)
    case valueOutOfRange(String)
    case sizeOutOfRange(String)
    case invalidCharacter(String)
    /// A configured decoder limit (elements, octets, depth) was exceeded.
    case limitExceeded(String)
    case invalid(String)
    /// The value given to the encoder does not have the shape the schema asks for.
    case typeMismatch(String)

    public var description: String {
        switch self {
        case .truncated(let bit): return "PER: input truncated at bit \(bit)"
        case .valueOutOfRange(let s): return "PER: value out of range: \(s)"
        case .sizeOutOfRange(let s): return "PER: size out of range: \(s)"
        case .invalidCharacter(let s): return "PER: character not in the permitted alphabet: \(s)"
        case .limitExceeded(let s): return "PER: decoder limit exceeded: \(s)"
        case .invalid(let s): return "PER: invalid encoding: \(s)"
        case .typeMismatch(let s): return "PER: value does not match the type: \(s)"
        }
    }
}
