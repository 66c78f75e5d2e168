// What `show tunnels`, `show registrations`, `show calls` and `show relay` print. Each
// worker rebuilds its part once a second on its own thread, as plain values, and hands it
// over under a lock: the control plane never touches a worker's objects, and a worker
// never waits for the control plane.

/// One key/value row. Keys are dotted paths (`call.alice.1.codec`), one value each.
public struct StatusRow: Sendable, Equatable {
    public let key: String
    public let value: String

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }

    /// A name from a peer (an alias) as one key component: letters, digits, `-`, `_`,
    /// `@`, `+` kept, anything else (dots, spaces, `=`, control characters) becomes `_`.
    static func component(_ name: String) -> String {
        let kept = name.unicodeScalars.prefix(64).map { scalar -> Character in
            let ok = (scalar.value < 0x80 && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)))
                || "-_@+".unicodeScalars.contains(scalar)
            return ok ? Character(scalar) : "_"
        }
        return kept.isEmpty ? "_" : String(kept)
    }
}

/// One worker's rows, by topic.
public struct WorkerStatus: Sendable {
    public var worker: Int
    public var tunnels: [StatusRow] = []
    public var registrations: [StatusRow] = []
    public var calls: [StatusRow] = []
    public var relay: [StatusRow] = []

    public init(worker: Int) { self.worker = worker }
}

/// A backend with registrations, calls and media to show (the mirror).
protocol StatusReporting: AnyObject {
    /// Rows about one client (its registration and its calls).
    func addStatus(of client: TunnelClient, to status: inout WorkerStatus)
    /// Rows about the worker's share of the backend (its media relay).
    func addWorkerStatus(to status: inout WorkerStatus)
}

extension TerminatorWorker {
    /// How often the rows are rebuilt: `show` is at most this old.
    static let statusInterval: UInt64 = 1_000_000_000

    func publishStatus() {
        var status = WorkerStatus(worker: index)
        let reporter = backend as? StatusReporting
        for client in clientsByAlias {
            let key = "tunnel.\(StatusRow.component(client.alias))"
            if let connection = client.connection {
                status.tunnels += [StatusRow("\(key).state", "attached"),
                                   StatusRow("\(key).transport", connection.tls == nil ? "tcp" : "tls"),
                                   StatusRow("\(key).peer", "\(connection.peer)")]
            } else {
                let detached = client.detachedSince.map { (now &- $0) / 1_000_000_000 } ?? 0
                status.tunnels.append(StatusRow("\(key).state", "detached \(detached) s (resume grace)"))
            }
            status.tunnels += [StatusRow("\(key).worker", "\(index)"),
                               StatusRow("\(key).udp-audio-calls", "\(client.udpLegs.count)")]
            reporter?.addStatus(of: client, to: &status)
        }
        reporter?.addWorkerStatus(to: &status)
        shared.publish(status)
    }
}
