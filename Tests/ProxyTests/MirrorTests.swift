// The mirror's pieces that need no network: CDR lines and their media figures, port pools.
import Foundation
import Testing
import Endpoint
import RTP
@testable import Proxy

@Suite struct MirrorTests {
    @Test func theCDRTakesLossAndJitterFromTheRelaysStatistics() {
        // 100 packets from 65500 on, wrapping at 65535; every 10th is lost; every other one
        // 20 ms late, so the jitter settles near 16 ms (A.8 averages |D| over 16 packets).
        var stream = StreamStatistics()
        for i in 0..<100 where i % 10 != 5 {
            stream.record(sequence: UInt16(truncatingIfNeeded: 65500 + i), timestamp: UInt32(i * 160), ssrc: 7,
                          arrival: UInt32(i * 160 + (i % 2) * 160))
        }
        let summary = MediaSummary(stream)
        #expect(summary.packets == 90 && summary.lost == 10)
        #expect(summary.jitterMs > 5 && summary.jitterMs < 25)
        var record = CallRecord(id: "x", subscriber: "a", direction: .outgoing, caller: "a", callee: "b", startMs: 0)
        record.fromNetwork = summary
        #expect(record.line.contains("pkts_from_net=90 lost_from_net=10 jitter_ms_from_net=\(CallRecord.fixed(summary.jitterMs, 1))"))
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

    @Test func theLastRecordsOfALargeFileAreReadFromItsEnd() throws {
        let path = NSTemporaryDirectory() + "cdr-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try CDRWriter(path: path)
        for i in 0..<2000 {
            writer.write(CallRecord(id: "c\(i)", subscriber: "a", direction: .outgoing, caller: "a", callee: "b", startMs: 0))
        }
        // A 4 KiB window of a file of about 800 KiB: it starts inside a record, which is left out.
        let lines = try CDRWriter.tail(path: path, count: 3, window: 4096)
        #expect(lines.map { $0.split(separator: " ")[1] } == ["id=c1997", "id=c1998", "id=c1999"])
        #expect(try CDRWriter.tail(path: path, count: 100, window: 4096).count < 100)
        #expect(try CDRWriter.tail(path: path, count: 5).count == 5)
        let empty = NSTemporaryDirectory() + "cdr-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: empty) }
        _ = try CDRWriter(path: empty)
        #expect(try CDRWriter.tail(path: empty, count: 5).isEmpty)
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

    /// After a range change the terminator's new pool holds the ports open legs still
    /// use: the failed bind gives one back, and so does the leg when it ends.
    @Test func aPortGivenBackTwiceIsQueuedOnce() {
        var pool = PortPool(range: 40000...40002, worker: 0, workers: 1)
        #expect(pool.take() == 40000)
        pool.give(40000)
        pool.give(40000)
        pool.give(40001)  // still free: not queued a second time
        #expect(pool.available == 3)
        var handedOut: [UInt16] = []
        while let port = pool.take() { handedOut.append(port) }
        #expect(handedOut == [40001, 40002, 40000])
    }

    @Test func openSkipsPortsThatFailAndGivesUpAfterEightAttempts() throws {
        struct Taken: Error {}
        var pool = PortPool(range: 40000...40019, worker: 0, workers: 1)
        // 40000 and 40001 are held by another program: the third port opens.
        var tried: [UInt16] = []
        let (opened, port) = try pool.open("test") { port -> UInt16 in
            tried.append(port)
            if port < 40002 { throw Taken() }
            return port
        }
        #expect(opened == 40002 && port == 40002)
        #expect(tried == [40000, 40001, 40002])
        // The squatted ports went to the back of the queue, behind every other free port.
        #expect(pool.available == 19)
        // Nothing opens: eight attempts, the last error, and every port still queued once.
        tried = []
        #expect(throws: Taken.self) { try pool.open("test") { port -> UInt16 in tried.append(port); throw Taken() } }
        #expect(tried == Array(40003...40010))
        #expect(pool.available == 19)
        var handedOut: [UInt16] = []
        while let port = pool.take() { handedOut.append(port) }
        #expect(handedOut == Array(40011...40019) + [40000, 40001] + Array(40003...40010))
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
