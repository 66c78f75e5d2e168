// One H.323 call, outgoing or incoming, sans-I/O: Q.931/H.225.0 call signalling
// (Setup, CallProceeding, Alerting, Progress, Connect, ReleaseComplete, Facility,
// Status/StatusEnquiry) with the H.225.0 timers, and its H.245 by fast start, tunnelled
// in H.225.0, or on a separate connection the driver opens when told to.
import H323
import PER

public struct CallOptions: Sendable, Equatable {
    /// Offer fast start (caller) / accept it (callee).
    public var fastStart: Bool
    /// Offer H.245 tunnelling in H.225.0.
    public var tunnelling: Bool
    /// A listening address for a separate H.245 connection we advertise (the driver listens).
    public var h245Listen: EndpointAddress?
    /// Send DTMF as H.245 signal instead of alphanumeric.
    public var dtmfAsSignal: Bool
    /// H.245 terminal type: 50 terminal, 60 gateway.
    public var terminalType: Int

    public init(fastStart: Bool = true, tunnelling: Bool = true, h245Listen: EndpointAddress? = nil,
                dtmfAsSignal: Bool = false, terminalType: Int = 50) {
        self.fastStart = fastStart
        self.tunnelling = tunnelling
        self.h245Listen = h245Listen
        self.dtmfAsSignal = dtmfAsSignal
        self.terminalType = terminalType
    }
}

/// H.225.0 / Q.931 timers (milliseconds).
public struct CallTimers: Sendable, Equatable {
    /// Setup sent, nothing back.
    public var t303: UInt64 = 4_000
    /// CallProceeding received, no Alerting/Connect.
    public var t310: UInt64 = 10_000
    /// Alerting received, no Connect.
    public var t301: UInt64 = 180_000
    public init() {}
}

/// What an incoming Setup asked for.
public struct IncomingCallInfo: Sendable, Equatable {
    public var callReference: UInt16
    public var callIdentifier: [UInt8]
    public var conferenceID: [UInt8]
    public var source: [AliasAddress]
    public var destination: [AliasAddress]
    public var calledNumber: String?
    public var callingNumber: String?
    public var display: String?
    /// Codecs offered by fast start (empty without fast start).
    public var offeredCodecs: [AudioCodec]
    public var sourceSignalAddress: EndpointAddress?

    /// The first alias as text: digits, h323-ID, URL or e-mail.
    public static func text(_ aliases: [AliasAddress]) -> String? {
        for alias in aliases {
            switch alias {
            case .dialledDigits(let s), .h323ID(let s), .urlID(let s), .emailID(let s): return s
            default: continue
            }
        }
        return nil
    }
}

public struct OutgoingCallInfo: Sendable, Equatable {
    public var callReference: UInt16
    public var callIdentifier: [UInt8]
    public var conferenceID: [UInt8]
    public var source: [AliasAddress]
    public var destination: [AliasAddress]
    public var destinationAddress: EndpointAddress?
    public var display: String?

    public init(callReference: UInt16, callIdentifier: [UInt8], conferenceID: [UInt8], source: [AliasAddress],
                destination: [AliasAddress], destinationAddress: EndpointAddress? = nil, display: String? = nil) {
        self.callReference = callReference
        self.callIdentifier = callIdentifier
        self.conferenceID = conferenceID
        self.source = source
        self.destination = destination
        self.destinationAddress = destinationAddress
        self.display = display
    }
}

public enum CallEvent: Sendable {
    /// Outgoing: send Setup.
    case place
    /// A Q.931 message on the call-signalling connection.
    case signalling(Q931Message)
    /// An H.245 message on the separate H.245 connection.
    case h245(MultimediaSystemControlMessage)
    /// The separate H.245 connection is up (we connected or accepted).
    case h245Connected
    /// Incoming: CallProceeding / Alerting / Connect with the codecs the client accepts.
    case proceed
    case alert
    /// Incoming, before answering: Progress with the fast start answer and a progress
    /// indicator (in-band information available), so that ringback or announcements flow
    /// before Connect (early media). Needs a fast start offer in the Setup.
    case earlyMedia(codecs: [AudioCodec])
    case answer(codecs: [AudioCodec])
    case hangup(cause: UInt8)
    case dtmf(Character, durationMs: Int)
    case roundTripDelay
    /// The call-signalling connection closed under us.
    case transportClosed
    case tick
}

