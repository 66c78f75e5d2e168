/// Receive statistics of one RTP stream, RFC 3550 appendix A.1 (sequence numbers,
/// loss) and A.8 (interarrival jitter), plus duplicate and reorder counts from a
/// 64-packet history window. A plain value: no allocation, cheap to copy out.
public struct StreamStatistics: Equatable, Sendable {
    static let maxDropout: UInt16 = 3000
    static let maxMisorder: UInt16 = 100
    static let sequenceModulus: UInt32 = 1 << 16

    // Stored in the order an in-order packet touches them (one cache line), then the
    // counters of the rarer cases.
    public private(set) var ssrc: UInt32 = 0
    public private(set) var started = false
    private var haveTransit = false
    public private(set) var maxSequence: UInt16 = 0
    /// Wrap-arounds of the sequence number, times 65536.
    public private(set) var cycles: UInt32 = 0
    private var lastTransit: Int32 = 0
    /// Packets accepted into the statistics (duplicates included, as in A.1).
    public private(set) var received: UInt64 = 0
    /// Bit i set: sequence (maxSequence - i) has been received.
    private var history: UInt64 = 0
    /// Jitter scaled by 16 (A.8 integer form).
    private var jitterScaled: UInt32 = 0
    private var badSequence: UInt32 = sequenceModulus + 1
    public private(set) var baseSequence: UInt16 = 0
    public private(set) var duplicates: UInt64 = 0
    /// Packets that arrived after a higher sequence number had been seen.
    public private(set) var reordered: UInt64 = 0
    /// Large jumps that restarted the sequence (A.1 "bad_seq" confirmed).
    public private(set) var resyncs: UInt64 = 0

    public init() {}

    public var extendedMax: UInt64 { UInt64(cycles) + UInt64(maxSequence) }
    public var expected: UInt64 { started ? extendedMax - UInt64(baseSequence) + 1 : 0 }
    /// Cumulative packets lost (A.3), never negative here.
    public var lost: UInt64 {
        let unique = received - duplicates
        return expected > unique ? expected - unique : 0
    }
    /// Interarrival jitter in timestamp units (A.8).
    public var jitter: UInt32 { jitterScaled >> 4 }

    /// Records one packet. `arrival` is the arrival time in the stream's timestamp units.
    @inline(__always)
    public mutating func record(sequence: UInt16, timestamp: UInt32, ssrc: UInt32, arrival: UInt32) {
        if !started || ssrc != self.ssrc {
            restart(sequence: sequence, ssrc: ssrc)
            received = 1
            updateJitter(timestamp: timestamp, arrival: arrival, reset: true)
            return
        }
        let delta = sequence &- maxSequence
        if delta == 0 {
            duplicates += 1
            received += 1
            return
        }
        if delta < Self.maxDropout {
            // In order, possibly with a gap.
            if sequence < maxSequence { cycles &+= Self.sequenceModulus }
            history = delta >= 64 ? 1 : (history << UInt64(delta)) | 1
            maxSequence = sequence
        } else if delta <= UInt16.max &- Self.maxMisorder {
            // A very large jump: restart only if the next packet confirms it (A.1).
            if UInt32(sequence) == badSequence {
                resyncs += 1
                restart(sequence: sequence, ssrc: ssrc)
                received = 1
                updateJitter(timestamp: timestamp, arrival: arrival, reset: true)
            } else {
                badSequence = (UInt32(sequence) + 1) & (Self.sequenceModulus - 1)
            }
            return
        } else {
            // Late (duplicate or reordered) packet, within maxMisorder behind.
            let behind = maxSequence &- sequence
            if behind < 64 {
                let bit: UInt64 = 1 << UInt64(behind)
                if history & bit != 0 {
                    duplicates += 1
                    received += 1
                    return
                }
                history |= bit
            }
            reordered += 1
        }
        received += 1
        updateJitter(timestamp: timestamp, arrival: arrival, reset: false)
    }

    private mutating func restart(sequence: UInt16, ssrc: UInt32) {
        self.ssrc = ssrc
        started = true
        baseSequence = sequence
        maxSequence = sequence
        cycles = 0
        received = 0
        duplicates = 0
        reordered = 0
        badSequence = Self.sequenceModulus + 1
        history = 1
        jitterScaled = 0
    }

    @inline(__always)
    private mutating func updateJitter(timestamp: UInt32, arrival: UInt32, reset: Bool) {
        let transit = Int32(bitPattern: arrival &- timestamp)
        if reset || !haveTransit {
            lastTransit = transit
            haveTransit = true
            return
        }
        let difference = transit &- lastTransit
        lastTransit = transit
        let d = difference.magnitude
        // J += (|D| - J) / 16, in the scaled integer form of A.8.
        jitterScaled = jitterScaled &+ d &- ((jitterScaled &+ 8) >> 4)
    }
}
