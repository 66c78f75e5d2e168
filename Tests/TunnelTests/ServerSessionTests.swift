import Testing
@testable import Tunnel

@Suite struct ServerSessionTests {
    let crypto = OpenSSLCrypto()

    @Test func helloAuthEstablishesAndTheClientChecksTheServerProof() {
        let (session, token) = authenticatedSession()
        #expect(session.state == .established(alias: "alice"))
        #expect(token.count == TunnelSizes.resumeToken)
        #expect(session.resumeToken == token)
    }

    @Test func wrongSecretIsRefusedWithAnError() {
        var session = ServerSession(config: .init(), crypto: crypto, credentials: Table(), now: 0)
        var client = ClientHandshake(alias: "alice", secret: Array("guess".utf8), crypto: crypto)
        session.receive(client.hello().encoded, now: 1)
        guard case let .send(auth)? = sent(&session, now: 1).first.map({ client.handle($0.1) }) else {
            Issue.record("no AUTH")
            return
        }
        session.receive(auth.encoded, now: 2)
        let reply = sent(&session, now: 2)
        #expect(reply.first?.1 == .error(code: ErrorCode.authenticationFailed.rawValue, text: "authentication failed"))
        #expect(session.outputs == [.close(.error(.authenticationFailed))])
        #expect(session.state == .closed)
    }

    @Test func aFakeApplianceIsDetectedByTheClient() {
        // An appliance that does not know alice's secret cannot produce the proof.
        var fake = Table()
        fake.secrets["alice"] = Array("attacker".utf8)
        var session = ServerSession(config: .init(), crypto: crypto, credentials: fake, now: 0)
        var client = ClientHandshake(alias: "alice", secret: Array("alice-secret".utf8), crypto: crypto)
        session.receive(client.hello().encoded, now: 1)
        guard case let .send(auth)? = sent(&session, now: 1).first.map({ client.handle($0.1) }) else { return }
        session.receive(auth.encoded, now: 2)
        // The fake refuses (MAC mismatch) — and even a forged AUTH_OK fails the proof:
        let forged = Message.authOK(serverProof: [UInt8](repeating: 0, count: 32), resumeToken: [UInt8](repeating: 1, count: 16),
                                    graceSeconds: 20, resumed: false)
        if case .failed = client.handle(forged) {} else { Issue.record("forged AUTH_OK accepted") }
    }

    @Test func noSecretOnTheWire() {
        var session = ServerSession(config: .init(), crypto: crypto, credentials: Table(), now: 0)
        var client = ClientHandshake(alias: "alice", secret: Array("alice-secret".utf8), crypto: crypto)
        let hello = client.hello().encoded
        session.receive(hello, now: 1)
        guard case let .send(auth)? = sent(&session, now: 1).first.map({ client.handle($0.1) }) else { return }
        let wire = hello + auth.encoded
        let secret = Array("alice-secret".utf8)
        let found = (0...(wire.count - secret.count)).contains { Array(wire[$0..<($0 + secret.count)]) == secret }
        #expect(!found)
    }

