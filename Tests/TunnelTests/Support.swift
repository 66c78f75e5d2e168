// Real crypto (OpenSSL through IO) and a subscriber table for the session tests.
import IO
import Tunnel

struct OpenSSLCrypto: TunnelCrypto {
    func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] { TLSCrypto.hmacSHA256(key: key, message: message) }
    func randomBytes(_ count: Int) -> [UInt8] { TLSCrypto.randomBytes(count) }
}

struct Table: TunnelCredentials {
    var secrets: [String: [UInt8]] = ["alice": Array("alice-secret".utf8), "bob": Array("bob-secret".utf8)]
    var live: Set<[UInt8]> = []
    func secret(forAlias alias: String) -> [UInt8]? { secrets[alias] }
    func canResume(alias: String, token: [UInt8]) -> Bool { live.contains(token) }
}

let second: UInt64 = 1_000_000_000
let millisecond: UInt64 = 1_000_000

/// Drains what the session queued for the client, as decoded messages.
func sent(_ session: inout ServerSession, now: UInt64) -> [(UInt16, Message)] {
    var bytes: [UInt8] = []
    session.outbound.take(now: now, into: &bytes, limit: Int.max)
    var decoder = FrameDecoder(maxPayload: 1 << 20)
    decoder.feed(bytes)
    var messages: [(UInt16, Message)] = []
    while case let .success(frame)? = decoder.next() {
        if case let .message(message) = Message.decode(frame) { messages.append((frame.channel, message)) }
    }
    return messages
}

/// A session taken through HELLO and AUTH as `alias`.
func authenticatedSession(_ credentials: Table = Table(), alias: String = "alice",
                          config: ServerSessionConfig = ServerSessionConfig()) -> (ServerSession, [UInt8]) {
    let crypto = OpenSSLCrypto()
    var session = ServerSession(config: config, crypto: crypto, credentials: credentials, now: 0)
    var client = ClientHandshake(alias: alias, secret: credentials.secrets[alias] ?? [], crypto: crypto)
    session.receive(client.hello().encoded, now: 1)
    let welcome = sent(&session, now: 1)
    guard case let .send(auth)? = welcome.first.map({ client.handle($0.1) }) else { return (session, []) }
    session.receive(auth.encoded, now: 2)
    let reply = sent(&session, now: 2)
    guard case let .established(_, token, _, _)? = reply.first.map({ client.handle($0.1) }) else { return (session, []) }
    session.outputs.removeAll()
    return (session, token)
}
