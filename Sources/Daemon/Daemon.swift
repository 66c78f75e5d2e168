// `bloo daemon`: start as root, prepare what needs root, drop to the service user with
// only the capabilities the configuration needs, then run the control plane (signals,
// netlink events, confirm timers) on the main thread, the control socket on its own
// thread and the data plane on pinned workers.
import CSystem
import Config
import Control
import Glibc
import IO
import Log
import Synchronization
import System

public struct DaemonOptions: Sendable {
    /// The configuration store (commits, history).
    public var configDirectory = ConfigStore.defaultDirectory
    /// Call detail records: beside the configuration store, on the data partition
    /// (/data/cdr.log on the appliance).
    public var cdrFile: String {
        guard let slash = configDirectory.lastIndex(of: "/") else { return "cdr.log" }
        return String(configDirectory[..<slash]) + "/cdr.log"
    }
    public var controlSocket = ControlSocketPath.standard
    /// Runtime directory: the crash-loop record; owned by the service user after start.
    public var runDirectory = "/run/bloo"
    /// Overrides `system service-user` (name from /etc/passwd, or uid[:gid]).
    public var serviceUser: String?
    public var adminGroup = "bloo-admin"
    public var operatorGroup = "bloo-operator"
    /// SCHED_FIFO priority of the workers; keeps CAP_SYS_NICE only when set.
    public var realtimePriority: Int?
    /// Seconds SIGTERM may take before the process is killed by its own watchdog.
    public var stopDeadlineSeconds = 5
    /// Seconds per "minute" of commit confirmed (tests shorten it).
    public var confirmUnitSeconds: Int64 = 60

    public init() {}
}

/// Exit statuses of `bloo daemon`, for the init script.
public enum DaemonExit {
    public static let stopped: Int32 = 0
    public static let failed: Int32 = 1
    /// `reboot` was requested on the control socket: the supervisor reboots the box
    /// (the daemon itself keeps no CAP_SYS_BOOT).
    public static let rebootRequested: Int32 = 10
}

// The signal handler's only job: one byte into this pipe, read by the main loop.
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

public final class Daemon: @unchecked Sendable {
    let options: DaemonOptions
    let services: [any DaemonService]
    let log = Logger(subsystem: "daemon")
    let workers = WorkerPool()
    /// Guards everything below it; held by the main loop and the control thread.
    let lock = Mutex(())
    var store: ConfigStore?
    var configuration = FactoryDefault.configuration
    var networkSpec = NetworkSpec()
    var manager: InterfaceManager?
    var lastReport = ReconcileReport()
    var serviceProblems: [String] = []
    var events: [String] = []
    var privileges: PrivilegeReport?
    var recentUncleanStarts = 0
    var startedAt = 0
    let controlServing = Atomic<Bool>(false)
    /// -1 while running; the exit status once a stop was requested from the control socket.
    let requestedExit = Atomic<Int32>(-1)

    public init(options: DaemonOptions, services: [any DaemonService] = []) {
        self.options = options
        self.services = services
    }

    // MARK: Start-up

    public func run() -> Int32 {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { return fail("pipe: \(String(cString: strerror(errno)))") }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC); _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        signalPipeWrite = pipeFDs[1]
        let signalRead = pipeFDs[0]
        for number in [SIGTERM, SIGINT, SIGHUP] {
            signal(number) { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(signalPipeWrite, &byte, 1)
            }
        }
        signal(SIGPIPE, SIG_IGN)
        startedAt = Int(time(nil))

        guard getuid() == 0 else { return fail("must be started as root (it drops to the service user itself)") }
        if mkdir(options.runDirectory, 0o755) != 0 && errno != EEXIST {
            return fail("\(options.runDirectory): \(String(cString: strerror(errno)))")
        }