    @Test func unknownTypeBeforeHelloIsAnErrorAndClose() {
        var session = ServerSession(config: .init(), crypto: crypto, credentials: Table(), now: 0)
        session.receive(Frame(type: 0xEE, payload: [1]).encoded, now: 1)
        #expect(sent(&session, now: 1).first?.1 == .error(code: ErrorCode.unexpectedMessage.rawValue,
                                                          text: "unknown frame type 0xee before authentication"))
        #expect(session.outputs == [.close(.error(.unexpectedMessage))])
    }

    @Test func unknownTypeAfterAuthenticationIsSkipped() {
        var (session, _) = authenticatedSession()
        session.receive(Frame(type: 0xEE, payload: [1, 2, 3]).encoded + Message.hangup(cause: 16).frame(channel: 3).encoded, now: 5)
        #expect(session.counters.unknownFramesSkipped == 1)
        #expect(session.outputs == [.signalling(channel: 3, .hangup(cause: 16))])
        #expect(session.isAuthenticated)
    }

    @Test func nothingIsRelayedBeforeAuthentication() {
        var session = ServerSession(config: .init(), crypto: crypto, credentials: Table(), now: 0)
        let client = ClientHandshake(alias: "alice", secret: [], crypto: crypto)
        session.receive(client.hello().encoded, now: 1)
        _ = sent(&session, now: 1)
        session.receive(Message.media(kind: .rtp, packet: [1, 2]).frame(channel: 1).encoded, now: 2)
        #expect(session.outputs == [.close(.error(.unexpectedMessage))])
    }

    @Test func mediaFastPathKeepsTheRefusals() {
        // MEDIA on channel 0 ends the session; MEDIA of an unknown kind is malformed;
        // an empty MEDIA payload too. Valid media around them is relayed unchanged.
        var (session, _) = authenticatedSession()
        session.receive(Message.media(kind: .rtcp, packet: [0x81, 200]).frame(channel: 4).encoded, now: 3)
        #expect(session.outputs == [.media(channel: 4, kind: .rtcp, packet: [0x81, 200])])
        session.outputs.removeAll()
        session.receive(Message.media(kind: .rtp, packet: [1]).frame(channel: 0).encoded, now: 4)
        #expect(session.outputs == [.close(.error(.unknownChannel))])

        var (unknownKind, _) = authenticatedSession()
        unknownKind.receive(Frame(type: MessageType.media.rawValue, channel: 1, payload: [9, 1, 2]).encoded, now: 3)
        #expect(unknownKind.outputs == [.close(.error(.malformedFrame))])

        var (empty, _) = authenticatedSession()
        empty.receive(Frame(type: MessageType.media.rawValue, channel: 1, payload: []).encoded, now: 3)
        #expect(empty.outputs == [.close(.error(.malformedFrame))])
        #expect(empty.counters.framesReceived == unknownKind.counters.framesReceived)
    }

    @Test func versionNegotiationPicksTheHighestCommonVersion() {
        var config = ServerSessionConfig()
        config.versions = 1...2
        var session = ServerSession(config: config, crypto: crypto, credentials: Table(), now: 0)
        session.receive(Message.hello(minVersion: 1, maxVersion: 7, capabilities: [.resume, Capabilities(rawValue: 1 << 30)],
                                      client: "future").frame().encoded, now: 1)
        guard case let .welcome(version, capabilities, _, nonce)? = sent(&session, now: 1).first?.1 else {
            Issue.record("no WELCOME")
            return
        }
        #expect(version == 2)
        #expect(capabilities == [.resume])
        #expect(nonce.count == 32)

        var old = ServerSession(config: .init(), crypto: crypto, credentials: Table(), now: 0)
        old.receive(Message.hello(minVersion: 5, maxVersion: 6, capabilities: [], client: "x").frame().encoded, now: 1)
        #expect(old.outputs == [.close(.error(.unsupportedVersion))])
    }

    @Test func unauthenticatedConnectionsEndAfterTheDeadlineEvenWhenTrickling() {
        var session = ServerSession(config: .init(), crypto: crypto, credentials: Table(), now: 0)
        let hello = ClientHandshake(alias: "alice", secret: [], crypto: crypto).hello().encoded
        // A slow-loris client: one byte a second never completes a frame in time.
        for (index, byte) in hello.prefix(9).enumerated() {
            session.receive([byte], now: UInt64(index) * second)
            session.tick(now: UInt64(index) * second)
        }
        #expect(session.outputs.isEmpty)
        session.tick(now: 10 * second)
        #expect(session.outputs == [.close(.error(.authenticationTimeout))])
    }

    @Test func idleAuthenticatedConnectionsEnd() {
        var config = ServerSessionConfig()
        config.idleTimeoutNanos = 30 * second
        var (session, _) = authenticatedSession(config: config)
        session.receive(Message.ping(clientTime: 1).frame().encoded, now: 20 * second)
        session.tick(now: 45 * second)
        #expect(session.outputs.isEmpty)
        session.tick(now: 51 * second)
        #expect(session.outputs == [.close(.error(.idleTimeout))])
    }

    @Test func pingIsAnsweredWithTheLoad() {
        var (session, _) = authenticatedSession()
        session.load = (activeCalls: 12, capacity: 1000)
        session.receive(Message.ping(clientTime: 777).frame().encoded, now: 3 * second)
        #expect(sent(&session, now: 3 * second).last?.1 == .pong(clientTime: 777, serverTime: 3_000_000, activeCalls: 12, capacity: 1000))
    }

    @Test func resumeWithALiveTokenContinuesTheSession() {
        let (_, token) = authenticatedSession()
        var table = Table()
        table.live = [token]
        var session = ServerSession(config: .init(), crypto: crypto, credentials: table, now: 0)
        var client = ClientHandshake(alias: "alice", secret: Array("alice-secret".utf8), crypto: crypto, resumeToken: token)
        session.receive(client.hello().encoded, now: 1)
        guard case let .send(resume)? = sent(&session, now: 1).first.map({ client.handle($0.1) }) else { return }
        session.receive(resume.encoded, now: 2)
        #expect(session.outputs == [.resumed(alias: "alice", resumeToken: token)])
        guard let reply = sent(&session, now: 2).first?.1,
              case let .established(_, newToken, _, resumed) = client.handle(reply) else {
            Issue.record("resume not established")
            return
        }
        #expect(resumed && newToken == token)
    }

    @Test func expiredResumeFallsBackToAFreshAuthentication() {
        var session = ServerSession(config: .init(), crypto: crypto, credentials: Table(), now: 0)
        var client = ClientHandshake(alias: "alice", secret: Array("alice-secret".utf8), crypto: crypto,
                                     resumeToken: [UInt8](repeating: 9, count: 16))
        session.receive(client.hello().encoded, now: 1)
        guard case let .send(resume)? = sent(&session, now: 1).first.map({ client.handle($0.1) }) else { return }
        session.receive(resume.encoded, now: 2)
        guard let refusal = sent(&session, now: 2).first?.1, case let .send(auth) = client.handle(refusal) else {
            Issue.record("no fallback AUTH")
            return
        }
        session.receive(auth.encoded, now: 3)
        guard case .authenticated(alias: "alice", _)? = session.outputs.first else {
            Issue.record("fresh authentication failed: \(session.outputs)")
            return
        }
        guard let ok = sent(&session, now: 3).first?.1, case .established(_, _, _, false) = client.handle(ok) else {
            Issue.record("no AUTH_OK")
            return
        }
    }

    @Test func mediaAndSignallingReachTheControlPlane() {
        var (session, _) = authenticatedSession()
        let stream = Message.call(destination: "+322", codecs: [.pcma]).frame(channel: 1).encoded
            + Message.media(kind: .rtp, packet: [0x80, 8, 0, 1]).frame(channel: 1).encoded
            + Message.dtmf(digit: UInt8(ascii: "#"), durationMs: 100).frame(channel: 1).encoded
        session.receive(stream, now: 4)
        #expect(session.outputs == [
            .signalling(channel: 1, .call(destination: "+322", codecs: [.pcma])),
            .media(channel: 1, kind: .rtp, packet: [0x80, 8, 0, 1]),
            .signalling(channel: 1, .dtmf(digit: UInt8(ascii: "#"), durationMs: 100)),
        ])
    }

    @Test func byeEndsWithoutResume() {
        var (session, _) = authenticatedSession()
        session.receive(Message.bye.frame().encoded, now: 4)
        #expect(session.outputs == [.close(.bye)])
    }

    @Test func garbageAfterAuthenticationIsFatal() {
        var (session, _) = authenticatedSession()
        session.receive([0xde, 0xad, 0xbe, 0xef], now: 4)
        #expect(session.outputs == [.close(.error(.unsupportedVersion))])
    }
}

