// One call's media, sans-I/O: 20 ms frames from an AudioSource become G.711 RTP
// packets; received RTP is checked, counted (RFC 3550 loss and jitter) and
// decoded into an AudioSink. RTCP receiver reports go both ways so each side
// learns what the other received.
import RTP
import Tunnel

/// A call's handle in the API: its tunnel channel.
public struct CallID: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt16
    public var description: String { "call \(value)" }
}

/// Packets, loss and jitter of one direction of a call.
public struct DirectionStats: Sendable, Equatable {
    public var packets: UInt64 = 0
    public var lost: UInt64 = 0
    public var lossPercent: Double = 0
    /// nil when the other side never reported it (no RTCP from the far end).
    public var jitterMs: Double?
    public init() {}
}

/// A snapshot during a call and its summary at the end.
public struct CallQuality: Sendable, Equatable {
    public var durationSeconds: Double
    public var codec: Codec
    public var path: MediaPath
    public var sent = DirectionStats()
    public var received = DirectionStats()
    /// Median tunnel round trip (PING/PONG), milliseconds; nil before the first PONG.
    public var rttMs: Double?
    /// Estimated MOS (ITU-T G.107 E-model).
    public var mos: Double
    /// RTP and RTCP packets carried as tunnel MEDIA frames, and as UDP datagrams.
    public var tunnelMedia = MediaCounts()
    public var udpMedia = MediaCounts()
}

/// Packets of a call on one path, both directions.
public struct MediaCounts: Sendable, Equatable {
    public var sent: UInt64 = 0
    public var received: UInt64 = 0
    public init() {}
}

/// Which way the audio went.
public enum MediaPath: String, Sendable {
    case direct = "direct"
    case tunnelTCP = "tunnel over TCP"
    case tunnelUDP = "tunnel with UDP audio"
}

struct CallMedia {
    let codec: Codec
    var source: any AudioSource
    var sink: any AudioSink
    let ssrc: UInt32
    private var sequence: UInt16
    private var timestamp: UInt32
    private(set) var packetsSent: UInt64 = 0
    private(set) var reception = ReceptionStats()
    private(set) var malformed: UInt64 = 0
    private var remoteSSRC: UInt32?
    /// What the far end reported about our stream (RTCP report block on our SSRC).
    private(set) var farEndReport: (lost: UInt64, jitterMs: Double)?
    private(set) var lastMediaNanos: UInt64?
    var sinkError: String?

    init(codec: Codec, source: any AudioSource, sink: any AudioSink, random: [UInt8]) {
        self.codec = codec
        self.source = source
        self.sink = sink
        var r = random + [UInt8](repeating: 0, count: max(0, 10 - random.count))
        ssrc = UInt32(r[0]) << 24 | UInt32(r[1]) << 16 | UInt32(r[2]) << 8 | UInt32(r[3])
        sequence = UInt16(r[4]) << 8 | UInt16(r[5])
        timestamp = UInt32(r[6]) << 24 | UInt32(r[7]) << 16 | UInt32(r[8]) << 8 | UInt32(r[9])
        r.removeAll()
    }

    var law: G711.Law { codec == .pcmu ? .muLaw : .aLaw }

    /// The next 20 ms packet.
    mutating func nextPacket() -> [UInt8] {
        let samples = source.nextFrame()
        let header = RTPHeader(payloadType: codec.rawValue, marker: packetsSent == 0, sequence: sequence,
                               timestamp: timestamp, ssrc: ssrc)
        sequence &+= 1
        timestamp &+= UInt32(samplesPerFrame)
        packetsSent += 1
        return header.packet(payload: G711.encode(samples, law: law))
    }

    /// An RTP packet from the far end.
    mutating func receiveRTP(_ packet: [UInt8], nowNanos: UInt64) {
        guard let (header, payload) = RTPHeader.parse(packet), header.payloadType == codec.rawValue,
              payload.count <= 8 * samplesPerFrame else {
            malformed += 1
            return
        }
        remoteSSRC = header.ssrc
        lastMediaNanos = nowNanos
        reception.record(sequence: header.sequence, timestamp: header.timestamp, arrivalSeconds: Double(nowNanos) / 1e9)
        let samples = G711.decode(packet[payload], law: law)
        guard sinkError == nil else { return }
        do { try sink.consume(samples) } catch { sinkError = "\(error)" }
    }

