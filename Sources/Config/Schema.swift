// The shape of the configuration: which words may follow which. One schema drives the
// parser, the validator's "expected ..." messages, and the console's completion and help.

/// One node of the configuration schema.
public struct SchemaNode: Sendable {
    public enum Kind: Sendable {
        /// A keyword grouping other nodes: `system`, `relay`.
        case container
        /// A keyword followed by one value; setting it again replaces the value.
        case leaf(ValueKind)
        /// A keyword followed by one value; each value is kept (addresses).
        case leafList(ValueKind)
        /// A keyword on its own: `disable`.
        case flag
        /// A keyword followed by a key, then the entry's own children: `user admin ...`.
        case list(ValueKind)
        /// Not stored: the console asks for something and stores its result elsewhere
        /// (`password` prompts and sets `password-hash`).
        case interactive
    }

    public let keyword: String
    public let kind: Kind
    public let help: String
    public let children: [SchemaNode]

    public init(_ keyword: String, _ kind: Kind, _ help: String, _ children: [SchemaNode] = []) {
        self.keyword = keyword
        self.kind = kind
        self.help = help
        self.children = children
    }

    public func child(_ keyword: String) -> SchemaNode? { children.first { $0.keyword == keyword } }

    /// Children whose keyword starts with `prefix`; an exact match wins over longer ones.
    public func children(matching prefix: String) -> [SchemaNode] {
        if let exact = child(prefix) { return [exact] }
        return children.filter { $0.keyword.hasPrefix(prefix) }
    }
}

public enum ConfigSchema {
    public static let loginClasses = ["admin", "operator"]
    public static let logLevels = ["debug", "info", "notice", "warning", "error", "critical"]

    private static let mtu = SchemaNode("mtu", .leaf(.integer(68...9000)), "maximum transmission unit in bytes")
    private static let disable = SchemaNode("disable", .flag, "keep the interface administratively down")
    private static let address = SchemaNode("address", .leafList(.ipPrefix), "IPv4 or IPv6 address with prefix length")

    /// The root: the words that may follow `set`.
    public static let root = SchemaNode("", .container, "configuration", [
        SchemaNode("system", .container, "host name, users, CPUs, logging", [
            SchemaNode("hostname", .leaf(.hostname), "name of this appliance"),
            SchemaNode("user", .list(.name), "console and SSH login", [
                SchemaNode("class", .leaf(.choice(loginClasses)), "login class: admin may configure, operator may only look"),
                SchemaNode("password", .interactive, "enter a new password (asked twice, stored only hashed)"),
                SchemaNode("password-hash", .leaf(.passwordHash), "salted password hash (set it with 'password')"),
            ]),
            SchemaNode("service-user", .leaf(.name), "unprivileged account the daemon runs as"),
            SchemaNode("cpus", .container, "CPU placement", [
                SchemaNode("control", .leaf(.cpuList), "CPUs for signalling and management"),
                SchemaNode("data", .leaf(.cpuList), "CPUs for the media relay workers"),
            ]),
            SchemaNode("logging", .container, "log settings", [
                SchemaNode("level", .leaf(.choice(logLevels)), "least severe level that is logged"),
            ]),
        ]),
        SchemaNode("interfaces", .list(.interfaceName), "network interfaces", [
            disable, mtu, address,
            SchemaNode("vlan", .list(.integer(1...4094)), "802.1Q VLAN on this interface", [disable, mtu, address]),
        ]),
        SchemaNode("routes", .container, "static routes", [
            SchemaNode("default", .container, "default route", [
                SchemaNode("next-hop", .leafList(.ipAddress), "gateway of the default route (one IPv4, one IPv6)"),
            ]),
            SchemaNode("static", .list(.ipNetwork), "route to a network", [
                SchemaNode("next-hop", .leaf(.ipAddress), "gateway for this network"),
            ]),
        ]),
        SchemaNode("tunnel", .container, "listeners for client tunnels", [
            SchemaNode("tls", .list(.socketAddress), "TLS listener", [
                SchemaNode("certificate", .leaf(.absolutePath), "PEM certificate chain file"),
                SchemaNode("key", .leaf(.absolutePath), "PEM private key file"),
            ]),
            SchemaNode("tcp", .list(.socketAddress), "plain TCP listener", []),
            SchemaNode("udp-audio", .container, "calls' audio over UDP once the client proves UDP reaches the appliance", [
                SchemaNode("disable", .flag, "audio always stays in the tunnel"),
                SchemaNode("fallback-ms", .leaf(.integer(100...60_000)),
                           "back to the tunnel after this long without UDP audio (default 1000)"),
                SchemaNode("ports", .leaf(.portRange),
                           "UDP ports of the calls' UDP legs, for a firewall in front (default: the kernel chooses)"),
            ]),
        ]),
        SchemaNode("relay", .container, "media relay", [
            SchemaNode("ports", .leaf(.portRange), "UDP port range for media"),
            SchemaNode("public-address", .leaf(.ipAddress), "address announced to the gateway for media"),
            SchemaNode("dscp", .leaf(.integer(0...63)),
                       "DSCP of the audio the appliance sends over UDP (default 46, EF; 0: unmarked)"),
        ]),
        SchemaNode("gatekeeper", .container, "the operator's H.323 gatekeeper", [
            SchemaNode("address", .leaf(.socketAddress), "gatekeeper RAS address:port"),
            SchemaNode("verifies-unknown-subscribers", .flag,
                       "aliases not in the subscriber table are checked by the gatekeeper (H.235 password tokens)"),
        ]),
        SchemaNode("subscriber", .list(.name), "client allowed to open a tunnel", [
            SchemaNode("secret", .leaf(.text), "shared secret of the subscriber"),
        ]),
        SchemaNode("lab", .container, "LAB TOOLS on the loopback for demos and test calls, not for service", [
            SchemaNode("gatekeeper", .container, "LAB TOOL: H.323 gatekeeper that routes every number to the lab gateway", [
                SchemaNode("ras", .leaf(.socketAddress), "RAS address:port on 127.0.0.0/8 (enables it)"),
            ]),
            SchemaNode("gateway", .container, "LAB TOOL: H.323 gateway that answers every call with a tone", [
                SchemaNode("signalling", .leaf(.socketAddress), "call-signalling address:port on 127.0.0.0/8 (enables it)"),
                SchemaNode("media-ports", .leaf(.portRange), "UDP ports for its RTP, outside 'relay ports'"),
                SchemaNode("tone", .leaf(.integer(50...3900)), "tone it sends, in Hz (default 2000)"),
                SchemaNode("expect-tone", .leaf(.integer(50...3900)), "tone it listens for and reports, in Hz (default 1000)"),
            ]),
        ]),
    ])
}
