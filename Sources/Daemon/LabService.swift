// LAB TOOLS as a daemon service: the lab gatekeeper and the lab gateway (module Lab),
// configured by `lab gatekeeper` / `lab gateway` and listening on the loopback only
// (Config refuses other addresses). They let a newcomer place a real test call against
// the appliance with nothing else running; they are not part of the appliance's service.
//
// In-process, on a thread of their own (docs/architecture.md says why): the tools are
// single-threaded event-loop code, so they get their own EventLoop instead of a share of
// the pinned data-plane workers, and a configuration change stops that thread and
// starts a new one. The thread starts in `apply`, after the privilege drop (the ports
// are above 1024: nothing privileged is needed).
import Config
import Endpoint
import Glibc
import IO
import Lab
import Log
import Synchronization

public final class LabService: DaemonService {
    public let name = "lab"
    private let log = Logger(subsystem: "lab-service")

    /// What the lab runs: the two tools' settings, nil when off.
    struct Plan: Equatable, Sendable {
        var gatekeeper: Configuration.LabGatekeeper?
        var gateway: Configuration.LabGateway?

        init(_ configuration: Configuration) {
            gatekeeper = configuration.labGatekeeper
            gateway = configuration.labGateway
        }

        var isEmpty: Bool { gatekeeper == nil && gateway == nil }

        /// The listener names `show health` lists.
        var listeners: [String] {
            (gatekeeper.map { ["lab.gatekeeper-ras-\($0.ras)"] } ?? []) + (gateway.map { ["lab.gateway-\($0.signalling)"] } ?? [])
        }
    }

    private struct State {
        var runner: LabRunner?
        var plan: Plan?
        var up: [String: Bool] = [:]
        var problems: [String] = []
    }
    private let state = Mutex(State())

    public init() {}

    public func prepare(_ configuration: Configuration) {
        if !Plan(configuration).isEmpty {
            log.notice("lab tools configured (LAB TOOLS, not for service)", ["listeners": Plan(configuration).listeners.joined(separator: ",")])
        }
    }

    public func attach(worker index: Int, loop: EventLoop) {}

    /// Starts, restarts (settings changed) or stops the lab thread. Calls in progress on a
    /// lab tool end when its settings change: it is a test instrument.
    public func apply(_ configuration: Configuration) -> [String] {
        let plan = Plan(configuration)
        let (current, currentPlan) = state.withLock { ($0.runner, $0.plan) }
        if currentPlan == plan { return state.withLock { $0.problems } }
        if let current {
            current.stop()
            log.notice("lab tools stopped", [:])
        }
        state.withLock { $0 = State(runner: nil, plan: plan) }
        guard !plan.isEmpty else { return [] }
        let result: LabRunner.Started
        let runner: LabRunner
        do {
            runner = try LabRunner(plan: plan)
            result = runner.waitStarted()
        } catch {
            let problem = "lab tools not started: \(error)"
            state.withLock { $0.problems = [problem] }
            return [problem]
        }
        for problem in result.problems { log.error("lab-tool-not-started", ["problem": problem]) }
        state.withLock {
            $0.runner = runner
            $0.up = result.up
            $0.problems = result.problems
        }
        return result.problems
    }

    public func stop(deadline: Int) {
        let runner = state.withLock { state -> LabRunner? in
            defer { state.runner = nil; state.up = [:] }
            return state.runner
        }
        runner?.stop()
    }

    public func health() -> ServiceHealth {
        state.withLock { state in
            let listeners = (state.plan?.listeners ?? []).map { (name: $0, up: state.up[$0] ?? false) }
            return ServiceHealth(listeners: listeners, gatekeeperReachable: nil,
                                 problem: state.problems.isEmpty ? nil : state.problems.joined(separator: "; "))
        }
    }
}

/// The lab thread: one EventLoop with the configured tools, until `stop`.
final class LabRunner: Sendable {
    struct Started: Sendable {
        var up: [String: Bool] = [:]
        var problems: [String] = []
    }

