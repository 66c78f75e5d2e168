// Tone generation and detection: the lab gateway and the phone send test tones,
// and the end-to-end tests prove audio crossed the appliance by detecting them.
import Glibc

/// A sine tone generator that keeps its phase across frames, so consecutive
/// 20 ms packets join without clicks.
public struct ToneGenerator: Sendable {
    public let frequency: Double
    public let sampleRate: Double
    public let amplitude: Double
    private var phase: Double = 0

    /// - Parameter amplitude: peak, as a fraction of full scale (0...1).
    public init(frequency: Double, sampleRate: Double = 8000, amplitude: Double = 0.5) {
        self.frequency = frequency
        self.sampleRate = sampleRate
        self.amplitude = min(max(amplitude, 0), 1)
    }

    public mutating func next(samples count: Int) -> [Int16] {
        let step = 2 * Double.pi * frequency / sampleRate
        var output = [Int16]()
        output.reserveCapacity(count)
        for _ in 0..<count {
            output.append(Int16(amplitude * 32767 * sin(phase)))
            phase += step
            if phase > 2 * Double.pi { phase -= 2 * Double.pi }
        }
        return output
    }
}

/// The Goertzel algorithm: the power of one frequency in a block of samples,
/// far cheaper than an FFT when only a few frequencies matter.
public enum Goertzel {
    /// Power of `frequency` in `samples`, normalised by the block length.
    public static func power(of frequency: Double, in samples: [Int16], sampleRate: Double = 8000) -> Double {
        guard !samples.isEmpty else { return 0 }
        let bin = (Double(samples.count) * frequency / sampleRate).rounded()
        let coefficient = 2 * cos(2 * Double.pi * bin / Double(samples.count))
        var previous = 0.0
        var beforePrevious = 0.0
        for sample in samples {
            let current = Double(sample) + coefficient * previous - beforePrevious
            beforePrevious = previous
            previous = current
        }
        let power = previous * previous + beforePrevious * beforePrevious - coefficient * previous * beforePrevious
        return power / Double(samples.count)
    }

    /// The share of the block's energy that lies at `frequency` (0...1).
    /// A clean tone gives about 0.5 per bin (the energy splits between the
    /// positive and negative frequency); speech or noise gives little.
    public static func dominance(of frequency: Double, in samples: [Int16], sampleRate: Double = 8000) -> Double {
        guard !samples.isEmpty else { return 0 }
        var energy = 0.0
        for sample in samples { energy += Double(sample) * Double(sample) }
        guard energy > 0 else { return 0 }
        // Parseval: total energy over N equals the sum of |X_k|^2 over N^2.
        return min(1, 2 * power(of: frequency, in: samples, sampleRate: sampleRate) / energy)
    }
}

/// Decides, frame by frame, whether a given tone is present: used to assert
/// that audio crossed a call end to end.
public struct ToneDetector: Sendable {
    public let frequency: Double
    public let sampleRate: Double
    /// Minimum dominance for a block to count as the tone.
    public let threshold: Double
    public private(set) var blocks = 0
    public private(set) var blocksWithTone = 0

    public init(frequency: Double, sampleRate: Double = 8000, threshold: Double = 0.6) {
        self.frequency = frequency
        self.sampleRate = sampleRate
        self.threshold = threshold
    }

    /// Feeds one block (a 20 ms frame is 160 samples at 8 kHz).
    public mutating func feed(_ samples: [Int16]) {
        guard !samples.isEmpty else { return }
        blocks += 1
        if Goertzel.dominance(of: frequency, in: samples, sampleRate: sampleRate) >= threshold {
            blocksWithTone += 1
        }
    }

    /// The fraction of blocks that carried the tone.
    public var presence: Double { blocks == 0 ? 0 : Double(blocksWithTone) / Double(blocks) }
}
