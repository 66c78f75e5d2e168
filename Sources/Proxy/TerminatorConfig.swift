// Configuration of the tunnel terminator and the local subscriber table.

import IO
import Tunnel

public struct TerminatorConfig: Sendable {
    /// TLS listener (default port 443); nil disables it.
    public var tlsListen: IPv4Endpoint? = IPv4Endpoint(address: 0, port: 443)
    /// Plain TCP listener; nil disables it.
    public var tcpListen: IPv4Endpoint?
    public var certificatePath = ""
    public var keyPath = ""
    /// Data-plane workers, each its own thread and epoll set; `cpus[i]` pins worker i.
    public var workers = 1
    public var cpus: [Int] = []
    /// Connections at once, all workers together.
    public var maxConnections = 10_000
    /// New connections per second from one source address, and the burst allowed.
    public var perSourceRate = 20.0
    public var perSourceBurst = 40.0
    /// Calls the appliance can carry, reported in PONG and probe answers.
    public var capacity: UInt32 = 1_000
    /// Kernel send buffer of each tunnel socket (SO_SNDBUF; Linux doubles it). Small on
    /// purpose: audio the kernel holds cannot be dropped when it gets stale, so the
    /// backlog must wait in the terminator's queue instead, where it can.
    public var socketSendBuffer: Int32 = 8 * 1024
    /// Answer UDP probes on the listeners' ports.
    public var probe = true
    /// Deadlines, frame size, grace period, media age bound.
    public var session = ServerSessionConfig()
    /// DSCP of the audio the appliance sends over UDP (towards gateways, and to clients
    /// whose audio left the tunnel): EF (46, RFC 3246) by default; 0 leaves it unmarked.
    public var mediaDSCP: UInt8 = 46
    /// The UDP upgrade of calls' audio (docs/tunnel-protocol.md §8).
    public var udp = UDPUpgradeSettings()
    /// Aliases missing from the subscriber table are left to the operator's gatekeeper:
    /// the client sends an H.235 password token, the mirror puts it in its RRQ, and the
    /// RCF or RRJ decides (docs/tunnel-protocol.md §4). Only meaningful with the mirror.
    public var gatekeeperVerification = false

    public init() {}
}

/// Whether calls are offered UDP audio, and the upgrade's timings.
public struct UDPUpgradeSettings: Sendable {
    public var enabled = true
    /// Ports the calls' UDP legs bind to (each worker its share, least recently released
    /// first), for a firewall in front of the appliance; nil: ports the kernel chooses.
    public var ports: ClosedRange<UInt16>?
    public var protocolConfig = UDPUpgradeConfig()
    public var fallbackAfterNanos: UInt64 {
        get { protocolConfig.fallbackAfterNanos }
        set { protocolConfig.fallbackAfterNanos = newValue }
    }
    public init() {}
}

/// Subscribers allowed to open a tunnel: alias and shared secret.
/// Text form, one per line: `alias secret` (`#` starts a comment). The secret is
/// taken as its UTF-8 bytes; `hex:` followed by hex digits gives raw bytes.
public struct SubscriberTable: Sendable {
    public private(set) var secrets: [String: [UInt8]] = [:]

    public init(_ secrets: [String: [UInt8]] = [:]) { self.secrets = secrets }

    public struct ParseError: Error, CustomStringConvertible {
        public let line: Int
        public let reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    public init(parsing text: String) throws {
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count == 2 else { throw ParseError(line: number + 1, reason: "expected 'alias secret'") }
            let alias = String(fields[0])
            guard alias.utf8.count <= 255 else { throw ParseError(line: number + 1, reason: "alias longer than 255 bytes") }
            guard let secret = SecretText.bytes(fields[1]) else { throw ParseError(line: number + 1, reason: "invalid hex secret") }
            guard secret.count >= SecretText.minimumBytes else {
                throw ParseError(line: number + 1, reason: "secret shorter than \(SecretText.minimumBytes) bytes")
            }
            guard secrets[alias] == nil else { throw ParseError(line: number + 1, reason: "duplicate alias \(alias)") }
            secrets[alias] = secret
        }
    }
}
