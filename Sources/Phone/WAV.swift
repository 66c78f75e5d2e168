// WAV files (RIFF, PCM): 16-bit mono at 8 kHz is what a call carries. Reading
// accepts any PCM 16-bit file at 8 kHz, mono or stereo (the first channel is
// kept); anything else is refused with a clear error, never trapped on.
import Glibc

public enum WAVError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case notRIFFWave
    case truncated(String)
    case unsupported(String)
    case tooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "\(path): \(reason)"
        case .notRIFFWave: "not a RIFF/WAVE file"
        case let .truncated(what): "truncated WAV file: \(what)"
        case let .unsupported(what): "unsupported WAV file: \(what) (need 16-bit PCM at 8000 Hz)"
        case let .tooLarge(bytes, limit): "WAV file of \(bytes) bytes is over the limit of \(limit)"
        }
    }
}

public struct WAVFile: Equatable, Sendable {
    public static let sampleRate = 8000
    public var samples: [Int16]

    public init(samples: [Int16]) { self.samples = samples }

    /// Parses a WAV image held in memory.
    public init(bytes: [UInt8]) throws {
        guard bytes.count >= 12, bytes[0..<4].elementsEqual("RIFF".utf8), bytes[8..<12].elementsEqual("WAVE".utf8)
        else { throw WAVError.notRIFFWave }
        var offset = 12
        var format: (channels: Int, rate: Int, bits: Int, encoding: Int)?
        while offset + 8 <= bytes.count {
            let identifier = bytes[offset..<(offset + 4)]
            let size = Int(Self.uint32(bytes, offset + 4))
            let body = offset + 8
            guard size <= bytes.count - body else { throw WAVError.truncated("chunk larger than the file") }
            if identifier.elementsEqual("fmt ".utf8) {
                guard size >= 16 else { throw WAVError.truncated("fmt chunk") }
                format = (channels: Int(Self.uint16(bytes, body + 2)), rate: Int(Self.uint32(bytes, body + 4)),
                          bits: Int(Self.uint16(bytes, body + 14)), encoding: Int(Self.uint16(bytes, body)))
            } else if identifier.elementsEqual("data".utf8) {
                guard let format else { throw WAVError.truncated("data before fmt") }
                guard format.encoding == 1, format.bits == 16, format.rate == Self.sampleRate,
                      (1...2).contains(format.channels)
                else {
                    throw WAVError.unsupported("format \(format.encoding), \(format.bits)-bit, \(format.rate) Hz, \(format.channels) channels")
                }
                let frameBytes = 2 * format.channels
                let count = size / frameBytes
                var samples = [Int16]()
                samples.reserveCapacity(count)
                for index in 0..<count {
                    samples.append(Int16(bitPattern: Self.uint16(bytes, body + index * frameBytes)))
                }
                self.samples = samples
                return
            }
            // Chunks are padded to an even size.
            offset = body + size + (size & 1)
        }
        throw WAVError.truncated("no data chunk")
    }

    /// Reads a file, refusing anything larger than `limit` bytes.
    public init(path: String, limit: Int = 64 << 20) throws {
        try self.init(bytes: Self.readFile(path, limit: limit))
    }

    /// The canonical 44-byte-header encoding: PCM, 16-bit, mono, 8 kHz.
    public var bytes: [UInt8] {
        let dataSize = samples.count * 2
        var out = [UInt8]()
        out.reserveCapacity(44 + dataSize)
        out += Array("RIFF".utf8); Self.append32(&out, UInt32(36 + dataSize)); out += Array("WAVE".utf8)
        out += Array("fmt ".utf8); Self.append32(&out, 16)
        Self.append16(&out, 1); Self.append16(&out, 1)  // PCM, mono
        Self.append32(&out, UInt32(Self.sampleRate)); Self.append32(&out, UInt32(Self.sampleRate * 2))
        Self.append16(&out, 2); Self.append16(&out, 16)  // block align, bits
        out += Array("data".utf8); Self.append32(&out, UInt32(dataSize))
        for sample in samples { Self.append16(&out, UInt16(bitPattern: sample)) }
        return out
    }

    /// Writes atomically: a temporary file, then rename.
    public func write(to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WAVError.unreadable(path: temporary, reason: String(cString: strerror(errno))) }
        let image = bytes
        var written = 0
        let failure: String? = image.withUnsafeBytes { raw in
            while written < raw.count {
                let result = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                written += result
            }
            return nil
        }
        close(fd)
        if let failure {
            unlink(temporary)
            throw WAVError.unreadable(path: temporary, reason: failure)
        }
        guard rename(temporary, path) == 0 else {
            throw WAVError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
    }

    static func readFile(_ path: String, limit: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw WAVError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw WAVError.unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            if count == 0 { return bytes }
            guard bytes.count + count <= limit else { throw WAVError.tooLarge(bytes: bytes.count + count, limit: limit) }
            bytes += chunk[0..<count]
        }
    }

    private static func uint16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    private static func uint32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(uint16(bytes, offset)) | UInt32(uint16(bytes, offset + 2)) << 16
    }

    private static func append16(_ out: inout [UInt8], _ value: UInt16) {
        out.append(UInt8(value & 0xff)); out.append(UInt8(value >> 8))
    }

    private static func append32(_ out: inout [UInt8], _ value: UInt32) {
        append16(&out, UInt16(value & 0xffff)); append16(&out, UInt16(value >> 16))
    }
}
