// The mirror's part of `show registrations`, `show calls` and `show relay`
// (TerminatorStatus.swift): read on the worker's thread, as values.
import Relay

extension MirrorBackend: StatusReporting {
    func addStatus(of client: TunnelClient, to status: inout WorkerStatus) {
        guard let m = mirror(client) else { return }
        let key = "registration.\(StatusRow.component(m.alias))"
        let registered = m.rasDriver?.client.isRegistered == true
        status.registrations += [StatusRow("\(key).state", registered ? "registered" : "not registered"),
                                 StatusRow("\(key).aliases", m.aliases.joined(separator: ",")),
                                 StatusRow("\(key).ras", "\(m.publicRAS)"),
                                 StatusRow("\(key).signalling", "\(m.publicSignalling)")]
        if registered, let id = m.rasDriver?.client.endpointIdentifier {
            status.registrations.append(StatusRow("\(key).endpoint-id", id))
        }
        let now = wallClockMilliseconds()
        for call in m.calls.values.sorted(by: { $0.channel < $1.channel }) {
            let key = "call.\(StatusRow.component(m.alias)).\(call.channel)"
            let record = call.record
            status.calls += [StatusRow("\(key).direction", record.direction == .outgoing ? "out" : "in"),
                             StatusRow("\(key).caller", record.caller),
                             StatusRow("\(key).callee", record.callee),
                             StatusRow("\(key).state", call.connected ? "connected" : "setting up"),
                             StatusRow("\(key).codec", call.transmit.map { "\($0.codec)" } ?? "-"),
                             StatusRow("\(key).duration-s", "\((now &- (record.connectMs ?? now)) / 1000)"),
                             StatusRow("\(key).rtp-port", "\(call.rtpPort)")]
            if let counters = call.relay.stats(call.media) {
                status.calls += [StatusRow("\(key).from-net", Self.mediaText(counters.fromGateway)),
                                 StatusRow("\(key).to-net", Self.mediaText(counters.fromClient))]
            }
        }
    }

    /// One direction of a call's media: "N packets, N lost, jitter X ms, N dropped".
    private static func mediaText(_ counters: DirectionCounters) -> String {
        let media = MediaSummary(counters.stream)
        return "\(media.packets) packets, \(media.lost) lost, jitter \(CallRecord.fixed(media.jitterMs, 1)) ms, "
            + "\(counters.drops.total) dropped"
    }

    func addWorkerStatus(to status: inout WorkerStatus) {
        let key = "relay.worker\(worker.index)"
        guard let relay else {
            status.relay.append(StatusRow("\(key).state", "no media ports (see the log)"))
            return
        }
        status.relay += [StatusRow("\(key).ports", "\(relay.portRange.lowerBound)-\(relay.portRange.upperBound)"),
                         StatusRow("\(key).sessions", "\(relay.sessionCount)"),
                         StatusRow("\(key).free-pairs", "\(relay.freePairs)"),
                         StatusRow("\(key).quarantined-pairs", "\(relay.quarantinedPairs)")]
    }
}
