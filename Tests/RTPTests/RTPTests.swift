import Testing
@testable import RTP

private func rtp(seq: UInt16, ts: UInt32 = 0, ssrc: UInt32 = 0x1234, payload: Int = 160) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 12 + payload)
    bytes.withUnsafeMutableBytes { RTPPacket.writeHeader(into: $0, payloadType: 0, sequence: seq, timestamp: ts, ssrc: ssrc) }
    return bytes
}

private func classify(_ bytes: [UInt8]) -> Classified { bytes.withUnsafeBytes { RTPPacket.classify($0) } }

@Suite struct ParserTests {
    @Test func parsesAFixedHeader() {
        let packet = rtp(seq: 0xBEEF, ts: 0x01020304, ssrc: 0xCAFEBABE)
        guard case .rtp(let header) = classify(packet) else { Issue.record("not RTP"); return }
        #expect(header.sequence == 0xBEEF)
        #expect(header.timestamp == 0x01020304)
        #expect(header.ssrc == 0xCAFEBABE)
        #expect(header.payloadOffset == 12)
        #expect(header.payloadLength == 160)
    }

    @Test func dropsBadVersionAndTruncation() {
        var bad = rtp(seq: 1)
        bad[0] = 0x40
        #expect(classify(bad) == .malformed(.badVersion))
        #expect(classify(Array(rtp(seq: 1)[0..<11])) == .malformed(.tooShort))
        #expect(classify([]) == .malformed(.tooShort))
        var csrc = rtp(seq: 1, payload: 0)
        csrc[0] = 0x83 // three CSRCs announced, none present
        #expect(classify(csrc) == .malformed(.truncatedHeader))
        var ext = rtp(seq: 1, payload: 4)
        ext[0] = 0x90
        ext[14] = 0; ext[15] = 5 // 5 words of extension, only 0 present after the 4-byte header
        #expect(classify(ext) == .malformed(.truncatedHeader))
        var padding = rtp(seq: 1, payload: 4)
        padding[0] = 0xA0
        padding[15] = 200
        #expect(classify(padding) == .malformed(.badPadding))
        padding[15] = 4
        if case .rtp(let h) = classify(padding) { #expect(h.payloadLength == 0) } else { Issue.record("padding") }
    }

    @Test func recognisesMultiplexedRTCP() {
        // RR with no report blocks (8 bytes) followed by an SDES chunk (12 bytes).
        let compound: [UInt8] = [0x80, 201, 0, 1, 0, 0, 0, 7,
                                 0x81, 202, 0, 2, 0, 0, 0, 7, 1, 1, 0x41, 0]
        #expect(classify(compound) == .rtcp(packets: 2))
        var wrongLength = compound
        wrongLength[3] = 9
        #expect(classify(wrongLength) == .malformed(.badRTCPLength))
        var firstNotReport = compound
        firstNotReport[1] = 202
        #expect(classify(firstNotReport) == .malformed(.badRTCPType))
        #expect(compound.withUnsafeBytes { RTPPacket.rtcpSenderSSRC($0) } == 7)
        // Payload type 0 with the marker bit (0x80) is RTP, not RTCP.
        var marked = rtp(seq: 3)
        marked[1] = 0x80
        if case .rtp(let h) = classify(marked) { #expect(h.marker) } else { Issue.record("marker") }
    }
}

@Suite struct StatisticsTests {
    @Test func countsLossDuplicatesAndReorder() {
        var stats = StreamStatistics()
        // 1..20 with 5 and 6 lost, 9 arriving after 10, 12 duplicated.
        let order: [UInt16] = [1, 2, 3, 4, 7, 8, 10, 9, 11, 12, 12, 13, 14, 15, 16, 17, 18, 19, 20]
        for seq in order { stats.record(sequence: seq, timestamp: UInt32(seq) * 160, ssrc: 1, arrival: UInt32(seq) * 160) }
        #expect(stats.expected == 20)
        #expect(stats.duplicates == 1)
        #expect(stats.reordered == 1)
        #expect(stats.lost == 2)
        #expect(stats.received == 19)
        #expect(stats.jitter == 0)
    }

    @Test func handlesWrapAround() {
        var stats = StreamStatistics()
        var seq: UInt16 = 65530
        for _ in 0..<12 { stats.record(sequence: seq, timestamp: 0, ssrc: 9, arrival: 0); seq &+= 1 }
        #expect(stats.expected == 12)
        #expect(stats.lost == 0)
        #expect(stats.extendedMax == 65536 + 5)
    }

    @Test func resyncsAfterAConfirmedJump() {
        var stats = StreamStatistics()
        for seq: UInt16 in 100...110 { stats.record(sequence: seq, timestamp: 0, ssrc: 9, arrival: 0) }
        stats.record(sequence: 40000, timestamp: 0, ssrc: 9, arrival: 0)
        #expect(stats.resyncs == 0)
        stats.record(sequence: 40001, timestamp: 0, ssrc: 9, arrival: 0)
        #expect(stats.resyncs == 1)
        stats.record(sequence: 40002, timestamp: 0, ssrc: 9, arrival: 0)
        #expect(stats.expected == 2)
        #expect(stats.lost == 0)
    }

    @Test func jitterFollowsA8() {
        // Alternating transit 0 and 16 units: |D| = 16 each time, J -> 16.
        var stats = StreamStatistics()
        var reference = 0.0
        for i in 0..<400 {
            let ts = UInt32(i * 160)
            let arrival = ts + (i % 2 == 0 ? 0 : 16)
            stats.record(sequence: UInt16(i), timestamp: ts, ssrc: 5, arrival: arrival)
            if i > 0 { reference += (16.0 - reference) / 16.0 }
        }
        #expect(stats.jitter == 15 || stats.jitter == 16)
        #expect(abs(Double(stats.jitter) - reference) <= 1.0)
    }

    @Test func newSSRCRestarts() {
        var stats = StreamStatistics()
        for seq: UInt16 in 1...5 { stats.record(sequence: seq, timestamp: 0, ssrc: 1, arrival: 0) }
        stats.record(sequence: 900, timestamp: 0, ssrc: 2, arrival: 0)
        #expect(stats.ssrc == 2)
        #expect(stats.expected == 1)
    }
}