public enum CallAction: Sendable, Equatable {
    case sendSignalling(Q931Message)
    case sendH245(MultimediaSystemControlMessage)
    /// Open a TCP connection for H.245 to this address, then feed `.h245Connected`.
    case connectH245(EndpointAddress)
    case proceeding
    case ringing
    /// In-band information (early media) from the callee.
    case progress
    case connected
    /// Transmit our audio there with this codec.
    case transmit(MediaChannel)
    /// The peer transmits to us with this codec.
    case receive(AudioCodec)
    case dtmf(Character, durationMs: Int)
    case roundTripDelay(ms: UInt64)
    /// The call is over: close the connections (H.245 first).
    case released(cause: UInt8, byRemote: Bool)
}

public struct H323Call: Sendable {
    public enum Role: Sendable { case outgoing, incoming }
    /// Q.931 call states (4.5.7) that H.225.0 uses.
    public enum State: UInt8, Sendable {
        case null = 0, callInitiated = 1, outgoingCallProceeding = 3, callDelivered = 4, callPresent = 6
        case callReceived = 7, incomingCallProceeding = 9, active = 10, released = 19
    }

    public let role: Role
    public let callReference: UInt16
    public let callIdentifier: [UInt8]
    public let conferenceID: [UInt8]
    public let options: CallOptions
    public let timers: CallTimers
    public let localRTP: EndpointAddress
    public let endpointType: EndpointType
    public private(set) var state: State = .null
    public private(set) var codecs: [AudioCodec]
    public private(set) var transmit: MediaChannel?
    public private(set) var receiveCodec: AudioCodec?
    public private(set) var releaseCause: UInt8?

    private var outgoing: OutgoingCallInfo?
    private var offeredFastStart: [OpenLogicalChannel] = []
    private var fastStartDone = false
    private var tunnelling: Bool
    private var h245: H245Session
    private var h245Channel = false
    private var h245Requested = false
    private var endSessionSent = false
    private var pendingTunnelled: [[UInt8]] = []
    private var timerDeadline: UInt64?
    private var timerCause: UInt8 = Q850.recoveryOnTimerExpiry

    private init(role: Role, callReference: UInt16, callIdentifier: [UInt8], conferenceID: [UInt8], codecs: [AudioCodec],
                 localRTP: EndpointAddress, options: CallOptions, timers: CallTimers, endpointType: EndpointType) {
        self.role = role
        self.callReference = callReference
        self.callIdentifier = callIdentifier
        self.conferenceID = conferenceID
        self.codecs = codecs
        self.localRTP = localRTP
        self.options = options
        self.timers = timers
        self.endpointType = endpointType
        self.tunnelling = options.tunnelling
        let seed = callIdentifier.prefix(3).reduce(0) { $0 << 8 | Int($1) }
        self.h245 = H245Session(codecs: codecs, localRTP: localRTP, terminalType: options.terminalType, determinationNumber: seed)
    }

    /// An outgoing call; `.place` sends the Setup.
    public init(outgoing info: OutgoingCallInfo, codecs: [AudioCodec], localRTP: EndpointAddress, options: CallOptions = CallOptions(),
                timers: CallTimers = CallTimers(), endpointType: EndpointType = EndpointIdentity.terminal) {
        self.init(role: .outgoing, callReference: info.callReference & 0x7FFF, callIdentifier: info.callIdentifier,
                  conferenceID: info.conferenceID, codecs: codecs, localRTP: localRTP, options: options, timers: timers,
                  endpointType: endpointType)
        self.outgoing = info
    }

