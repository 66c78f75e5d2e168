import Synchronization

/// A bounded, lock-free queue for exactly one producer thread and one consumer thread.
/// Push fails (returns false) when full: the producer decides what to do, nothing grows.
/// The control plane talks to data-plane workers through a pair of these.
public final class SPSCQueue<Element>: @unchecked Sendable {
    public let capacity: Int
    private let mask: Int
    private let slots: UnsafeMutablePointer<Element>
    /// Next index to read; written only by the consumer.
    private let head = Atomic<Int>(0)
    /// Keeps the two indices on separate cache lines (no false sharing).
    private let padding: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    /// Next index to write; written only by the producer.
    private let tail = Atomic<Int>(0)

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int) {
        precondition(capacity > 0, "SPSCQueue capacity must be positive")
        var size = 1
        while size < capacity { size <<= 1 }
        self.capacity = size
        mask = size - 1
        slots = .allocate(capacity: size)
    }

    deinit {
        var h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .relaxed)
        while h != t {
            (slots + (h & mask)).deinitialize(count: 1)
            h &+= 1
        }
        slots.deallocate()
    }

    /// Producer side. False when the queue is full.
    @inline(__always)
    public func push(_ element: consuming Element) -> Bool {
        let t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        if t &- h >= capacity { return false }
        (slots + (t & mask)).initialize(to: element)
        tail.store(t &+ 1, ordering: .releasing)
        return true
    }

    /// Consumer side. Nil when the queue is empty.
    @inline(__always)
    public func pop() -> Element? {
        let h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        if h == t { return nil }
        let element = (slots + (h & mask)).move()
        head.store(h &+ 1, ordering: .releasing)
        return element
    }

    /// Approximate number of queued elements (exact when called by either side while the other is idle).
    public var count: Int { tail.load(ordering: .acquiring) &- head.load(ordering: .acquiring) }
    public var isEmpty: Bool { count == 0 }
}
