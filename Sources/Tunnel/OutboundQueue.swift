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

    /// One queued frame: where its bytes are in `storage`. Frames are stored back to
    /// back in one buffer, so queueing a media packet allocates nothing once the
    /// buffer has grown to the connection's usual backlog.
    private struct Entry: Sendable {
        var start: Int
        var length: Int
        var enqueuedAt: UInt64
        var isMedia: Bool
    }

    public let maxBytes: Int
    public let maxMediaAgeNanos: UInt64
    public private(set) var counters = Counters()
    public private(set) var queuedBytes = 0
    private var storage: [UInt8] = []
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
        guard queuedBytes + Frame.headerSize + frame.payload.count <= maxBytes else { return false }
        compactIfUseful()
        let start = storage.count
        frame.encode(into: &storage)
        record(start: start, now: now, isMedia: false)
        return true
    }

    /// Queues a media frame; drops it (counted) when the queue is full.
    public mutating func pushMedia(_ frame: Frame, now: UInt64) {
        guard admitMedia(Frame.headerSize + frame.payload.count) else { return }
        let start = storage.count
        frame.encode(into: &storage)
        record(start: start, now: now, isMedia: true)
    }

    /// Queues an already encoded media frame.
    public mutating func pushMedia(_ encoded: [UInt8], now: UInt64) {
        guard admitMedia(encoded.count) else { return }
        let start = storage.count
        storage.append(contentsOf: encoded)
        record(start: start, now: now, isMedia: true)
    }

    /// Queues a MEDIA frame for `packet`, encoded straight into the queue (the hot path).
    public mutating func pushMedia(channel: UInt16, kind: MediaKind, packet: UnsafeRawBufferPointer, now: UInt64) {
        let payloadLength = packet.count + 1
        guard admitMedia(Frame.headerSize + payloadLength) else { return }
        let start = storage.count
        Frame.appendHeader(type: MessageType.media.rawValue, channel: channel, payloadLength: payloadLength, to: &storage)
        storage.append(kind.rawValue)
        storage.append(contentsOf: packet)
        record(start: start, now: now, isMedia: true)
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
            guard output.isEmpty || output.count + entry.length <= limit else { break }
            storage.withUnsafeBufferPointer { output.append(contentsOf: UnsafeBufferPointer(rebasing: $0[entry.start..<(entry.start + entry.length)])) }
            if entry.isMedia { counters.mediaSent += 1 } else { counters.signallingSent += 1 }
            pop()
        }
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            storage.removeAll(keepingCapacity: storage.capacity <= 64 * 1024)
            head = 0
        }
    }

    /// Drops every stale media frame now, even when nothing can be written.
    public mutating func expire(now: UInt64) {
        guard head < entries.count else { return }
        let maxAge = maxMediaAgeNanos
        let isStale = { (entry: Entry) in entry.isMedia && now >= entry.enqueuedAt && now - entry.enqueuedAt > maxAge }
        guard entries[head...].contains(where: isStale) else { return }
        var keptEntries: [Entry] = []
        var keptBytes: [UInt8] = []
        keptEntries.reserveCapacity(entries.count - head)
        keptBytes.reserveCapacity(queuedBytes)
        for entry in entries[head...] {
            if isStale(entry) {
                counters.mediaDroppedStale += 1
                queuedBytes -= entry.length
            } else {
                keptEntries.append(Entry(start: keptBytes.count, length: entry.length, enqueuedAt: entry.enqueuedAt,
                                         isMedia: entry.isMedia))
                keptBytes.append(contentsOf: storage[entry.start..<(entry.start + entry.length)])
            }
        }
        entries = keptEntries
        storage = keptBytes
        head = 0
    }

    private mutating func admitMedia(_ length: Int) -> Bool {
        guard queuedBytes + length <= maxBytes else {
            counters.mediaDroppedFull += 1
            return false
        }
        compactIfUseful()
        return true
    }

    private mutating func record(start: Int, now: UInt64, isMedia: Bool) {
        let length = storage.count - start
        entries.append(Entry(start: start, length: length, enqueuedAt: now, isMedia: isMedia))
        queuedBytes += length
    }

    /// Forgets frames already taken once they are half the queue (amortised O(1)).
    private mutating func compactIfUseful() {
        guard head > 0 && head >= entries.count / 2 else { return }
        let consumed = head < entries.count ? entries[head].start : storage.count
        storage.removeFirst(consumed)
        entries.removeFirst(head)
        for index in entries.indices { entries[index].start -= consumed }
        head = 0
    }

    private mutating func pop() {
        queuedBytes -= entries[head].length
        head += 1
    }
}
