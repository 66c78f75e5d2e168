// The gatekeeper probe driven by hand: GRQs through the PER codec, answers and silence.
import H323
import Testing
@testable import Endpoint

@Suite struct GatekeeperProbeTests {
    static let me = EndpointAddress(parsing: "192.0.2.10:40000")!
    static let timing = GatekeeperProbe.Timing(intervalMs: 5000, timeoutMs: 1000, attempts: 3)

    static func onWire(_ grq: GatekeeperRequest?) throws -> GatekeeperRequest? {
        guard let grq else { return nil }
        guard case .gatekeeperRequest(let decoded) = try RasMessage(decoding: RasMessage.gatekeeperRequest(grq).encoded()) else {
            Issue.record("not a GRQ after the codec")
            return nil
        }
        return decoded
    }

    static func gcf(_ seq: Int) -> RasMessage {
        .gatekeeperConfirm(GatekeeperConfirm(requestSeqNum: seq, protocolIdentifier: EndpointIdentity.h2250Protocol,
                                             rasAddress: me.transportAddress))
    }

    @Test func answeredProbeMeansReachableAndTheNextWaitsAnInterval() throws {
        var probe = GatekeeperProbe(rasAddress: Self.me, timing: Self.timing, now: 100)
        #expect(probe.reachability == .unknown)
        let first = probe.tick(now: 100)
        let grq = try #require(try Self.onWire(first))
        #expect(grq.rasAddress == Self.me.transportAddress)
        let waiting = probe.tick(now: 500)
        #expect(waiting == nil)  // waiting for the answer
        let notOurs = probe.received(Self.gcf(grq.requestSeqNum + 1), now: 600)
        #expect(!notOurs)
        #expect(probe.reachability == .unknown)
        let ours = probe.received(Self.gcf(grq.requestSeqNum), now: 600)
        #expect(ours)
        #expect(probe.reachability == .reachable)
        #expect(probe.nextDeadline == 5600)
        let early = probe.tick(now: 5599)
        #expect(early == nil)
        let second = probe.tick(now: 5600)
        let next = try #require(second)
        #expect(next.requestSeqNum != grq.requestSeqNum)
    }

    @Test func aRejectStillProvesTheGatekeeperIsThere() throws {
        var probe = GatekeeperProbe(rasAddress: Self.me, timing: Self.timing, now: 0)
        let sent = probe.tick(now: 0)
        let grq = try #require(sent)
        probe.received(.gatekeeperReject(GatekeeperReject(requestSeqNum: grq.requestSeqNum,
                                                          protocolIdentifier: EndpointIdentity.h2250Protocol,
                                                          rejectReason: .terminalExcluded)), now: 10)
        #expect(probe.reachability == .reachable)
    }

    @Test func silenceThroughEveryAttemptMeansUnreachableThenItRecovers() throws {
        var probe = GatekeeperProbe(rasAddress: Self.me, timing: Self.timing, now: 0)
        var sequences: [Int] = []
        for now in [UInt64(0), 1000, 2000] {
            let sent = probe.tick(now: now)
            let grq = try #require(sent)
            sequences.append(grq.requestSeqNum)
            #expect(probe.reachability == .unknown)
        }
        #expect(Set(sequences).count == 1)  // retransmissions keep the sequence number
        let givenUp = probe.tick(now: 3000)
        #expect(givenUp == nil)
        #expect(probe.reachability == .unreachable)
        #expect(probe.nextDeadline == 8000)
        let retry = probe.tick(now: 8000)
        let again = try #require(retry)
        #expect(probe.reachability == .unreachable)  // until an answer comes
        probe.received(Self.gcf(again.requestSeqNum), now: 8100)
        #expect(probe.reachability == .reachable)
    }
}