@Suite struct OutboundQueueTests {
    @Test func staleMediaIsDroppedAndSignallingIsKept() {
        var queue = OutboundQueue(maxBytes: 1 << 20, maxMediaAgeNanos: 60 * millisecond)
        let media = Message.media(kind: .rtp, packet: [UInt8](repeating: 0, count: 172)).frame(channel: 1)
        for index in 0..<10 { queue.pushMedia(media, now: UInt64(index) * 20 * millisecond) }
        let accepted = queue.pushSignalling(Message.hangup(cause: 16).frame(channel: 1), now: 0)
        #expect(accepted)
        var out: [UInt8] = []
        queue.take(now: 250 * millisecond, into: &out, limit: Int.max)  // stalled 250 ms
        // Frames queued at 0..180 ms are older than 60 ms at 250 ms; only 200 ms-on is fresh (none queued after 180).
        #expect(queue.counters.mediaDroppedStale == 10)
        #expect(queue.counters.signallingSent == 1)
        #expect(out == Message.hangup(cause: 16).frame(channel: 1).encoded)
    }

    @Test func freshMediaIsSentInOrder() {
        var queue = OutboundQueue(maxBytes: 1 << 20, maxMediaAgeNanos: 60 * millisecond)
        for index in 0..<3 {
            queue.pushMedia(Message.media(kind: .rtp, packet: [UInt8(index)]).frame(channel: 1), now: 100 * millisecond)
        }
        var out: [UInt8] = []
        queue.take(now: 150 * millisecond, into: &out, limit: Int.max)
        #expect(queue.counters.mediaSent == 3)
        #expect(out.count == 3 * (Frame.headerSize + 2))
        #expect(queue.queuedBytes == 0)
    }

