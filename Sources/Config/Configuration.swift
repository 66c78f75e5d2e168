// The typed view of a configuration that the daemon applies. Building it is the semantic
// validation: every rule that spans several statements lives here, with the line to blame.

public struct Configuration: Equatable, Sendable {
    public enum LoginClass: String, Sendable { case admin, `operator` }

    public struct User: Equatable, Sendable {
        public let name: String
        public let loginClass: LoginClass
        public let passwordHash: String
    }

    public struct Interface: Equatable, Sendable {
        public let name: String
        public let enabled: Bool
        public let mtu: Int?
        public let addresses: [IPPrefix]
        public let vlans: [VLAN]
    }

    public struct VLAN: Equatable, Sendable {
        public let id: Int
        public let enabled: Bool
        public let mtu: Int?
        public let addresses: [IPPrefix]
        /// The Linux name of the VLAN device: parent.id (e.g. eth0.100).
        public let deviceName: String
    }

    public struct Route: Equatable, Sendable {
        public let destination: IPPrefix
        public let nextHop: IPAddress
    }

    public struct TLSListener: Equatable, Sendable {
        public let address: SocketAddress
        public let certificatePath: String
        public let keyPath: String
    }

    public struct Subscriber: Equatable, Sendable {
        public let alias: String
        public let secret: String
    }

    /// LAB TOOL: the lab gatekeeper the daemon runs on the loopback (`lab gatekeeper`).
    public struct LabGatekeeper: Equatable, Sendable {
        public let ras: SocketAddress
    }

    /// LAB TOOL: the lab gateway the daemon runs on the loopback (`lab gateway`).
    public struct LabGateway: Equatable, Sendable {
        public let signalling: SocketAddress
        public let mediaPorts: PortRange
        public let toneHz: Int
        public let expectToneHz: Int
    }

    public let hostname: String
    public let users: [User]
    public let serviceUser: String?
    public let controlCPUs: CPUList?
    public let dataCPUs: CPUList?
    public let logLevel: String
    public let interfaces: [Interface]
    /// Default routes (at most one IPv4 and one IPv6) followed by static routes.
    public let routes: [Route]
    public let tlsListeners: [TLSListener]
    public let tcpListeners: [SocketAddress]
    /// Calls may move their audio to UDP (docs/tunnel-protocol.md §8); applied to new calls.
    public let tunnelUDPAudio: Bool
    /// Milliseconds without UDP audio before a call falls back to the tunnel (nil: default).
    public let tunnelUDPFallbackMilliseconds: Int?
    /// Ports of the calls' UDP legs (nil: the kernel chooses); applied to new calls.
    public let tunnelUDPPorts: PortRange?
    public let relayPorts: PortRange?
    public let relayPublicAddress: IPAddress?
    /// DSCP of the media the appliance sends (nil: the default, EF); applied to new calls.
    public let relayDSCP: Int?
    public let gatekeeper: SocketAddress?
    /// Aliases missing from `subscribers` are handed to the gatekeeper, which checks the
    /// client's H.235 password token in the mirror's RRQ (docs/tunnel-protocol.md §4.1).
    public let gatekeeperVerifiesUnknownSubscribers: Bool
    public let subscribers: [Subscriber]
    public let labGatekeeper: LabGatekeeper?
    public let labGateway: LabGateway?
    /// The statements this view was built from (what `show configuration` prints).
    public let tree: ConfigTree

    /// Parses and validates a whole text.
    public init(text: String) throws(ConfigErrors) {
        try self.init(tree: ConfigTree(parsing: text))
    }

