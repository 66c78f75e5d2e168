// The UDP upgrade's state machines (docs/tunnel-protocol.md §8): the client and the
// appliance legs driven against each other, with real HMAC, through the datagrams
// each produces. Peers are plain strings standing for UDP source addresses.
import Testing
import Tunnel

private let key: [UInt8] = Array(0..<16)
private let rtp: [UInt8] = [0x80, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0x12, 0x34] + [UInt8](repeating: 0xD5, count: 160)
private let rtcp: [UInt8] = [0x81, 201, 0, 7] + [UInt8](repeating: 0, count: 28)

private func receive(_ leg: inout ApplianceUDPLeg<String>, _ bytes: [UInt8], from: String, now: UInt64) -> ApplianceUDPLeg<String>.Received {
    bytes.withUnsafeBytes { leg.receive($0, from: from, now: now) }
}

private func receive(_ leg: inout ClientUDPLeg, _ bytes: [UInt8], now: UInt64) -> ClientUDPLeg.Received {
    bytes.withUnsafeBytes { leg.receive($0, now: now) }
}

private func probes(_ actions: [ClientUDPLeg.Action]) -> [[UInt8]] {
    actions.compactMap { if case let .send(bytes) = $0 { bytes } else { nil } }
}

/// Both legs through offer, probe, answer and the client's first RTP on UDP.
private func upgraded(config: UDPUpgradeConfig = UDPUpgradeConfig()) -> (ClientUDPLeg, ApplianceUDPLeg<String>) {
    let crypto = OpenSSLCrypto()
    var client = ClientUDPLeg(channel: 1, config: config, crypto: crypto)
    var appliance = ApplianceUDPLeg<String>(channel: 1, key: key, config: config, crypto: crypto)
    client.offer(key: key, now: 0)
    let probe = probes(client.tick(now: 0))
    guard case let .answer(answer, to)? = probe.first.map({ receive(&appliance, $0, from: "nat:4000", now: 1) }) else {
        Issue.record("no answer to the first probe")
        return (client, appliance)
    }
    #expect(to == "nat:4000")
    #expect(receive(&client, answer, now: 2) == .control([.pathChanged(.udp, tellAppliance: false, reason: "the appliance answered probe 1 on UDP")]))
    #expect(receive(&appliance, rtp, from: "nat:4000", now: 3) == .media(.rtp))
    return (client, appliance)
}

@Suite struct UDPUpgradeTests {
    @Test func datagramsAreToldApartFromRTPAndRTCP() {
        let probe = UDPUpgradeWire.encode(.probe, channel: 7, counter: 9, key: key, crypto: OpenSSLCrypto())
        #expect(probe.count == UDPUpgradeWire.size)
        let mac = UDPUpgradeWire.mac(.probe, channel: 7, counter: 9, key: key, crypto: OpenSSLCrypto())
        #expect(probe.withUnsafeBytes { UDPUpgradeWire.classify($0) } == .control(kind: .probe, channel: 7, counter: 9, mac: mac))
        #expect(rtp.withUnsafeBytes { UDPUpgradeWire.classify($0) } == .media(.rtp))
        #expect(rtcp.withUnsafeBytes { UDPUpgradeWire.classify($0) } == .media(.rtcp))
        for garbage: [UInt8] in [[], [0x80], Array(probe.prefix(27)), [0x42, 0x4C, 0x55, 0x02] + Array(probe.dropFirst(4)),
                                 [0x80, 8, 0, 1], [0x00] + Array(rtp.dropFirst())] {
            #expect(garbage.withUnsafeBytes { UDPUpgradeWire.classify($0) } == .garbage)
        }
    }

    @Test func offerAndPathTravelInTheTunnelAndOldPeersSkipThem() {
        let offer = Message.udpOffer(port: 40_000, address: 0, key: key)
        #expect(Message.decode(offer.frame(channel: 3)) == .message(offer))
        #expect(Message.decode(Message.udpPath(.udp).frame(channel: 3)) == .message(.udpPath(.udp)))
        // A path value from a newer peer reads as the tunnel; a short offer is malformed.
        #expect(Message.decode(Frame(type: 0x32, channel: 3, payload: [9])) == .message(.udpPath(.tunnel)))
        #expect(Message.decode(Frame(type: 0x31, channel: 3, payload: [0x9C, 0x40, 0, 0, 0, 0])) == .malformed(.udpOffer))
    }

