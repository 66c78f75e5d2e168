import Glibc
import RTP
import Testing
@testable import Phone

@Suite struct WAVTests {
    @Test func writeThenReadGivesTheSameSamples() throws {
        var tone = ToneSource(frequency: 1000)
        let samples = (0..<10).flatMap { _ in tone.nextFrame() }
        let path = "/tmp/bloo-wav-\(getpid()).wav"
        defer { unlink(path) }
        try WAVFile(samples: samples).write(to: path)
        let read = try WAVFile(path: path)
        #expect(read.samples == samples)
        #expect(try WAVFile(bytes: WAVFile(samples: samples).bytes).samples.count == 1600)
    }

    @Test func headerIsCanonicalPCM() {
        let bytes = WAVFile(samples: [1, -1]).bytes
        #expect(bytes.count == 48)
        #expect(Array(bytes[0..<4]) == Array("RIFF".utf8))
        #expect(bytes[20] == 1 && bytes[22] == 1)  // PCM, mono
        #expect(bytes[24] == 0x40 && bytes[25] == 0x1f)  // 8000 Hz
    }

    @Test func hostileFilesGiveClearErrors() {
        #expect(throws: WAVError.notRIFFWave) { try WAVFile(bytes: Array("hello".utf8)) }
        var truncated = WAVFile(samples: [1, 2, 3]).bytes
        truncated.removeLast(4)
        #expect(throws: WAVError.truncated("chunk larger than the file")) { try WAVFile(bytes: truncated) }
        var wideRate = WAVFile(samples: [1]).bytes
        wideRate[24] = 0x44; wideRate[25] = 0xac  // 44100 Hz
        #expect(throws: (any Error).self) { try WAVFile(bytes: wideRate) }
        // A chunk claiming 4 GiB must not make us allocate or trap.
        var huge = WAVFile(samples: [1]).bytes
        huge[40] = 0xff; huge[41] = 0xff; huge[42] = 0xff; huge[43] = 0xff
        #expect(throws: WAVError.truncated("chunk larger than the file")) { try WAVFile(bytes: huge) }
    }

    @Test func wavSourcePlaysOnceThenSilence() {
        var source = WAVSource(wav: WAVFile(samples: [Int16](repeating: 7, count: 200)))
        let first = source.nextFrame()
        let second = source.nextFrame()
        #expect(first.allSatisfy { $0 == 7 })
        #expect(second.prefix(40).allSatisfy { $0 == 7 } && second.dropFirst(40).allSatisfy { $0 == 0 })
        #expect(source.isExhausted)
    }

    @Test func recorderIsBoundedAndDetectsTheTone() throws {
        let path = "/tmp/bloo-rec-\(getpid()).wav"
        defer { unlink(path) }
        var recorder = WAVRecorder(path: path, maximumSeconds: 1)
        var tone = ToneSource(frequency: 2000)
        for _ in 0..<100 { try recorder.consume(tone.nextFrame()) }  // 2 s offered
        try recorder.finish()
        let recorded = try WAVFile(path: path)
        #expect(recorded.samples.count == 8000)
        var detector = ToneDetector(frequency: 2000)
        stride(from: 0, to: 8000, by: 160).forEach { detector.feed(Array(recorded.samples[$0..<($0 + 160)])) }
        #expect(detector.presence == 1.0)
    }
}

@Suite struct EModelTests {
    @Test func cleanG711IsTollQuality() {
        let mos = EModel.mos(codec: .g711, oneWayDelayMs: 20, lossPercent: 0)
        #expect(mos > 4.3 && mos <= 4.5)
    }

    @Test func lossAndDelayLowerTheScore() {
        let clean = EModel.mos(codec: .g711, oneWayDelayMs: 20, lossPercent: 0)
        let lossy = EModel.mos(codec: .g711, oneWayDelayMs: 20, lossPercent: 5)
        let late = EModel.mos(codec: .g711, oneWayDelayMs: 300, lossPercent: 0)
        #expect(lossy < clean && late < clean)
        #expect(EModel.mos(codec: .g729a, oneWayDelayMs: 20, lossPercent: 0) < clean)
    }

    @Test func knownRatings() {
        // G.107: R = 93.2 with no impairment maps to MOS 4.41.
        #expect(abs(EModel.mos(rating: 93.2) - 4.41) < 0.01)
        #expect(EModel.mos(rating: 0) == 1)
        #expect(EModel.mos(rating: 100) == 4.5)
        // G.113 App. I: G.711 with PLC at 5 % random loss: Ie,eff = 95·5/(5+25.1) = 15.78.
        #expect(abs(EModel.rating(codec: .g711, oneWayDelayMs: 0, lossPercent: 5) - 77.42) < 0.01)
        // G.107: Id = 0.024·d + 0.11·(d − 177.3) above 177.3 ms.
        #expect(abs(EModel.rating(codec: .g711, oneWayDelayMs: 200, lossPercent: 0) - (93.2 - 4.8 - 2.497)) < 0.01)
    }
}
