// Whether the configured gatekeeper answers, for `show health` (and so for the update's
// trial: a gatekeeper that is configured but silent is not healthy). The mirror talks to
// the gatekeeper only when a client registers, so this asks on its own: a RAS
// GatekeeperRequest (H.225.0 unicast discovery) every few seconds from the mirror's
// address; a GatekeeperConfirm or GatekeeperReject with the same sequence number means
// it is reachable (a reject still proves a live gatekeeper), no answer within the
// timeout means unreachable. Sans-I/O core; the driver runs on daemon worker 0's loop.
import Endpoint
import EndpointIO
import H323
import IO
import Log
import Synchronization

struct GatekeeperProbeCore: Sendable {
    static let intervalMs: UInt64 = 5_000
    static let timeoutMs: UInt64 = 3_000

    /// nil until the first answer or the first timeout.
    private(set) var reachable: Bool?
    private var target: EndpointAddress?
    private var outstanding: (sequence: Int, sentAt: UInt64)?
    private var nextAt: UInt64 = 0
    private var sequence = 0

    /// Points the probe at `gatekeeper` (nil: stop probing); a change forgets the old verdict.
    mutating func set(gatekeeper: EndpointAddress?, now: UInt64) {
        guard gatekeeper != target else { return }
        target = gatekeeper
        reachable = nil
        outstanding = nil
        nextAt = now
    }

    /// Called every few hundred ms: the request to send now, if any, and where.
    mutating func tick(now: UInt64, rasAddress: EndpointAddress) -> (RasMessage, EndpointAddress)? {
        guard let target else { return nil }
        if let outstanding, now >= outstanding.sentAt + Self.timeoutMs {
            reachable = false
            self.outstanding = nil
        }
        guard outstanding == nil, now >= nextAt else { return nil }
        sequence = sequence % 65_535 + 1
        outstanding = (sequence, now)
        nextAt = now + Self.intervalMs
        let request = GatekeeperRequest(requestSeqNum: sequence, protocolIdentifier: EndpointIdentity.h2250Protocol,
                                        rasAddress: rasAddress.transportAddress, endpointType: EndpointIdentity.gateway)
        return (.gatekeeperRequest(request), target)
    }

    /// An answer from `from`; anything but the outstanding request's answer from the target is ignored.
    mutating func received(_ message: RasMessage, from: EndpointAddress) {
        guard from == target, let outstanding else { return }
        let answered: Int
        switch message {
        case .gatekeeperConfirm(let confirm): answered = confirm.requestSeqNum
        case .gatekeeperReject(let reject): answered = reject.requestSeqNum
        default: return
        }
        guard answered == outstanding.sequence else { return }
        reachable = true
        self.outstanding = nil
    }
}

/// The probe's I/O: one UDP port on a worker's loop, a 250 ms timer, the verdict in a Mutex.
final class GatekeeperProbe: Sendable {
    /// What to probe, from which address; set by the tunnel service's plan.
    struct Target: Equatable, Sendable {
        var gatekeeper: EndpointAddress
        var bindIP: UInt32
    }

    private let target = Mutex<Target?>(nil)
    private let verdict = Mutex<Bool?>(nil)
    private let log = Logger(subsystem: "gatekeeper-probe")

    func set(_ newTarget: Target?) {
        target.withLock { $0 = newTarget }
    }

    /// nil: not known yet (or nothing to probe).
    var reachable: Bool? { verdict.withLock { $0 } }

    /// Runs on `loop`'s thread from now on.
    func attach(to loop: EventLoop) {
        final class Driver {
            var core = GatekeeperProbeCore()
            var port: UDPPort?
            var bound: Target?
            var reported: Bool?
        }
        let driver = Driver()
        _ = loop.scheduleRepeating(everyNanoseconds: 250_000_000) { [self] in
            let now = millisecondsNow()
            let wanted = self.target.withLock { $0 }
            if wanted != driver.bound {
                driver.port?.close()
                driver.port = nil
                driver.bound = wanted
                if let wanted {
                    do {
                        let port = try UDPPort(loop: loop, address: EndpointAddress(ip: wanted.bindIP, port: 0))
                        port.onDatagram = { bytes, from in
                            guard let message = try? RasMessage(decoding: Array(bytes)) else { return }
                            driver.core.received(message, from: from)
                        }
                        driver.port = port
                    } catch {
                        self.log.error("gatekeeper probe has no socket", ["error": "\(error)"])
                    }
                }
                driver.core.set(gatekeeper: driver.port == nil ? nil : wanted?.gatekeeper, now: now)
            }
            guard let port = driver.port else {
                self.verdict.withLock { $0 = nil }
                return
            }
            if let (request, to) = driver.core.tick(now: now, rasAddress: port.address), let bytes = try? request.encoded() {
                port.send(bytes, to: to)
            }
            let after = driver.core.reachable
            if after != driver.reported, let after {
                driver.reported = after
                self.log.notice(after ? "gatekeeper reachable" : "gatekeeper not answering",
                                ["gatekeeper": "\(wanted.map { "\($0.gatekeeper)" } ?? "-")"])
            }
            self.verdict.withLock { $0 = after }
        }
    }
}
