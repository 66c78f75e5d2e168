import Testing
@testable import Tunnel

@Suite struct FrameTests {
    @Test func everyMessageRoundTrips() {
        let nonce = [UInt8](repeating: 7, count: 32)
        let messages: [Message] = [
            .hello(minVersion: 1, maxVersion: 3, capabilities: [.resume, .dtmf], client: "phone 1.0"),
            .welcome(version: 1, capabilities: .all, maxPayload: 16384, nonce: nonce),
            .auth(alias: "alice", clientNonce: nonce, mac: nonce),
            .authOK(serverProof: nonce, resumeToken: Array(nonce.prefix(16)), graceSeconds: 20, resumed: true),
            .resume(alias: "alice", token: Array(nonce.prefix(16)), clientNonce: nonce, mac: nonce),
            .register(aliases: ["alice", "+3222"]), .registered(aliases: ["alice"], ttlSeconds: 300),
            .rejected(reason: 3, text: "duplicate alias"), .unregister,
            .call(destination: "+3221234567", codecs: [.pcma, .pcmu]),
            .incoming(from: "+32", to: "alice", codecs: [.g729]), .progress, .ringing,
            .answer(codecs: [.pcmu]), .connected(codec: .pcma, packetTimeMs: 20), .hangup(cause: 16),
            .dtmf(digit: UInt8(ascii: "5"), durationMs: 160), .media(kind: .rtcp, packet: [0x80, 0xc8, 0, 1]),
            .ping(clientTime: 123_456_789), .pong(clientTime: 1, serverTime: 2, activeCalls: 3, capacity: 1000),
            .error(code: 102, text: "too big"), .bye,
        ]
        for message in messages {
            let frame = message.frame(channel: 5)
            var decoder = FrameDecoder()
            decoder.feed(frame.encoded)
            guard case let .success(decoded)? = decoder.next() else {
                Issue.record("no frame for \(message.type)")
                continue
            }
            #expect(decoded.channel == 5)
            #expect(Message.decode(decoded) == .message(message))
        }
    }

    @Test func headerLayoutMatchesTheDocument() {
        let bytes = Message.hangup(cause: 16).frame(channel: 0x0102).encoded
        #expect(bytes == [1, 0x26, 0x01, 0x02, 0, 0, 0, 1, 16])
    }

    @Test func framesSplitAnywhereAreReassembled() {
        var stream: [UInt8] = []
        for index in 0..<20 {
            Message.media(kind: .rtp, packet: [UInt8](repeating: UInt8(index), count: 172)).frame(channel: 1).encode(into: &stream)
        }
        var decoder = FrameDecoder()
        var frames: [Frame] = []
        var offset = 0
        var chunk = 1
        while offset < stream.count {
            let end = min(stream.count, offset + chunk)
            decoder.feed(stream[offset..<end])
            while case let .success(frame)? = decoder.next() { frames.append(frame) }
            offset = end
            chunk = chunk % 13 + 1
        }
        #expect(frames.count == 20)
        #expect(frames.last?.payload.count == 173)
        #expect(decoder.bufferedCount == 0)
    }

    @Test func viewsSeeTheSameFramesAsCopies() {
        var stream: [UInt8] = []
        Message.media(kind: .rtp, packet: [0x80, 0, 0, 7]).frame(channel: 9).encode(into: &stream)
        Message.hangup(cause: 16).frame(channel: 9).encode(into: &stream)
        Frame(type: 0x77, channel: 2).encode(into: &stream)
        var copies = FrameDecoder()
        var views = FrameDecoder()
        copies.feed(stream)
        views.feed(stream)
        var expected: [Frame] = []
        while case let .success(frame)? = copies.next() { expected.append(frame) }
        var seen: [Frame] = []
        while case let .success(frame)? = views.nextView({ Frame(type: $0, channel: $1, payload: Array($2)) }) { seen.append(frame) }
        #expect(expected.count == 3)
        #expect(seen == expected)
        #expect(views.bufferedCount == 0)
        views.feed([0x16, 3, 1])  // a TLS record on the plain port
        guard case .failure(.unsupportedFramingVersion(0x16))? = views.nextView({ _, _, _ in 0 }) else {
            Issue.record("a foreign first byte must fail the view too")
            return
        }
    }

    @Test func oversizeFrameFailsBeforeItsPayloadArrives() {
        var decoder = FrameDecoder(maxPayload: 1000)
        decoder.feed([1, 0x30, 0, 1, 0, 0, 0x03, 0xE9])  // 1001 bytes announced
        #expect(decoder.next() == .failure(.oversize(announced: 1001, limit: 1000)))
        decoder.feed([UInt8](repeating: 0, count: 4000))
        #expect(decoder.bufferedCount == 0)  // nothing buffered after the failure
    }

    @Test func hugeAnnouncedLengthDoesNotAllocate() {
        var decoder = FrameDecoder(maxPayload: 16384)
        decoder.feed([1, 0x30, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(decoder.next() == .failure(.oversize(announced: 0xFFFF_FFFF, limit: 16384)))
    }

    @Test func foreignProtocolsAreRecognisedFromTheFirstByte() {
        var http = FrameDecoder()
        http.feed(Array("GET / HTTP/1.1\r\n".utf8))
        #expect(http.next() == .failure(.unsupportedFramingVersion(UInt8(ascii: "G"))))
        var tls = FrameDecoder()
        tls.feed([0x16])  // a TLS ClientHello on the plain port
        #expect(tls.next() == .failure(.unsupportedFramingVersion(0x16)))
    }

    @Test func truncatedFrameWaitsForMore() {
        var decoder = FrameDecoder()
        let bytes = Message.ping(clientTime: 42).frame().encoded
        decoder.feed(bytes.dropLast())
        #expect(decoder.next() == nil)
        decoder.feed(bytes.suffix(1))
        #expect(decoder.next() == .success(Message.ping(clientTime: 42).frame()))
    }

    @Test func unknownTypesAndShortPayloadsAreDistinguished() {
        #expect(Message.decode(Frame(type: 0xEE, payload: [1, 2, 3])) == .unknownType(0xEE))
        #expect(Message.decode(Frame(type: MessageType.ping.rawValue, payload: [1, 2, 3])) == .malformed(.ping))
        #expect(Message.decode(Frame(type: MessageType.connected.rawValue, payload: [99, 20])) == .malformed(.connected))
    }

    @Test func newerPeersMayAppendFields() {
        var payload = Message.hangup(cause: 31).payload
        payload += [9, 9, 9]
        #expect(Message.decode(Frame(type: MessageType.hangup.rawValue, payload: payload)) == .message(.hangup(cause: 31)))
    }

    @Test func invalidUTF8IsMalformedNotATrap() {
        let frame = Frame(type: MessageType.error.rawValue, payload: [0, 100, 2, 0xC3, 0x28])
        #expect(Message.decode(frame) == .malformed(.error))
    }

    @Test func longStringsAreCutAtACharacterBoundary() {
        for filler in ["a", "é", "€", "😀"] {
            for prefix in 0..<4 {
                let text = String(repeating: "x", count: prefix) + String(repeating: filler, count: 300)
                let frame = Message.error(code: 1, text: text).frame()
                guard case let .message(.error(_, decoded)) = Message.decode(frame) else {
                    Issue.record("cut produced invalid UTF-8 for \(filler) prefix \(prefix)")
                    continue
                }
                #expect(decoded.utf8.count <= 255 && decoded.utf8.count > 251)
                #expect(text.hasPrefix(decoded))
            }
        }
    }
}
