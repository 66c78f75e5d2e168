import IO

/// Hands out RTP/RTCP port pairs (even, even+1) from a range, least recently released
/// first, and never before a pair's quarantine has passed. Control plane only.
public struct PortAllocator {
    public let range: ClosedRange<UInt16>
    public let quarantineNanoseconds: UInt64
    /// FIFO of free pairs (even port) with the time they were released.
    private var free: [(port: UInt16, releasedAt: UInt64)] = []
    private var head = 0
    public private(set) var inUse = 0
    public let totalPairs: Int

    public init(range: ClosedRange<UInt16>, quarantineNanoseconds: UInt64) throws {
        self.range = range
        self.quarantineNanoseconds = quarantineNanoseconds
        var port = range.lowerBound % 2 == 0 ? range.lowerBound : range.lowerBound &+ 1
        while port != 0 && port < range.upperBound {
            free.append((port, 0))
            if port > UInt16.max - 2 { break }
            port += 2
        }
        totalPairs = free.count
        guard totalPairs > 0 else { throw RelayError.invalidPortRange(range) }
    }

    public var available: Int { free.count - head }

    /// Pairs released but still in quarantine at `now`.
    public func quarantined(now: UInt64) -> Int {
        free[head...].reduce(0) { $0 + ($1.releasedAt != 0 && $1.releasedAt + quarantineNanoseconds > now ? 1 : 0) }
    }

    /// The next pair whose quarantine has passed, or nil.
    public mutating func allocate(now: UInt64) -> UInt16? {
        guard head < free.count else { return nil }
        let candidate = free[head]
        if candidate.releasedAt != 0 && candidate.releasedAt + quarantineNanoseconds > now { return nil }
        head += 1
        if head > 1024 && head * 2 > free.count {
            free.removeFirst(head)
            head = 0
        }
        inUse += 1
        return candidate.port
    }

    /// Returns a pair; it becomes available again after the quarantine.
    public mutating func release(_ port: UInt16, now: UInt64) {
        free.append((port, max(now, 1)))
        inUse -= 1
    }
}
