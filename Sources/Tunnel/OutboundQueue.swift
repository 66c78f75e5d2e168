// What waits to be written to one tunnel connection. Signalling is never dropped;
// media is real time, so a MEDIA frame that has waited longer than `maxMediaAge`
// (a stalled TCP window, a slow client) is dropped and counted instead of being
// sent late. Memory is bounded: beyond `maxBytes` new media is refused, and a
// signalling frame that does not fit means the peer stopped reading (the caller
// closes the connection).

public struct OutboundQueue: Sendable {
    public struct Counters: Sendable, Equatable {
        public var mediaSent: UInt64 = 0
        public var mediaDroppedStale: UInt64 = 0
        public var mediaDroppedFull: UInt64 = 0
        public var signallingSent: UInt64 = 0
    }

    private struct Entry: Sendable {
        var bytes: [UInt8]
        var enqueuedAt: UInt64
        var isMedia: Bool
    }

    public let maxBytes: Int
    public let maxMediaAgeNanos: UInt64
    public private(set) var counters = Counters()
    public private(set) var queuedBytes = 0
    private var entries: [Entry] = []
    private var head = 0

    public init(maxBytes: Int = 256 * 1024, maxMediaAgeNanos: UInt64 = 60_000_000) {
        self.maxBytes = maxBytes
        self.maxMediaAgeNanos = maxMediaAgeNanos
    }

    public var isEmpty: Bool { head == entries.count }

    /// Queues a signalling frame. Returns false when the queue is full: the peer
    /// is not reading and the connection must end (signalling is never dropped).
    public mutating func pushSignalling(_ frame: Frame, now: UInt64) -> Bool {
        let bytes = frame.encoded
        guard queuedBytes + bytes.count <= maxBytes else { return false }
        append(Entry(bytes: bytes, enqueuedAt: now, isMedia: false))
        return true
    }

    /// Queues a media frame; drops it (counted) when the queue is full.
    public mutating func pushMedia(_ frame: Frame, now: UInt64) {
        pushMedia(frame.encoded, now: now)
    }

    /// Queues an already encoded media frame.
    public mutating func pushMedia(_ encoded: [UInt8], now: UInt64) {
        guard queuedBytes + encoded.count <= maxBytes else {
            counters.mediaDroppedFull += 1
            return
        }
        append(Entry(bytes: encoded, enqueuedAt: now, isMedia: true))
    }

    /// Moves whole frames into `output` until it holds `limit` bytes or the queue is
    /// empty. Media older than the bound at `now` is dropped on the way.
    public mutating func take(now: UInt64, into output: inout [UInt8], limit: Int) {
        while head < entries.count {
            let entry = entries[head]
            if entry.isMedia, now >= entry.enqueuedAt, now - entry.enqueuedAt > maxMediaAgeNanos {
                counters.mediaDroppedStale += 1
                pop()
                continue
            }
            guard output.isEmpty || output.count + entry.bytes.count <= limit else { break }
            output.append(contentsOf: entry.bytes)
            if entry.isMedia { counters.mediaSent += 1 } else { counters.signallingSent += 1 }
            pop()
        }
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        }
    }

    /// Drops every stale media frame now, even when nothing can be written.
    public mutating func expire(now: UInt64) {
        guard head < entries.count else { return }
        var kept: [Entry] = []
        kept.reserveCapacity(entries.count - head)
        for entry in entries[head...] {
            if entry.isMedia, now >= entry.enqueuedAt, now - entry.enqueuedAt > maxMediaAgeNanos {
                counters.mediaDroppedStale += 1
                queuedBytes -= entry.bytes.count
            } else {
                kept.append(entry)
            }
        }
        entries = kept
        head = 0
    }

    private mutating func append(_ entry: Entry) {
        if head > 0 && head >= entries.count / 2 {
            entries.removeFirst(head)
            head = 0
        }
        entries.append(entry)
        queuedBytes += entry.bytes.count
    }

    private mutating func pop() {
        queuedBytes -= entries[head].bytes.count
        entries[head].bytes = []
        head += 1
    }
}
