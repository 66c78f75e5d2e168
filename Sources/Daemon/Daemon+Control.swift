// Answers control-socket requests (on the control thread). Roles were checked by the
// server; this decides what each request does and renders `show` topics.
import CSystem
import Config
import Control
import Glibc
import System

/// A `show` topic as ordered key/value rows, printed as text or `key=value`.
struct Rows {
    var rows: [(String, String)] = []
    mutating func add(_ key: String, _ value: String) { rows.append((key, value)) }

    func render(_ format: OutputFormat) -> String {
        switch format {
        case .kv:
            return rows.map { "\($0.0)=\($0.1.replacingNewlines)\n" }.joined()
        case .text:
            let width = rows.map(\.0.count).max() ?? 0
            return rows.map { $0.0 + String(repeating: " ", count: width - $0.0.count + 2) + $0.1.replacingNewlines + "\n" }.joined()
        }
    }
}

extension String {
    var replacingNewlines: String { String(map { $0 == "\n" ? " " : $0 }) }
}

extension Daemon {
    static let topics = ["version", "system", "interfaces", "routes", "events", "health", "commits"] + TunnelService.topics

    func handle(_ request: ControlRequest, caller: ControlCaller, role: ControlRole) -> ControlReply {
        switch request {
        case .show(let topic, let argument, let format):
            return show(topic, argument: argument, format: format)
        case .configGet(.running):
            return lock.withLock { _ in .ok(configuration.text) }
        case .configGet(.candidate):
            // The daemon holds no editing candidates (those live in each CLI session);
            // the one candidate it knows is a commit that still awaits `confirm`.
            guard let store else { return .error(.unavailable, "no store") }
            do {
                guard try store.pendingConfirm() != nil else {
                    return .error(.unavailable, "no commit awaits confirmation; candidates live in the CLI session")
                }
                return .ok(try store.running().configuration.text)
            } catch {
                return .error(.failed, "\(error)")
            }
        case .configHistory:
            guard let store else { return .error(.unavailable, "no store") }
            do {
                let entries = try store.history().map {
                    ControlCommitEntry(sequence: $0.sequence, time: $0.time, confirmDeadline: $0.confirmDeadline,
                                       revertTo: $0.revertTo, user: $0.user, comment: $0.comment)
                }
                return .ok(ControlCommitEntry.encode(entries))
            } catch {
                return .error(.failed, error.message)
            }
        case .configGetCommit(let index):
            guard let store else { return .error(.unavailable, "no store") }
            do {
                return .ok(try store.rollback(index).text)
            } catch {
                return .error(.invalid, error.message)
            }
        case .configValidate(let text):
            do {
                _ = try Configuration(text: text)
                return .ok("")
            } catch {
                return .error(.invalid, error.errors.map(\.description).joined(separator: "; "))
            }
        case .configCommit(let text, let minutes, let user, let comment):
            let parsed: Configuration
            do {
                parsed = try Configuration(text: text)
            } catch {
                return .error(.invalid, error.errors.map(\.description).joined(separator: "; "))
            }
            guard let store else { return .error(.unavailable, "no store") }
            let who = (user ?? "uid \(caller.uid)") + (user != nil ? " (uid \(caller.uid))" : "")
            let info: CommitInfo
            do {
                info = try store.commit(parsed, user: who, comment: comment ?? "", confirmMinutes: minutes)
            } catch {
                return .error(.failed, error.message)
            }
            return applied(parsed, headline: "commit \(info.sequence)" + (minutes.map { ", confirm within \($0) min" } ?? ""))
        case .confirm:
            guard let store else { return .error(.unavailable, "no store") }
            do {
                try store.confirm(user: "uid \(caller.uid)")
                return .ok("confirmed\n")
            } catch {
                return .error(.unavailable, error.message)
            }
        case .rollback(let steps):
            guard let store else { return .error(.unavailable, "no store") }
            do {
                let previous = try store.rollback(steps)
                let info = try store.commit(previous, user: "uid \(caller.uid)", comment: "rollback \(steps)")
                return applied(previous, headline: "rollback \(steps) as commit \(info.sequence)")
            } catch {
                return .error(.invalid, error.message)
            }
        case .reboot:
            log.notice("reboot requested", ["uid": String(caller.uid)])
            requestedExit.store(DaemonExit.rebootRequested, ordering: .releasing)
            return .ok("rebooting\n")
        }
    }

    /// Applies and reports: ok with the changes, or `failed` naming each kernel error
    /// (the rest of the configuration is applied and stays committed).
    private func applied(_ configuration: Configuration, headline: String) -> ControlReply {
        let report = apply(configuration, reason: headline)
        let problems = report.errors + lock.withLock { _ in serviceProblems }
        if !problems.isEmpty {
            return .error(.failed, "\(headline) applied with errors: " + problems.joined(separator: "; "))
        }
        return .ok(([headline] + report.changes).joined(separator: "\n") + "\n")
    }

