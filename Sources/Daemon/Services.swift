// Where the appliance services (relay, tunnel, mirror, ...) plug into the daemon.
// The daemon owns the process: privileges, placement, signals, configuration and
// health. A service owns its sockets and sessions.
import Config
import Glibc
import IO
import Log
import Synchronization

/// What a service reports for `show health` and for the update's health check.
public struct ServiceHealth: Sendable, Equatable {
    /// Listeners the service should have open, and whether each is.
    public var listeners: [(name: String, up: Bool)]
    /// nil: the service does not talk to the gatekeeper.
    public var gatekeeperReachable: Bool?
    /// One line for `show health` when something is wrong.
    public var problem: String?

    public init(listeners: [(name: String, up: Bool)] = [], gatekeeperReachable: Bool? = nil, problem: String? = nil) {
        self.listeners = listeners
        self.gatekeeperReachable = gatekeeperReachable
        self.problem = problem
    }

    public static func == (lhs: ServiceHealth, rhs: ServiceHealth) -> Bool {
        lhs.listeners.map(\.name) == rhs.listeners.map(\.name) && lhs.listeners.map(\.up) == rhs.listeners.map(\.up)
            && lhs.gatekeeperReachable == rhs.gatekeeperReachable && lhs.problem == rhs.problem
    }
}

/// An appliance service. Call order: `prepare` (as root, single-threaded: open
/// privileged sockets), then privileges are dropped, then `attach` once on every worker
/// thread, then `apply` for each configuration (start-up, commit, rollback, SIGHUP),
/// finally `stop` (SIGTERM: release calls with a proper cause, unregister).
public protocol DaemonService: AnyObject, Sendable {
    var name: String { get }
    /// Runs as root before any thread exists. Capabilities this service needs kept
    /// must be listed by `DaemonOptions`/configuration, not assumed.
    func prepare(_ configuration: Configuration) throws
    /// Runs on worker `index`'s thread before its loop starts: register sockets there.
    func attach(worker index: Int, loop: EventLoop)
    /// Applies a new configuration without dropping calls; returns problems, if any.
    func apply(_ configuration: Configuration) -> [String]
    /// Stops within `deadline` seconds.
    func stop(deadline: Int)
    func health() -> ServiceHealth
    /// Rows for a `show` topic this service owns (nil: not one of its topics).
    func show(_ topic: String) -> [(key: String, value: String)]?
    /// Files it opened as root in `prepare` that the service user must own afterwards.
    var serviceUserFiles: [String] { get }
}

extension DaemonService {
    public func show(_ topic: String) -> [(key: String, value: String)]? { nil }
    public var serviceUserFiles: [String] { [] }
}

/// The data-plane worker threads: one per configured data CPU, each pinned there and
/// running an `EventLoop` that services attach to. A heartbeat timer proves liveness.
final class WorkerPool: Sendable {
    struct Worker: Sendable {
        let index: Int
        let cpu: Int?
        let thread: WorkerThread
        let wakeup: Wakeup
    }
    private let workers: Mutex<[Worker]> = Mutex([])
    /// Monotonic milliseconds of each worker's last heartbeat.
    private let heartbeats: Mutex<[Int: Int]> = Mutex([:])
    private let stopping = Atomic<Bool>(false)
    private let log = Logger(subsystem: "workers")
    static let heartbeatMs: UInt64 = 500

    /// Starts one worker per CPU in `cpus` (one unpinned worker when the list is empty).
    func start(cpus: [Int], realtimePriority: Int?, services: [any DaemonService]) throws {
        let placements: [Int?] = cpus.isEmpty ? [nil] : cpus.map { $0 }
        for (index, cpu) in placements.enumerated() {
            let wakeup = try Wakeup()
            heartbeats.withLock { $0[index] = Self.monotonicMs() }
            let thread = try WorkerThread.start(name: "bloo-worker\(index)", cpu: cpu) { [self] in
                self.run(index: index, wakeup: wakeup, realtimePriority: realtimePriority, services: services)
            }
            if thread.pinError != 0, let cpu {
                log.error("worker not pinned", ["worker": String(index), "cpu": String(cpu),
                                                "error": String(cString: strerror(thread.pinError))])
            }
            workers.withLock { $0.append(Worker(index: index, cpu: cpu, thread: thread, wakeup: wakeup)) }
        }
        log.info("workers started", ["count": String(placements.count),
                                     "cpus": cpus.isEmpty ? "any" : cpus.map(String.init).joined(separator: ",")])
    }

    private func run(index: Int, wakeup: Wakeup, realtimePriority: Int?, services: [any DaemonService]) {
        if let priority = realtimePriority {
            var parameters = sched_param(sched_priority: Int32(priority))
            let rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &parameters)
            if rc != 0 {
                log.error("real-time scheduling refused", ["worker": String(index), "error": String(cString: strerror(rc))])
            }
        }
        let loop: EventLoop
        do {
            loop = try EventLoop()
        } catch {
            log.critical("worker loop failed", ["worker": String(index), "error": "\(error)"])
            return
        }
        let doorbell = ClosureHandler { [self] _ in
            wakeup.drain()
            if self.stopping.load(ordering: .acquiring) { loop.stop() }
        }
        _ = try? loop.register(fd: wakeup.fd, events: .readable, handler: doorbell)
        func beat() {
            heartbeats.withLock { $0[index] = Self.monotonicMs() }
            _ = loop.schedule(afterNanoseconds: Self.heartbeatMs * 1_000_000) { beat() }
        }
        beat()
        for service in services { service.attach(worker: index, loop: loop) }
        if stopping.load(ordering: .acquiring) { return }
        do {
            try loop.run()
        } catch {
            log.critical("worker loop failed", ["worker": String(index), "error": "\(error)"])
        }
    }

    /// Workers whose heartbeat is older than 3 periods.
    func stalled() -> [Int] {
        let now = Self.monotonicMs()
        return heartbeats.withLock { beats in beats.filter { now - $0.value > 3 * Int(Self.heartbeatMs) }.map(\.key).sorted() }
    }

    var count: Int { workers.withLock { $0.count } }

    var placements: [(index: Int, cpu: Int?)] { workers.withLock { $0.map { ($0.index, $0.cpu) } } }

    func stop() {
        stopping.store(true, ordering: .releasing)
        let all = workers.withLock { $0 }
        for worker in all { worker.wakeup.signal() }
        for worker in all { worker.thread.join() }
    }

    static func monotonicMs() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
    }
}
