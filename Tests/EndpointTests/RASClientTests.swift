// The RAS client driven by hand: every message it sends is encoded and decoded again
// with the H.225.0 PER codec, as a gatekeeper would see it.
import H323
import Testing
@testable import Endpoint

@Suite struct RASClientTests {
    static let gk = EndpointAddress(parsing: "10.0.0.1:1719")!
    static let me = EndpointAddress(parsing: "192.0.2.10:40000")!
    static let cs = EndpointAddress(parsing: "192.0.2.10:41000")!

    static func client(discover: Bool = true) -> RASClient {
        RASClient(config: RASConfig(gatekeeper: gk, rasAddress: me, callSignalAddress: cs,
                                    aliases: [.h323ID("alice"), .dialledDigits("1001")], discover: discover, timeToLive: 60))
    }

    /// The RAS messages sent, after a trip through the codec.
    static func sent(_ actions: [RASAction]) throws -> [RasMessage] {
        try actions.compactMap { action -> RasMessage? in
            guard case .send(let m, let to) = action else { return nil }
            #expect(to == gk || to.port != 0)
            return try RasMessage(decoding: m.encoded())
        }
    }

    static func register(_ c: inout RASClient, now: UInt64 = 0) throws {
        let grq = try sent(c.handle(.start, now: now))
        guard case .gatekeeperRequest(let g)? = grq.first else { Issue.record("no GRQ"); return }
        let rrq = try sent(c.handle(.received(.gatekeeperConfirm(GatekeeperConfirm(
            requestSeqNum: g.requestSeqNum, protocolIdentifier: EndpointIdentity.h2250Protocol, gatekeeperIdentifier: "GK",
            rasAddress: gk.transportAddress)), from: gk), now: now))
        guard case .registrationRequest(let r)? = rrq.first else { Issue.record("no RRQ"); return }
        #expect(r.keepAlive == false)
        #expect(r.terminalAlias == [.h323ID("alice"), .dialledDigits("1001")])
        #expect(r.rasAddress == [me.transportAddress])
        #expect(r.gatekeeperIdentifier == "GK")
        let done = c.handle(.received(.registrationConfirm(RegistrationConfirm(
            requestSeqNum: r.requestSeqNum, protocolIdentifier: EndpointIdentity.h2250Protocol, callSignalAddress: [],
            gatekeeperIdentifier: "GK", endpointIdentifier: "EP1", timeToLive: 60)), from: gk), now: now)
        #expect(done == [.registered(endpointIdentifier: "EP1", timeToLive: 60)])
    }

    @Test func discoveryRegistrationAndKeepAlive() throws {
        var c = Self.client()
        try Self.register(&c)
        #expect(c.isRegistered)
        // Nothing before the keep-alive time; a lightweight RRQ before timeToLive runs out.
        let deadline = try #require(c.nextDeadline)
        #expect(deadline < 60_000 && deadline > 30_000)
        #expect(try Self.sent(c.handle(.tick, now: deadline - 1)).isEmpty)
        let ka = try Self.sent(c.handle(.tick, now: deadline))
        guard case .registrationRequest(let r)? = ka.first else { Issue.record("no keep-alive"); return }
        #expect(r.keepAlive == true)
        #expect(r.endpointIdentifier == "EP1")
        #expect(r.terminalAlias == nil && r.callSignalAddress.isEmpty)
        // The gatekeeper forgot us: RRJ to the keep-alive means a full RRQ at once.
        let full = try Self.sent(c.handle(.received(.registrationReject(RegistrationReject(
            requestSeqNum: r.requestSeqNum, protocolIdentifier: EndpointIdentity.h2250Protocol,
            rejectReason: .fullRegistrationRequired)), from: Self.gk), now: deadline + 10))
        guard case .registrationRequest(let f)? = full.first else { Issue.record("no full RRQ"); return }
        #expect(f.keepAlive == false && f.terminalAlias?.count == 2)
    }

    @Test func retransmitsThenGivesUpAndRetriesLater() throws {
        var c = Self.client(discover: false)
        let first = try Self.sent(c.handle(.start, now: 0))
        guard case .registrationRequest(let r)? = first.first else { Issue.record("no RRQ"); return }
        // H.225.0: RRQ 3 s, 2 retries, same sequence number.
        var now: UInt64 = 0
        for _ in 0..<2 {
            now += 3000
            let again = try Self.sent(c.handle(.tick, now: now))
            guard case .registrationRequest(let r2)? = again.first else { Issue.record("no retry"); return }
            #expect(r2.requestSeqNum == r.requestSeqNum)
        }
        now += 3000
        let lost = c.handle(.tick, now: now)
        #expect(lost.contains { if case .registrationLost = $0 { return true }; return false })
        #expect(c.state == .backingOff)
        let retry = try Self.sent(c.handle(.tick, now: now + 10_000))
        guard case .registrationRequest? = retry.first else { Issue.record("no new attempt"); return }
    }

