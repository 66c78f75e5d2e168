// The mirror's pieces that need no network: CDR lines, RTP statistics, port pools.
import Foundation
import Testing
import Endpoint
@testable import Proxy

@Suite struct MirrorTests {
    static func rtp(_ seq: UInt16, _ ts: UInt32) -> [UInt8] {
        [0x80, 0, UInt8(seq >> 8), UInt8(seq & 0xFF), UInt8(ts >> 24), UInt8((ts >> 16) & 0xFF), UInt8((ts >> 8) & 0xFF),
         UInt8(ts & 0xFF), 0, 0, 0, 1] + [UInt8](repeating: 0xFF, count: 160)
    }

    @Test func lossAndJitterAcrossASequenceWrap() {
        var stats = RTPStreamStats()
        // 100 packets from 65500 on, wrapping at 65535; every 10th is lost; perfect 20 ms pacing.
        var sent = 0
        for i in 0..<100 {
            let seq = UInt16(truncatingIfNeeded: 65500 + i)
            if i % 10 == 5 { continue }
            sent += 1
            Self.rtp(seq, UInt32(i * 160)).withUnsafeBytes { stats.record($0, arrivalMs: UInt64(1000 + i * 20)) }
        }
        #expect(stats.packets == sent)
        #expect(stats.expected == 100)
        #expect(stats.lost == 10)
        #expect(stats.jitterMs < 0.01)
        // Alternating 0/10 ms extra delay makes jitter grow towards ~10 ms.
        var jittery = RTPStreamStats()
        for i in 0..<400 {
            Self.rtp(UInt16(i), UInt32(i * 160)).withUnsafeBytes { jittery.record($0, arrivalMs: UInt64(i * 20 + (i % 2) * 10)) }
        }
        #expect(jittery.jitterMs > 8 && jittery.jitterMs < 11)
        // RTCP or garbage on the RTP port is not counted.
        var other = RTPStreamStats()
        let rtcp: [UInt8] = [0x80, 200, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        let short: [UInt8] = [0x80, 0, 0]
        rtcp.withUnsafeBytes { other.record($0, arrivalMs: 0) }
        short.withUnsafeBytes { other.record($0, arrivalMs: 0) }
        #expect(other.packets == 0)
    }

    @Test func cdrLineCarriesEveryFieldAndQuotesHostileText() throws {
        var record = CallRecord(id: "alice-1-1", subscriber: "alice", direction: .outgoing, caller: "alice",
                                callee: "evil \"name\" x=1", startMs: 1_795_887_499_789)
        record.connectMs = 1_795_887_502_561
        record.endMs = 1_795_887_507_791
        record.cause = 17
        record.hungUpBy = .network
        record.codec = "PCMA"
        let line = record.line
        #expect(!line.contains("\n"))
        #expect(line.hasPrefix("cdr=1 id=alice-1-1 subscriber=alice direction=out caller=alice callee=\"evil \\\"name\\\" x=1\""))
        #expect(line.contains("start=2026-11-28T17:38:19.789Z connect=2026-11-28T17:38:22.561Z end=2026-11-28T17:38:27.791Z"))
        #expect(line.contains("duration_s=5.230 cause=17 hangup_by=network codec=PCMA"))
        #expect(line.contains("pkts_to_net=0 lost_to_net=0 jitter_ms_to_net=0.0"))
        // Never connected: duration 0, connect "-".
        var missed = CallRecord(id: "x", subscriber: "a", direction: .incoming, caller: "b", callee: "a", startMs: 0)
        missed.endMs = 5000
        #expect(missed.line.contains("connect=- end=1970-01-01T00:00:05.000Z duration_s=0.000"))
    }

    @Test func cdrFileAppendsAndSurvivesReopening() throws {
        let path = NSTemporaryDirectory() + "cdr-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        for i in 0..<3 {
            let writer = try CDRWriter(path: path)  // a restart reopens the same file
            writer.write(CallRecord(id: "c\(i)", subscriber: "a", direction: .outgoing, caller: "a", callee: "b", startMs: 0))
        }
        let lines = try CDRWriter.tail(path: path, count: 2)
        #expect(lines.count == 2)
        #expect(lines[0].contains("id=c1") && lines[1].contains("id=c2"))
        #expect(throws: CDRError.self) { try CDRWriter(path: "/nonexistent-dir/cdr.log") }
    }

    @Test func portPoolsSplitBetweenWorkersWithoutOverlap() {
        var a = PortPool(range: 40000...40009, worker: 0, workers: 2)
        var b = PortPool(range: 40000...40009, worker: 1, workers: 2)
        var seen = Set<UInt16>()
        while let p = a.take() { #expect(seen.insert(p).inserted) }
        while let p = b.take() { #expect(seen.insert(p).inserted) }
        #expect(seen == Set(40000...40009))
    }

    @Test func portPoolReusesTheLeastRecentlyReleasedPortLast() {
        var pool = PortPool(range: 40000...40004, worker: 0, workers: 1)
        #expect(pool.take() == 40000)
        #expect(pool.take() == 40001)
        pool.give(40000)  // the first client ends: its port goes behind every other free one
        #expect(pool.available == 4)
        #expect(pool.take() == 40002)
        #expect(pool.take() == 40003)
        #expect(pool.take() == 40004)
        #expect(pool.take() == 40000)
        #expect(pool.take() == nil)
        // Many rounds of one client ending and the next starting: the order holds.
        for _ in 0..<500 {
            pool.give(40000)
            #expect(pool.take() == 40000)
        }
        pool.give(40001)
        pool.give(40000)
        #expect(pool.take() == 40001)
        #expect(pool.take() == 40000)
    }

    @Test func rtpBlocksAreWholePairsOnePerWorker() {
        var config = MirrorConfig(gatekeeper: EndpointAddress(ip: 0x7f00_0001, port: 1719), publicIP: 0x7f00_0001,
                                  rtpPorts: 50001...50010)
        // Pairs 50002/3, 50004/5, 50006/7, 50008/9 (50010 has no odd port above it in the range).
        #expect(config.rtpBlock(worker: 0, workers: 1) == 50002...50009)
        #expect(config.rtpBlock(worker: 0, workers: 2) == 50002...50005)
        #expect(config.rtpBlock(worker: 1, workers: 2) == 50006...50009)
        #expect(config.rtpBlock(worker: 2, workers: 3) == 50006...50007)  // the fourth pair stays unused
        #expect(config.rtpBlock(worker: 0, workers: 5) == nil)  // fewer pairs than workers
        config.rtpPorts = 42000...42099
        #expect(config.rtpBlock(worker: 1, workers: 2) == 42050...42099)
    }
}