    /// An incoming call from its Setup. Throws when the Setup is not a usable H.225.0 Setup
    /// (the driver answers with ReleaseComplete via `rejectSetup`).
    public init(incoming setup: Q931Message, localRTP: EndpointAddress, acceptable codecs: [AudioCodec],
                options: CallOptions = CallOptions(), timers: CallTimers = CallTimers(),
                endpointType: EndpointType = EndpointIdentity.terminal) throws(H225Error) {
        let info = try setup.userInformation()
        guard setup.messageType == .setup, case .setup(let uuie) = info.h323UuPdu.h323MessageBody else {
            throw .q931(.badElement("not a Setup"))
        }
        let guid = uuie.callIdentifier?.guid ?? uuie.conferenceID
        self.init(role: .incoming, callReference: setup.callReference.value, callIdentifier: guid,
                  conferenceID: uuie.conferenceID, codecs: codecs, localRTP: localRTP, options: options, timers: timers,
                  endpointType: endpointType)
        state = .callPresent
        tunnelling = options.tunnelling && info.h323UuPdu.h245Tunnelling == true
        if options.fastStart { offeredFastStart = (try? uuie.fastStartChannels()) ?? [] }
        pendingRemoteH245Address = EndpointAddress(uuie.h245Address)
        incomingControl = (try? info.tunnelledH245()) ?? []
    }

    private var pendingRemoteH245Address: EndpointAddress?
    private var incomingControl: [MultimediaSystemControlMessage] = []

    /// What the incoming Setup asked for.
    public static func describe(setup: Q931Message) throws(H225Error) -> IncomingCallInfo {
        let info = try setup.userInformation()
        guard case .setup(let uuie) = info.h323UuPdu.h323MessageBody else { throw .q931(.badElement("not a Setup")) }
        var offered: [AudioCodec] = []
        for olc in (try? uuie.fastStartChannels()) ?? [] {
            if let codec = AudioCodec(olc.forwardLogicalChannelParameters.dataType), !offered.contains(codec) { offered.append(codec) }
        }
        return IncomingCallInfo(
            callReference: setup.callReference.value, callIdentifier: uuie.callIdentifier?.guid ?? uuie.conferenceID,
            conferenceID: uuie.conferenceID, source: uuie.sourceAddress ?? [], destination: uuie.destinationAddress ?? [],
            calledNumber: (try? setup.calledPartyNumber())??.digits, callingNumber: (try? setup.callingPartyNumber())??.digits,
            display: setup.display, offeredCodecs: offered, sourceSignalAddress: EndpointAddress(uuie.sourceCallSignalAddress))
    }

    /// ReleaseComplete for a Setup that will not become a call.
    public static func rejectSetup(_ setup: Q931Message, cause: UInt8) -> Q931Message {
        var release = Q931Message(callReference: Q931CallReference(value: setup.callReference.value, fromDestination: true),
                                  messageType: .releaseComplete)
        release.setCause(Q931Cause(value: cause))
        let guid = (try? setup.userInformation()).flatMap { info -> [UInt8]? in
            if case .setup(let s) = info.h323UuPdu.h323MessageBody { return s.callIdentifier?.guid }
            return nil
        }
        try? release.setUserInformation(H323UserInformation(h323UuPdu: H323UUPDU(h323MessageBody: .releaseComplete(
            ReleaseCompleteUUIE(protocolIdentifier: EndpointIdentity.h2250Protocol, reason: Q850.reason(for: cause),
                                callIdentifier: guid.map { CallIdentifier(guid: $0) })))))
        return release
    }

    public var nextDeadline: UInt64? { timerDeadline }
    public var isReleased: Bool { state == .released }

    // MARK: Events

