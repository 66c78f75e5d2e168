/// Why a datagram was refused by the parser. Counted per session and direction.
public enum MalformedReason: UInt8, Error, Sendable, CaseIterable, CustomStringConvertible {
    case tooShort          // shorter than a fixed header
    case badVersion        // version field is not 2
    case truncatedHeader   // CSRC list or header extension runs past the end
    case badPadding        // padding count is 0 or larger than the payload
    case badRTCPLength     // an RTCP length field does not match the datagram
    case badRTCPType       // the first RTCP packet is not SR/RR (RFC 3550 A.2), or an unknown type

    public var description: String {
        switch self {
        case .tooShort: "too-short"
        case .badVersion: "bad-version"
        case .truncatedHeader: "truncated-header"
        case .badPadding: "bad-padding"
        case .badRTCPLength: "bad-rtcp-length"
        case .badRTCPType: "bad-rtcp-type"
        }
    }
}

/// The fixed RTP header fields the relay needs (RFC 3550 section 5.1).
public struct RTPHeader: Equatable, Sendable {
    public var marker: Bool
    public var payloadType: UInt8
    public var sequence: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32
    /// Offset and length of the payload inside the datagram.
    public var payloadOffset: Int
    public var payloadLength: Int
}

/// What a datagram on an RTP port is.
public enum Classified: Equatable, Sendable {
    case rtp(RTPHeader)
    case rtcp(packets: Int)
    case malformed(MalformedReason)
}

@inline(__always)
private func be16(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt16 {
    UInt16(p[offset]) << 8 | UInt16(p[offset + 1])
}

@inline(__always)
private func be32(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(p[offset]) << 24 | UInt32(p[offset + 1]) << 16 | UInt32(p[offset + 2]) << 8 | UInt32(p[offset + 3])
}

public enum RTPPacket {
    /// RFC 5761 section 4: with RTP and RTCP on one port, the second byte tells them apart;
    /// RTCP packet types 192-223 fall where RTP would have marker + payload type 64-95.
    @inline(__always)
    public static func looksLikeRTCP(secondByte: UInt8) -> Bool {
        secondByte >= 192 && secondByte <= 223
    }

    /// Classifies a datagram received on an RTP port (RTCP may be multiplexed onto it).
    /// Never traps and never allocates, whatever the bytes.
    @inline(__always)
    public static func classify(_ bytes: UnsafeRawBufferPointer) -> Classified {
        if bytes.count >= 2 && bytes[0] >> 6 == 2 && looksLikeRTCP(secondByte: bytes[1]) {
            switch validateRTCP(bytes) {
            case .success(let packets): return .rtcp(packets: packets)
            case .failure(let reason): return .malformed(reason)
            }
        }
        switch parseRTP(bytes) {
        case .success(let header): return .rtp(header)
        case .failure(let reason): return .malformed(reason)
        }
    }

    /// Parses and checks an RTP header.
    @inline(__always)
    public static func parseRTP(_ bytes: UnsafeRawBufferPointer) -> Result<RTPHeader, MalformedReason> {
        let count = bytes.count
        guard count >= 12 else { return .failure(count >= 1 && bytes[0] >> 6 != 2 ? .badVersion : .tooShort) }
        let first = bytes[0]
        guard first >> 6 == 2 else { return .failure(.badVersion) }
        var offset = 12 + Int(first & 0x0F) * 4
        guard offset <= count else { return .failure(.truncatedHeader) }
        if first & 0x10 != 0 {
            // Header extension: 16-bit profile, 16-bit length in 32-bit words.
            guard offset + 4 <= count else { return .failure(.truncatedHeader) }
            offset += 4 + Int(be16(bytes, offset + 2)) * 4
            guard offset <= count else { return .failure(.truncatedHeader) }
        }
        var end = count
        if first & 0x20 != 0 {
            let padding = Int(bytes[count - 1])
            guard padding > 0, padding <= count - offset else { return .failure(.badPadding) }
            end -= padding
        }
        let second = bytes[1]
        return .success(RTPHeader(marker: second & 0x80 != 0, payloadType: second & 0x7F,
                                  sequence: be16(bytes, 2), timestamp: be32(bytes, 4), ssrc: be32(bytes, 8),
                                  payloadOffset: offset, payloadLength: end - offset))
    }

    /// Checks a (compound) RTCP datagram: every packet version 2, lengths adding up exactly,
    /// the first one SR or RR (RFC 3550 A.2; RFC 5506 reduced-size feedback also accepted).
    /// Returns the number of packets in it.
    public static func validateRTCP(_ bytes: UnsafeRawBufferPointer) -> Result<Int, MalformedReason> {
        let count = bytes.count
        guard count >= 4 else { return .failure(.tooShort) }
        var offset = 0
        var packets = 0
        while offset < count {
            guard count - offset >= 4 else { return .failure(.badRTCPLength) }
            let first = bytes[offset]
            guard first >> 6 == 2 else { return .failure(.badVersion) }
            let type = bytes[offset + 1]
            guard type >= 192 && type <= 223 else { return .failure(.badRTCPType) }
            if packets == 0 && !(type == 200 || type == 201 || type == 205 || type == 206) {
                return .failure(.badRTCPType)
            }
            let length = (Int(be16(bytes, offset + 2)) + 1) * 4
            guard length <= count - offset else { return .failure(.badRTCPLength) }
            offset += length
            packets += 1
        }
        return .success(packets)
    }

    /// SSRC of the sender of an RTCP packet (bytes 4-7), when present.
    public static func rtcpSenderSSRC(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
        bytes.count >= 8 ? be32(bytes, 4) : nil
    }

    /// Writes a 12-byte RTP header (used by tests, the load generator and tone code).
    public static func writeHeader(into bytes: UnsafeMutableRawBufferPointer, payloadType: UInt8, marker: Bool = false,
                                   sequence: UInt16, timestamp: UInt32, ssrc: UInt32) {
        precondition(bytes.count >= 12, "RTP header needs 12 bytes")
        bytes[0] = 0x80
        bytes[1] = (marker ? 0x80 : 0) | (payloadType & 0x7F)
        bytes[2] = UInt8(sequence >> 8); bytes[3] = UInt8(truncatingIfNeeded: sequence)
        for i in 0..<4 {
            bytes[4 + i] = UInt8(truncatingIfNeeded: timestamp >> (24 - 8 * i))
            bytes[8 + i] = UInt8(truncatingIfNeeded: ssrc >> (24 - 8 * i))
        }
    }
}
