// Two calls wired back to back: every Q.931 and H.245 message crosses as bytes (TPKT,
// Q.931, PER), so what one side sends is what a real peer would have to parse.
import H323
import Testing
@testable import Endpoint

@Suite struct CallTests {
    static let callerRTP = EndpointAddress(parsing: "192.0.2.10:30000")!
    static let calleeRTP = EndpointAddress(parsing: "198.51.100.5:40000")!
    static let guid = (0..<16).map { UInt8($0) }

    struct Pair {
        var caller: H323Call
        var callee: H323Call?
        /// What each side's machine did (its actions).
        var callerSeen: [CallAction] = []
        var calleeSeen: [CallAction] = []
        var calleeOptions: CallOptions
        var calleeCodecs: [AudioCodec]
        var separateUp = false

        static func wire(_ m: Q931Message) throws -> Q931Message {
            var r = TPKTReassembler()
            let packets = try r.append(try m.framed())
            return try Q931Message(decoding: packets[0])
        }

        static func wire(_ m: MultimediaSystemControlMessage) throws -> MultimediaSystemControlMessage {
            try MultimediaSystemControlMessage(decoding: m.encoded())
        }

        /// Delivers actions to the other side until nothing moves.
        mutating func run(fromCaller: [CallAction], fromCallee: [CallAction] = [], now: UInt64 = 0) throws {
            var toCallee = fromCaller
            var toCaller = fromCallee
            var rounds = 0
            while !(toCallee.isEmpty && toCaller.isEmpty) {
                rounds += 1
                #expect(rounds < 50)
                if rounds >= 50 { return }
                callerSeen += toCallee
                calleeSeen += toCaller
                var nextCaller: [CallAction] = []
                var nextCallee: [CallAction] = []
                for action in toCallee {
                    switch action {
                    case .sendSignalling(let m):
                        let m = try Self.wire(m)
                        if callee == nil {
                            callee = try H323Call(incoming: m, localRTP: CallTests.calleeRTP, acceptable: calleeCodecs, options: calleeOptions)
                        } else {
                            nextCaller += callee!.handle(.signalling(m), now: now)
                        }
                    case .sendH245(let m):
                        nextCaller += callee!.handle(.h245(try Self.wire(m)), now: now)
                    case .connectH245:
                        separateUp = true
                        nextCallee += caller.handle(.h245Connected, now: now)
                        nextCaller += callee!.handle(.h245Connected, now: now)
                    default: break
                    }
                }
                for action in toCaller {
                    switch action {
                    case .sendSignalling(let m): nextCallee += caller.handle(.signalling(try Self.wire(m)), now: now)
                    case .sendH245(let m): nextCallee += caller.handle(.h245(try Self.wire(m)), now: now)
                    case .connectH245:
                        separateUp = true
                        nextCaller += callee!.handle(.h245Connected, now: now)
                        nextCallee += caller.handle(.h245Connected, now: now)
                    default: break
                    }
                }
                toCallee = nextCallee
                toCaller = nextCaller
            }
        }
    }

    static func pair(callerOptions: CallOptions, calleeOptions: CallOptions, callerCodecs: [AudioCodec] = [.pcma, .pcmu],
                     calleeCodecs: [AudioCodec] = [.pcmu, .pcma]) -> Pair {
        let info = OutgoingCallInfo(callReference: 77, callIdentifier: guid, conferenceID: guid, source: [.h323ID("alice"), .dialledDigits("1001")],
                                    destination: [.dialledDigits("0123456")])
        return Pair(caller: H323Call(outgoing: info, codecs: callerCodecs, localRTP: callerRTP, options: callerOptions),
                    calleeOptions: calleeOptions, calleeCodecs: calleeCodecs)
    }

    static func transmits(_ seen: [CallAction]) -> [MediaChannel] {
        seen.compactMap { if case .transmit(let c) = $0 { return c }; return nil }
    }

