// Tunnel messages (docs/tunnel-protocol.md §3): typed views of frames.
// Every payload is a fixed sequence of fields; a newer peer may append fields,
// so trailing bytes are ignored. Missing fields make the frame malformed.

/// Frame type codes. Values never change meaning; new ones are only added.
public enum MessageType: UInt8, Sendable, CaseIterable {
    case hello = 0x01
    case welcome = 0x02
    case auth = 0x03
    case authOK = 0x04
    case resume = 0x05
    case authDefer = 0x06
    case register = 0x10
    case registered = 0x11
    case rejected = 0x12
    case unregister = 0x13
    case credentials = 0x14
    case call = 0x20
    case incoming = 0x21
    case progress = 0x22
    case ringing = 0x23
    case answer = 0x24
    case connected = 0x25
    case hangup = 0x26
    case dtmf = 0x27
    case earlyMedia = 0x28
    case media = 0x30
    case ping = 0x40
    case pong = 0x41
    case error = 0x50
    case bye = 0x51
}

/// Audio codecs, numbered as their static RTP payload types.
public enum Codec: UInt8, Sendable, CaseIterable {
    case pcmu = 0
    case pcma = 8
    case g729 = 18
}

/// What a MEDIA frame carries.
public enum MediaKind: UInt8, Sendable {
    case rtp = 0
    case rtcp = 1
}

/// ERROR codes. 1xx: the peer broke the protocol; 2xx: authentication; 3xx: limits.
public enum ErrorCode: UInt16, Sendable {
    case malformedFrame = 100
    case unsupportedVersion = 101
    case frameTooLarge = 102
    case unexpectedMessage = 103
    case unknownChannel = 104
    case authenticationFailed = 200
    case authenticationTimeout = 201
    case resumeRefused = 202
    case overloaded = 300
    case rateLimited = 301
    case idleTimeout = 302
    case internalError = 500
}

/// Client capability bits announced in HELLO and echoed (as the intersection) in WELCOME.
public struct Capabilities: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let resume = Capabilities(rawValue: 1 << 0)
    public static let dtmf = Capabilities(rawValue: 1 << 1)
    public static let rtcp = Capabilities(rawValue: 1 << 2)
    public static let udpUpgrade = Capabilities(rawValue: 1 << 3)
    public static let all: Capabilities = [.resume, .dtmf, .rtcp, .udpUpgrade]
}

/// Lengths fixed by the protocol.
public enum TunnelSizes {
    public static let nonce = 32
    public static let mac = 32
    public static let resumeToken = 16
    public static let h235Hash = 16
}

/// How a subscriber's secret is checked when the appliance does not hold it (AUTH_DEFER, CREDENTIALS).
public enum CredentialMethod: UInt8, Sendable {
    /// H.235.1 password hash (MD5 over the PER ClearToken), checked by the operator's gatekeeper.
    case h235PasswordMD5 = 1
}

