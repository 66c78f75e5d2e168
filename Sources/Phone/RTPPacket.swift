// RTP (RFC 3550 §5.1) as the phone needs it: build the fixed 12-byte header for
// what it sends, and parse what arrives without trusting any length in it.

public struct RTPHeader: Equatable, Sendable {
    public var payloadType: UInt8
    public var marker: Bool
    public var sequence: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32

    public init(payloadType: UInt8, marker: Bool = false, sequence: UInt16, timestamp: UInt32, ssrc: UInt32) {
        self.payloadType = payloadType & 0x7F
        self.marker = marker
        self.sequence = sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
    }

    /// Header (version 2, no padding, extension or CSRC) followed by `payload`.
    public func packet(payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(12 + payload.count)
        bytes.append(0x80)
        bytes.append((marker ? 0x80 : 0) | payloadType)
        bytes.append(UInt8(truncatingIfNeeded: sequence >> 8)); bytes.append(UInt8(truncatingIfNeeded: sequence))
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: timestamp >> UInt32(shift))) }
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: ssrc >> UInt32(shift))) }
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// The header and the payload range of a received packet; nil when it is not
    /// RTP version 2 or its CSRC list, extension or padding overrun the packet.
    public static func parse(_ packet: [UInt8]) -> (header: RTPHeader, payload: Range<Int>)? {
        guard packet.count >= 12, packet[0] >> 6 == 2 else { return nil }
        let csrcCount = Int(packet[0] & 0x0F)
        var start = 12 + 4 * csrcCount
        guard start <= packet.count else { return nil }
        if packet[0] & 0x10 != 0 {
            guard start + 4 <= packet.count else { return nil }
            let words = Int(packet[start + 2]) << 8 | Int(packet[start + 3])
            start += 4 + 4 * words
            guard start <= packet.count else { return nil }
        }
        var end = packet.count
        if packet[0] & 0x20 != 0 {
            guard end > start else { return nil }
            let padding = Int(packet[end - 1])
            guard padding >= 1, padding <= end - start else { return nil }
            end -= padding
        }
        let sequence = UInt16(packet[2]) << 8 | UInt16(packet[3])
        var timestamp: UInt32 = 0
        var ssrc: UInt32 = 0
        for index in 4..<8 { timestamp = timestamp << 8 | UInt32(packet[index]) }
        for index in 8..<12 { ssrc = ssrc << 8 | UInt32(packet[index]) }
        let header = RTPHeader(payloadType: packet[1] & 0x7F, marker: packet[1] & 0x80 != 0,
                               sequence: sequence, timestamp: timestamp, ssrc: ssrc)
        return (header, start..<end)
    }
}

/// What the receiver of one RTP stream knows (RFC 3550 appendix A.1 and A.8):
/// packets received, packets expected from the sequence numbers, interarrival jitter.
public struct ReceptionStats: Sendable, Equatable {
    /// RTP clock rate: 8000 Hz for G.711.
    public let clockRate: Double
    public private(set) var received: UInt64 = 0
    private var baseSequence: UInt32 = 0
    private var maxSequence: UInt16 = 0
    private var cycles: UInt32 = 0
    private var lastTransit: Double?
    /// Interarrival jitter in timestamp units, smoothed with gain 1/16.
    public private(set) var jitterUnits: Double = 0

    /// A sequence jump this large is a restarted sender, not loss (RFC 3550 MAX_DROPOUT).
    static let maxDropout: UInt16 = 3000
    static let maxMisorder: UInt16 = 100

    public init(clockRate: Double = 8000) { self.clockRate = clockRate }

    /// Records one packet: its sequence number, RTP timestamp and arrival time.
    public mutating func record(sequence: UInt16, timestamp: UInt32, arrivalSeconds: Double) {
        if received == 0 {
            baseSequence = UInt32(sequence)
            maxSequence = sequence
        } else {
            let delta = sequence &- maxSequence
            if delta < Self.maxDropout {
                if sequence < maxSequence { cycles &+= 65536 }
                maxSequence = sequence
            } else if delta <= UInt16.max - Self.maxMisorder {
                // A large jump: the sender restarted. Start counting afresh.
                baseSequence = UInt32(sequence)
                maxSequence = sequence
                cycles = 0
                received = 0
                lastTransit = nil
            }
            // Otherwise a duplicate or a late, reordered packet: counted as received.
        }
        received += 1
        let transit = arrivalSeconds * clockRate - Double(timestamp)
        if let lastTransit {
            let difference = abs(transit - lastTransit)
            jitterUnits += (difference - jitterUnits) / 16
        }
        lastTransit = transit
    }

    public var expected: UInt64 {
        received == 0 ? 0 : UInt64(cycles) + UInt64(maxSequence) + 1 - UInt64(baseSequence)
    }

    /// Lost packets; duplicates can make received exceed expected, which is no loss.
    public var lost: UInt64 { expected > received ? expected - received : 0 }

    public var lossPercent: Double { expected == 0 ? 0 : 100 * Double(lost) / Double(expected) }

    public var jitterMs: Double { 1000 * jitterUnits / clockRate }
}