    public mutating func handle(_ event: CallEvent, now: UInt64) -> [CallAction] {
        guard state != .released else { return [] }
        var out: [CallAction] = []
        switch event {
        case .place:
            guard role == .outgoing, state == .null else { break }
            sendSetup(now: now, &out)
        case .signalling(let message):
            receive(message, now: now, &out)
        case .h245(let message):
            h245Received(message, now: now, &out)
        case .h245Connected:
            h245Channel = true
            if !fastStartDone { apply(h245.start(), now: now, &out) }
        case .proceed:
            guard role == .incoming, state == .callPresent else { break }
            state = .incomingCallProceeding
            send(.callProceeding, .callProceeding(CallProceedingUUIE(protocolIdentifier: EndpointIdentity.h2250Protocol,
                destinationInfo: endpointType, callIdentifier: CallIdentifier(guid: callIdentifier))), &out)
        case .alert:
            guard role == .incoming, state == .callPresent || state == .incomingCallProceeding else { break }
            state = .callReceived
            send(.alerting, .alerting(AlertingUUIE(protocolIdentifier: EndpointIdentity.h2250Protocol,
                destinationInfo: endpointType, callIdentifier: CallIdentifier(guid: callIdentifier))), &out)
        case .earlyMedia(let accepted):
            guard role == .incoming, state == .callPresent || state == .incomingCallProceeding || state == .callReceived,
                  !fastStartDone, !offeredFastStart.isEmpty else { break }
            chooseCodec(accepted)
            guard let chosen = H245Session.fastStartAnswer(offeredFastStart, accept: codecs, localRTP: localRTP) else { break }
            fastStartDone = true
            transmit = chosen.transmit
            receiveCodec = chosen.codec
            out.append(.transmit(chosen.transmit))
            out.append(.receive(chosen.codec))
            send(.progress, .progress(ProgressUUIE(protocolIdentifier: EndpointIdentity.h2250Protocol,
                destinationInfo: endpointType, callIdentifier: CallIdentifier(guid: callIdentifier),
                fastStart: chosen.answer.compactMap { try? $0.encoded() })),
                configure: { $0.setProgressIndicator(Q931ProgressIndicator(description: 8, location: .privateLocal)) }, &out)
        case .answer(let accepted):
            guard role == .incoming, state != .active else { break }
            answer(accepted, now: now, &out)
        case .hangup(let cause):
            release(cause: cause, byRemote: false, &out)
        case .dtmf(let digit, let duration):
            guard state == .active || state == .callDelivered || state == .outgoingCallProceeding else { break }
            apply(h245.sendUserInput(digit, durationMs: duration, asSignal: options.dtmfAsSignal), now: now, &out)
        case .roundTripDelay:
            apply(h245.roundTripDelay(now: now), now: now, &out)
        case .transportClosed:
            release(cause: state == .active ? Q850.normalClearing : Q850.destinationOutOfOrder, byRemote: true, silent: true, &out)
        case .tick:
            break
        }
        if let deadline = timerDeadline, deadline <= now, state != .released, state != .active {
            timerDeadline = nil
            release(cause: timerCause, byRemote: false, &out)
        }
        flushTunnelled(&out)
        return out
    }

    // MARK: Sending

    private var fromDestination: Bool { role == .incoming }

    private mutating func send(_ type: Q931MessageType, _ body: H323UUPDU.H323MessageBody, cause: UInt8? = nil,
                               configure: (inout Q931Message) -> Void = { _ in }, _ out: inout [CallAction]) {
        var message = Q931Message(callReference: Q931CallReference(value: callReference, fromDestination: fromDestination),
                                  messageType: type)
        if let cause { message.setCause(Q931Cause(value: cause)) }
        configure(&message)
        var pdu = H323UUPDU(h323MessageBody: body, h245Tunnelling: tunnelling)
        if tunnelling && !pendingTunnelled.isEmpty && type != .releaseComplete {
            pdu.h245Control = pendingTunnelled
            pendingTunnelled.removeAll()
        }
        do {
            try message.setUserInformation(H323UserInformation(h323UuPdu: pdu))
        } catch {
            return  // our own message does not encode: nothing sensible to send
        }
        out.append(.sendSignalling(message))
    }

