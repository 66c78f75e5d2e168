// The mirror's answer to "is the gatekeeper reachable?" for the appliance's health: a
// GatekeeperProbe (Endpoint, sans-I/O) driven on one worker's loop from a RAS socket of
// its own, with the verdict published for other threads (`show health` runs on the
// daemon's control thread).
import Endpoint
import EndpointIO
import H323
import IO
import Log
import Synchronization

/// The verdict, readable from any thread.
public final class GatekeeperReachability: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}

    public var current: GatekeeperProbe.Reachability {
        switch value.load(ordering: .acquiring) {
        case 1: .reachable
        case 2: .unreachable
        default: .unknown
        }
    }

    func publish(_ reachability: GatekeeperProbe.Reachability) {
        value.store(reachability == .reachable ? 1 : reachability == .unreachable ? 2 : 0, ordering: .releasing)
    }
}

/// Runs the probe on `loop` (one worker's; called on that worker's thread only).
final class GatekeeperMonitor {
    private let loop: EventLoop
    private let port: UDPPort
    private let gatekeeper: EndpointAddress
    private let reachability: GatekeeperReachability
    private var probe: GatekeeperProbe
    private var timer: TimerID?
    private let log = Logger(subsystem: "mirror")

    init(loop: EventLoop, config: MirrorConfig, reachability: GatekeeperReachability,
         timing: GatekeeperProbe.Timing = GatekeeperProbe.Timing()) throws {
        self.loop = loop
        self.gatekeeper = config.gatekeeper
        self.reachability = reachability
        // An ephemeral port outside the pools; the gatekeeper answers to the public address.
        port = try UDPPort(loop: loop, address: EndpointAddress(ip: config.bindIP, port: 0))
        probe = GatekeeperProbe(rasAddress: EndpointAddress(ip: config.publicIP, port: port.address.port),
                                timing: timing, now: millisecondsNow())
        port.onDatagram = { [unowned self] bytes, from in
            guard from == self.gatekeeper, let message = try? RasMessage(decoding: Array(bytes)) else { return }
            if self.probe.received(message, now: millisecondsNow()) { self.publish() }
        }
        turn()
    }

    private func turn() {
        let now = millisecondsNow()
        if let grq = probe.tick(now: now), let bytes = try? RasMessage.gatekeeperRequest(grq).encoded() {
            port.send(bytes, to: gatekeeper)
        }
        publish()
        let deadline = probe.nextDeadline
        timer = loop.schedule(afterNanoseconds: ((deadline > now ? deadline - now : 0) + 1) * 1_000_000) { [weak self] in
            self?.timer = nil
            self?.turn()
        }
    }

    private var published = GatekeeperProbe.Reachability.unknown

    private func publish() {
        let now = probe.reachability
        guard now != published else { return }
        if now == .unreachable {
            log.warning("gatekeeper-unreachable", ["gatekeeper": "\(gatekeeper)"])
        } else {
            log.notice("gatekeeper-\(now.rawValue)", ["gatekeeper": "\(gatekeeper)"])
        }
        published = now
        reachability.publish(now)
    }

    func close() {
        if let timer { loop.cancel(timer) }
        timer = nil
        port.close()
    }
}