    private let wakeup: Wakeup
    private let started = Mutex<Started?>(nil)
    private let thread = Mutex<WorkerThread?>(nil)

    init(plan: LabService.Plan) throws {
        wakeup = try Wakeup()
        let worker = try WorkerThread.start(name: "bloo-lab") { [self] in self.run(plan: plan) }
        thread.withLock { $0 = worker }
    }

    /// The tools' start-up result; a thread that says nothing within 5 s is reported.
    func waitStarted() -> Started {
        for _ in 0..<500 {
            if let result = started.withLock({ $0 }) { return result }
            usleep(10_000)
        }
        return Started(problems: ["lab thread did not report its start within 5 s"])
    }

    func stop() {
        wakeup.signal()
        let worker = thread.withLock { state -> WorkerThread? in
            defer { state = nil }
            return state
        }
        worker?.join()
    }

    private func run(plan: LabService.Plan) {
        let log = Logger(subsystem: "lab-service")
        var result = Started()
        let loop: EventLoop
        do {
            loop = try EventLoop()
        } catch {
            started.withLock { $0 = Started(problems: ["lab event loop: \(error)"]) }
            return
        }
        var gatekeeper: LabGatekeeper?
        var gateway: LabGateway?
        if let settings = plan.gatekeeper, let ras = Self.endpoint(settings.ras) {
            var config = LabGatekeeperConfig(rasAddress: ras, callSignalAddress: EndpointAddress(ip: ras.ip, port: 1721))
            config.identifier = "LabGK"
            config.aliasesFollowTheirHost = true  // a test call run twice in a row registers from a new mirror port
            // Every dialled number goes to the lab gateway (registered aliases first).
            if let gatewaySettings = plan.gateway, let signalling = Self.endpoint(gatewaySettings.signalling) {
                config.routes = [("", signalling)]
            }
            do {
                gatekeeper = try LabGatekeeper(loop: loop, config: config)
                result.up["lab.gatekeeper-ras-\(settings.ras)"] = true
            } catch {
                result.problems.append("lab gatekeeper \(settings.ras): \(error)")
            }
        }
        if let settings = plan.gateway, let signalling = Self.endpoint(settings.signalling),
           let low = UInt16(exactly: settings.mediaPorts.low), let high = UInt16(exactly: settings.mediaPorts.high) {
            var config = LabGatewayConfig(callSignalAddress: signalling, mediaIP: signalling.ip)
            config.toneHz = Double(settings.toneHz)
            config.expectToneHz = Double(settings.expectToneHz)
            config.mediaPorts = low...high
            do {
                gateway = try LabGateway(loop: loop, config: config)
                result.up["lab.gateway-\(settings.signalling)"] = true
            } catch {
                result.problems.append("lab gateway \(settings.signalling): \(error)")
            }
        }
        let wakeup = self.wakeup
        let doorbell = ClosureHandler { _ in
            _ = wakeup.drain()
            loop.stop()
        }
        do {
            _ = try loop.register(fd: wakeup.fd, events: .readable, handler: doorbell)
        } catch {
            result.problems.append("lab event loop: \(error)")
        }
        let failedToRegister = !result.problems.isEmpty && result.problems.last?.hasPrefix("lab event loop") == true
        started.withLock { $0 = result }
        if !failedToRegister {
            do { try loop.run() } catch { log.critical("lab loop failed", ["error": "\(error)"]) }
        }
        gateway?.close()
        gatekeeper?.close()
        log.info("lab thread ended", [:])
    }

    private static func endpoint(_ address: SocketAddress) -> EndpointAddress? {
        guard case .v4(let ip) = address.address, let parsed = EndpointAddress.parseIP(ip.description),
              let port = UInt16(exactly: address.port) else { return nil }
        return EndpointAddress(ip: parsed, port: port)
    }
}
