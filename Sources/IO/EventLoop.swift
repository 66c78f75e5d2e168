import Glibc
import CSystem

/// Readiness a handler asks for / is told about.
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = IOEvents(rawValue: EPOLLIN.rawValue)
    public static let writable = IOEvents(rawValue: EPOLLOUT.rawValue)
    /// Error or hang-up: always reported, never needs asking for.
    public static let error = IOEvents(rawValue: EPOLLERR.rawValue)
    public static let hangup = IOEvents(rawValue: EPOLLHUP.rawValue | EPOLLRDHUP.rawValue)
    /// Edge-triggered: the handler must drain until EAGAIN.
    public static let edgeTriggered = IOEvents(rawValue: EPOLLET.rawValue)
}

/// Something that reacts to readiness of descriptors it registered.
/// `tag` is the value given at registration, so one handler can serve many descriptors
/// without a lookup.
public protocol IOHandler: AnyObject {
    func handle(events: IOEvents, tag: UInt64)
}

/// One ready descriptor, as handed to an `IOBatchHandler`.
public struct ReadyEvent: Sendable {
    public var tag: UInt64
    public var events: IOEvents
}

/// Takes every ready descriptor of one wake-up at once, straight from epoll's data word:
/// no registration table between the kernel and the handler, and the handler can
/// prefetch the state of all of them before touching any (the relay's session table
/// outgrows the caches; one miss per packet costs as much as the relay's own code).
public protocol IOBatchHandler: AnyObject {
    func handle(ready: UnsafeBufferPointer<ReadyEvent>)
    /// Called at the end of every iteration, after the ready handlers, whether or not the
    /// iteration had events: what the handler batched up or left over goes out here.
    func iterationEnded()
}

extension IOBatchHandler {
    public func iterationEnded() {}
}

/// Identifies one registration in an `EventLoop`.
public struct Registration: Hashable, Sendable {
    public let slot: Int
}

/// Identifies one scheduled timer.
public struct TimerID: Hashable, Sendable {
    public let value: UInt64
}

/// A single-threaded epoll loop with timers. Lives on one thread: not Sendable.
/// Other threads reach it only through a `Wakeup` (eventfd) registered here.
public final class EventLoop {
    public let epollFD: Int32
    private struct Slot {
        var handler: IOHandler?
        var tag: UInt64
        var fd: Int32
    }
    private var slots: ContiguousArray<Slot> = []
    private var freeSlots: [Int] = []
    private let events: UnsafeMutablePointer<epoll_event>
    private let maxEvents: Int32
    private var running = false
    // Unchecked exclusivity on what every iteration touches: the loop runs on one thread,
    // and no access to these is held across a call out to a handler or timer body
    // (the dynamic checks were about half of the loop's own per-iteration cost).
    /// The loop's batch handler and its descriptors, marked in epoll's data word.
    @exclusivity(unchecked) private var batchHandler: IOBatchHandler?
    private let batchReady: UnsafeMutablePointer<ReadyEvent>
    private static let batchMark: UInt64 = 1 << 63
    public private(set) var batchedRegistrationCount = 0

    // Timers: a binary min-heap of (deadline, id); cancelled ids are dropped lazily.
    private struct TimerEntry {
        var deadline: UInt64
        var id: UInt64
    }
    /// A struct, not a tuple, and indexed rather than `.first`: unspecialized generic
    /// code over tuples allocates in debug builds, and this runs every iteration.
    @exclusivity(unchecked) private var timerHeap: ContiguousArray<TimerEntry> = []
    /// Bodies are boxed in a class: a closure stored directly as a dictionary value is
    /// re-abstracted (a heap-allocated thunk) every time it is read back.
    private final class TimerBody {
        let interval: UInt64
        let run: () -> Void
        init(interval: UInt64, run: @escaping () -> Void) { self.interval = interval; self.run = run }
    }
    private var timerBodies: [UInt64: TimerBody] = [:]
    private var repeatingTimers: [UInt64: TimerBody] = [:]
    private var nextTimerID: UInt64 = 1
    @exclusivity(unchecked) private var skipWait = false

    /// CLOCK_MONOTONIC when the last epoll_wait returned. Handlers stamp what they
    /// received with it: one clock read per wake-up instead of one per socket.
    @exclusivity(unchecked) public private(set) var wakeTime: UInt64 = 0