        // Crash-loop guard: hold off, loudly, when the last starts did not end cleanly.
        let history = StartHistory(path: options.runDirectory + "/daemon-starts")
        let unclean = history.recordStart()
        recentUncleanStarts = unclean.count
        let holdOff = StartHistory.holdOff(unclean: unclean.count)
        if holdOff > 0 {
            let message = "crash loop: \(unclean.count) unclean starts in the last \(StartHistory.windowSeconds / 60) minutes; waiting \(holdOff) s before starting again"
            log.critical("crash loop", ["starts": String(unclean.count), "hold_off_s": String(holdOff)])
            writeConsole("bloo daemon: " + message)
            var fds = [pollfd(fd: signalRead, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 1, Int32(holdOff * 1000)) > 0 { return DaemonExit.stopped }
        }

        // The configuration: a pending `commit confirmed` that expired while we were down is reverted first.
        let store: ConfigStore
        do {
            store = try ConfigStore(directory: options.configDirectory, confirmUnitSeconds: options.confirmUnitSeconds)
            try store.revertIfExpired()
            configuration = try store.running().configuration
        } catch {
            return fail("configuration store \(options.configDirectory): \(error)")
        }
        self.store = store
        networkSpec = NetworkTranslation.spec(configuration)

        let accountName = options.serviceUser ?? configuration.serviceUser ?? "bloo"
        let account: ServiceAccount
        do {
            account = try ServiceAccount.resolve(accountName)
        } catch {
            return fail(error.message)
        }
        var adminGroups: Set<UInt32> = []
        var operatorGroups: Set<UInt32> = []
        if let gid = ControlAccessPolicy.groupID(options.adminGroup) { adminGroups.insert(gid) } else {
            log.warning("admin group missing", ["group": options.adminGroup])
        }
        if let gid = ControlAccessPolicy.groupID(options.operatorGroup) { operatorGroups.insert(gid) } else {
            log.warning("operator group missing", ["group": options.operatorGroup])
        }

        // Everything that needs root, while the process has one thread.
        let keep = capabilities(for: configuration)
        let eventSource: NetworkEventSource
        let server: ControlServer
        do {
            manager = try InterfaceManager()
            eventSource = try NetworkEventSource()
            for service in services { try service.prepare(configuration) }
            server = try ControlServer(path: options.controlSocket, policy: ControlAccessPolicy(adminGroups: adminGroups, operatorGroups: operatorGroups))
        } catch {
            return fail("\(error)")
        }
        handOver([options.runDirectory, options.configDirectory, options.configDirectory + "/commits"]
                 + services.flatMap(\.serviceUserFiles), to: account)
        let controlCPU = configuration.controlCPUs?.cpus.first
        if let controlCPU, let problem = Placement.pinCurrentThread(to: controlCPU) {
            log.error("control plane not pinned", ["error": problem])
        }
        do {
            privileges = try Privileges.drop(to: account, keeping: keep)
        } catch {
            server.close()
            return fail(error.message)
        }

        // From here on: unprivileged, and threads may start.
        apply(configuration, reason: "start")
        let controlThread: WorkerThread
        do {
            controlThread = try WorkerThread.start(name: "bloo-control", cpu: controlCPU) { [self] in
                self.controlServing.store(true, ordering: .releasing)
                server.serve { request, caller, role in self.handle(request, caller: caller, role: role) }
                self.controlServing.store(false, ordering: .releasing)
            }
            try workers.start(cpus: configuration.dataCPUs?.cpus ?? [], realtimePriority: options.realtimePriority, services: services)
        } catch {
            server.stop()
            server.close()
            return fail("starting threads: \(error)")
        }
        log.notice("daemon running", ["user": account.name, "socket": options.controlSocket,
                                      "workers": String(workers.count)])

        let status = mainLoop(signalRead: signalRead, events: eventSource)

        // Stop within a bound: the watchdog ends the process if a service hangs.
        log.notice("daemon stopping", ["status": String(status)])
        alarm(UInt32(options.stopDeadlineSeconds + 2))
        server.stop()
        for service in services { service.stop(deadline: options.stopDeadlineSeconds) }
        workers.stop()
        controlThread.join()
        server.close()
        history.clear()
        log.notice("daemon stopped", [:])
        return status
    }

    /// Which capabilities to keep, and why: see `Capability`.
    func capabilities(for configuration: Configuration) -> Set<Capability> {
        var keep: Set<Capability> = [.netAdmin]
        let ports = configuration.tlsListeners.map(\.address.port) + configuration.tcpListeners.map(\.port)
        if ports.contains(where: { $0 < 1024 }) { keep.insert(.netBindService) }
        if options.realtimePriority != nil { keep.insert(.sysNice) }
        return keep
    }