    /// H.245 messages waiting for a Q.931 message to ride on go out in a Facility.
    private mutating func flushTunnelled(_ out: inout [CallAction]) {
        guard tunnelling, !pendingTunnelled.isEmpty, state != .released, state != .null else { return }
        send(.facility, .facility(FacilityUUIE(protocolIdentifier: EndpointIdentity.h2250Protocol,
                                               reason: .transportedInformation, callIdentifier: CallIdentifier(guid: callIdentifier))), &out)
    }

    private mutating func apply(_ outputs: [H245Output], now: UInt64, _ out: inout [CallAction]) {
        for output in outputs {
            switch output {
            case .send(let message):
                if h245Channel {
                    out.append(.sendH245(message))
                } else if tunnelling, let bytes = try? message.encoded() {
                    pendingTunnelled.append(bytes)
                }
            case .transmit(let channel):
                transmit = channel
                out.append(.transmit(channel))
            case .receive(let codec):
                receiveCodec = codec
                out.append(.receive(codec))
            case .userInput(let c, let duration):
                out.append(.dtmf(c, durationMs: duration))
            case .endSession:
                // H.245 is over; the cause comes with ReleaseComplete (H.323 8.5), so the
                // call itself waits for it. Answer with our own EndSession once.
                if !endSessionSent {
                    endSessionSent = true
                    for case .send(let m) in h245.endSession() {
                        if h245Channel { out.append(.sendH245(m)) } else if tunnelling, let b = try? m.encoded() { pendingTunnelled.append(b) }
                    }
                }
            case .roundTripDelay(let ms):
                out.append(.roundTripDelay(ms: ms))
            case .remoteCapabilities:
                break
            }
        }
    }

    private mutating func sendSetup(now: UInt64, _ out: inout [CallAction]) {
        guard let info = outgoing else { return }
        state = .callInitiated
        timerDeadline = now &+ timers.t303
        timerCause = Q850.noUserResponding
        if options.fastStart {
            offeredFastStart = H245Session.fastStartOffer(codecs, localRTP: localRTP)
        }
        let fastStart = offeredFastStart.compactMap { try? $0.encoded() }
        let uuie = SetupUUIE(
            protocolIdentifier: EndpointIdentity.h2250Protocol, h245Address: options.h245Listen?.transportAddress,
            sourceAddress: info.source.isEmpty ? nil : info.source, sourceInfo: endpointType,
            destinationAddress: info.destination.isEmpty ? nil : info.destination,
            destCallSignalAddress: info.destinationAddress?.transportAddress, activeMC: false, conferenceID: info.conferenceID,
            conferenceGoal: .create, callType: .pointToPoint, callIdentifier: CallIdentifier(guid: info.callIdentifier),
            fastStart: fastStart.isEmpty ? nil : fastStart, mediaWaitForConnect: false, canOverlapSend: false)
        send(.setup, .setup(uuie), configure: { m in
            m.setBearerCapability(Q931BearerCapability(transferCapability: 0, transferMode: 0, transferRate: 16, layer1Protocol: 2))
            if let display = info.display { m.display = display }
            for alias in info.source { if case .dialledDigits(let d) = alias { m.setCallingPartyNumber(Q931PartyNumber(digits: d)); break } }
            for alias in info.destination { if case .dialledDigits(let d) = alias { m.setCalledPartyNumber(Q931PartyNumber(digits: d)); break } }
        }, &out)
    }

    /// One codec for both directions: the appliance relays, it never transcodes.
    private mutating func chooseCodec(_ accepted: [AudioCodec]) {
        let offered = offeredFastStart.isEmpty ? codecs
            : codecs.filter { c in offeredFastStart.contains { AudioCodec($0.forwardLogicalChannelParameters.dataType) == c } }
        if let chosen = accepted.first(where: { offered.contains($0) || codecs.isEmpty }) ?? accepted.first(where: { codecs.contains($0) }) {
            codecs = [chosen]
        }
        h245 = H245Session(codecs: codecs, localRTP: localRTP, terminalType: options.terminalType,
                           determinationNumber: h245.determinationNumber)
    }

