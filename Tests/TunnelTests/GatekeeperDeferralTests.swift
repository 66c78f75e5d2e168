// Aliases the appliance does not hold are left to the operator's gatekeeper
// (docs/tunnel-protocol.md §4): AUTH_DEFER, CREDENTIALS + REGISTER, then AUTH_OK and
// REGISTERED when the gatekeeper accepted, or REJECTED and ERROR 200 when it did not.
import Testing
@testable import Tunnel

struct GatekeeperTable: TunnelCredentials {
    var table = Table()
    func secret(forAlias alias: String) -> [UInt8]? { table.secret(forAlias: alias) }
    func canResume(alias: String, token: [UInt8]) -> Bool { false }
    func verifiedByGatekeeper(alias: String) -> Bool { true }
}

@Suite struct GatekeeperDeferralTests {
    let crypto = OpenSSLCrypto()
    let carolSecret = Array("carol-secret".utf8)

    /// A session and a client taken through HELLO and AUTH as carol, who is not in the table.
    func deferred(accepting: Bool = true) -> (ServerSession, ClientHandshake, ClientHandshake.Step?) {
        var session = ServerSession(config: .init(), crypto: crypto, credentials: GatekeeperTable(), now: 0)
        var client = ClientHandshake(alias: "carol", secret: carolSecret, crypto: crypto)
        client.acceptsGatekeeperVerification = accepting
        session.receive(client.hello().encoded, now: 1)
        guard case let .send(auth)? = sent(&session, now: 1).first.map({ client.handle($0.1) }) else { return (session, client, nil) }
        session.receive(auth.encoded, now: 2)
        let reply = sent(&session, now: 2)
        #expect(reply.map(\.1) == [.authDefer(method: .h235PasswordMD5)])
        let step = reply.first.map { client.handle($0.1) }
        return (session, client, step)
    }

    @Test func newMessagesRoundTrip() {
        for message: Message in [.authDefer(method: .h235PasswordMD5),
                                 .credentials(method: .h235PasswordMD5, timeStamp: 1_700_000_000, hash: Array(0..<16))] {
            #expect(Message.decode(message.frame()) == .message(message))
        }
        // An unknown method or a short hash is malformed, not guessed.
        #expect(Message.decode(Frame(type: MessageType.authDefer.rawValue, payload: [9])) == .malformed(.authDefer))
        #expect(Message.decode(Frame(type: MessageType.credentials.rawValue, payload: [1, 0, 0, 0, 1] + Array(0..<15)))
                == .malformed(.credentials))
    }

    @Test func acceptedByTheGatekeeperGivesAuthOKThenRegistered() {
        var (session, client, step) = deferred()
        #expect(step == .deferred(.h235PasswordMD5))
        guard case let .deferredToGatekeeper(alias, token)? = session.outputs.first else {
            Issue.record("no deferral output: \(session.outputs)")
            return
        }
        #expect(alias == "carol" && token.count == TunnelSizes.resumeToken)
        #expect(session.state == .awaitingGatekeeper(alias: "carol"))
        session.outputs.removeAll()
        // CREDENTIALS and REGISTER reach the backend; nothing else is let through yet.
        let credentials = Message.credentials(method: .h235PasswordMD5, timeStamp: 5, hash: Array(repeating: 7, count: 16))
        session.receive(credentials.frame().encoded + Message.register(aliases: ["carol"]).frame().encoded, now: 3)
        #expect(session.outputs == [.signalling(channel: 0, credentials), .signalling(channel: 0, .register(aliases: ["carol"]))])
        // Signalling for the client other than the verdict is held back.
        #expect(session.send(.incoming(from: "x", to: "carol", codecs: [.pcma]), channel: 2, now: 3) == false)
        #expect(sent(&session, now: 3).isEmpty)
        // The gatekeeper's RCF: AUTH_OK (no proof, not resumable) then REGISTERED.
        session.send(.registered(aliases: ["carol"], ttlSeconds: 60), now: 4)
        let out = sent(&session, now: 4).map(\.1)
        #expect(out == [.authOK(serverProof: Array(repeating: 0, count: 32), resumeToken: token, graceSeconds: 0, resumed: false),
                        .registered(aliases: ["carol"], ttlSeconds: 60)])
        #expect(session.state == .established(alias: "carol"))
        #expect(client.handle(out[0]) == .established(version: 1, resumeToken: token, graceSeconds: 0, resumed: false))
    }

    @Test func refusedByTheGatekeeperGivesRejectedAndError200() {
        var (session, client, _) = deferred()
        session.outputs.removeAll()
        session.send(.rejected(reason: 11, text: "the gatekeeper refused the credentials (securityDenial)"), now: 4)
        let out = sent(&session, now: 4).map(\.1)
        #expect(out.first == .rejected(reason: 11, text: "the gatekeeper refused the credentials (securityDenial)"))
        #expect(out.last == .error(code: ErrorCode.authenticationFailed.rawValue,
                                   text: "authentication failed: the gatekeeper refused the credentials (securityDenial)"))
        #expect(session.outputs == [.close(.error(.authenticationFailed))])
        guard case let .failed(why) = client.handle(out[0]) else {
            Issue.record("the client took the rejection for success")
            return
        }
        #expect(why.contains("securityDenial"))
    }

    @Test func callsBeforeTheVerdictEndTheSession() {
        var (session, _, _) = deferred()
        session.outputs.removeAll()
        session.receive(Message.call(destination: "123", codecs: [.pcma]).frame(channel: 1).encoded, now: 3)
        #expect(session.outputs == [.close(.error(.unexpectedMessage))])
    }

    @Test func credentialsBelongOnChannelZero() {
        // Found by FuzzTunnelFrame: CREDENTIALS on a call channel before the verdict.
        var (session, _, _) = deferred()
        session.outputs.removeAll()
        let credentials = Message.credentials(method: .h235PasswordMD5, timeStamp: 5, hash: Array(repeating: 7, count: 16))
        session.receive(credentials.frame(channel: 2).encoded, now: 3)
        #expect(session.outputs == [.close(.error(.unexpectedMessage))])
    }

    @Test func theVerdictMustComeWithinTheAuthenticationDeadline() {
        var (session, _, _) = deferred()
        session.outputs.removeAll()
        session.tick(now: 11 * second)
        #expect(session.outputs == [.close(.error(.authenticationTimeout))])
    }

    @Test func aClientNotConfiguredForItRefusesTheDeferral() {
        let (_, _, step) = deferred(accepting: false)
        guard case let .failed(why)? = step else {
            Issue.record("deferral accepted: \(String(describing: step))")
            return
        }
        #expect(why.contains("defers to the gatekeeper"))
    }

    @Test func aKnownAliasStillNeedsTheRightMAC() {
        // The table wins: alice is checked by the appliance even when deferral is on.
        var session = ServerSession(config: .init(), crypto: crypto, credentials: GatekeeperTable(), now: 0)
        var client = ClientHandshake(alias: "alice", secret: Array("wrong-secret".utf8), crypto: crypto)
        session.receive(client.hello().encoded, now: 1)
        guard case let .send(auth)? = sent(&session, now: 1).first.map({ client.handle($0.1) }) else { return }
        session.receive(auth.encoded, now: 2)
        #expect(sent(&session, now: 2).first?.1 == .error(code: ErrorCode.authenticationFailed.rawValue, text: "authentication failed"))
    }
}
