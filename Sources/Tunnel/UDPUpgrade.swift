// UDP upgrade of a call's audio (docs/tunnel-protocol.md §8), sans-I/O. Once a call
// is connected the appliance offers a UDP port and a per-call key in the tunnel
// (UDP_OFFER). The client proves that UDP reaches that port with keyed, numbered
// probes; the appliance latches the proven source only, answers, and moves the
// call's audio to UDP when the client's RTP arrives there. Either side falls back to
// MEDIA frames as soon as UDP falls silent, and tells the other (UDP_PATH).

/// Tunables of the upgrade (the appliance and the client use the same defaults).
public struct UDPUpgradeConfig: Sendable, Equatable {
    /// UDP silent this long on a call that uses it: back to the tunnel.
    public var fallbackAfterNanos: UInt64 = 1_000_000_000
    /// Probes of one attempt are this far apart.
    public var probeIntervalNanos: UInt64 = 200_000_000
    /// Probes per attempt before the client gives up until the next attempt.
    public var probesPerAttempt = 10
    /// While on UDP the client keeps probing this often (the answers keep the path
    /// proven even when the far end sends no audio, e.g. silence suppression).
    public var keepaliveIntervalNanos: UInt64 = 300_000_000
    /// After a failed attempt or a fallback, the next attempt starts this much later.
    public var retryAfterNanos: UInt64 = 5_000_000_000

    public init() {}
}

/// The control datagrams of the upgrade, and how to tell them from RTP and RTCP on
/// the same socket: an RTP or RTCP packet starts with version 2 (0x80-0xBF); these
/// start with "BLU".
public enum UDPUpgradeWire {
    public static let magic: [UInt8] = [0x42, 0x4C, 0x55, 0x01]  // "BLU", version 1
    public static let size = 28
    public static let keySize = 16
    public static let macSize = 16

    public enum Kind: UInt8, Sendable {
        /// Client to appliance: "this source is mine", proven with the call's key.
        case probe = 1
        /// Appliance to client: the probe with this counter arrived and was accepted.
        case answer = 2
    }

    public enum Datagram: Equatable, Sendable {
        case control(kind: Kind, channel: UInt16, counter: UInt32, mac: [UInt8])
        case media(MediaKind)
        case garbage
    }

    /// `magic, u8 kind, u8 0, u16 channel, u32 counter, bytes[16] mac`.
    public static func encode(_ kind: Kind, channel: UInt16, counter: UInt32, key: [UInt8], crypto: TunnelCrypto) -> [UInt8] {
        var w = WireWriter(capacity: size)
        w.raw(magic); w.u8(kind.rawValue); w.u8(0); w.u16(channel); w.u32(counter)
        w.raw(mac(kind, channel: channel, counter: counter, key: key, crypto: crypto))
        return w.bytes
    }

    /// HMAC-SHA-256(key, "bloo/1 udp\0" || kind || channel || counter), first 16 bytes.
    public static func mac(_ kind: Kind, channel: UInt16, counter: UInt32, key: [UInt8], crypto: TunnelCrypto) -> [UInt8] {
        var w = WireWriter(capacity: 20)
        w.raw(Array("bloo/1 udp".utf8)); w.u8(0); w.u8(kind.rawValue); w.u16(channel); w.u32(counter)
        return Array(crypto.hmacSHA256(key: key, message: w.bytes).prefix(macSize))
    }

    public static func classify(_ bytes: UnsafeRawBufferPointer) -> Datagram {
        guard bytes.count >= 2 else { return .garbage }
        if bytes[0] & 0xC0 == 0x80 {
            // RFC 5761: payload types 72-76 with the marker bit are RTCP 200-204.
            guard bytes.count >= 8 else { return .garbage }
            return (192...223).contains(bytes[1]) ? .media(.rtcp) : (bytes.count >= 12 ? .media(.rtp) : .garbage)
        }
        guard bytes.count >= size, bytes[0] == magic[0], bytes[1] == magic[1], bytes[2] == magic[2], bytes[3] == magic[3],
              let kind = Kind(rawValue: bytes[4]) else { return .garbage }
        var r = WireReader(Array(bytes[6..<size]))
        guard let channel = r.u16(), let counter = r.u32(), let mac = r.raw(macSize) else { return .garbage }
        return .control(kind: kind, channel: channel, counter: counter, mac: mac)
    }
}

