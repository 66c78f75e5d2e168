import IO

/// Settings of the media relay. Defaults are the product's.
public struct RelayConfiguration: Sendable {
    /// One worker per entry, pinned to that CPU (nil entries: not pinned).
    public var cpus: [Int?] = [nil]
    /// Address the gateway-facing ports bind to, and their even/odd pair range.
    public var gatewayAddress: IPv4Endpoint = .loopback(port: 0)
    public var gatewayPorts: ClosedRange<UInt16> = 30000...39999
    /// Address the client-facing ports bind to (UDP client legs), and their range.
    /// When the address equals `gatewayAddress`, both sides share one range.
    public var clientAddress: IPv4Endpoint = .loopback(port: 0)
    public var clientPorts: ClosedRange<UInt16> = 30000...39999
    /// A released port pair is not handed out again before this (stale peers still send).
    public var quarantineNanoseconds: UInt64 = 60_000_000_000
    /// No media for this long raises a timeout event.
    public var idleTimeoutNanoseconds: UInt64 = 60_000_000_000
    public var holdTimeoutNanoseconds: UInt64 = 3_600_000_000_000
    /// DSCP of outgoing media (46 = EF); nil leaves the TOS byte alone.
    public var dscp: UInt8? = 46
    /// Kernel socket buffers per media socket, in bytes (nil: system default).
    public var receiveBufferBytes: Int? = nil
    public var sendBufferBytes: Int? = nil
    /// Learn a remote from any source address, not only the one signalling announced.
    public var latchFromAnyAddress = false
    /// Datagrams per recvmmsg; batches drained per socket per wake-up (fairness under overload).
    public var batchSize = 64
    public var batchesPerWake = 4
    /// After traffic, keep polling (epoll_wait with no timeout) this long before sleeping:
    /// under load the worker then never pays a sleep/wake-up per packet, at the price of
    /// a busy core. 0 (default): always sleep when idle.
    public var busyPollNanoseconds: UInt64 = 0
    /// Merge same-size datagrams to one destination into one UDP GSO send.
    public var segmentationOffload = true
    /// Send RTP from a second socket per port that is in no epoll set (see
    /// `Relay.openSendSocket`). Off by default: it saves the relay the epoll wake-up of
    /// every sent datagram, but every datagram received on the port then goes through a
    /// reuseport group and its steering program, and that costs the receiving host more
    /// (measured on loopback: the sender forwarded about 9% fewer packets per second).
    public var separateSendSockets = false
    /// How often workers scan for idle sessions, and push stats (0: only on request).
    public var scanIntervalNanoseconds: UInt64 = 1_000_000_000
    public var statsIntervalNanoseconds: UInt64 = 0
    /// Bounded queues between the control plane and each worker.
    public var queueCapacity = 1024
    /// RTP clock rate used for jitter (timestamp units per second).
    public var clockRate: UInt32 = 8000

    public init() {}
}

public enum RelayError: Error, CustomStringConvertible, Equatable {
    case portsExhausted(address: String, range: ClosedRange<UInt16>, inUse: Int, quarantined: Int)
    case invalidPortRange(ClosedRange<UInt16>)
    case queueFull(worker: Int)
    case unknownSession(SessionID)
    case noWorkers
    /// A media socket could not be opened for a reason other than its port being taken.
    case socketFailed(String)

    public var description: String {
        switch self {
        case let .portsExhausted(address, range, inUse, quarantined):
            "no free RTP/RTCP port pair on \(address) in \(range.lowerBound)-\(range.upperBound): \(inUse) pairs in use, \(quarantined) in quarantine"
        case .invalidPortRange(let range):
            "port range \(range.lowerBound)-\(range.upperBound) holds no even/odd pair"
        case .queueFull(let worker):
            "relay worker \(worker) command queue is full"
        case .unknownSession(let id):
            "no relay session \(id.value)"
        case .noWorkers:
            "relay configured with no worker CPU"
        case .socketFailed(let reason):
            "cannot open a media socket: \(reason)"
        }
    }
}
