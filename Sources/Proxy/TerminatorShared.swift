// State the terminator's workers share: admission control (global cap, per-source
// rate), the current TLS context (swapped on reload), the resume directory and the
// load figures. Touched on accept, authentication and resume only — never per packet.

import IO
import Log
import Synchronization
import Tunnel

/// Where a resumable session lives.
struct ResumeEntry: Sendable {
    var alias: String
    var worker: Int
}

public final class TerminatorShared: Sendable {
    public let config: TerminatorConfig
    let subscribers: Mutex<SubscriberTable>
    /// The UDP audio settings, replaceable while running: read when a session or a call
    /// starts, so a change applies to new calls and leaves established ones alone.
    private let udpSettings: Mutex<UDPUpgradeSettings>
    /// DSCP for the UDP sockets of calls that start from now on (a commit changes it).
    private let mediaDSCPValue: Atomic<UInt8>
    let tls: Mutex<TLSContext?>
    let resumable = Mutex<[[UInt8]: ResumeEntry]>([:])
    /// Each worker's latest `show` rows (TerminatorStatus.swift).
    private let statuses = Mutex<[Int: WorkerStatus]>([:])
    private let buckets = Mutex<[UInt32: (tokens: Double, stamp: UInt64)]>([:])

    public let connections = Atomic<Int>(0)
    public let authenticatedClients = Atomic<Int>(0)
    public let activeCalls = Atomic<Int>(0)
    public let refusedOverloaded = Atomic<Int>(0)
    public let refusedRateLimited = Atomic<Int>(0)
    public let handshakeFailures = Atomic<Int>(0)
    public let mediaDroppedStale = Atomic<Int>(0)
    /// Calls whose audio moved to UDP, and moved back (counted per event, not per packet).
    public let udpUpgrades = Atomic<Int>(0)
    public let udpFallbacks = Atomic<Int>(0)

    init(config: TerminatorConfig, subscribers: SubscriberTable, tls: TLSContext?) {
        self.config = config
        self.subscribers = Mutex(subscribers)
        self.udpSettings = Mutex(config.udp)
        self.mediaDSCPValue = Atomic(config.mediaDSCP)
        self.tls = Mutex(tls)
    }

    enum Admission { case admitted, overloaded, rateLimited }

    /// Decides whether a new connection from `source` may proceed; counts it if so.
    func admit(source: UInt32, now: UInt64) -> Admission {
        let allowed = buckets.withLock { buckets -> Bool in
            var bucket = buckets[source] ?? (tokens: config.perSourceBurst, stamp: now)
            let elapsed = Double(now &- bucket.stamp) / 1e9
            bucket.tokens = min(config.perSourceBurst, bucket.tokens + elapsed * config.perSourceRate)
            bucket.stamp = now
            guard bucket.tokens >= 1 else {
                buckets[source] = bucket
                return false
            }
            bucket.tokens -= 1
            buckets[source] = bucket
            if buckets.count > 65_536 { buckets.removeAll(keepingCapacity: true) }  // bound memory under a flood
            return true
        }
        guard allowed else {
            refusedRateLimited.add(1, ordering: .relaxed)
            return .rateLimited
        }
        let previous = connections.add(1, ordering: .relaxed).oldValue
        guard previous < config.maxConnections else {
            connections.subtract(1, ordering: .relaxed)
            refusedOverloaded.add(1, ordering: .relaxed)
            return .overloaded
        }
        return .admitted
    }

    func released() { connections.subtract(1, ordering: .relaxed) }

    /// Calls and capacity as reported to clients.
    public var load: (activeCalls: UInt32, capacity: UInt32) {
        (UInt32(clamping: activeCalls.load(ordering: .relaxed)), config.capacity)
    }

    /// Replaces the subscriber table; sessions already authenticated are unaffected.
    public func replaceSubscribers(_ table: SubscriberTable) { subscribers.withLock { $0 = table } }

    public var udp: UDPUpgradeSettings { udpSettings.withLock { $0 } }

    /// Replaces the UDP audio settings for calls that start from now on.
    public func replaceUDPSettings(_ settings: UDPUpgradeSettings) { udpSettings.withLock { $0 = settings } }
    public var mediaDSCP: UInt8 { mediaDSCPValue.load(ordering: .relaxed) }

    func publish(_ status: WorkerStatus) { statuses.withLock { $0[status.worker] = status } }
    /// Every worker's latest rows, in worker order (each at most a second old).
    public var status: [WorkerStatus] { statuses.withLock { $0.values.sorted { $0.worker < $1.worker } } }
    /// Replaces the DSCP of calls that start from now on; established calls keep theirs.
    public func replaceMediaDSCP(_ dscp: UInt8) { mediaDSCPValue.store(dscp, ordering: .relaxed) }
    /// Marks a call's media socket with the current DSCP. Best effort: an unmarked packet
    /// still carries the audio, so a refusal (not seen on Linux for IPv4) is logged, not fatal.
    func markMedia(_ socket: UDPSocket) {
        let dscp = mediaDSCP
        guard dscp != 0 else { return }
        do { try socket.setTOS(UDPSocket.tos(dscp: dscp)) } catch {
            Self.log.warning("media-dscp-not-set", ["dscp": "\(dscp)", "error": "\(error)"])
        }
    }
    private static let log = Logger(subsystem: "tunnel")
}

/// The session's view of the subscriber table and the resume directory.
struct TerminatorCredentials: TunnelCredentials {
    let shared: TerminatorShared

    func secret(forAlias alias: String) -> [UInt8]? {
        shared.subscribers.withLock { $0.secrets[alias] }
    }

    func verifiedByGatekeeper(alias: String) -> Bool {
        shared.config.gatekeeperVerification && !alias.isEmpty
    }

    func canResume(alias: String, token: [UInt8]) -> Bool {
        shared.resumable.withLock { $0[token]?.alias == alias }
    }
}

struct OpenSSLTunnelCrypto: TunnelCrypto {
    func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] { TLSCrypto.hmacSHA256(key: key, message: message) }
    func randomBytes(_ count: Int) -> [UInt8] { TLSCrypto.randomBytes(count) }
}
