// Is the configured gatekeeper there? Asked with unicast GRQ (H.225.0 7.2.1): a GCF or a
// GRJ both prove that it answers. Sans-I/O: the driver feeds received RAS messages and
// the time, and sends what `tick` returns. The appliance's health uses the verdict.
import H323

public struct GatekeeperProbe: Sendable {
    public enum Reachability: String, Sendable, Equatable {
        /// No probe has been answered or given up on yet.
        case unknown
        /// The last probe was answered.
        case reachable
        /// The last probe went unanswered through every attempt.
        case unreachable
    }

    public struct Timing: Sendable, Equatable {
        /// From one verdict to the next probe.
        public var intervalMs: UInt64
        /// Wait for an answer before sending again.
        public var timeoutMs: UInt64
        /// Transmissions of one probe before the gatekeeper counts as unreachable.
        public var attempts: Int

        public init(intervalMs: UInt64 = 5000, timeoutMs: UInt64 = 1000, attempts: Int = 3) {
            self.intervalMs = intervalMs
            self.timeoutMs = timeoutMs
            self.attempts = max(1, attempts)
        }
    }

    public private(set) var reachability = Reachability.unknown
    /// When `tick` has something to do next (milliseconds of the driver's monotonic clock).
    public private(set) var nextDeadline: UInt64
    let timing: Timing
    let rasAddress: EndpointAddress
    let gatekeeperIdentifier: String?
    private var sequence = 0
    /// Transmissions of the outstanding probe; 0 when none is outstanding.
    private var sent = 0

    /// `rasAddress` is where the gatekeeper sends its answer (the probe's own socket).
    public init(rasAddress: EndpointAddress, gatekeeperIdentifier: String? = nil, timing: Timing = Timing(), now: UInt64) {
        self.rasAddress = rasAddress
        self.gatekeeperIdentifier = gatekeeperIdentifier
        self.timing = timing
        nextDeadline = now  // the first probe goes out at once
    }

    /// The GRQ to send now, if any; gives up on a probe after its last attempt.
    public mutating func tick(now: UInt64) -> GatekeeperRequest? {
        guard now >= nextDeadline else { return nil }
        if sent >= timing.attempts {
            reachability = .unreachable
            sent = 0
            nextDeadline = now + timing.intervalMs
            return nil
        }
        if sent == 0 { sequence = sequence >= 65535 ? 1 : sequence + 1 }
        sent += 1
        nextDeadline = now + timing.timeoutMs
        return GatekeeperRequest(requestSeqNum: sequence, protocolIdentifier: EndpointIdentity.h2250Protocol,
                                 rasAddress: rasAddress.transportAddress, endpointType: EndpointIdentity.terminal,
                                 gatekeeperIdentifier: gatekeeperIdentifier)
    }

    /// A RAS message from the gatekeeper's address. Returns true when it answered the
    /// outstanding probe (a late answer to a probe already given up on counts too: the
    /// gatekeeper is there).
    @discardableResult
    public mutating func received(_ message: RasMessage, now: UInt64) -> Bool {
        let answered: Int
        switch message {
        case .gatekeeperConfirm(let gcf): answered = gcf.requestSeqNum
        case .gatekeeperReject(let grj): answered = grj.requestSeqNum
        default: return false
        }
        guard answered == sequence, sequence != 0 else { return false }
        reachability = .reachable
        if sent > 0 {
            sent = 0
            nextDeadline = now + timing.intervalMs
        }
        return true
    }
}