    @Test func audioMovesToUDPOnlyOnceBothWaysAreProven() {
        let crypto = OpenSSLCrypto()
        var appliance = ApplianceUDPLeg<String>(channel: 1, key: key, crypto: crypto)
        // RTP before any proof is a stranger's, whoever sends it.
        #expect(receive(&appliance, rtp, from: "nat:4000", now: 0) == .dropped)
        #expect(appliance.udpDestination == nil)
        var (client, leg) = upgraded()
        #expect(client.usesUDP)
        #expect(leg.path == .udp && leg.udpDestination == "nat:4000")
        #expect(leg.pendingReport == .udp)
        #expect(leg.counters.upgrades == 1)
        // Another source gets nothing in, even with the same RTP.
        #expect(receive(&leg, rtp, from: "evil:1", now: 4) == .dropped)
        #expect(receive(&leg, rtcp, from: "nat:4000", now: 5) == .media(.rtcp))
        _ = client
    }

    @Test func aLatchedButUnansweredClientKeepsTheTunnel() {
        let crypto = OpenSSLCrypto()
        var appliance = ApplianceUDPLeg<String>(channel: 1, key: key, crypto: crypto)
        let probe = UDPUpgradeWire.encode(.probe, channel: 1, counter: 1, key: key, crypto: crypto)
        guard case .answer = receive(&appliance, probe, from: "nat:4000", now: 0) else {
            Issue.record("probe refused")
            return
        }
        // The answer never reached the client (inbound UDP blocked): it sends no RTP on UDP,
        // so the appliance keeps sending MEDIA frames.
        #expect(appliance.udpDestination == nil)
        #expect(appliance.path == .tunnel)
    }

    @Test func forgedReplayedAndWrongChannelProbesAreRefused() {
        let crypto = OpenSSLCrypto()
        var appliance = ApplianceUDPLeg<String>(channel: 1, key: key, crypto: crypto)
        let wrongKey = UDPUpgradeWire.encode(.probe, channel: 1, counter: 1, key: Array(repeating: 7, count: 16), crypto: crypto)
        #expect(receive(&appliance, wrongKey, from: "evil:1", now: 0) == .dropped)
        let otherCall = UDPUpgradeWire.encode(.probe, channel: 3, counter: 1, key: key, crypto: crypto)
        #expect(receive(&appliance, otherCall, from: "evil:1", now: 0) == .dropped)
        let good = UDPUpgradeWire.encode(.probe, channel: 1, counter: 5, key: key, crypto: crypto)
        guard case .answer = receive(&appliance, good, from: "nat:4000", now: 1) else {
            Issue.record("good probe refused")
            return
        }
        // The same probe replayed from elsewhere cannot move the latch.
        #expect(receive(&appliance, good, from: "evil:1", now: 2) == .dropped)
        #expect(appliance.latched == "nat:4000")
        #expect(appliance.counters.probesRefused == 3)
        // An answer sent to the appliance is not a probe.
        let answer = UDPUpgradeWire.encode(.answer, channel: 1, counter: 6, key: key, crypto: crypto)
        #expect(receive(&appliance, answer, from: "nat:4000", now: 3) == .dropped)
    }

    @Test func aFreshProbeFollowsANATRebinding() {
        let crypto = OpenSSLCrypto()
        var (client, appliance) = upgraded()
        let probe = probes(client.tick(now: UDPUpgradeConfig().keepaliveIntervalNanos + 2))
        #expect(probe.count == 1)
        guard case let .answer(_, to)? = probe.first.map({ receive(&appliance, $0, from: "nat:5000", now: 10) }) else {
            Issue.record("keepalive probe refused")
            return
        }
        #expect(to == "nat:5000")
        #expect(appliance.udpDestination == "nat:5000")
        _ = crypto
    }