    private mutating func answer(_ accepted: [AudioCodec], now: UInt64, _ out: inout [CallAction]) {
        // After early media the fast start answer was given in Progress: Connect repeats nothing.
        let earlyMedia = fastStartDone
        if !earlyMedia { chooseCodec(accepted) }
        var fastStartAnswer: [[UInt8]]? = nil
        if !earlyMedia, !offeredFastStart.isEmpty, let chosen = H245Session.fastStartAnswer(offeredFastStart, accept: codecs, localRTP: localRTP) {
            fastStartAnswer = chosen.answer.compactMap { try? $0.encoded() }
            fastStartDone = true
            transmit = chosen.transmit
            receiveCodec = chosen.codec
            out.append(.transmit(chosen.transmit))
            out.append(.receive(chosen.codec))
        }
        state = .active
        timerDeadline = nil
        let uuie = ConnectUUIE(
            protocolIdentifier: EndpointIdentity.h2250Protocol,
            h245Address: (fastStartDone || tunnelling) ? nil : options.h245Listen?.transportAddress,
            destinationInfo: endpointType, conferenceID: conferenceID, callIdentifier: CallIdentifier(guid: callIdentifier),
            fastStart: fastStartAnswer, fastConnectRefused: (!offeredFastStart.isEmpty && !fastStartDone) ? PERNull() : nil)
        // Tunnelled H.245 the caller sent in Setup is answered now that our capabilities are known.
        let early = incomingControl
        incomingControl = []
        if !fastStartDone {
            if tunnelling {
                apply(h245.start(), now: now, &out)
            }
        }
        send(.connect, .connect(uuie), &out)
        out.append(.connected)
        for message in early { h245Received(message, now: now, &out) }
        if !fastStartDone && !tunnelling && !h245Channel && !h245Requested, let remote = pendingRemoteH245Address {
            h245Requested = true
            out.append(.connectH245(remote))
        }
    }

    // MARK: Receiving

    private mutating func receive(_ message: Q931Message, now: UInt64, _ out: inout [CallAction]) {
        // A message for another call on this connection is not ours.
        guard message.callReference.value == callReference else { return }
        let info = try? message.userInformation()
        let pdu = info?.h323UuPdu
        for bytes in pdu?.h245Control ?? [] {
            guard let control = try? MultimediaSystemControlMessage(decoding: bytes) else { continue }
            if role == .incoming && state != .active && state != .released {
                incomingControl.append(control)  // answered once we know our codecs
            } else {
                h245Received(control, now: now, &out)
            }
        }
        switch message.messageType {
        case .callProceeding:
            guard role == .outgoing, state == .callInitiated else { break }
            state = .outgoingCallProceeding
            timerDeadline = now &+ timers.t310
            timerCause = Q850.noUserResponding
            firstResponse(pdu, now: now, &out)
            out.append(.proceeding)
        case .alerting:
            guard role == .outgoing, state == .callInitiated || state == .outgoingCallProceeding else { break }
            state = .callDelivered
            timerDeadline = now &+ timers.t301
            timerCause = Q850.noAnswer
            firstResponse(pdu, now: now, &out)
            out.append(.ringing)
        case .progress:
            guard role == .outgoing, state != .active else { break }
            firstResponse(pdu, now: now, &out)
            out.append(.progress)
        case .connect:
            guard role == .outgoing, state != .active else { break }
            state = .active
            timerDeadline = nil
            firstResponse(pdu, now: now, &out)
            out.append(.connected)
            if !fastStartDone {
                if tunnelling { apply(h245.start(), now: now, &out) }
                else if !h245Channel && !h245Requested, options.h245Listen == nil, let remote = remoteH245Address(pdu) {
                    h245Requested = true
                    out.append(.connectH245(remote))
                }
            }
        case .facility:
            firstResponse(pdu, now: now, &out)
        case .releaseComplete:
            var cause = (try? message.cause())??.value
            if cause == nil, case .releaseComplete(let r)? = pdu?.h323MessageBody, let reason = r.reason { cause = Q850.cause(for: reason) }
            release(cause: cause ?? Q850.normalClearing, byRemote: true, silent: true, &out)
        case .statusEnquiry:
            send(.status, .status(StatusUUIE(protocolIdentifier: EndpointIdentity.h2250Protocol, callIdentifier: CallIdentifier(guid: callIdentifier))),
                 cause: 30, configure: { [state] m in m.callState = state.rawValue }, &out)
        case .status:
            // Q.931 5.8.11: a peer that thinks the call is gone (state 0) has lost it.
            if message.callState == 0 { release(cause: (try? message.cause())??.value ?? Q850.normalUnspecified, byRemote: true, silent: true, &out) }
        default:
            break
        }
    }

