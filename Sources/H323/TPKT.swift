// TPKT framing (RFC 1006) for H.225.0 call signalling and H.245 over TCP: a sans-I/O
// reassembler that turns arbitrary stream chunks into whole packets, with bounded memory.

public enum TPKTError: Error, Equatable, Sendable, CustomStringConvertible {
    case badVersion(UInt8)
    case badLength(Int)
    case tooLarge(Int)

    public var description: String {
        switch self {
        case .badVersion(let v): return "TPKT: version \(v), expected 3 (stream out of sync)"
        case .badLength(let n): return "TPKT: length \(n) is shorter than the 4-octet header"
        case .tooLarge(let n): return "TPKT: packet of \(n) octets exceeds the configured maximum"
        }
    }
}

public enum TPKT {
    public static let headerLength = 4

    /// One TPKT packet around `payload` (at most 65531 octets).
    public static func frame(_ payload: [UInt8]) throws(TPKTError) -> [UInt8] {
        let total = payload.count + headerLength
        guard total <= 0xFFFF else { throw .tooLarge(total) }
        return [3, 0, UInt8(total >> 8), UInt8(total & 0xFF)] + payload
    }
}

/// Feed it whatever TCP delivered; it returns the complete payloads. After an error the
/// stream is unusable (TPKT has no resynchronisation) and the connection must be closed.
public struct TPKTReassembler: Sendable {
    public let maxPayload: Int
    private var buffer: [UInt8] = []
    private var start = 0

    public init(maxPayload: Int = 65531) {
        self.maxPayload = min(max(0, maxPayload), 65531)
    }

    /// Octets held while waiting for the rest of a packet (never more than one packet).
    public var pendingCount: Int { buffer.count - start }

    public mutating func append<C: Collection>(_ chunk: C) throws(TPKTError) -> [[UInt8]] where C.Element == UInt8 {
        buffer.append(contentsOf: chunk)
        var packets: [[UInt8]] = []
        while buffer.count - start >= TPKT.headerLength {
            let version = buffer[start]
            guard version == 3 else { throw .badVersion(version) }
            let length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
            guard length >= TPKT.headerLength else { throw .badLength(length) }
            guard length - TPKT.headerLength <= maxPayload else { throw .tooLarge(length) }
            guard buffer.count - start >= length else { break }
            packets.append(Array(buffer[(start + TPKT.headerLength)..<(start + length)]))
            start += length
        }
        // Keep memory bounded: drop consumed octets.
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        return packets
    }
}