    @Test func theClientGivesUpAfterItsProbesAndRetriesLater() {
        var config = UDPUpgradeConfig()
        config.probesPerAttempt = 3
        var client = ClientUDPLeg(channel: 1, config: config, crypto: OpenSSLCrypto())
        client.offer(key: key, now: 0)
        var sent = 0
        var now: UInt64 = 0
        while now <= 2 * second {
            sent += probes(client.tick(now: now)).count
            now += 10 * millisecond
        }
        #expect(sent == 3)
        #expect(client.state == .tunnel(retryAt: 3 * config.probeIntervalNanos + config.retryAfterNanos))
        #expect(!client.usesUDP)
        let retry = client.tick(now: 3 * config.probeIntervalNanos + config.retryAfterNanos)
        #expect(probes(retry).count == 1)
    }

    @Test func theApplianceFallsBackWhenTheClientFallsSilentAndSaysSo() {
        var config = UDPUpgradeConfig()
        config.fallbackAfterNanos = 500 * millisecond
        var (_, appliance) = upgraded(config: config)
        appliance.pendingReport = nil
        let early = appliance.tick(now: 3 + 499 * millisecond)
        let due = appliance.tick(now: 3 + 500 * millisecond)
        #expect(!early && due)
        #expect(appliance.path == .tunnel && appliance.udpDestination == nil && appliance.latched == nil)
        #expect(appliance.pendingReport == .tunnel)
        #expect(appliance.counters.fallbacks == 1)
        // The client's RTP arriving late from the old source is not trusted any more.
        #expect(receive(&appliance, rtp, from: "nat:4000", now: second) == .dropped)
    }

    @Test func theClientFallsBackWhenTheApplianceFallsSilentAndTellsIt() {
        var config = UDPUpgradeConfig()
        config.fallbackAfterNanos = 500 * millisecond
        var (client, _) = upgraded(config: config)
        // Audio from the appliance keeps the path alive.
        #expect(receive(&client, rtp, now: 400 * millisecond) == .media(.rtp))
        let before = client.tick(now: 899 * millisecond)
        #expect(!before.contains { if case .pathChanged = $0 { true } else { false } })
        let actions = client.tick(now: 900 * millisecond)
        #expect(actions == [.pathChanged(.tunnel, tellAppliance: true, reason: "nothing arrived on UDP for 500 ms")])
        #expect(!client.usesUDP)
        #expect(client.counters.fallbacks == 1)
    }

    @Test func eachSideFollowsTheOthersFallbackReport() {
        var (client, appliance) = upgraded()
        let first = client.peerReported(.tunnel, now: 10)
        #expect(first == [.pathChanged(.tunnel, tellAppliance: false, reason: "the appliance stopped hearing us on UDP")])
        #expect(!client.usesUDP)
        appliance.peerReported(.tunnel)
        #expect(appliance.udpDestination == nil)
        // Reports of UDP, or repeated ones, change nothing.
        let udp = client.peerReported(.udp, now: 11)
        let again = client.peerReported(.tunnel, now: 12)
        #expect(udp.isEmpty && again.isEmpty)
    }

    @Test func theClientIgnoresForgedAnswersAndAnswersToProbesItNeverSent() {
        let crypto = OpenSSLCrypto()
        var client = ClientUDPLeg(channel: 1, crypto: crypto)
        client.offer(key: key, now: 0)
        _ = client.tick(now: 0)  // probe 1
        let future = UDPUpgradeWire.encode(.answer, channel: 1, counter: 2, key: key, crypto: crypto)
        #expect(receive(&client, future, now: 1) == .dropped)
        let forged = UDPUpgradeWire.encode(.answer, channel: 1, counter: 1, key: Array(repeating: 1, count: 16), crypto: crypto)
        #expect(receive(&client, forged, now: 1) == .dropped)
        #expect(!client.usesUDP)
        // Without an offer nothing is accepted at all.
        var idle = ClientUDPLeg(channel: 1, crypto: crypto)
        #expect(receive(&idle, rtp, now: 0) == .dropped)
        let nothing = idle.tick(now: 0)
        #expect(nothing.isEmpty)
    }

    @Test func theApplianceGrantsTheUpgradeAndPassesPathReportsOn() {
        var config = ServerSessionConfig()
        config.capabilities = .all
        let (session, _) = authenticatedSession(config: config)
        #expect(!session.peerCapabilities.contains(.udpUpgrade))  // the default client does not ask for it
        var s = session
        s.receive(Message.udpPath(.tunnel).frame(channel: 1).encoded, now: 10)
        #expect(s.outputs.contains(.signalling(channel: 1, .udpPath(.tunnel))))
    }
}