    static func connectAndCheck(_ p: inout Pair, answer: [AudioCodec], expect codec: AudioCodec) throws {
        try p.run(fromCaller: p.caller.handle(.place, now: 0))
        let callee = try #require(p.callee)
        #expect(callee.state == .callPresent)
        try p.run(fromCaller: [], fromCallee: p.callee!.handle(.alert, now: 1))
        #expect(p.caller.state == .callDelivered)
        #expect(p.callerSeen.contains(.ringing))
        try p.run(fromCaller: [], fromCallee: p.callee!.handle(.answer(codecs: answer), now: 2))
        #expect(p.caller.state == .active)
        // Each side transmits to the other's RTP address, with one codec both ways.
        let callerTx = try #require(transmits(p.callerSeen).last)
        let calleeTx = try #require(transmits(p.calleeSeen).last)
        #expect(callerTx.remoteRTP == calleeRTP && callerTx.codec == codec)
        #expect(calleeTx.remoteRTP == callerRTP && calleeTx.codec == codec)
    }

    @Test func fastStartOfferAndAnswer() throws {
        var p = Self.pair(callerOptions: CallOptions(), calleeOptions: CallOptions())
        let info = try H323Call.describe(setup: try Pair.wire({
            var c = p.caller
            guard case .sendSignalling(let m)? = c.handle(.place, now: 0).first else { fatalError() }
            return m
        }()))
        #expect(info.offeredCodecs == [.pcma, .pcmu])
        #expect(info.calledNumber == "0123456" && IncomingCallInfo.text(info.source) == "alice")
        try Self.connectAndCheck(&p, answer: [.pcmu], expect: .pcmu)
        #expect(!p.separateUp)
    }

    @Test func earlyMediaFlowsBeforeConnect() throws {
        // The callee answers fast start in Progress (progress indicator 8): both sides
        // transmit before Connect, and Connect repeats no fast start.
        var p = Self.pair(callerOptions: CallOptions(), calleeOptions: CallOptions())
        try p.run(fromCaller: p.caller.handle(.place, now: 0))
        try p.run(fromCaller: [], fromCallee: p.callee!.handle(.alert, now: 1))
        let progress = p.callee!.handle(.earlyMedia(codecs: [.pcmu]), now: 2)
        guard case .sendSignalling(let m)? = progress.first(where: { if case .sendSignalling = $0 { true } else { false } }) else {
            Issue.record("no Progress")
            return
        }
        let wired = try Pair.wire(m)
        #expect(wired.messageType == .progress)
        #expect(try wired.progressIndicator()?.description == 8)
        guard case .progress(let uuie) = try wired.userInformation().h323UuPdu.h323MessageBody else {
            Issue.record("Progress without its UUIE")
            return
        }
        #expect(uuie.fastStart?.isEmpty == false)
        try p.run(fromCaller: [], fromCallee: progress)
        #expect(p.callerSeen.contains(.progress))
        #expect(p.caller.state == .callDelivered)
        let earlyTx = try #require(Self.transmits(p.callerSeen).last)
        #expect(earlyTx.remoteRTP == Self.calleeRTP && earlyTx.codec == .pcmu)
        #expect(Self.transmits(p.calleeSeen).last?.remoteRTP == Self.callerRTP)
        #expect(!p.callerSeen.contains(.connected))
        let before = p.callerSeen.count
        try p.run(fromCaller: [], fromCallee: p.callee!.handle(.answer(codecs: [.pcmu]), now: 3))
        #expect(p.caller.state == .active && p.callerSeen.contains(.connected))
        #expect(Self.transmits(Array(p.callerSeen[before...])).isEmpty)  // media already set up
        #expect(!p.separateUp)
    }

    @Test func tunnelledH245WithoutFastStart() throws {
        var p = Self.pair(callerOptions: CallOptions(fastStart: false), calleeOptions: CallOptions(fastStart: false))
        try Self.connectAndCheck(&p, answer: [.pcma], expect: .pcma)
        #expect(!p.separateUp)
        // DTMF both ways, alphanumeric and signal.
        try p.run(fromCaller: p.caller.handle(.dtmf("5", durationMs: 100), now: 3))
        #expect(p.calleeSeen.contains(.dtmf("5", durationMs: 100)))
    }