/// One decoded message. `channel` of the carrying frame is kept beside it.
public enum Message: Equatable, Sendable {
    case hello(minVersion: UInt16, maxVersion: UInt16, capabilities: Capabilities, client: String)
    case welcome(version: UInt16, capabilities: Capabilities, maxPayload: UInt32, nonce: [UInt8])
    case auth(alias: String, clientNonce: [UInt8], mac: [UInt8])
    case authOK(serverProof: [UInt8], resumeToken: [UInt8], graceSeconds: UInt16, resumed: Bool)
    case resume(alias: String, token: [UInt8], clientNonce: [UInt8], mac: [UInt8])
    /// The alias is not in the appliance's table: the operator's gatekeeper will check it.
    case authDefer(method: CredentialMethod)
    /// The client's proof for the gatekeeper (sent after AUTH_DEFER, before REGISTER).
    case credentials(method: CredentialMethod, timeStamp: UInt32, hash: [UInt8])
    case register(aliases: [String])
    case registered(aliases: [String], ttlSeconds: UInt16)
    case rejected(reason: UInt16, text: String)
    case unregister
    case call(destination: String, codecs: [Codec])
    case incoming(from: String, to: String, codecs: [Codec])
    case progress
    case ringing
    case answer(codecs: [Codec])
    case connected(codec: Codec, packetTimeMs: UInt8)
    case hangup(cause: UInt8)
    case dtmf(digit: UInt8, durationMs: UInt16)
    /// Media flows before CONNECTED (ringback, announcements from the far end), in this codec.
    case earlyMedia(codec: Codec, packetTimeMs: UInt8)
    case media(kind: MediaKind, packet: [UInt8])
    case ping(clientTime: UInt64)
    case pong(clientTime: UInt64, serverTime: UInt64, activeCalls: UInt32, capacity: UInt32)
    case error(code: UInt16, text: String)
    case bye

    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .welcome: .welcome
        case .auth: .auth
        case .authOK: .authOK
        case .resume: .resume
        case .authDefer: .authDefer
        case .credentials: .credentials
        case .register: .register
        case .registered: .registered
        case .rejected: .rejected
        case .unregister: .unregister
        case .call: .call
        case .incoming: .incoming
        case .progress: .progress
        case .ringing: .ringing
        case .answer: .answer
        case .connected: .connected
        case .hangup: .hangup
        case .dtmf: .dtmf
        case .earlyMedia: .earlyMedia
        case .media: .media
        case .ping: .ping
        case .pong: .pong
        case .error: .error
        case .bye: .bye
        }
    }

    /// The payload bytes of this message.
    public var payload: [UInt8] {
        var w = WireWriter()
        switch self {
        case let .hello(minVersion, maxVersion, capabilities, client):
            w.u16(minVersion); w.u16(maxVersion); w.u32(capabilities.rawValue); w.string(client)
        case let .welcome(version, capabilities, maxPayload, nonce):
            w.u16(version); w.u32(capabilities.rawValue); w.u32(maxPayload); w.raw(fixed(nonce, TunnelSizes.nonce))
        case let .auth(alias, clientNonce, mac):
            w.string(alias); w.raw(fixed(clientNonce, TunnelSizes.nonce)); w.raw(fixed(mac, TunnelSizes.mac))
        case let .authOK(serverProof, resumeToken, graceSeconds, resumed):
            w.raw(fixed(serverProof, TunnelSizes.mac)); w.raw(fixed(resumeToken, TunnelSizes.resumeToken))
            w.u16(graceSeconds); w.u8(resumed ? 1 : 0)
        case let .resume(alias, token, clientNonce, mac):
            w.string(alias); w.raw(fixed(token, TunnelSizes.resumeToken))
            w.raw(fixed(clientNonce, TunnelSizes.nonce)); w.raw(fixed(mac, TunnelSizes.mac))
        case let .authDefer(method):
            w.u8(method.rawValue)
        case let .credentials(method, timeStamp, hash):
            w.u8(method.rawValue); w.u32(timeStamp); w.raw(fixed(hash, TunnelSizes.h235Hash))
        case let .register(aliases):
            w.u8(UInt8(min(aliases.count, 255))); aliases.prefix(255).forEach { w.string($0) }
        case let .registered(aliases, ttl):
            w.u16(ttl); w.u8(UInt8(min(aliases.count, 255))); aliases.prefix(255).forEach { w.string($0) }
        case let .rejected(reason, text):
            w.u16(reason); w.string(text)
        case .unregister, .progress, .ringing, .bye:
            break
        case let .call(destination, codecs):
            w.string(destination); codecList(&w, codecs)
        case let .incoming(from, to, codecs):
            w.string(from); w.string(to); codecList(&w, codecs)
        case let .answer(codecs):
            codecList(&w, codecs)
        case let .connected(codec, packetTime):
            w.u8(codec.rawValue); w.u8(packetTime)
        case let .hangup(cause):
            w.u8(cause)
        case let .dtmf(digit, duration):
            w.u8(digit); w.u16(duration)
        case let .earlyMedia(codec, packetTime):
            w.u8(codec.rawValue); w.u8(packetTime)
        case let .media(kind, packet):
            w.u8(kind.rawValue); w.raw(packet)
        case let .ping(clientTime):
            w.u64(clientTime)
        case let .pong(clientTime, serverTime, calls, capacity):
            w.u64(clientTime); w.u64(serverTime); w.u32(calls); w.u32(capacity)
        case let .error(code, text):
            w.u16(code); w.string(text)
        }
        return w.bytes
    }

    public func frame(channel: UInt16 = 0) -> Frame {
        Frame(type: type.rawValue, channel: channel, payload: payload)
    }

    /// Decoding outcome: a message, a type this side does not know (skip it),
    /// or a known type whose payload is malformed (fatal).
    public enum Decoded: Equatable, Sendable {
        case message(Message)
        case unknownType(UInt8)
        case malformed(MessageType)
    }

    public static func decode(_ frame: Frame) -> Decoded {
        guard let type = MessageType(rawValue: frame.type) else { return .unknownType(frame.type) }
        var r = WireReader(frame.payload)
        guard let message = decodeFields(type, &r) else { return .malformed(type) }
        return .message(message)
    }

    private static func decodeFields(_ type: MessageType, _ r: inout WireReader) -> Message? {
        switch type {
        case .hello:
            guard let lo = r.u16(), let hi = r.u16(), let caps = r.u32(), let client = r.string() else { return nil }
            return .hello(minVersion: lo, maxVersion: hi, capabilities: Capabilities(rawValue: caps), client: client)
        case .welcome:
            guard let version = r.u16(), let caps = r.u32(), let maxPayload = r.u32(),
                  let nonce = r.raw(TunnelSizes.nonce) else { return nil }
            return .welcome(version: version, capabilities: Capabilities(rawValue: caps), maxPayload: maxPayload, nonce: nonce)
        case .auth:
            guard let alias = r.string(), let nonce = r.raw(TunnelSizes.nonce), let mac = r.raw(TunnelSizes.mac) else { return nil }
            return .auth(alias: alias, clientNonce: nonce, mac: mac)
        case .authOK:
            guard let proof = r.raw(TunnelSizes.mac), let token = r.raw(TunnelSizes.resumeToken),
                  let grace = r.u16(), let resumed = r.u8() else { return nil }
            return .authOK(serverProof: proof, resumeToken: token, graceSeconds: grace, resumed: resumed != 0)
        case .resume:
            guard let alias = r.string(), let token = r.raw(TunnelSizes.resumeToken),
                  let nonce = r.raw(TunnelSizes.nonce), let mac = r.raw(TunnelSizes.mac) else { return nil }
            return .resume(alias: alias, token: token, clientNonce: nonce, mac: mac)
        case .authDefer:
            guard let raw = r.u8(), let method = CredentialMethod(rawValue: raw) else { return nil }
            return .authDefer(method: method)
        case .credentials:
            guard let raw = r.u8(), let method = CredentialMethod(rawValue: raw), let timeStamp = r.u32(),
                  let hash = r.raw(TunnelSizes.h235Hash) else { return nil }
            return .credentials(method: method, timeStamp: timeStamp, hash: hash)
        case .register:
            guard let aliases = stringList(&r) else { return nil }
            return .register(aliases: aliases)
        case .registered:
            guard let ttl = r.u16(), let aliases = stringList(&r) else { return nil }
            return .registered(aliases: aliases, ttlSeconds: ttl)
        case .rejected:
            guard let reason = r.u16(), let text = r.string() else { return nil }
            return .rejected(reason: reason, text: text)
        case .unregister: return .unregister
        case .progress: return .progress
        case .ringing: return .ringing
        case .bye: return .bye
        case .call:
            guard let destination = r.string(), let codecs = codecList(&r) else { return nil }
            return .call(destination: destination, codecs: codecs)
        case .incoming:
            guard let from = r.string(), let to = r.string(), let codecs = codecList(&r) else { return nil }
            return .incoming(from: from, to: to, codecs: codecs)
        case .answer:
            guard let codecs = codecList(&r) else { return nil }
            return .answer(codecs: codecs)
        case .connected:
            guard let raw = r.u8(), let codec = Codec(rawValue: raw), let ptime = r.u8() else { return nil }
            return .connected(codec: codec, packetTimeMs: ptime)
        case .hangup:
            guard let cause = r.u8() else { return nil }
            return .hangup(cause: cause)
        case .dtmf:
            guard let digit = r.u8(), let duration = r.u16() else { return nil }
            return .dtmf(digit: digit, durationMs: duration)
        case .earlyMedia:
            guard let raw = r.u8(), let codec = Codec(rawValue: raw), let ptime = r.u8() else { return nil }
            return .earlyMedia(codec: codec, packetTimeMs: ptime)
        case .media:
            guard let raw = r.u8(), let kind = MediaKind(rawValue: raw) else { return nil }
            return .media(kind: kind, packet: r.rest())
        case .ping:
            guard let t = r.u64() else { return nil }
            return .ping(clientTime: t)
        case .pong:
            guard let t = r.u64(), let s = r.u64(), let calls = r.u32(), let capacity = r.u32() else { return nil }
            return .pong(clientTime: t, serverTime: s, activeCalls: calls, capacity: capacity)
        case .error:
            guard let code = r.u16(), let text = r.string() else { return nil }
            return .error(code: code, text: text)
        }
    }
}

private func fixed(_ bytes: [UInt8], _ count: Int) -> [UInt8] {
    bytes.count == count ? bytes : Array((bytes + [UInt8](repeating: 0, count: count)).prefix(count))
}

private func codecList(_ w: inout WireWriter, _ codecs: [Codec]) {
    w.u8(UInt8(min(codecs.count, 255)))
    codecs.prefix(255).forEach { w.u8($0.rawValue) }
}

/// Codecs unknown to this side are dropped from the list (a newer peer may offer more).
private func codecList(_ r: inout WireReader) -> [Codec]? {
    guard let count = r.u8() else { return nil }
    var codecs: [Codec] = []
    for _ in 0..<count {
        guard let raw = r.u8() else { return nil }
        if let codec = Codec(rawValue: raw) { codecs.append(codec) }
    }
    return codecs
}

private func stringList(_ r: inout WireReader) -> [String]? {
    guard let count = r.u8() else { return nil }
    var items: [String] = []
    for _ in 0..<count {
        guard let item = r.string() else { return nil }
        items.append(item)
    }
    return items
}