    private func remoteH245Address(_ pdu: H323UUPDU?) -> EndpointAddress? {
        switch pdu?.h323MessageBody {
        case .connect(let c)?: return EndpointAddress(c.h245Address)
        case .alerting(let a)?: return EndpointAddress(a.h245Address)
        case .callProceeding(let p)?: return EndpointAddress(p.h245Address)
        case .progress(let p)?: return EndpointAddress(p.h245Address)
        case .facility(let f)?: return EndpointAddress(f.h245Address)
        default: return nil
        }
    }

    /// The callee's first answers settle tunnelling and fast start.
    private mutating func firstResponse(_ pdu: H323UUPDU?, now: UInt64, _ out: inout [CallAction]) {
        guard let pdu else { return }
        if pdu.h245Tunnelling != true && tunnelling && !h245Channel {
            tunnelling = false
            pendingTunnelled.removeAll()
        }
        var fastStart: [[UInt8]]? = nil
        switch pdu.h323MessageBody {
        case .callProceeding(let b): fastStart = b.fastStart
        case .alerting(let b): fastStart = b.fastStart
        case .progress(let b): fastStart = b.fastStart
        case .connect(let b): fastStart = b.fastStart
        case .facility(let b): fastStart = b.fastStart
        default: break
        }
        if !fastStartDone, let fastStart, !fastStart.isEmpty {
            let answer = fastStart.compactMap { try? OpenLogicalChannel(decoding: $0) }
            if let channel = H245Session.readFastStartAnswer(answer) {
                fastStartDone = true
                transmit = channel
                receiveCodec = channel.codec
                out.append(.transmit(channel))
                out.append(.receive(channel.codec))
            }
        }
        if !fastStartDone && !tunnelling && !h245Channel && !h245Requested && options.h245Listen == nil,
           let remote = remoteH245Address(pdu) {
            h245Requested = true
            out.append(.connectH245(remote))
        }
    }

    private mutating func h245Received(_ message: MultimediaSystemControlMessage, now: UInt64, _ out: inout [CallAction]) {
        apply(h245.handle(message, now: now), now: now, &out)
    }

    private mutating func release(cause: UInt8, byRemote: Bool, silent: Bool = false, _ out: inout [CallAction]) {
        guard state != .released else { return }
        if !silent && state != .null {
            if h245Channel && !endSessionSent {
                endSessionSent = true
                for case .send(let m) in h245.endSession() { out.append(.sendH245(m)) }
            }
            send(.releaseComplete, .releaseComplete(ReleaseCompleteUUIE(protocolIdentifier: EndpointIdentity.h2250Protocol,
                reason: Q850.reason(for: cause), callIdentifier: CallIdentifier(guid: callIdentifier))), cause: cause, &out)
        }
        state = .released
        timerDeadline = nil
        releaseCause = cause
        pendingTunnelled.removeAll()
        out.append(.released(cause: cause, byRemote: byRemote))
    }
}