    public init(maxEvents: Int = 256) throws {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw SystemError("epoll_create1") }
        epollFD = fd
        self.maxEvents = Int32(maxEvents)
        events = .allocate(capacity: maxEvents)
        events.initialize(repeating: epoll_event(), count: maxEvents)
        batchReady = .allocate(capacity: maxEvents)
        batchReady.initialize(repeating: ReadyEvent(tag: 0, events: []), count: maxEvents)
    }

    deinit {
        events.deallocate()
        batchReady.deallocate()
        close(epollFD)
    }

    public var registrationCount: Int { slots.count - freeSlots.count }

    /// Registers `fd`; `handler` is held strongly until `unregister`.
    @discardableResult
    public func register(fd: Int32, events wanted: IOEvents, handler: IOHandler, tag: UInt64 = 0) throws -> Registration {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = Slot(handler: handler, tag: tag, fd: fd)
        } else {
            slot = slots.count
            slots.append(Slot(handler: handler, tag: tag, fd: fd))
        }
        var ev = epoll_event()
        ev.events = wanted.rawValue
        ev.data.u64 = UInt64(slot)
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev) == 0 else {
            let error = SystemError("epoll_ctl(ADD)")
            slots[slot] = Slot(handler: nil, tag: 0, fd: -1)
            freeSlots.append(slot)
            throw error
        }
        return Registration(slot: slot)
    }

    /// Changes the readiness a registration waits for (e.g. add .writable while output is pending).
    public func modify(_ registration: Registration, events wanted: IOEvents) throws {
        var ev = epoll_event()
        ev.events = wanted.rawValue
        ev.data.u64 = UInt64(registration.slot)
        guard epoll_ctl(epollFD, EPOLL_CTL_MOD, slots[registration.slot].fd, &ev) == 0 else {
            throw SystemError("epoll_ctl(MOD)")
        }
    }

    /// Sets the handler of every `registerBatched` descriptor (one per loop; held strongly).
    public func setBatchHandler(_ handler: IOBatchHandler) { batchHandler = handler }

    /// Registers `fd` for the batch handler, which gets `tag` (below 2^63) back.
    public func registerBatched(fd: Int32, events wanted: IOEvents, tag: UInt64) throws {
        precondition(batchHandler != nil, "setBatchHandler first")
        precondition(tag & Self.batchMark == 0, "batched tags are below 2^63")
        var ev = epoll_event()
        ev.events = wanted.rawValue
        ev.data.u64 = tag | Self.batchMark
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev) == 0 else { throw SystemError("epoll_ctl(ADD)") }
        batchedRegistrationCount += 1
    }

    /// Removes a `registerBatched` descriptor (before its owner closes it).
    public func unregisterBatched(fd: Int32) {
        if epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil) == 0 { batchedRegistrationCount -= 1 }
    }

    /// Removes a registration. The descriptor is not closed (its owner closes it).
    public func unregister(_ registration: Registration) {
        let slot = registration.slot
        guard slot < slots.count, slots[slot].handler != nil else { return }
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, slots[slot].fd, nil)
        slots[slot] = Slot(handler: nil, tag: 0, fd: -1)
        freeSlots.append(slot)
    }

    // MARK: Timers

    /// Runs `body` once, `nanoseconds` from now, on this loop's thread.
    @discardableResult
    public func schedule(afterNanoseconds nanoseconds: UInt64, _ body: @escaping () -> Void) -> TimerID {
        let id = nextTimerID
        nextTimerID += 1
        timerBodies[id] = TimerBody(interval: 0, run: body)
        heapPush(TimerEntry(deadline: monotonicNanoseconds() &+ nanoseconds, id: id))
        return TimerID(value: id)
    }

    /// Runs `body` every `nanoseconds` until cancelled. Firing allocates nothing
    /// (the heap's storage is reused), so data-plane loops can use it.
    @discardableResult
    public func scheduleRepeating(everyNanoseconds nanoseconds: UInt64, _ body: @escaping () -> Void) -> TimerID {
        let id = nextTimerID
        nextTimerID += 1
        let interval = max(nanoseconds, 1)
        repeatingTimers[id] = TimerBody(interval: interval, run: body)
        timerHeap.reserveCapacity(timerHeap.count + 8)
        heapPush(TimerEntry(deadline: monotonicNanoseconds() &+ interval, id: id))
        return TimerID(value: id)
    }

    /// Cancels a timer that has not fired yet, or a repeating timer (no effect otherwise).
    public func cancel(_ timer: TimerID) {
        timerBodies[timer.value] = nil
        repeatingTimers[timer.value] = nil
    }

    public var pendingTimers: Int { timerBodies.count + repeatingTimers.count }

    /// The next iteration does not wait: work is left over that no descriptor will
    /// announce again (an edge-triggered socket drained only in part).
    public func skipNextWait() { skipWait = true }

    private func heapPush(_ item: TimerEntry) {
        timerHeap.append(item)
        var child = timerHeap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if timerHeap[parent].deadline <= timerHeap[child].deadline { break }
            timerHeap.swapAt(parent, child)
            child = parent
        }
    }

    private func heapPop() -> TimerEntry? {
        guard !timerHeap.isEmpty else { return nil }
        let first = timerHeap[0]
        let last = timerHeap.removeLast()
        if !timerHeap.isEmpty {
            timerHeap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < timerHeap.count && timerHeap[left].deadline < timerHeap[smallest].deadline { smallest = left }
                if right < timerHeap.count && timerHeap[right].deadline < timerHeap[smallest].deadline { smallest = right }
                if smallest == parent { break }
                timerHeap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }

    /// Fires due timers; returns the milliseconds until the next one (-1: none).
    /// `now` (when given) stands for the clock until a timer body has run.
    private func runDueTimers(now given: UInt64? = nil) -> Int32 {
        var known = given
        while !timerHeap.isEmpty {
            let top = timerHeap[0]
            let now = known ?? monotonicNanoseconds()
            known = nil
            if top.deadline > now {
                // Not due yet (a cancelled entry is only dropped once due: no lookup here).
                let ms = (top.deadline - now + 999_999) / 1_000_000
                return Int32(min(ms, 60_000))
            }
            _ = heapPop()
            if let repeating = repeatingTimers[top.id] {
                // Next deadline from the planned one, not from now: no drift.
                heapPush(TimerEntry(deadline: max(top.deadline &+ repeating.interval, now &+ 1), id: top.id))
                repeating.run()
            } else if let body = timerBodies.removeValue(forKey: top.id) {
                body.run()
            }
        }
        return -1
    }

    // MARK: Running

    /// Waits at most `timeoutMilliseconds` (-1: until something happens, bounded by timers),
    /// dispatches ready handlers and due timers. Returns the number of ready descriptors.
    @discardableResult
    public func runOnce(timeoutMilliseconds: Int32 = -1) throws -> Int {
        var timeout = runDueTimers()
        if timeoutMilliseconds >= 0 && (timeout < 0 || timeoutMilliseconds < timeout) {
            timeout = timeoutMilliseconds
        }
        if skipWait {
            skipWait = false
            timeout = 0
        }
        let count = epoll_wait(epollFD, events, maxEvents, timeout)
        if count < 0 {
            if csys_errno() == EINTR { return 0 }
            throw SystemError("epoll_wait")
        }
        wakeTime = monotonicNanoseconds()
        var batched = 0
        for index in 0..<Int(count) {
            let ev = events[index]
            let data = ev.data.u64
            if data & Self.batchMark != 0 {
                batchReady[batched] = ReadyEvent(tag: data & ~Self.batchMark, events: IOEvents(rawValue: ev.events))
                batched += 1
                continue
            }
            let slot = Int(truncatingIfNeeded: data)
            guard slot < slots.count, let handler = slots[slot].handler else { continue }
            handler.handle(events: IOEvents(rawValue: ev.events), tag: slots[slot].tag)
        }
        let batchHandler = self.batchHandler  // one reference for the whole iteration
        if batched > 0, let batchHandler {
            batchHandler.handle(ready: UnsafeBufferPointer(start: batchReady, count: batched))
        }
        // Batches that handlers filled (sendmmsg of tunnel media) go out once per wake-up.
        batchHandler?.iterationEnded()
        // Timers due by the wake-up: no clock read of its own (a data-plane wake-up often
        // carries one packet, and each read showed in its profile). The next iteration
        // reads the clock before it sleeps, so nothing fires later than that.
        _ = runDueTimers(now: wakeTime)
        return Int(count)
    }

    /// Runs until `stop()` is called (from a handler or timer on this thread).
    public func run() throws {
        running = true
        while running { try runOnce() }
    }

    public func stop() { running = false }
}
