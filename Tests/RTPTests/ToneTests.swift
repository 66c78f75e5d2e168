import Testing
@testable import RTP

@Suite struct G711Tests {
    @Test func muLawRoundTripStaysWithinQuantisationError() {
        for sample in stride(from: -32768, through: 32767, by: 7) {
            let decoded = Int(G711.linear(fromMuLaw: G711.muLaw(fromLinear: Int16(sample))))
            if abs(sample) > 32124 {
                // Beyond the largest codeword µ-law clips.
                #expect(abs(decoded) == 32124)
            } else {
                // The step size grows with magnitude: at most 1/16 of the value plus the bias.
                #expect(abs(decoded - sample) <= abs(sample) / 16 + 8)
            }
        }
    }

    @Test func aLawRoundTripStaysWithinQuantisationError() {
        for sample in stride(from: -32768, through: 32767, by: 7) {
            let decoded = Int(G711.linear(fromALaw: G711.aLaw(fromLinear: Int16(sample))))
            #expect(abs(decoded - sample) <= max(abs(sample) / 16 + 16, 32))
        }
    }

    @Test func knownCodewords() {
        // G.711 tables: silence encodes to 0xFF (µ-law) and 0xD5 (A-law).
        #expect(G711.muLaw(fromLinear: 0) == 0xff)
        #expect(G711.aLaw(fromLinear: 0) == 0xd5)
        #expect(G711.linear(fromMuLaw: 0x00) == -32124)
        #expect(G711.linear(fromMuLaw: 0x80) == 32124)
        #expect(G711.linear(fromALaw: 0xd5) == 8)
        #expect(G711.linear(fromALaw: 0x2a) == -32256)
    }

    @Test func everyCodewordDecodesAndReEncodesToItself() {
        for byte in 0...255 {
            let code = UInt8(byte)
            let mu = G711.muLaw(fromLinear: G711.linear(fromMuLaw: code))
            // 0x7F and 0xFF both mean zero in µ-law; everything else is exact.
            #expect(mu == code || (code == 0x7f && mu == 0xff))
            #expect(G711.aLaw(fromLinear: G711.linear(fromALaw: code)) == code)
        }
    }
}

@Suite struct ToneTests {
    @Test func detectorFindsTheToneItWasToldAbout() {
        var generator = ToneGenerator(frequency: 1000)
        var detector1k = ToneDetector(frequency: 1000)
        var detector2k = ToneDetector(frequency: 2000)
        for _ in 0..<50 {
            // Through µ-law, as on the wire.
            let frame = G711.decode(G711.encode(generator.next(samples: 160), law: .muLaw), law: .muLaw)
            detector1k.feed(frame)
            detector2k.feed(frame)
        }
        #expect(detector1k.presence == 1.0)
        #expect(detector2k.presence == 0.0)
    }

    @Test func silenceAndNoiseAreNotATone() {
        var detector = ToneDetector(frequency: 1000)
        detector.feed([Int16](repeating: 0, count: 160))
        var seed: UInt32 = 12345
        let noise = (0..<160).map { _ -> Int16 in
            seed = seed &* 1_103_515_245 &+ 12345
            return Int16(truncatingIfNeeded: Int32(seed >> 16) - 16384)
        }
        detector.feed(noise)
        #expect(detector.blocks == 2)
        #expect(detector.blocksWithTone == 0)
    }

    @Test func generatorKeepsPhaseAcrossFrames() {
        var split = ToneGenerator(frequency: 440)
        var whole = ToneGenerator(frequency: 440)
        let joined = split.next(samples: 160) + split.next(samples: 160)
        #expect(joined == whole.next(samples: 320))
    }
}
