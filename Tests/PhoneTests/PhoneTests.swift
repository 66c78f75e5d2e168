import Glibc
import IO
import Proxy
import RTP
import Testing
import Tunnel
@testable import Phone

@Suite struct RTPTests {
    @Test func headerRoundTrip() throws {
        let header = RTPHeader(payloadType: 8, marker: true, sequence: 0xFFFE, timestamp: 0xDEADBEEF, ssrc: 42)
        let packet = header.packet(payload: [1, 2, 3])
        let (parsed, payload) = try #require(RTPHeader.parse(packet))
        #expect(parsed == header)
        #expect(Array(packet[payload]) == [1, 2, 3])
    }

    @Test func hostilePacketsAreRefused() {
        #expect(RTPHeader.parse([]) == nil)
        #expect(RTPHeader.parse([0x40] + [UInt8](repeating: 0, count: 11)) == nil)  // version 1
        #expect(RTPHeader.parse([0x8F] + [UInt8](repeating: 0, count: 20)) == nil)  // 15 CSRCs announced, 2 present
        var padded = RTPHeader(payloadType: 0, sequence: 1, timestamp: 1, ssrc: 1).packet(payload: [9, 9])
        padded[0] |= 0x20
        padded[padded.count - 1] = 200  // padding longer than the payload
        #expect(RTPHeader.parse(padded) == nil)
        var extended = RTPHeader(payloadType: 0, sequence: 1, timestamp: 1, ssrc: 1).packet(payload: [0, 0, 0xFF, 0xFF])
        extended[0] |= 0x10  // extension of 65535 words in a 16-byte packet
        #expect(RTPHeader.parse(extended) == nil)
    }
}

@Suite struct ReceptionStatsTests {
    @Test func countsLossAcrossTheSequenceWrap() {
        var stats = ReceptionStats()
        var sequence: UInt16 = 65_530
        for index in 0..<20 {
            if index != 3 && index != 11 {
                stats.record(sequence: sequence, timestamp: UInt32(index * 160), arrivalSeconds: Double(index) * 0.02)
            }
            sequence &+= 1
        }
        #expect(stats.expected == 20)
        #expect(stats.received == 18)
        #expect(stats.lost == 2)
        #expect(abs(stats.lossPercent - 10) < 0.001)
        #expect(stats.jitterMs < 0.001)  // perfectly regular arrival
    }

    @Test func jitterFollowsIrregularArrival() {
        var stats = ReceptionStats()
        for index in 0..<200 {
            let wobble = index % 2 == 0 ? 0.0 : 0.010  // every other packet 10 ms late
            stats.record(sequence: UInt16(index), timestamp: UInt32(index * 160), arrivalSeconds: Double(index) * 0.02 + wobble)
        }
        // RFC 3550's estimator converges to the mean transit difference, 10 ms here.
        #expect(abs(stats.jitterMs - 10) < 1)
        #expect(stats.lost == 0)
    }

    @Test func duplicatesAreNotNegativeLoss() {
        var stats = ReceptionStats()
        for _ in 0..<3 { stats.record(sequence: 7, timestamp: 0, arrivalSeconds: 0) }
        #expect(stats.lost == 0)
        #expect(stats.expected == 1)
    }
}

@Suite struct SelectionTests {
    let a = Appliance(parsing: "tcp:127.0.0.1:1001")!
    let b = Appliance(parsing: "tcp:127.0.0.1:1002")!
    let c = Appliance(parsing: "tls:127.0.0.1:1003/localhost")!

    func m(_ appliance: Appliance, _ samples: [Double], active: UInt32 = 0, capacity: UInt32 = 100) -> ApplianceMeasurement {
        ApplianceMeasurement(appliance: appliance, method: .udpProbe, samplesMs: samples, activeCalls: active, capacity: capacity)
    }

    @Test func parsesApplianceAddresses() {
        #expect(c.transport == .tls && c.serverName == "localhost" && c.endpoint.port == 1003)
        #expect(Appliance(parsing: "udp:127.0.0.1:1") == nil)
        #expect(Appliance(parsing: "tls:127.0.0.1") == nil)
        #expect(Appliance(parsing: "tls:127.0.0.1:0") == nil)
        #expect(Appliance(parsing: "tls:127.0.0.1:443/") == nil)
    }

    @Test func picksTheLowestMedianNotTheLuckiestSample() {
        var selector = ApplianceSelector()
        // a has one lucky 1 ms sample but a median of 30; b is steadily 10.
        let pick = selector.choose([m(a, [1, 30, 31, 30, 29]), m(b, [10, 11, 9, 10, 10])])
        #expect(pick?.0 == b)
    }