    /// Gives the service user the directories (and files) it must write after the drop.
    private func handOver(_ paths: [String], to account: ServiceAccount) {
        for path in paths {
            if chown(path, account.uid, account.gid) != 0 { continue }
            guard let directory = opendir(path) else { continue }
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name == "." || name == ".." { continue }
                _ = lchown(path + "/" + name, account.uid, account.gid)
            }
            closedir(directory)
        }
    }

    private func fail(_ message: String) -> Int32 {
        log.critical("daemon failed", ["error": message])
        writeConsole("bloo daemon: " + message)
        return DaemonExit.failed
    }

    /// Straight to the console (stderr under init), independent of the log level.
    private func writeConsole(_ line: String) {
        let text = line + "\n"
        _ = text.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    }

    // MARK: The control plane

    private func mainLoop(signalRead: Int32, events: NetworkEventSource) -> Int32 {
        var reconcileDue: Int?
        var nextHousekeeping = WorkerPool.monotonicMs() + 1000
        var reportedStalled: [Int] = []
        while true {
            let now = WorkerPool.monotonicMs()
            let wake = min(nextHousekeeping, reconcileDue ?? Int.max)
            var fds = [pollfd(fd: signalRead, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: events.fd, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, Int32(max(0, min(1000, wake - now))))

            if fds[0].revents != 0 {
                var byte: UInt8 = 0
                while read(signalRead, &byte, 1) == 1 {
                    switch Int32(byte) {
                    case SIGTERM, SIGINT: return requestedExit.load(ordering: .acquiring) >= 0 ? requestedExit.load(ordering: .acquiring) : DaemonExit.stopped
                    case SIGHUP: reload()
                    default: break
                    }
                }
            }
            if fds[1].revents != 0 {
                let happened = events.drain()
                if noteEvents(happened) && reconcileDue == nil {
                    reconcileDue = WorkerPool.monotonicMs() + 300  // coalesce bursts
                }
            }
            let after = WorkerPool.monotonicMs()
            if let due = reconcileDue, after >= due {
                reconcileDue = nil
                lock.withLock { _ in reconcileNetwork(reason: "event") }
            }
            if after >= nextHousekeeping {
                nextHousekeeping = after + 1000
                revertExpiredCommit()
                // Logged when the set changes, not every second.
                let stalled = workers.stalled()
                if stalled != reportedStalled {
                    if stalled.isEmpty {
                        log.notice("workers recovered", [:])
                    } else {
                        log.error("workers stalled", ["workers": stalled.map(String.init).joined(separator: ",")])
                    }
                    reportedStalled = stalled
                }
            }
            let exit = requestedExit.load(ordering: .acquiring)
            if exit >= 0 { return exit }
        }
    }

    /// Logs and records events; returns whether one concerns what the configuration owns.
    private func noteEvents(_ happened: [NetworkEvent]) -> Bool {
        guard !happened.isEmpty else { return false }
        return lock.withLock { _ in
            let owned = Set(networkSpec.interfaces.map(\.name))
            var relevant = false
            for event in happened {
                log.info("network event", ["event": event.kind.rawValue, "interface": event.interface, "detail": event.detail])
                events.append(Self.timestamp() + " " + event.description)
                switch event.kind {
                case .overflow: relevant = true
                case .routeAdded, .routeRemoved:
                    if event.detail.hasSuffix("proto \(InterfaceManager.routeProtocol)") || owned.contains(event.interface) { relevant = true }
                default:
                    if owned.contains(event.interface) { relevant = true }
                }
            }
            if events.count > 200 { events.removeFirst(events.count - 200) }
            return relevant
        }
    }

    private func reload() {
        log.notice("reload", ["signal": "SIGHUP"])
        guard let store else { return }
        do {
            let fresh = try store.running().configuration
            apply(fresh, reason: "SIGHUP")
        } catch {
            log.error("reload failed", ["error": "\(error)"])
        }
    }

    private func revertExpiredCommit() {
        guard let store else { return }
        do {
            if let reverted = try store.revertIfExpired() {
                log.warning("commit not confirmed: reverted", ["sequence": String(reverted.sequence)])
                apply(try store.running().configuration, reason: "confirm timeout")
            }
        } catch {
            log.error("confirm check failed", ["error": "\(error)"])
        }
    }

    /// Makes `configuration` the applied one: network first, then the services.
    @discardableResult
    func apply(_ configuration: Configuration, reason: String) -> ReconcileReport {
        lock.withLock { _ in
            self.configuration = configuration
            networkSpec = NetworkTranslation.spec(configuration)
            if let level = LogLevel(name: configuration.logLevel) { LogSink.level = level }
            reconcileNetwork(reason: reason)
            serviceProblems = services.flatMap { service in service.apply(configuration).map { "\(service.name): \($0)" } }
            return lastReport
        }
    }

    /// Call with `lock` held.
    private func reconcileNetwork(reason: String) {
        guard let manager else { return }
        lastReport = manager.reconcile(networkSpec)
        log.info("network reconciled", ["reason": reason, "changes": String(lastReport.changes.count),
                                        "errors": String(lastReport.errors.count)])
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