    func show(_ topic: String, argument: String?, format: OutputFormat) -> ControlReply {
        var rows = Rows()
        switch topic {
        case "version":
            rows.add("version", String(cString: bloo_build_version()))
            rows.add("revision", String(cString: bloo_build_revision()))
            rows.add("built", String(cString: bloo_build_date()))
        case "system":
            systemRows(&rows)
        case "interfaces":
            do {
                let owned = lock.withLock { _ in Set(networkSpec.interfaces.map(\.name)) }
                let all = try lock.withLock { _ throws(SystemFailure) in try manager?.interfaces() ?? [] }
                let chosen = all.filter { argument == nil || $0.name == argument }
                if let argument, chosen.isEmpty { return .error(.unknown, "no interface '\(argument)'") }
                for interface in chosen {
                    let key = interface.name
                    rows.add("\(key).admin", interface.adminUp ? "up" : "down")
                    rows.add("\(key).carrier", interface.carrier ? "up" : "down")
                    rows.add("\(key).mtu", String(interface.mtu))
                    rows.add("\(key).addresses", interface.addresses.map(\.description).joined(separator: ","))
                    if let vlan = interface.vlanID { rows.add("\(key).vlan", "\(vlan) on \(interface.parent ?? "?")") }
                    rows.add("\(key).managed", owned.contains(interface.name) ? "yes" : "no")
                }
            } catch {
                return .error(.failed, error.message)
            }
        case "routes":
            do {
                let routes = try lock.withLock { _ throws(SystemFailure) in try manager?.routes() ?? [] }
                for (index, route) in routes.enumerated() { rows.add("route.\(index)", route.description) }
            } catch {
                return .error(.failed, error.message)
            }
        case "events":
            let recent = lock.withLock { _ in events.suffix(100) }
            for (index, event) in recent.enumerated() { rows.add("event.\(index)", event) }
        case "health":
            healthRows(&rows)
        case "commits":
            guard let store else { return .error(.unavailable, "no store") }
            do {
                for (index, info) in try store.history().enumerated() {
                    rows.add("commit.\(index)", "sequence \(info.sequence) by \(info.user)" + (info.comment.isEmpty ? "" : ": \(info.comment)")
                             + (info.confirmDeadline != nil ? " (awaiting confirm)" : ""))
                }
            } catch {
                return .error(.failed, error.message)
            }
        default:
            guard let serviceRows = services.lazy.compactMap({ $0.show(topic) }).first else {
                return .error(.unknown, "no topic '\(topic)' (topics: \(Self.topics.joined(separator: ", ")))")
            }
            for row in serviceRows { rows.add(row.key, row.value) }
        }
        return .ok(rows.render(format))
    }

    private func systemRows(_ rows: inout Rows) {
        let configuration = lock.withLock { _ in self.configuration }
        rows.add("hostname", configuration.hostname)
        rows.add("pid", String(getpid()))
        rows.add("uid", String(getuid()))
        rows.add("gid", String(getgid()))
        if let privileges {
            rows.add("capabilities", privileges.kept.isEmpty ? "none" : privileges.kept.map(\.rawValue).joined(separator: ","))
            rows.add("no_new_privs", privileges.noNewPrivileges ? "1" : "0")
            rows.add("securebits", "0x" + String(privileges.securebits, radix: 16))
        }
        rows.add("cpus.control", configuration.controlCPUs?.description ?? "any")
        rows.add("cpus.data", configuration.dataCPUs?.description ?? "any")
        rows.add("workers", String(workers.count))
        rows.add("gatekeeper", gatekeeperStatus(configuration, services.map { $0.health() }).text)
        for thread in Placement.threads() {
            rows.add("thread.\(thread.tid)", "\(thread.name) cpus \(Placement.listText(thread.cpus))")
        }
    }

    /// The configured gatekeeper as the services see it: not-configured (the criterion
    /// does not apply), reachable, unreachable, or unknown (counts as unhealthy).
    func gatekeeperStatus(_ configuration: Configuration, _ health: [ServiceHealth]) -> (text: String, ok: Bool) {
        guard let configured = configuration.gatekeeper else { return ("not-configured", true) }
        let answers = health.compactMap(\.gatekeeperReachable)
        if answers.isEmpty { return ("unknown (not yet probed, or no running service checks \(configured))", false) }
        let ok = answers.allSatisfy { $0 }
        return (ok ? "reachable" : "unreachable", ok)
    }

    /// Health for `show health` and the firmware update's confirmation.
    func healthRows(_ rows: inout Rows) {
        let (report, configuration, problems) = lock.withLock { _ in (lastReport, self.configuration, serviceProblems) }
        let configOK = report.errors.isEmpty && problems.isEmpty
        let serviceHealth = services.map { ($0.name, $0.health()) }
        let listenersOK = controlServing.load(ordering: .acquiring) && serviceHealth.allSatisfy { $0.1.listeners.allSatisfy(\.up) }
        let stalled = workers.stalled()
        let workersOK = workers.count > 0 && stalled.isEmpty
        let (gatekeeper, gatekeeperOK) = gatekeeperStatus(configuration, serviceHealth.map(\.1))
        let healthy = configOK && listenersOK && workersOK && gatekeeperOK
        rows.add("healthy", healthy ? "yes" : "no")
        rows.add("config", configOK ? "applied" : "errors")
        for (index, error) in (report.errors + problems).enumerated() { rows.add("config.error.\(index)", error) }
        rows.add("listeners", listenersOK ? "up" : "down")
        rows.add("listener.control", controlServing.load(ordering: .acquiring) ? "up" : "down")
        for (name, health) in serviceHealth {
            for listener in health.listeners { rows.add("listener.\(name).\(listener.name)", listener.up ? "up" : "down") }
            if let problem = health.problem { rows.add("service.\(name)", problem) }
        }
        rows.add("workers", workersOK ? "alive" : (workers.count == 0 ? "none" : "stalled \(stalled.map(String.init).joined(separator: ","))"))
        rows.add("gatekeeper", gatekeeper)
        rows.add("uptime_s", String(Int(time(nil)) - startedAt))
        rows.add("recent_unclean_starts", String(recentUncleanStarts))
    }
}