    @Test func loadWeighsAgainstABusyAppliance() {
        var selector = ApplianceSelector()
        let pick = selector.choose([m(a, [10, 10, 10], active: 90, capacity: 100), m(b, [14, 14, 14], active: 0)])
        #expect(pick?.0 == b)
        // Full or unreachable appliances are never picked.
        var other = ApplianceSelector()
        #expect(other.choose([m(a, [1], active: 100, capacity: 100), m(b, [])]) == nil)
    }

    @Test func hysteresisStopsFlapping() {
        var selector = ApplianceSelector()
        #expect(selector.choose([m(a, [10]), m(b, [11])])?.0 == a)
        // b now slightly better: stay on a.
        #expect(selector.choose([m(a, [10.5]), m(b, [9.5])])?.0 == a)
        // b clearly better: move.
        #expect(selector.choose([m(a, [20]), m(b, [9.5])])?.0 == b)
        // The current one vanished: take the best remaining.
        #expect(selector.choose([m(a, [12]), m(b, [])])?.0 == a)
    }
}

@Suite struct ConfigurationTests {
    @Test func parsesAFile() throws {
        let config = try PhoneConfiguration(parsing: """
            # the phone
            alias alice
            secret hex:616c6963652d736563726574
            ca /tmp/ca.pem
            appliance tls:10.0.0.1:443/proxy.example.net
            appliance tcp:10.0.0.2:8443   # plain
            """)
        #expect(config.alias == "alice")
        #expect(config.secret == Array("alice-secret".utf8))
        #expect(config.appliances.count == 2)
        try config.validate()
    }

    @Test func mistakesAreReportedWithTheLine() {
        #expect(throws: PhoneError.configuration("line 2: unknown setting 'secert'")) {
            try PhoneConfiguration(parsing: "alias a\nsecert x")
        }
        #expect(throws: PhoneError.self) { try PhoneConfiguration(parsing: "secret short") }
        #expect(throws: PhoneError.self) { try PhoneConfiguration(parsing: "appliance tls:nowhere") }
        var config = PhoneConfiguration()
        config.alias = "a"
        config.secret = Array("12345678".utf8)
        config.appliances = [Appliance(parsing: "tls:127.0.0.1:443")!]
        #expect(throws: PhoneError.self) { try config.validate() }  // TLS without a CA
    }
}

