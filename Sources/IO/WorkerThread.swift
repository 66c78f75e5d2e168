import Glibc
import CSystem

/// A POSIX thread, optionally pinned to one CPU before its body runs.
/// Started through a plain C entry point: Swift 6 would infer a closure literal
/// passed to pthread_create from main.swift as @MainActor (see platform-notes.md).
public final class WorkerThread: @unchecked Sendable {
    private var thread: pthread_t = 0
    private var joined = false
    /// The errno of the pinning attempt (0: pinned or not asked).
    public private(set) var pinError: Int32 = 0

    fileprivate final class Start {
        let name: String
        let cpu: Int?
        let body: @Sendable () -> Void
        unowned let owner: WorkerThread
        init(name: String, cpu: Int?, body: @escaping @Sendable () -> Void, owner: WorkerThread) {
            self.name = name; self.cpu = cpu; self.body = body; self.owner = owner
        }
    }

    private init() {}

    /// Starts `body` on a new thread named `name` (at most 15 bytes are kept), pinned to `cpu`.
    public static func start(name: String, cpu: Int? = nil, _ body: @escaping @Sendable () -> Void) throws -> WorkerThread {
        let worker = WorkerThread()
        let start = Unmanaged.passRetained(Start(name: name, cpu: cpu, body: body, owner: worker)).toOpaque()
        let rc = pthread_create(&worker.thread, nil, workerThreadEntry, start)
        guard rc == 0 else {
            Unmanaged<AnyObject>.fromOpaque(start).release()
            throw SystemError("pthread_create", rc)
        }
        return worker
    }

    fileprivate func recordPin(_ error: Int32) { pinError = error }

    /// Waits for the thread to finish.
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }

    /// The CPUs the calling thread may run on.
    public static func currentCPUs() -> [Int] {
        var cpus = [Int32](repeating: 0, count: 1024)
        let n = csys_current_thread_cpus(&cpus, Int32(cpus.count))
        return n > 0 ? cpus[0..<Int(n)].map(Int.init) : []
    }

    /// The CPU the calling thread is running on right now.
    public static func currentCPU() -> Int { Int(csys_current_cpu()) }
}

private func workerThreadEntry(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let argument else { return nil }
    let start = Unmanaged<WorkerThread.Start>.fromOpaque(argument).takeRetainedValue()
    _ = csys_set_thread_name(String(start.name.utf8.prefix(15)) ?? "worker")
    if let cpu = start.cpu {
        start.owner.recordPin(csys_pin_current_thread(Int32(cpu)))
    }
    start.body()
    return nil
}
