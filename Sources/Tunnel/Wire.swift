// Big-endian readers and writers for tunnel payloads. The reader never traps:
// every read checks the remaining length and returns nil when the input is short.

/// Appends big-endian integers and length-prefixed fields to a byte array.
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ value: UInt8) { bytes.append(value) }
    public mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }
    public mutating func u32(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
    public mutating func u64(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
    public mutating func raw<C: Collection>(_ data: C) where C.Element == UInt8 { bytes.append(contentsOf: data) }

    /// A UTF-8 string with a one-byte length; longer strings are cut at 255 bytes
    /// (every string field of the protocol is bounded by 255), at a character
    /// boundary so that the result is still valid UTF-8.
    public mutating func string(_ text: String) {
        var utf8 = Array(text.utf8.prefix(256))
        if utf8.count > 255 {
            utf8.removeLast()
            // Drop a sequence the cut left incomplete: continuation bytes, then their lead byte.
            var end = utf8.count
            while end > 0 && utf8[end - 1] & 0xC0 == 0x80 { end -= 1 }
            if end > 0 && utf8[end - 1] >= 0xC0 {
                let lead = utf8[end - 1]
                let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
                if utf8.count - (end - 1) < length { utf8.removeLast(utf8.count - (end - 1)) }
            }
        }
        u8(UInt8(utf8.count))
        raw(utf8)
    }

    /// Opaque bytes with a two-byte length (cut at 65535).
    public mutating func blob(_ data: [UInt8]) {
        let count = min(data.count, 0xFFFF)
        u16(UInt16(count))
        raw(data[0..<count])
    }
}

/// Reads big-endian integers and length-prefixed fields from a byte slice.
public struct WireReader {
    private let bytes: ArraySlice<UInt8>
    private var index: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        index = bytes.startIndex
    }

    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    public var remaining: Int { bytes.endIndex - index }

    public mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    public mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { index += 2 }
        return UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])
    }

    public mutating func u32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        var value: UInt32 = 0
        for offset in 0..<4 { value = value << 8 | UInt32(bytes[index + offset]) }
        index += 4
        return value
    }

    public mutating func u64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        var value: UInt64 = 0
        for offset in 0..<8 { value = value << 8 | UInt64(bytes[index + offset]) }
        index += 8
        return value
    }

    public mutating func raw(_ count: Int) -> [UInt8]? {
        guard count >= 0, remaining >= count else { return nil }
        defer { index += count }
        return Array(bytes[index..<(index + count)])
    }

    /// The rest of the input.
    public mutating func rest() -> [UInt8] {
        defer { index = bytes.endIndex }
        return Array(bytes[index...])
    }

    public mutating func string() -> String? {
        guard let count = u8(), let utf8 = raw(Int(count)) else { return nil }
        return String(validating: utf8, as: UTF8.self)
    }

    public mutating func blob() -> [UInt8]? {
        guard let count = u16() else { return nil }
        return raw(Int(count))
    }
}