    /// Validates the rules between statements; collects every error.
    public init(tree: ConfigTree) throws(ConfigErrors) {
        var errors: [ConfigError] = []
        func fail(_ statement: Statement?, _ message: String) {
            errors.append(ConfigError(line: statement?.line, message))
        }
        func entries(_ prefix: [String]) -> [String] {
            var keys: [String] = []
            for statement in tree.statements(under: prefix) where statement.words.count > prefix.count {
                let key = statement.words[prefix.count]
                if !keys.contains(key) { keys.append(key) }
            }
            return keys
        }
        func first(_ words: [String]) -> Statement? { tree.statements(under: words).first }

        self.tree = tree
        if let name = tree.value(["system", "hostname"]) {
            hostname = name
        } else {
            hostname = ""
            fail(nil, "missing 'set system hostname <hostname>'")
        }

        var users: [User] = []
        for name in entries(["system", "user"]) {
            let prefix = ["system", "user", name]
            let loginClass = tree.value(prefix + ["class"]).flatMap(LoginClass.init(rawValue:))
            let hash = tree.value(prefix + ["password-hash"])
            if loginClass == nil { fail(first(prefix), "user '\(name)': missing 'class admin|operator'") }
            if hash == nil { fail(first(prefix), "user '\(name)': missing 'password-hash' (set a password)") }
            if let loginClass, let hash { users.append(User(name: name, loginClass: loginClass, passwordHash: hash)) }
        }
        if !users.contains(where: { $0.loginClass == .admin }) {
            fail(nil, "no user of class admin: the appliance would be unmanageable")
        }
        self.users = users
        serviceUser = tree.value(["system", "service-user"])
        controlCPUs = tree.value(["system", "cpus", "control"]).flatMap(CPUList.init)
        dataCPUs = tree.value(["system", "cpus", "data"]).flatMap(CPUList.init)
        if let controlCPUs, let dataCPUs, !Set(controlCPUs.cpus).isDisjoint(with: dataCPUs.cpus) {
            fail(first(["system", "cpus", "data"]), "control and data CPU lists overlap (\(controlCPUs) and \(dataCPUs))")
        }
        logLevel = tree.value(["system", "logging", "level"]) ?? "info"

        var interfaces: [Interface] = []
        var seenAddresses: [IPAddress: String] = [:]
        func addresses(_ prefix: [String], owner: String) -> [IPPrefix] {
            var result: [IPPrefix] = []
            for statement in tree.statements(under: prefix + ["address"]) {
                guard let address = IPPrefix(statement.value) else { continue }
                if let other = seenAddresses[address.address] {
                    fail(statement, "address \(address.address) is on both \(other) and \(owner)")
                }
                seenAddresses[address.address] = owner
                result.append(address)
            }
            return result
        }
        for name in entries(["interfaces"]) {
            let prefix = ["interfaces", name]
            var vlans: [VLAN] = []
            for idText in entries(prefix + ["vlan"]) {
                guard let id = parseDecimal(idText) else { continue }
                let vlanPrefix = prefix + ["vlan", idText]
                let device = "\(name).\(id)"
                if device.utf8.count > 15 {
                    fail(first(vlanPrefix), "VLAN device name '\(device)' is longer than 15 characters")
                }
                vlans.append(VLAN(id: id, enabled: tree.statements(under: vlanPrefix + ["disable"]).isEmpty,
                                  mtu: tree.value(vlanPrefix + ["mtu"]).flatMap(parseDecimal),
                                  addresses: addresses(vlanPrefix, owner: device), deviceName: device))
            }
            let mtu = tree.value(prefix + ["mtu"]).flatMap(parseDecimal)
            for vlan in vlans {
                if let vlanMTU = vlan.mtu, vlanMTU > (mtu ?? 1500) {
                    fail(first(prefix + ["vlan", String(vlan.id), "mtu"]),
                         "VLAN \(vlan.deviceName) MTU \(vlanMTU) exceeds the MTU of \(name) (\(mtu ?? 1500))")
                }
            }
            interfaces.append(Interface(name: name, enabled: tree.statements(under: prefix + ["disable"]).isEmpty,
                                        mtu: mtu, addresses: addresses(prefix, owner: name), vlans: vlans))
        }
        self.interfaces = interfaces

        var routes: [Route] = []
        var defaultFamilies: Set<Bool> = []
        for statement in tree.statements(under: ["routes", "default", "next-hop"]) {
            guard let hop = IPAddress(statement.value) else { continue }
            if !defaultFamilies.insert(hop.isIPv4).inserted {
                fail(statement, "a second \(hop.isIPv4 ? "IPv4" : "IPv6") default route: delete the other next-hop first")
            }
            routes.append(Route(destination: IPPrefix(hop.isIPv4 ? "0.0.0.0/0" : "::/0")!, nextHop: hop))
        }
        for network in entries(["routes", "static"]) {
            let prefix = ["routes", "static", network]
            guard let destination = IPPrefix(network) else { continue }
            guard let hopText = tree.value(prefix + ["next-hop"]), let hop = IPAddress(hopText) else {
                fail(first(prefix), "static route \(network): missing 'next-hop'")
                continue
            }
            if hop.isIPv4 != destination.address.isIPv4 {
                fail(first(prefix), "static route \(network): next-hop \(hop) is of another address family")
            }
            routes.append(Route(destination: destination, nextHop: hop))
        }
        self.routes = routes

        var listening: Set<SocketAddress> = []
        var tls: [TLSListener] = []
        for key in entries(["tunnel", "tls"]) {
            let prefix = ["tunnel", "tls", key]
            guard let address = SocketAddress(key) else { continue }
            listening.insert(address)
            let certificate = tree.value(prefix + ["certificate"])
            let keyPath = tree.value(prefix + ["key"])
            if certificate == nil { fail(first(prefix), "TLS listener \(key): missing 'certificate <path>'") }
            if keyPath == nil { fail(first(prefix), "TLS listener \(key): missing 'key <path>'") }
            if let certificate, let keyPath {
                tls.append(TLSListener(address: address, certificatePath: certificate, keyPath: keyPath))
            }
        }
        tlsListeners = tls
        var tcp: [SocketAddress] = []
        for key in entries(["tunnel", "tcp"]) {
            guard let address = SocketAddress(key) else { continue }
            if !listening.insert(address).inserted {
                fail(first(["tunnel", "tcp", key]), "\(key) is already a TLS listener")
            }
            tcp.append(address)
        }
        tcpListeners = tcp
        tunnelUDPAudio = tree.statements(under: ["tunnel", "udp-audio", "disable"]).isEmpty
        tunnelUDPFallbackMilliseconds = tree.value(["tunnel", "udp-audio", "fallback-ms"]).flatMap(parseDecimal)
        tunnelUDPPorts = tree.value(["tunnel", "udp-audio", "ports"]).flatMap(PortRange.init)

        relayPorts = tree.value(["relay", "ports"]).flatMap(PortRange.init)
        relayPublicAddress = tree.value(["relay", "public-address"]).flatMap(IPAddress.init)
        relayDSCP = tree.value(["relay", "dscp"]).flatMap(parseDecimal)
        gatekeeper = tree.value(["gatekeeper", "address"]).flatMap(SocketAddress.init)
        gatekeeperVerifiesUnknownSubscribers = !tree.statements(under: ["gatekeeper", "verifies-unknown-subscribers"]).isEmpty
        if gatekeeperVerifiesUnknownSubscribers && gatekeeper == nil {
            fail(first(["gatekeeper", "verifies-unknown-subscribers"]),
                 "'gatekeeper verifies-unknown-subscribers' needs 'gatekeeper address'")
        }
        // UDP port ranges must leave the tunnel's listeners alone, and each other.
        for (path, range) in [(["relay", "ports"], relayPorts), (["tunnel", "udp-audio", "ports"], tunnelUDPPorts)] {
            guard let range else { continue }
            for address in listening where (range.low...range.high).contains(address.port) {
                fail(first(path), "\(path.joined(separator: " ")) \(range) include tunnel listener port \(address.port)")
            }
        }
        if let udp = tunnelUDPPorts, let relayPorts, udp.low <= relayPorts.high, relayPorts.low <= udp.high {
            fail(first(["tunnel", "udp-audio", "ports"]), "tunnel udp-audio ports \(udp) overlap relay ports \(relayPorts)")
        }

        var subscribers: [Subscriber] = []
        for alias in entries(["subscriber"]) {
            guard let secret = tree.value(["subscriber", alias, "secret"]), !secret.isEmpty else {
                fail(first(["subscriber", alias]), "subscriber '\(alias)': missing 'secret'")
                continue
            }
            subscribers.append(Subscriber(alias: alias, secret: secret))
        }
        self.subscribers = subscribers

        // Lab tools answer anyone who reaches them: they listen on the loopback only.
        func loopback(_ words: [String], _ what: String) -> SocketAddress? {
            guard let statement = first(words), let address = SocketAddress(statement.value) else { return nil }
            guard case .v4(let ip) = address.address, ip.octets.first == 127 else {
                fail(statement, "\(what) \(address): lab tools listen on the loopback (127.0.0.0/8) only")
                return nil
            }
            return address
        }
        labGatekeeper = loopback(["lab", "gatekeeper", "ras"], "lab gatekeeper ras").map { LabGatekeeper(ras: $0) }
        var labGateway: LabGateway?
        if let signalling = loopback(["lab", "gateway", "signalling"], "lab gateway signalling") {
            let prefix = ["lab", "gateway"]
            if let mediaPorts = tree.value(prefix + ["media-ports"]).flatMap(PortRange.init) {
                if let relayPorts, mediaPorts.low <= relayPorts.high, relayPorts.low <= mediaPorts.high {
                    fail(first(prefix + ["media-ports"]), "lab gateway media-ports \(mediaPorts) overlap relay ports \(relayPorts)")
                }
                labGateway = LabGateway(signalling: signalling, mediaPorts: mediaPorts,
                                        toneHz: tree.value(prefix + ["tone"]).flatMap(parseDecimal) ?? 2000,
                                        expectToneHz: tree.value(prefix + ["expect-tone"]).flatMap(parseDecimal) ?? 1000)
            } else {
                fail(first(prefix + ["signalling"]), "lab gateway: missing 'media-ports <low-high>'")
            }
        }
        self.labGateway = labGateway

        if !errors.isEmpty {
            throw ConfigErrors(errors.sorted { ($0.line ?? Int.max) < ($1.line ?? Int.max) })
        }
    }

    /// The configuration text (what `show configuration` prints).
    public var text: String { tree.text }
}

extension Configuration {
    /// Changes from `running` that the daemon cannot apply in place (the CLI says so before
    /// committing): CPU placement and the service user are fixed when the daemon starts.
    public func changesNeedingRestart(from running: Configuration) -> [String] {
        var reasons: [String] = []
        if controlCPUs != running.controlCPUs || dataCPUs != running.dataCPUs {
            reasons.append("system cpus: worker threads are placed when the daemon starts")
        }
        if serviceUser != running.serviceUser {
            reasons.append("system service-user: privileges are dropped when the daemon starts")
        }
        return reasons
    }

}

extension ConfigTree {
    /// `difference` for trees that are not (yet) valid configurations.
    public func difference(from running: ConfigTree) -> [String] {
        let old = running.statements.map(\.description)
        let new = statements.map(\.description)
        let oldSet = Set(old), newSet = Set(new)
        return old.filter { !newSet.contains($0) }.map { "- " + $0 } + new.filter { !oldSet.contains($0) }.map { "+ " + $0 }
    }
}