    @Test func admissionDisengageAndGatekeeperRequests() throws {
        var c = Self.client()
        try Self.register(&c)
        let guid = [UInt8](repeating: 7, count: 16)
        let p = AdmissionParameters(callKey: 42, callReferenceValue: 5, conferenceID: guid, callIdentifier: guid,
                                    destination: [.dialledDigits("0123")], source: [.h323ID("alice")], answerCall: false)
        let arqs = try Self.sent(c.handle(.admit(p), now: 100))
        guard case .admissionRequest(let arq)? = arqs.first else { Issue.record("no ARQ"); return }
        #expect(arq.endpointIdentifier == "EP1" && arq.destinationInfo == [.dialledDigits("0123")])
        let gw = EndpointAddress(parsing: "10.0.0.2:1720")!
        let ok = c.handle(.received(.admissionConfirm(AdmissionConfirm(
            requestSeqNum: arq.requestSeqNum, bandWidth: 1280, callModel: .direct, destCallSignalAddress: gw.transportAddress)),
            from: Self.gk), now: 200)
        #expect(ok == [.admitted(callKey: 42, destination: gw, routed: false)])

        // IRQ -> IRR listing the call; BRQ -> BCF.
        let irr = try Self.sent(c.handle(.received(.infoRequest(InfoRequest(requestSeqNum: 900, callReferenceValue: 0)), from: Self.gk), now: 300))
        guard case .infoRequestResponse(let r)? = irr.first else { Issue.record("no IRR"); return }
        #expect(r.requestSeqNum == 900 && r.perCallInfo?.first?.callReferenceValue == 5)
        let bcf = try Self.sent(c.handle(.received(.bandwidthRequest(BandwidthRequest(
            requestSeqNum: 901, endpointIdentifier: "EP1", conferenceID: guid, callReferenceValue: 5, bandWidth: 640)),
            from: Self.gk), now: 300))
        #expect(bcf == [.bandwidthConfirm(BandwidthConfirm(requestSeqNum: 901, bandWidth: 640))])

        let drqs = try Self.sent(c.handle(.disengage(callKey: 42, cause: 16), now: 400))
        guard case .disengageRequest(let drq)? = drqs.first else { Issue.record("no DRQ"); return }
        #expect(drq.disengageReason == .normalDrop && drq.callIdentifier?.guid == guid)
        #expect(c.handle(.received(.disengageConfirm(DisengageConfirm(requestSeqNum: drq.requestSeqNum)), from: Self.gk), now: 500)
                == [.disengaged(callKey: 42)])

        // ARJ carries a cause the phone can show.
        let arq2 = try Self.sent(c.handle(.admit(AdmissionParameters(callKey: 43, callReferenceValue: 6, conferenceID: guid,
            callIdentifier: guid, destination: [.dialledDigits("999")], source: [], answerCall: false)), now: 600))
        guard case .admissionRequest(let a2)? = arq2.first else { Issue.record("no ARQ"); return }
        let failed = c.handle(.received(.admissionReject(AdmissionReject(requestSeqNum: a2.requestSeqNum,
            rejectReason: .calledPartyNotRegistered)), from: Self.gk), now: 700)
        #expect(failed == [.admissionFailed(callKey: 43, cause: Q850.unallocatedNumber)])
        #expect(Q850.text(Q850.unallocatedNumber) == "Number does not exist")
    }

    @Test func unregistrationBothWays() throws {
        var c = Self.client()
        try Self.register(&c)
        // Gatekeeper-initiated: UCF, then a fresh registration.
        let out = c.handle(.received(.unregistrationRequest(UnregistrationRequest(requestSeqNum: 77, callSignalAddress: [],
            reason: .maintenance)), from: Self.gk), now: 1000)
        #expect(out.first == .send(.unregistrationConfirm(UnregistrationConfirm(requestSeqNum: 77)), to: Self.gk))
        let rrq = try Self.sent(Array(out.dropFirst()))
        guard case .registrationRequest(let r)? = rrq.first else { Issue.record("no re-registration"); return }
        _ = c.handle(.received(.registrationConfirm(RegistrationConfirm(requestSeqNum: r.requestSeqNum,
            protocolIdentifier: EndpointIdentity.h2250Protocol, callSignalAddress: [], endpointIdentifier: "EP2", timeToLive: 60)),
            from: Self.gk), now: 1100)
        // Endpoint-initiated.
        let urqs = try Self.sent(c.handle(.unregister, now: 2000))
        guard case .unregistrationRequest(let u)? = urqs.first else { Issue.record("no URQ"); return }
        #expect(u.endpointIdentifier == "EP2")
        #expect(c.handle(.received(.unregistrationConfirm(UnregistrationConfirm(requestSeqNum: u.requestSeqNum)), from: Self.gk),
                         now: 2100) == [.unregistered])
        #expect(c.nextDeadline == nil)
    }
}