/// Which way a call's audio goes.
public enum AudioPath: UInt8, Sendable, Equatable {
    case tunnel = 0
    case udp = 1
}

/// The appliance's side of one call's UDP leg. `Peer` is the driver's address type.
public struct ApplianceUDPLeg<Peer: Hashable & Sendable>: Sendable {
    public let channel: UInt16
    public let key: [UInt8]
    public let config: UDPUpgradeConfig
    private let crypto: TunnelCrypto
    public private(set) var path: AudioPath = .tunnel
    /// The source a valid probe proved; media from anywhere else is dropped.
    public private(set) var latched: Peer?
    private var lastCounter: UInt32 = 0
    private var lastHeard: UInt64 = 0
    /// A path change the client must be told about (UDP_PATH); the driver takes it.
    public var pendingReport: AudioPath?

    public struct Counters: Sendable, Equatable {
        public var probesAccepted: UInt64 = 0
        public var probesRefused: UInt64 = 0
        public var mediaReceived: UInt64 = 0
        public var strangersDropped: UInt64 = 0
        public var upgrades: UInt64 = 0
        public var fallbacks: UInt64 = 0
    }
    public private(set) var counters = Counters()

    public init(channel: UInt16, key: [UInt8], config: UDPUpgradeConfig = UDPUpgradeConfig(), crypto: TunnelCrypto) {
        self.channel = channel
        self.key = key
        self.config = config
        self.crypto = crypto
    }

    public enum Received: Equatable, Sendable {
        /// Send this answer back to the prover.
        case answer([UInt8], to: Peer)
        /// RTP or RTCP from the latched client: hand it to the call.
        case media(MediaKind)
        case dropped
    }

    /// A datagram on the leg's socket.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, from: Peer, now: UInt64) -> Received {
        switch UDPUpgradeWire.classify(bytes) {
        case let .control(.probe, channel, counter, mac):
            // A counter that does not grow is a replay: it cannot move the latch.
            guard channel == self.channel, counter > lastCounter,
                  TunnelAuth.constantTimeEqual(mac, UDPUpgradeWire.mac(.probe, channel: channel, counter: counter, key: key, crypto: crypto))
            else {
                counters.probesRefused += 1
                return .dropped
            }
            lastCounter = counter
            lastHeard = now
            latched = from  // a NAT that rebinds is followed by the next fresh probe
            counters.probesAccepted += 1
            return .answer(UDPUpgradeWire.encode(.answer, channel: channel, counter: counter, key: key, crypto: crypto), to: from)
        case let .media(kind):
            guard let latched, latched == from else {
                counters.strangersDropped += 1
                return .dropped
            }
            lastHeard = now
            counters.mediaReceived += 1
            // The client sends audio here only once our answer reached it: both ways work.
            if path == .tunnel {
                path = .udp
                counters.upgrades += 1
                pendingReport = .udp
            }
            return .media(kind)
        case .control(.answer, _, _, _), .garbage:
            counters.strangersDropped += 1
            return .dropped
        }
    }

    /// Where to send the call's audio: the client's UDP address, or nil for MEDIA frames.
    public var udpDestination: Peer? { path == .udp ? latched : nil }

    /// Clock tick: falls back to the tunnel when UDP fell silent. Returns true when it did.
    @discardableResult
    public mutating func tick(now: UInt64) -> Bool {
        guard path == .udp, now &- lastHeard >= config.fallbackAfterNanos else { return false }
        fallBack(report: true)
        return true
    }

    /// The client reported its path (UDP_PATH): it stopped hearing us on UDP.
    public mutating func peerReported(_ reported: AudioPath) {
        if reported == .tunnel, path == .udp { fallBack(report: false) }
    }

    private mutating func fallBack(report: Bool) {
        path = .tunnel
        latched = nil  // the old source may be gone: a fresh probe must prove the next one
        counters.fallbacks += 1
        if report { pendingReport = .tunnel }
    }
}

/// The client's side of one call's UDP leg.
public struct ClientUDPLeg: Sendable {
    public enum State: Equatable, Sendable {
        /// No offer (the appliance does not upgrade this call).
        case idle
        /// Probing; `sent` probes of this attempt so far.
        case probing(sent: Int)
        case udp
        /// Back on (or still on) the tunnel; the next attempt starts at `retryAt`.
        case tunnel(retryAt: UInt64)
    }

