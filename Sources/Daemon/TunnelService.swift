// The appliance's main job as a daemon service: the tunnel terminator, configured from
// `tunnel tls|tcp`, `subscriber` and `gatekeeper`, running on the daemon's own workers.
// Listeners are bound in `prepare` (as root: ports below 1024 need no capability at bind
// time; the daemon keeps CAP_NET_BIND_SERVICE only when a configured port is below 1024).
// The backend is the mirror when a gatekeeper and a public address are configured, the
// lab backend (REGISTER accepted, calls to "echo") otherwise.
import Config
import Endpoint
import IO
import Log
import Proxy
import Synchronization

public final class TunnelService: DaemonService {
    public let name = "tunnel"
    private let log = Logger(subsystem: "tunnel-service")
    private struct State {
        var terminator: Terminator?
        /// What the running terminator was built from: listeners and certificate paths.
        var listeners: [String] = []
        var certificate: (certificate: String, key: String)?
        var problems: [String] = []
        var gatekeeper: String?
        /// The mirror's verdict on the gatekeeper (nil with the lab backend).
        var reachability: GatekeeperReachability?
        var stopped = false
        var notes: [String] = []
        /// The first apply follows `prepare`, which has just loaded the certificate (as root).
        var applies = 0
    }
    private let state = Mutex(State())
    /// Where the mirror's call detail records go; opened once, as root, in `prepare`
    /// (nil: none written).
    private let cdrPath: String?
    private let cdr = Mutex<CDRWriter?>(nil)

    public init(cdrPath: String? = nil) { self.cdrPath = cdrPath }

    public var serviceUserFiles: [String] { cdr.withLock { $0 }.map { [$0.path] } ?? [] }

    /// What the terminator is built from, and the problems of a configuration it cannot carry.
    struct Plan {
        var config = TerminatorConfig()
        var subscribers = SubscriberTable()
        var listeners: [String] = []
        var certificate: (certificate: String, key: String)?
        var mirror: MirrorConfig?
        var problems: [String] = []
        /// Shown by `show health`, not failing a commit: the lab backend stands in.
        var notes: [String] = []
    }

    static func plan(_ configuration: Configuration) -> Plan {
        var plan = Plan()
        plan.config.tlsListen = nil
        plan.config.tcpListen = nil
        // The terminator carries one TLS and one plain TCP listener, IPv4.
        for (index, listener) in configuration.tlsListeners.enumerated() {
            guard index == 0, let endpoint = endpoint(listener.address) else {
                plan.problems.append("TLS listener \(listener.address) not served (one IPv4 TLS listener is supported)")
                continue
            }
            plan.config.tlsListen = endpoint
            plan.config.certificatePath = listener.certificatePath
            plan.config.keyPath = listener.keyPath
            plan.certificate = (listener.certificatePath, listener.keyPath)
            plan.listeners.append("tls-\(listener.address)")
        }
        for (index, address) in configuration.tcpListeners.enumerated() {
            guard index == 0, let endpoint = endpoint(address) else {
                plan.problems.append("TCP listener \(address) not served (one IPv4 TCP listener is supported)")
                continue
            }
            plan.config.tcpListen = endpoint
            plan.listeners.append("tcp-\(address)")
        }
        if let dscp = configuration.relayDSCP.flatMap(UInt8.init(exactly:)) { plan.config.mediaDSCP = dscp }
        plan.config.udp.enabled = configuration.tunnelUDPAudio
        if let ports = configuration.tunnelUDPPorts, let low = UInt16(exactly: ports.low), let high = UInt16(exactly: ports.high) {
            plan.config.udp.ports = low...high
        }
        if let ms = configuration.tunnelUDPFallbackMilliseconds {
            plan.config.udp.fallbackAfterNanos = UInt64(ms) * 1_000_000
        }
        let cpus = configuration.dataCPUs?.cpus ?? []
        plan.config.workers = max(1, cpus.count)  // one terminator worker per daemon worker
        plan.config.cpus = cpus
        do {
            plan.subscribers = try subscriberTable(configuration.subscribers)
        } catch {
            plan.problems.append("subscribers: \(error)")
        }
        if let gatekeeper = configuration.gatekeeper {
            if case .v4(let gkIP) = gatekeeper.address, let gk = EndpointAddress.parseIP(gkIP.description),
               case .v4(let publicText)? = configuration.relayPublicAddress,
               let publicIP = EndpointAddress.parseIP(publicText.description) {
                var mirror = MirrorConfig(gatekeeper: EndpointAddress(ip: gk, port: UInt16(gatekeeper.port)), publicIP: publicIP)
                if let ports = configuration.relayPorts, let low = UInt16(exactly: ports.low), let high = UInt16(exactly: ports.high) {
                    mirror.rtpPorts = low...high
                }
                plan.mirror = mirror
                plan.config.gatekeeperVerification = configuration.gatekeeperVerifiesUnknownSubscribers
            } else {
                plan.notes.append("gatekeeper \(gatekeeper) not used: the mirror needs an IPv4 gatekeeper and 'relay public-address' (IPv4)")
            }
        }
        return plan
    }