@Suite struct CallMediaTests {
    @Test func audioSurvivesEncodingAndReportsComeBack() throws {
        var sender = CallMedia(codec: .pcma, source: ToneSource(frequency: 1000), sink: NullSink(), random: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        var receiver = CallMedia(codec: .pcma, source: SilenceSource(), sink: ToneDetectingSink(frequency: 1000),
                                 random: [9, 9, 9, 9, 0, 0, 0, 0, 0, 0])
        for index in 0..<50 {
            let packet = sender.nextPacket()
            if index % 10 != 5 { receiver.receiveRTP(packet, nowNanos: UInt64(index) * 20_000_000) }
        }
        #expect(receiver.stats(received: true).packets == 45)
        #expect(receiver.stats(received: true).lost == 5)
        let detector = try #require((receiver.sink as? ToneDetectingSink)?.detector)
        #expect(detector.presence > 0.9)
        // The receiver's RTCP report tells the sender what got lost on the way.
        sender.receiveRTCP(try #require(receiver.receiverReport()))
        #expect(sender.stats(received: false).lost == 5)
        #expect(sender.stats(received: false).packets == 50)
        // Garbage RTCP and foreign payload types are ignored, not trusted.
        sender.receiveRTCP([0x81, 201, 0xFF, 0xFF, 0, 0, 0, 0])
        #expect(sender.stats(received: false).lost == 5)
        receiver.receiveRTP(RTPHeader(payloadType: 0, sequence: 1, timestamp: 0, ssrc: 1).packet(payload: [0]), nowNanos: 0)
        #expect(receiver.malformed == 1)
    }

    @Test func mosFallsWithLossAndDelay() {
        let clean = estimatedMOS(rttMs: 20, jitterMs: 1, lossPercent: 0)
        #expect(clean > 4.2)
        #expect(estimatedMOS(rttMs: 20, jitterMs: 1, lossPercent: 5) < clean - 0.3)
        #expect(estimatedMOS(rttMs: 600, jitterMs: 1, lossPercent: 0) < clean - 0.5)
    }
}

/// The real terminator with its lab backend, in this process, on loopback.
@Suite(.serialized) struct PhoneEndToEndTests {
    final class Events {
        var log: [String] = []
        var connected = false
        var registered = 0
        var ended: CallQuality?
        var endReason = ""
        var dtmf = ""
        var sink: (any AudioSink)?
    }

    func startTerminator() throws -> Terminator {
        var config = TerminatorConfig()
        config.tlsListen = nil
        config.tcpListen = .loopback(port: 0)
        let subscribers = SubscriberTable(["alice": Array("alice-secret-1".utf8)])
        let terminator = try Terminator(config: config, subscribers: subscribers) { LabBackend(worker: $0) }
        try terminator.start()
        return terminator
    }

    func phone(_ endpoints: [IPv4Endpoint], events: Events) throws -> Phone {
        var config = PhoneConfiguration()
        config.alias = "alice"
        config.secret = Array("alice-secret-1".utf8)
        config.appliances = endpoints.map { Appliance(transport: .tcp, endpoint: $0) }
        config.scan.rounds = 2
        config.qualityIntervalSeconds = 0.5
        config.resumeWindowSeconds = 4
        let phone = try Phone(configuration: config)
        phone.onEvent = { event in
            events.log.append("\(event)")
            switch event {
            case .registered: events.registered += 1
            case .connected: events.connected = true
            case let .dtmf(_, digit): events.dtmf.append(digit)
            case let .ended(_, reason, summary):
                events.ended = summary
                events.endReason = reason
            default: break
            }
        }
        phone.onCallFinished = { _, sink in events.sink = sink }
        return phone
    }

    func run(_ phone: Phone, seconds: Double, until: () -> Bool) {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        phone.run { until() || monotonicNanoseconds() > deadline }
    }

    @Test func callEchoCarriesAToneBothWaysWithDTMF() throws {
        let terminator = try startTerminator()
        defer { terminator.stop() }
        let events = Events()
        let phone = try phone([try #require(terminator.tcpEndpoint)], events: events)
        phone.register()
        run(phone, seconds: 5) { events.registered > 0 }
        #expect(events.registered == 1)
        let id = try #require(phone.call("echo", source: ToneSource(frequency: 800), sink: ToneDetectingSink(frequency: 800)))
        run(phone, seconds: 5) { events.connected }
        phone.sendDTMF("12#", on: id)
        run(phone, seconds: 2) { false }
        phone.hangup(id)
        phone.shutdown()
        let summary = try #require(events.ended)
        #expect(summary.codec == .pcma)
        #expect(summary.sent.packets >= 80)
        // Every packet sent came back or is counted lost (a loaded machine makes the
        // terminator drop frames older than its 60 ms media age bound); a few are in flight at hangup.
        let accounted = summary.received.packets + summary.received.lost
        #expect(accounted <= summary.sent.packets && accounted + 5 >= summary.sent.packets, "\(summary)")
        #expect(summary.received.lossPercent < 20, "\(summary)")
        #expect(summary.rttMs != nil)
        #expect(summary.mos == estimatedMOS(rttMs: summary.rttMs, jitterMs: max(summary.received.jitterMs ?? 0, summary.sent.jitterMs ?? 0),
                                            lossPercent: max(summary.received.lossPercent, summary.sent.lossPercent)))
        #expect(summary.mos > 3)
        #expect(events.dtmf == "12#")
        let detector = try #require((events.sink as? ToneDetectingSink)?.detector)
        #expect(detector.presence > 0.9, "tone in \(detector.presence) of \(detector.blocks) frames")
    }

    @Test func failsOverWhenTheApplianceStops() throws {
        let first = try startTerminator()
        let second = try startTerminator()
        var stopped: [Terminator] = []
        defer { for t in [first, second] where !stopped.contains(where: { $0 === t }) { t.stop() } }
        let events = Events()
        let phone = try phone([try #require(first.tcpEndpoint), try #require(second.tcpEndpoint)], events: events)
        phone.register()
        run(phone, seconds: 5) { events.registered > 0 }
        let firstChoice = try #require(phone.appliance)
        // Stop whichever was chosen; the phone must end up registered on the other.
        let chosen = firstChoice.endpoint == first.tcpEndpoint ? first : second
        chosen.stop()
        stopped.append(chosen)
        run(phone, seconds: 15) { events.registered > 1 }
        #expect(events.registered == 2, "\(events.log)")
        #expect(phone.appliance != firstChoice)
        phone.shutdown()
    }
}