    public let channel: UInt16
    public let config: UDPUpgradeConfig
    private let crypto: TunnelCrypto
    private var key: [UInt8] = []
    public private(set) var state: State = .idle
    private var counter: UInt32 = 0
    private var nextProbeAt: UInt64 = 0
    private var lastHeard: UInt64 = 0

    public struct Counters: Sendable, Equatable {
        public var probesSent: UInt64 = 0
        public var answers: UInt64 = 0
        public var upgrades: UInt64 = 0
        public var fallbacks: UInt64 = 0
    }
    public private(set) var counters = Counters()

    public init(channel: UInt16, config: UDPUpgradeConfig = UDPUpgradeConfig(), crypto: TunnelCrypto) {
        self.channel = channel
        self.config = config
        self.crypto = crypto
    }

    public enum Action: Equatable, Sendable {
        case send([UInt8])
        /// The path changed; `tellAppliance`: send UDP_PATH (a fallback seen here first).
        case pathChanged(AudioPath, tellAppliance: Bool, reason: String)
    }

    /// UDP_OFFER arrived: start proving.
    public mutating func offer(key: [UInt8], now: UInt64) {
        guard key.count == UDPUpgradeWire.keySize else { return }
        self.key = key
        state = .probing(sent: 0)
        nextProbeAt = now
    }

    public var usesUDP: Bool { state == .udp }

    public mutating func tick(now: UInt64) -> [Action] {
        switch state {
        case .idle:
            return []
        case let .probing(sent):
            guard now >= nextProbeAt else { return [] }
            guard sent < config.probesPerAttempt else {
                state = .tunnel(retryAt: now &+ config.retryAfterNanos)
                return []
            }
            state = .probing(sent: sent + 1)
            nextProbeAt = now &+ config.probeIntervalNanos
            return [probe()]
        case .udp:
            if now &- lastHeard >= config.fallbackAfterNanos {
                fallBack(now: now)
                let ms = config.fallbackAfterNanos / 1_000_000
                return [.pathChanged(.tunnel, tellAppliance: true, reason: "nothing arrived on UDP for \(ms) ms")]
            }
            guard now >= nextProbeAt else { return [] }
            nextProbeAt = now &+ config.keepaliveIntervalNanos
            return [probe()]
        case let .tunnel(retryAt):
            guard now >= retryAt else { return [] }
            state = .probing(sent: 0)
            nextProbeAt = now
            return tick(now: now)
        }
    }

    public enum Received: Equatable, Sendable {
        case media(MediaKind)
        case control([Action])
        case dropped
    }

    /// A datagram on the call's UDP socket (connected to the appliance's port, so the
    /// kernel already dropped other sources).
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: UInt64) -> Received {
        guard state != .idle else { return .dropped }
        switch UDPUpgradeWire.classify(bytes) {
        case let .control(.answer, channel, counter, mac):
            guard channel == self.channel, counter <= self.counter, counter > 0,
                  TunnelAuth.constantTimeEqual(mac, UDPUpgradeWire.mac(.answer, channel: channel, counter: counter, key: key, crypto: crypto))
            else { return .dropped }
            counters.answers += 1
            lastHeard = now
            guard case .probing = state else { return .control([]) }
            state = .udp
            counters.upgrades += 1
            nextProbeAt = now &+ config.keepaliveIntervalNanos
            return .control([.pathChanged(.udp, tellAppliance: false, reason: "the appliance answered probe \(counter) on UDP")])
        case let .media(kind):
            lastHeard = now
            return .media(kind)
        case .control(.probe, _, _, _), .garbage:
            return .dropped
        }
    }

    /// The appliance reported that UDP stopped on its side.
    public mutating func peerReported(_ reported: AudioPath, now: UInt64) -> [Action] {
        guard reported == .tunnel, state == .udp else { return [] }
        fallBack(now: now)
        return [.pathChanged(.tunnel, tellAppliance: false, reason: "the appliance stopped hearing us on UDP")]
    }

    private mutating func fallBack(now: UInt64) {
        state = .tunnel(retryAt: now &+ config.retryAfterNanos)
        counters.fallbacks += 1
    }

    private mutating func probe() -> Action {
        counter &+= 1
        counters.probesSent += 1
        return .send(UDPUpgradeWire.encode(.probe, channel: channel, counter: counter, key: key, crypto: crypto))
    }
}