    /// RTCP receiver report about the far end's stream (RFC 3550 §6.4.2), or nil
    /// before anything was received.
    func receiverReport() -> [UInt8]? {
        guard let remoteSSRC, reception.received > 0 else { return nil }
        var w = WireWriter(capacity: 32)
        w.u8(0x81); w.u8(201); w.u16(7)
        w.u32(ssrc)
        w.u32(remoteSSRC)
        let lost = min(reception.lost, 0x7F_FFFF)
        w.u8(UInt8(min(255, reception.lossPercent * 256 / 100)))
        w.u8(UInt8(truncatingIfNeeded: lost >> 16)); w.u8(UInt8(truncatingIfNeeded: lost >> 8)); w.u8(UInt8(truncatingIfNeeded: lost))
        w.u32(UInt32(truncatingIfNeeded: reception.expected))
        w.u32(UInt32(min(reception.jitterUnits, Double(UInt32.max))))
        w.u32(0); w.u32(0)
        return w.bytes
    }

    /// Reads report blocks about our own stream out of a compound RTCP packet.
    mutating func receiveRTCP(_ packet: [UInt8]) {
        var offset = 0
        while offset + 8 <= packet.count {
            let first = packet[offset]
            guard first >> 6 == 2 else { return }
            let count = Int(first & 0x1F)
            let type = packet[offset + 1]
            let length = ((Int(packet[offset + 2]) << 8 | Int(packet[offset + 3])) + 1) * 4
            guard offset + length <= packet.count else { return }
            var blocks = offset + 8
            if type == 200 { blocks += 20 } else if type != 201 { offset += length; continue }
            for index in 0..<count {
                let start = blocks + 24 * index
                guard start + 24 <= offset + length else { break }
                var r = WireReader(packet[start..<(start + 24)])
                guard let source = r.u32(), r.u8() != nil, let high = r.u8(), let mid = r.u8(), let low = r.u8(),
                      r.u32() != nil, let jitter = r.u32() else { break }
                if source == ssrc {
                    let lost = UInt64(high) << 16 | UInt64(mid) << 8 | UInt64(low)
                    farEndReport = (lost, 1000 * Double(jitter) / 8000)
                }
            }
            offset += length
        }
    }

    func stats(received: Bool) -> DirectionStats {
        var d = DirectionStats()
        if received {
            d.packets = reception.received
            d.lost = reception.lost
            d.lossPercent = reception.lossPercent
            d.jitterMs = reception.jitterMs
        } else {
            d.packets = packetsSent
            if let farEndReport {
                d.lost = farEndReport.lost
                d.lossPercent = packetsSent == 0 ? 0 : min(100, 100 * Double(farEndReport.lost) / Double(packetsSent))
                d.jitterMs = farEndReport.jitterMs
            }
        }
        return d
    }
}

/// Passes audio on to another sink while watching for a tone: proves audio crossed.
public struct ToneDetectingSink: AudioSink {
    public private(set) var detector: ToneDetector
    private var inner: any AudioSink
    public init(frequency: Double, forwardingTo inner: any AudioSink = NullSink()) {
        detector = ToneDetector(frequency: frequency)
        self.inner = inner
    }
    public mutating func consume(_ frame: [Int16]) throws {
        detector.feed(frame)
        try inner.consume(frame)
    }
    public mutating func finish() throws { try inner.finish() }
}

/// MOS from what a call measured: one-way delay is half the round trip plus
/// packetisation (20 ms) and a jitter buffer of twice the jitter (at least 20 ms).
func estimatedMOS(rttMs: Double?, jitterMs: Double, lossPercent: Double) -> Double {
    let delay = (rttMs ?? 0) / 2 + 20 + max(20, 2 * jitterMs)
    return EModel.mos(codec: .g711, oneWayDelayMs: delay, lossPercent: lossPercent)
}