    @Test func separateH245Connection() throws {
        let listen = EndpointAddress(parsing: "198.51.100.5:41000")!
        var p = Self.pair(callerOptions: CallOptions(fastStart: false, tunnelling: false),
                          calleeOptions: CallOptions(fastStart: false, tunnelling: false, h245Listen: listen))
        try Self.connectAndCheck(&p, answer: [.pcmu, .pcma], expect: .pcmu)
        #expect(p.separateUp)
        #expect(p.callerSeen.contains(.connectH245(listen)))
    }

    @Test func dtmfAllDigitsAndHangupCause() throws {
        var p = Self.pair(callerOptions: CallOptions(), calleeOptions: CallOptions(dtmfAsSignal: true))
        try Self.connectAndCheck(&p, answer: [.pcma], expect: .pcma)
        let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"]
        for d in digits {
            try p.run(fromCaller: p.caller.handle(.dtmf(d, durationMs: 120), now: 5))
            try p.run(fromCaller: [], fromCallee: p.callee!.handle(.dtmf(d, durationMs: 80), now: 5))
        }
        // What the callee received came from the caller (alphanumeric) and the other way (signal).
        let atCallee = p.calleeSeen.compactMap { if case .dtmf(let c, _) = $0 { return c }; return nil }
        let atCaller = p.callerSeen.compactMap { if case .dtmf(let c, _) = $0 { return c }; return nil }
        #expect(atCallee == digits)
        #expect(atCaller == digits)
        #expect(p.callerSeen.contains(.dtmf("#", durationMs: 80)))
        // The callee hangs up busy-here; the caller sees cause 17 from the wire.
        try p.run(fromCaller: [], fromCallee: p.callee!.handle(.hangup(cause: Q850.userBusy), now: 6))
        #expect(p.callerSeen.contains(.released(cause: Q850.userBusy, byRemote: true)))
        #expect(p.caller.isReleased && p.callee!.isReleased)
    }

    @Test func timersAndStatusEnquiry() throws {
        var p = Self.pair(callerOptions: CallOptions(), calleeOptions: CallOptions())
        _ = p.caller.handle(.place, now: 0)
        #expect(p.caller.nextDeadline == 4_000)
        #expect(p.caller.handle(.tick, now: 3_999).isEmpty)
        let out = p.caller.handle(.tick, now: 4_000)
        #expect(out.contains(.released(cause: Q850.noUserResponding, byRemote: false)))
        // A rejected Setup carries cause and reason.
        var q = Self.pair(callerOptions: CallOptions(), calleeOptions: CallOptions())
        guard case .sendSignalling(let setup)? = q.caller.handle(.place, now: 0).first else { Issue.record("no setup"); return }
        let reject = try Pair.wire(H323Call.rejectSetup(setup, cause: Q850.unallocatedNumber))
        let end = q.caller.handle(.signalling(reject), now: 10)
        #expect(end == [.released(cause: Q850.unallocatedNumber, byRemote: true)])
        // StatusEnquiry is answered with Status carrying the call state.
        var r = Self.pair(callerOptions: CallOptions(), calleeOptions: CallOptions())
        try r.run(fromCaller: r.caller.handle(.place, now: 0))
        var enquiry = Q931Message(callReference: Q931CallReference(value: 77, fromDestination: true), messageType: .statusEnquiry)
        try enquiry.setUserInformation(H323UserInformation(h323UuPdu: H323UUPDU(h323MessageBody: .statusInquiry(
            StatusInquiryUUIE(protocolIdentifier: EndpointIdentity.h2250Protocol, callIdentifier: CallIdentifier(guid: Self.guid))))))
        guard case .sendSignalling(let status)? = r.caller.handle(.signalling(enquiry), now: 1).first else { Issue.record("no status"); return }
        #expect(status.messageType == .status && status.callState == H323Call.State.callInitiated.rawValue)
    }
}
