// Tunnel framing (docs/tunnel-protocol.md §2): an 8-byte header then the payload.
//
//   0      1      2      3      4      5      6      7
//   +------+------+------+------+------+------+------+------+
//   | ver  | type | channel     | payload length (BE u32)   |
//   +------+------+------+------+------+------+------+------+
//
// The decoder holds at most one header plus `maxPayload` bytes, whatever the
// peer announces; a longer frame is an error before any payload is buffered.

/// Framing version carried in every header. A different value is a framing the
/// peer and this side do not share, so the connection ends.
public let tunnelFramingVersion: UInt8 = 1

/// One frame: type, channel (0 = connection control, otherwise a call) and payload.
public struct Frame: Equatable, Sendable {
    public static let headerSize = 8

    public var type: UInt8
    public var channel: UInt16
    public var payload: [UInt8]

    public init(type: UInt8, channel: UInt16 = 0, payload: [UInt8] = []) {
        self.type = type
        self.channel = channel
        self.payload = payload
    }

    /// Appends header and payload to `output`.
    public func encode(into output: inout [UInt8]) {
        Frame.appendHeader(type: type, channel: channel, payloadLength: payload.count, to: &output)
        output.append(contentsOf: payload)
    }

    /// Appends the 8-byte header of a frame whose payload the caller appends next.
    public static func appendHeader(type: UInt8, channel: UInt16, payloadLength: Int, to output: inout [UInt8]) {
        let length = UInt32(truncatingIfNeeded: payloadLength)
        output.append(tunnelFramingVersion)
        output.append(type)
        output.append(UInt8(truncatingIfNeeded: channel >> 8))
        output.append(UInt8(truncatingIfNeeded: channel))
        output.append(UInt8(truncatingIfNeeded: length >> 24))
        output.append(UInt8(truncatingIfNeeded: length >> 16))
        output.append(UInt8(truncatingIfNeeded: length >> 8))
        output.append(UInt8(truncatingIfNeeded: length))
    }

    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Frame.headerSize + payload.count)
        encode(into: &bytes)
        return bytes
    }
}

/// Why a byte stream is not a valid frame sequence. Each is fatal to the connection.
public enum FrameError: Error, Equatable, Sendable {
    /// The header's version byte is not ours (also what an HTTP request or a TLS
    /// ClientHello on the plain port looks like).
    case unsupportedFramingVersion(UInt8)
    /// The announced payload is larger than this side accepts.
    case oversize(announced: UInt32, limit: Int)
}

/// Incremental frame decoder: feed bytes as they arrive, take frames out.
public struct FrameDecoder: Sendable {
    public let maxPayload: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var failure: FrameError?

    public init(maxPayload: Int = 16 * 1024) {
        self.maxPayload = max(0, maxPayload)
    }

    /// Bytes buffered but not yet returned as frames.
    public var bufferedCount: Int { buffer.count - readIndex }

    /// Appends received bytes. Input after a fatal error is ignored.
    public mutating func feed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard failure == nil else { return }
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    public mutating func feed(_ pointer: UnsafeRawBufferPointer) {
        feed(pointer.bindMemory(to: UInt8.self))
    }

    /// Next complete frame, nil when more bytes are needed, or the fatal error.
    /// The buffer never grows beyond one frame's worth plus what the caller fed in
    /// a single call: the caller's read size bounds it.
    public mutating func next() -> Result<Frame, FrameError>? {
        nextView { type, channel, payload in Frame(type: type, channel: channel, payload: Array(payload)) }
    }

    /// Like `next`, but hands the frame to `body` as a view into the decoder's buffer,
    /// valid only during the call: the hot path (MEDIA) copies only what it keeps.
    public mutating func nextView<R>(_ body: (_ type: UInt8, _ channel: UInt16, _ payload: UnsafeRawBufferPointer) -> R)
        -> Result<R, FrameError>? {
        if let failure { return .failure(failure) }
        let available = bufferedCount
        guard available >= Frame.headerSize else {
            // A header's first byte already tells a foreign protocol apart.
            if available >= 1, buffer[readIndex] != tunnelFramingVersion {
                return fail(.unsupportedFramingVersion(buffer[readIndex]))
            }
            return nil
        }
        let base = readIndex
        let version = buffer[base]
        guard version == tunnelFramingVersion else { return fail(.unsupportedFramingVersion(version)) }
        let type = buffer[base + 1]
        let channel = UInt16(buffer[base + 2]) << 8 | UInt16(buffer[base + 3])
        var length: UInt32 = 0
        for offset in 4..<8 { length = length << 8 | UInt32(buffer[base + offset]) }
        guard UInt64(length) <= UInt64(maxPayload) else {
            return fail(.oversize(announced: length, limit: maxPayload))
        }
        let payloadLength = Int(length)
        guard available >= Frame.headerSize + payloadLength else { return nil }
        let start = base + Frame.headerSize
        let result = buffer.withUnsafeBytes { raw in
            body(type, channel, UnsafeRawBufferPointer(rebasing: raw[start..<(start + payloadLength)]))
        }
        readIndex = start + payloadLength
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 2 * (maxPayload + Frame.headerSize))
            readIndex = 0
        }
        return .success(result)
    }

    private mutating func fail<R>(_ error: FrameError) -> Result<R, FrameError> {
        failure = error
        buffer = []
        readIndex = 0
        return .failure(error)
    }

    private mutating func compactIfUseful() {
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
    }
}
