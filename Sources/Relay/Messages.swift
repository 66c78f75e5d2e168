import IO
import RTP

public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public var description: String { String(value) }
}

/// The two legs of a session: toward the operator's gateway, toward the client.
public enum Side: Int, Sendable, CustomStringConvertible {
    case gateway = 0
    case client = 1
    public var other: Side { self == .gateway ? .client : .gateway }
    public var description: String { self == .gateway ? "gateway" : "client" }
}

public enum SessionMode: Sendable, Equatable {
    case active
    /// On hold: media may stop for long, so the idle timeout is the hold timeout.
    case hold
}

public enum Channel: Int, Sendable {
    case rtp = 0
    case rtcp = 1
}

/// The client leg when it is not a UDP socket: the tunnel. The worker hands it the
/// datagrams bound for the client and the tunnel hands the worker what the client sent
/// (`RelayWorker.receiveFromClient`). Called on the worker thread; must not call back
/// into the worker synchronously.
public protocol MediaSink: AnyObject {
    func deliver(session: SessionID, channel: Channel, bytes: UnsafeRawBufferPointer)
}

/// Why a datagram was not relayed.
public struct DropCounters: Equatable, Sendable {
    /// From an address that is not allowed to latch (RTP bleed / injection attempt).
    public var wrongSource: UInt64 = 0
    /// Not RTP/RTCP, by parser reason.
    public var tooShort: UInt64 = 0
    public var badVersion: UInt64 = 0
    public var truncatedHeader: UInt64 = 0
    public var badPadding: UInt64 = 0
    public var badRTCP: UInt64 = 0
    /// The other leg has no remote yet (nothing latched, nothing announced).
    public var noDestination: UInt64 = 0
    /// The kernel refused the send (socket buffer full, unreachable).
    public var sendFailed: UInt64 = 0
    /// Did not fit the receive buffer.
    public var oversize: UInt64 = 0

    public var malformed: UInt64 { tooShort + badVersion + truncatedHeader + badPadding + badRTCP }
    public var total: UInt64 { wrongSource + malformed + noDestination + sendFailed + oversize }

    @inline(__always)
    mutating func count(_ reason: MalformedReason) {
        switch reason {
        case .tooShort: tooShort &+= 1
        case .badVersion: badVersion &+= 1
        case .truncatedHeader: truncatedHeader &+= 1
        case .badPadding: badPadding &+= 1
        case .badRTCPLength, .badRTCPType: badRTCP &+= 1
        }
    }
}

/// Counters of one direction: what one leg's peer sent toward the other leg.
/// Stored in the order the hot path touches them: what every packet updates comes first,
/// so a forwarded packet touches two cache lines of counters, not five.
public struct DirectionCounters: Equatable, Sendable {
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    public var forwarded: UInt64 = 0
    /// Monotonic time of the last accepted packet (0: none yet).
    public var lastSeenNanoseconds: UInt64 = 0
    /// RTP sequence/loss/duplicate/reorder/jitter statistics of the stream.
    public var stream = StreamStatistics()
    public var rtcpPackets: UInt64 = 0
    public var drops = DropCounters()
    /// Times the remote changed after the first latch.
    public var relatches: UInt64 = 0
    /// Kernel receive-queue drops on this leg's sockets (SO_RXQ_OVFL, cumulative).
    public var kernelDrops: UInt64 = 0
}

public struct SessionStats: Equatable, Sendable {
    public var id: SessionID
    /// Index by `Side.rawValue`: packets received from that side's peer.
    public var fromGateway: DirectionCounters
    public var fromClient: DirectionCounters
    public var gatewayRemote: IPv4Endpoint?
    public var clientRemote: IPv4Endpoint?
}

/// The client leg of a new session.
public enum ClientLeg {
    /// A UDP port pair; `announced` is the client's address from signalling (port 0: unknown).
    case udp(announced: IPv4Endpoint?)
    /// The tunnel (or any other in-process transport).
    case sink(MediaSink)
}

/// What the control plane asks a worker to do.
public enum RelayCommand {
    case create(SessionSetup)
    /// `rtcp`: the RTCP endpoint signalling announced, when not the RTP port + 1
    /// (H.245's mediaControlChannel, SDP's a=rtcp).
    case updateRemote(SessionID, Side, IPv4Endpoint, rtcp: IPv4Endpoint? = nil)
    case setMode(SessionID, SessionMode)
    case destroy(SessionID)
    case requestStats(SessionID)
    case stop
}

public struct SessionSetup {
    public var id: SessionID
    public var gatewayRTP: Int32
    /// A socket on the gateway RTP port that only sends (-1: send from `gatewayRTP`).
    public var gatewayRTPSend: Int32 = -1
    public var gatewayRTCP: Int32
    public var gatewayAnnounced: IPv4Endpoint?
    public var clientRTP: Int32
    public var clientRTPSend: Int32 = -1
    public var clientRTCP: Int32
    public var clientAnnounced: IPv4Endpoint?
    public var clientSink: MediaSink?
    public var rtcpMux: (gateway: Bool, client: Bool)
}

/// What workers tell the control plane.
public enum RelayEvent: Sendable {
    /// First packet accepted from a side (its remote is now latched).
    case firstPacket(SessionID, Side, from: IPv4Endpoint)
    /// No media for the configured time.
    case timeout(SessionID, idleNanoseconds: UInt64)
    case stats(SessionStats)
    /// The worker closed the session's sockets; final counters.
    case destroyed(SessionStats)
    /// A command named a session this worker does not hold.
    case unknownSession(SessionID)
}
