// Audio for a phone that needs no sound card: every call reads 20 ms frames
// of 16-bit linear samples at 8 kHz from a source and writes what it receives
// to a sink. Sources: a tone, a WAV file, silence. Sinks: a WAV file, nothing.
import RTP

/// Samples per 20 ms frame at 8 kHz: the packet time every H.323 gateway accepts.
public let samplesPerFrame = 160

/// Where a call's outgoing audio comes from.
public protocol AudioSource {
    /// The next frame of `samplesPerFrame` samples; silence once exhausted.
    mutating func nextFrame() -> [Int16]
}

/// Where a call's incoming audio goes.
public protocol AudioSink {
    mutating func consume(_ frame: [Int16]) throws
    /// Completes the output (a WAV header's sizes, for example).
    mutating func finish() throws
}

/// Silence: the null source.
public struct SilenceSource: AudioSource {
    public init() {}
    public mutating func nextFrame() -> [Int16] { [Int16](repeating: 0, count: samplesPerFrame) }
}

/// A continuous sine tone.
public struct ToneSource: AudioSource {
    private var generator: ToneGenerator
    public init(frequency: Double, amplitude: Double = 0.5) {
        generator = ToneGenerator(frequency: frequency, amplitude: amplitude)
    }
    public mutating func nextFrame() -> [Int16] { generator.next(samples: samplesPerFrame) }
}

/// Plays the samples of a WAV file once, then silence.
public struct WAVSource: AudioSource {
    private let samples: [Int16]
    private var position = 0

    public init(wav: WAVFile) { samples = wav.samples }

    public mutating func nextFrame() -> [Int16] {
        var frame = [Int16](repeating: 0, count: samplesPerFrame)
        let available = min(samplesPerFrame, samples.count - position)
        if available > 0 {
            frame.replaceSubrange(0..<available, with: samples[position..<(position + available)])
            position += available
        }
        return frame
    }

    public var isExhausted: Bool { position >= samples.count }
}

/// Discards everything: the null sink.
public struct NullSink: AudioSink {
    public init() {}
    public mutating func consume(_ frame: [Int16]) throws {}
    public mutating func finish() throws {}
}

/// Collects samples in memory and writes them as a WAV file on finish.
public struct WAVRecorder: AudioSink {
    public let path: String
    /// Recording stops growing after this many samples (memory stays bounded).
    public let maximumSamples: Int
    public private(set) var samples: [Int16] = []

    public init(path: String, maximumSeconds: Int = 3600) {
        self.path = path
        maximumSamples = maximumSeconds * 8000
    }

    public mutating func consume(_ frame: [Int16]) throws {
        let room = maximumSamples - samples.count
        if room > 0 { samples.append(contentsOf: frame.prefix(room)) }
    }

    public mutating func finish() throws {
        try WAVFile(samples: samples).write(to: path)
    }
}