    /// What a change of needs a new terminator: the gatekeeper, and whether it verifies
    /// unknown subscribers (the terminator's handshake depends on it).
    private static func gatekeeperShape(_ plan: Plan) -> String? {
        plan.mirror.map { "\($0.gatekeeper)" + (plan.config.gatekeeperVerification ? " verifying" : "") }
    }

    private static func endpoint(_ address: SocketAddress) -> IPv4Endpoint? {
        guard case .v4(let ip) = address.address, let port = UInt16(exactly: address.port) else { return nil }
        return IPv4Endpoint(ip.description, port: port)
    }

    /// `subscriber NAME secret S`: the same rules as a subscribers file (8 bytes at least, `hex:`).
    static func subscriberTable(_ subscribers: [Configuration.Subscriber]) throws -> SubscriberTable {
        try SubscriberTable(parsing: subscribers.map { "\($0.alias) \($0.secret)" }.joined(separator: "\n"))
    }

    public func prepare(_ configuration: Configuration) {
        if let cdrPath {
            do { try cdr.withLock { $0 = try CDRWriter(path: cdrPath) } } catch {
                log.error("cdr-not-written", ["path": cdrPath, "error": "\(error)"])
            }
        }
        let plan = Self.plan(configuration)
        for problem in plan.problems + plan.notes { log.warning("tunnel-config-problem", ["problem": problem]) }
        guard !plan.listeners.isEmpty else {
            log.warning("tunnel-disabled", ["reason": "no 'tunnel tls' or 'tunnel tcp' listener configured"])
            state.withLock { $0.problems = plan.problems }
            return
        }
        // A listener that cannot start (no certificate yet, port taken) must not stop the
        // daemon: the operator still needs the control plane to fix it. Health says why.
        do {
            try start(plan, gatekeeperConfigured: configuration.gatekeeper != nil)
        } catch {
            log.error("tunnel-not-started", ["error": "\(error)"])
            state.withLock {
                $0.listeners = plan.listeners
                $0.certificate = plan.certificate
                $0.problems = plan.problems + ["not started: \(error)"]
            }
        }
    }

    private func start(_ plan: Plan, gatekeeperConfigured: Bool) throws {
        let terminator: Terminator
        var reachability: GatekeeperReachability?
        let cdrWriter = cdr.withLock { $0 }
        if let mirror = plan.mirror {
            log.notice("tunnel-backend", ["backend": "mirror", "gatekeeper": "\(mirror.gatekeeper)"])
            let verdict = GatekeeperReachability()
            reachability = verdict
            terminator = try Terminator(config: plan.config, subscribers: plan.subscribers) {
                MirrorBackend(worker: $0, config: mirror, cdr: cdrWriter, reachability: verdict)
            }
        } else {
            log.notice("tunnel-backend", ["backend": "lab", "reason": !gatekeeperConfigured
                                          ? "no gatekeeper configured" : "gatekeeper not usable by the mirror"])
            terminator = try Terminator(config: plan.config, subscribers: plan.subscribers) { LabBackend(worker: $0) }
        }
        try terminator.bind()
        state.withLock {
            $0.terminator = terminator
            $0.listeners = plan.listeners
            $0.certificate = plan.certificate
            $0.problems = plan.problems
            $0.gatekeeper = Self.gatekeeperShape(plan)
            $0.reachability = reachability
        }
    }

    public func attach(worker index: Int, loop: EventLoop) {
        guard let terminator = state.withLock({ $0.terminator }) else { return }
        do {
            try terminator.attach(worker: index, to: loop)
        } catch {
            log.error("tunnel-attach-failed", ["worker": "\(index)", "error": "\(error)"])
        }
    }