    @Test func partialTakesCompactionAndExpiryKeepOrderAndBytes() {
        // A model run: frames of varied sizes pushed and taken in small bites, the
        // queue compacted and expired on the way; what comes out must be exactly the
        // frames not dropped, whole and in order.
        var queue = OutboundQueue(maxBytes: 1 << 20, maxMediaAgeNanos: 60 * millisecond)
        var expected: [UInt8] = []
        var out: [UInt8] = []
        var now: UInt64 = 0
        var dropped = 0
        for round in 0..<300 {
            now += 5 * millisecond
            let packet = [UInt8](repeating: UInt8(truncatingIfNeeded: round), count: 20 + round % 50)
            if round % 7 == 0 {
                let frame = Message.hangup(cause: UInt8(round % 100)).frame(channel: UInt16(round))
                let accepted = queue.pushSignalling(frame, now: now)
                #expect(accepted)
                expected += frame.encoded
            } else {
                packet.withUnsafeBytes { queue.pushMedia(channel: 3, kind: .rtp, packet: $0, now: now) }
                if round % 40 >= 30 {
                    // Stalled for this stretch: these go stale before the next take.
                    dropped += 1
                } else {
                    expected += Message.media(kind: .rtp, packet: packet).frame(channel: 3).encoded
                }
            }
            if round % 40 == 39 {
                now += 100 * millisecond  // the stall: expiry drops the stalled media, keeps the signalling
                queue.expire(now: now)
            } else if round % 40 < 30 {
                var bite: [UInt8] = []  // small bites, and the backlog drained just before each stall
                queue.take(now: now, into: &bite, limit: round % 40 == 29 ? Int.max : 60)
                out += bite
            }
        }
        var rest: [UInt8] = []
        queue.take(now: now, into: &rest, limit: Int.max)
        out += rest
        #expect(out == expected)
        #expect(queue.counters.mediaDroppedStale == UInt64(dropped))
        #expect(queue.isEmpty)
        #expect(queue.queuedBytes == 0)
    }

    @Test func memoryIsBoundedAndAFullQueueRefusesSignalling() {
        var queue = OutboundQueue(maxBytes: 1000, maxMediaAgeNanos: 60 * millisecond)
        let media = Message.media(kind: .rtp, packet: [UInt8](repeating: 0, count: 172)).frame(channel: 1)
        for _ in 0..<10 { queue.pushMedia(media, now: 0) }
        #expect(queue.queuedBytes <= 1000)
        #expect(queue.counters.mediaDroppedFull == 5)
        let accepted = queue.pushSignalling(Message.error(code: 1, text: String(repeating: "x", count: 200)).frame(), now: 0)
        #expect(!accepted)
    }

    @Test func takeRespectsTheLimitAtFrameBoundaries() {
        var queue = OutboundQueue()
        for _ in 0..<4 { _ = queue.pushSignalling(Message.ping(clientTime: 1).frame(), now: 0) }
        var out: [UInt8] = []
        queue.take(now: 0, into: &out, limit: 40)
        #expect(out.count == 32)  // two 16-byte frames, the third would cross 40
        #expect(!queue.isEmpty)
    }
}

@Suite struct EndOfInputTests {
    @Test func aStreamEndingInsideAFrameGetsAnError() {
        var session = ServerSession(config: .init(), crypto: OpenSSLCrypto(), credentials: Table(), now: 0)
        session.receive(Array(Message.hello(minVersion: 1, maxVersion: 1, capabilities: [], client: "x").frame().encoded.prefix(10)), now: 1)
        session.endOfInput(now: 2)
        #expect(session.outputs == [.close(.error(.malformedFrame))])
    }

    @Test func aCleanEndSaysNothing() {
        var session = ServerSession(config: .init(), crypto: OpenSSLCrypto(), credentials: Table(), now: 0)
        session.endOfInput(now: 2)
        #expect(session.outputs.isEmpty)
        #expect(session.outbound.isEmpty)
    }
}