    /// Subscribers and the certificate change in place; established tunnels stay up. A new
    /// listener set, certificate path or gatekeeper needs a new terminator: the old one ends
    /// its tunnels with BYE (clients reconnect), the new one binds now, unprivileged (a port
    /// below 1024 then needs CAP_NET_BIND_SERVICE kept from the start), on threads of its own.
    public func apply(_ configuration: Configuration) -> [String] {
        let plan = Self.plan(configuration)
        var problems = plan.problems
        let (current, listeners, certificate, gatekeeper, applies) = state.withLock { state in
            state.applies += 1
            return (state.terminator, state.listeners, state.certificate, state.gatekeeper, state.applies)
        }
        let sameShape = listeners == plan.listeners && gatekeeper == Self.gatekeeperShape(plan)
            && certificate?.certificate == plan.certificate?.certificate && certificate?.key == plan.certificate?.key
        if let current, sameShape {
            current.shared.replaceSubscribers(plan.subscribers)
            current.shared.replaceUDPSettings(plan.config.udp)
            current.shared.replaceMediaDSCP(plan.config.mediaDSCP)
            if applies > 1, plan.certificate != nil {
                // Renewed certificate files: new connections get them, established tunnels stay.
                do { try current.reloadCertificate() } catch { problems.append("certificate reload failed: \(error)") }
            }
        } else if current != nil || !plan.listeners.isEmpty {
            if let current {
                log.notice("tunnel-restarting", ["listeners": plan.listeners.joined(separator: ",")])
                current.stop(deadlineSeconds: 5)
            }
            state.withLock {
                $0.terminator = nil
                $0.reachability = nil
                $0.listeners = plan.listeners
                $0.certificate = plan.certificate
                $0.gatekeeper = Self.gatekeeperShape(plan)
            }
            if !plan.listeners.isEmpty {
                do {
                    try start(plan, gatekeeperConfigured: configuration.gatekeeper != nil)
                    try state.withLock { $0.terminator }?.start(bound: true)
                } catch {
                    log.error("tunnel-not-started", ["error": "\(error)"])
                    state.withLock { $0.terminator = nil }
                    problems.append("not started: \(error)")
                }
            }
        }
        log.info("tunnel-applied", ["subscribers": "\(configuration.subscribers.count)", "problems": "\(problems.count)"])
        state.withLock {
            $0.problems = problems
            $0.notes = plan.notes
        }
        return problems
    }

    public func stop(deadline: Int) {
        guard let terminator = state.withLock({ state -> Terminator? in
            state.stopped = true
            return state.terminator
        }) else { return }
        if terminator.stop(deadlineSeconds: deadline) {
            log.notice("tunnel-stopped", [:])
        } else {
            log.error("tunnel-stop-late", ["deadline": "\(deadline)"])
        }
    }

    /// `show tunnels|registrations|calls|relay`: what the terminator's workers published
    /// last (each at most a second old); `show cdr`: the last call detail records.
    public func show(_ topic: String) -> [(key: String, value: String)]? {
        guard Self.topics.contains(topic) else { return nil }
        if topic == "cdr" {
            guard let path = cdr.withLock({ $0?.path }) else { return [("cdr", "none (no CDR file: see the log)")] }
            let records = (try? CDRWriter.tail(path: path, count: 20)) ?? []
            return records.isEmpty ? [("cdr", "none")] : records.enumerated().map { (key: "cdr.\($0.offset)", value: $0.element) }
        }
        guard let terminator = state.withLock({ $0.terminator }) else { return [(topic, "none (the tunnel service is not running)")] }
        let rows = terminator.shared.status.flatMap { worker -> [StatusRow] in
            switch topic {
            case "tunnels": worker.tunnels
            case "registrations": worker.registrations
            case "calls": worker.calls
            default: worker.relay
            }
        }
        return rows.isEmpty ? [(topic, "none")] : rows.map { (key: $0.key, value: $0.value) }
    }

    public static let topics = ["tunnels", "registrations", "calls", "relay", "cdr"]

    public func health() -> ServiceHealth {
        state.withLock { state in
            let up = state.terminator != nil && !state.stopped
            // The mirror's GRQ probe: nil (the daemon reads "unknown") until the first
            // probe is answered or given up on, and with the lab backend.
            var reachable: Bool?
            switch state.reachability?.current {
            case .reachable?: reachable = up
            case .unreachable?: reachable = false
            default: reachable = nil
            }
            let said = state.problems + state.notes
            return ServiceHealth(listeners: state.listeners.map { (name: $0, up: up) }, gatekeeperReachable: reachable,
                                 problem: said.isEmpty ? nil : said.joined(separator: "; "))
        }
    }
}
