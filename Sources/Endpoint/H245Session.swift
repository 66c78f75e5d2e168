// H.245 for one call, sans-I/O, carried either tunnelled in H.225.0 or on its own TCP
// connection (the call decides). Capability exchange (TCS), master/slave determination
// (MSD), one audio channel each way (OLC/OLCAck, CLC), RoundTripDelay, EndSession and
// UserInputIndication. Fast start builds its OpenLogicalChannel proposals here too.
import H323

/// Where one direction of audio goes, as negotiated.
public struct MediaChannel: Sendable, Equatable {
    public var codec: AudioCodec
    /// The peer's RTP address (where we transmit); nil for the receive direction.
    public var remoteRTP: EndpointAddress?
    public var remoteRTCP: EndpointAddress?
    public init(codec: AudioCodec, remoteRTP: EndpointAddress?, remoteRTCP: EndpointAddress?) {
        self.codec = codec
        self.remoteRTP = remoteRTP
        self.remoteRTCP = remoteRTCP
    }
}

public enum H245Output: Sendable, Equatable {
    case send(MultimediaSystemControlMessage)
    /// We may now transmit to the peer's address with this codec.
    case transmit(MediaChannel)
    /// The peer opened its channel towards our address with this codec.
    case receive(AudioCodec)
    case userInput(Character, durationMs: Int)
    case endSession
    case roundTripDelay(ms: UInt64)
    /// Terminal capability set of the peer (its receive codecs).
    case remoteCapabilities([AudioCodec])
}

public struct H245Session: Sendable {
    public let codecs: [AudioCodec]
    public let localRTP: EndpointAddress
    public var localRTCP: EndpointAddress { EndpointAddress(ip: localRTP.ip, port: localRTP.port &+ 1) }
    public let terminalType: Int
    public let determinationNumber: Int

    public private(set) var started = false
    public private(set) var remoteCodecs: [AudioCodec]?
    public private(set) var isMaster: Bool?
    public private(set) var transmitCodec: AudioCodec?
    public private(set) var receiveCodec: AudioCodec?
    private var tcsAcked = false
    private var olcSent = false
    private var outgoingChannel = 1
    private var rtdSequence = 0
    private var rtdSentAt: [Int: UInt64] = [:]

    /// terminalType: H.245 Table C.1: 50 terminal, 60 gateway.
    public init(codecs: [AudioCodec], localRTP: EndpointAddress, terminalType: Int = 50, determinationNumber: Int) {
        self.codecs = codecs
        self.localRTP = localRTP
        self.terminalType = terminalType
        self.determinationNumber = determinationNumber & 0xFF_FFFF
    }

    // MARK: Building messages

    public static func capabilitySet(_ codecs: [AudioCodec], sequence: Int = 1) -> TerminalCapabilitySet {
        var table: [CapabilityTableEntry] = []
        for (i, codec) in codecs.enumerated() {
            table.append(CapabilityTableEntry(capabilityTableEntryNumber: i + 1, capability: .receiveAudioCapability(codec.capability)))
        }
        let uiiBase = codecs.count + 1
        table.append(CapabilityTableEntry(capabilityTableEntryNumber: uiiBase, capability: .receiveAndTransmitUserInputCapability(.basicString)))
        table.append(CapabilityTableEntry(capabilityTableEntryNumber: uiiBase + 1, capability: .receiveAndTransmitUserInputCapability(.dtmf)))
        let audio: AlternativeCapabilitySet = Array(1...max(1, codecs.count)).filter { $0 <= codecs.count }
        var simultaneous: [AlternativeCapabilitySet] = []
        if !audio.isEmpty { simultaneous.append(audio) }
        simultaneous.append([uiiBase, uiiBase + 1])
        return TerminalCapabilitySet(sequenceNumber: sequence, protocolIdentifier: EndpointIdentity.h245Protocol,
                                     capabilityTable: table,
                                     capabilityDescriptors: [CapabilityDescriptor(capabilityDescriptorNumber: 0, simultaneousCapabilities: simultaneous)])
    }

    static func h2250(session: Int = 1, media: EndpointAddress?, control: EndpointAddress?) -> H2250LogicalChannelParameters {
        H2250LogicalChannelParameters(sessionID: session, mediaChannel: media?.h245Address, mediaControlChannel: control?.h245Address)
    }

    /// Fast start proposals for these codecs, in preference order: for each codec one channel
    /// we transmit on and one we receive on (H.323 8.1.7.1).
    public static func fastStartOffer(_ codecs: [AudioCodec], localRTP: EndpointAddress) -> [OpenLogicalChannel] {
        let rtcp = EndpointAddress(ip: localRTP.ip, port: localRTP.port &+ 1)
        var out: [OpenLogicalChannel] = []
        var number = 1
        for codec in codecs {
            out.append(OpenLogicalChannel(
                forwardLogicalChannelNumber: number,
                forwardLogicalChannelParameters: .init(dataType: .audioData(codec.capability),
                                                       multiplexParameters: .h2250LogicalChannelParameters(h2250(media: nil, control: rtcp)))))
            out.append(OpenLogicalChannel(
                forwardLogicalChannelNumber: number + 1,
                forwardLogicalChannelParameters: .init(dataType: .nullData, multiplexParameters: .none),
                reverseLogicalChannelParameters: .init(dataType: .audioData(codec.capability),
                                                       multiplexParameters: .h2250LogicalChannelParameters(h2250(media: localRTP, control: rtcp)))))
            number += 2
        }
        return out
    }

    /// The callee's choice among fast start proposals: the first codec of `accept` (the
    /// answerer's preference) that the caller offered in both directions, and the answer.
    public static func fastStartAnswer(_ offer: [OpenLogicalChannel], accept: [AudioCodec], localRTP: EndpointAddress)
        -> (codec: AudioCodec, answer: [OpenLogicalChannel], transmit: MediaChannel)?
    {
        let rtcp = EndpointAddress(ip: localRTP.ip, port: localRTP.port &+ 1)
        for codec in accept {
            // The caller's transmit proposal is our receive channel, and the other way round.
            guard var callerTransmit = offer.first(where: { AudioCodec($0.forwardLogicalChannelParameters.dataType) == codec }),
                  var callerReceive = offer.first(where: { $0.reverseLogicalChannelParameters.flatMap { AudioCodec($0.dataType) } == codec }),
                  case .h2250LogicalChannelParameters(let reverse)? = callerReceive.reverseLogicalChannelParameters?.multiplexParameters,
                  let callerRTP = EndpointAddress(reverse.mediaChannel)
            else { continue }
            callerTransmit.forwardLogicalChannelParameters.multiplexParameters = .h2250LogicalChannelParameters(h2250(media: localRTP, control: rtcp))
            var reverseParameters = reverse
            reverseParameters.mediaControlChannel = reverse.mediaControlChannel
            callerReceive.reverseLogicalChannelParameters?.multiplexParameters = .h2250LogicalChannelParameters(reverseParameters)
            let transmit = MediaChannel(codec: codec, remoteRTP: callerRTP, remoteRTCP: EndpointAddress(reverse.mediaControlChannel))
            return (codec, [callerTransmit, callerReceive], transmit)
        }
        return nil
    }

    /// The caller reads the callee's fast start answer: where to send, and which codec.
    public static func readFastStartAnswer(_ answer: [OpenLogicalChannel]) -> MediaChannel? {
        for olc in answer {
            guard let codec = AudioCodec(olc.forwardLogicalChannelParameters.dataType),
                  case .h2250LogicalChannelParameters(let p) = olc.forwardLogicalChannelParameters.multiplexParameters,
                  let rtp = EndpointAddress(p.mediaChannel) else { continue }
            return MediaChannel(codec: codec, remoteRTP: rtp, remoteRTCP: EndpointAddress(p.mediaControlChannel))
        }
        return nil
    }

    // MARK: The procedures

    /// Opens the session: our capabilities and a determination request.
    public mutating func start() -> [H245Output] {
        guard !started else { return [] }
        started = true
        return [.send(.request(.terminalCapabilitySet(Self.capabilitySet(codecs)))),
                .send(.request(.masterSlaveDetermination(MasterSlaveDetermination(terminalType: terminalType,
                                                                                 statusDeterminationNumber: determinationNumber))))]
    }

    public mutating func sendUserInput(_ digit: Character, durationMs: Int, asSignal: Bool) -> [H245Output] {
        if asSignal {
            return [.send(.indication(.userInput(.signal(.init(signalType: String(digit), duration: durationMs)))))]
        }
        return [.send(.indication(.userInput(.alphanumeric(String(digit)))))]
    }

    public mutating func roundTripDelay(now: UInt64) -> [H245Output] {
        rtdSequence = (rtdSequence + 1) & 0xFF
        rtdSentAt[rtdSequence] = now
        if rtdSentAt.count > 8 { rtdSentAt.removeValue(forKey: rtdSentAt.keys.min() ?? 0) }
        return [.send(.request(.roundTripDelayRequest(RoundTripDelayRequest(sequenceNumber: rtdSequence))))]
    }

    public func endSession() -> [H245Output] { [.send(.command(.endSessionCommand(.disconnect)))] }

    public mutating func handle(_ message: MultimediaSystemControlMessage, now: UInt64) -> [H245Output] {
        var out: [H245Output] = []
        switch message {
        case .request(.terminalCapabilitySet(let tcs)):
            var remote: [AudioCodec] = []
            for entry in tcs.capabilityTable ?? [] {
                switch entry.capability {
                case .receiveAudioCapability(let c)?, .receiveAndTransmitAudioCapability(let c)?:
                    if let codec = AudioCodec(c), !remote.contains(codec) { remote.append(codec) }
                default: break
                }
            }
            remoteCodecs = remote
            out.append(.send(.response(.terminalCapabilitySetAck(TerminalCapabilitySetAck(sequenceNumber: tcs.sequenceNumber)))))
            out.append(.remoteCapabilities(remote))
            out += start()
        case .response(.terminalCapabilitySetAck):
            tcsAcked = true
        case .request(.masterSlaveDetermination(let msd)):
            let master = decideMaster(remoteType: msd.terminalType, remoteNumber: msd.statusDeterminationNumber)
            isMaster = master
            // The decision in the Ack is the receiver's: it is slave if we are master.
            out.append(.send(.response(.masterSlaveDeterminationAck(MasterSlaveDeterminationAck(decision: master ? .slave : .master)))))
            out += start()
        case .response(.masterSlaveDeterminationAck(let ack)):
            if isMaster == nil { isMaster = ack.decision == .master }
        case .request(.openLogicalChannel(let olc)):
            out += acceptChannel(olc)
        case .response(.openLogicalChannelAck(let ack)):
            if case .h2250LogicalChannelAckParameters(let p)? = ack.forwardMultiplexAckParameters,
               let rtp = EndpointAddress(p.mediaChannel), let codec = transmitCodec {
                out.append(.transmit(MediaChannel(codec: codec, remoteRTP: rtp, remoteRTCP: EndpointAddress(p.mediaControlChannel))))
            }
        case .response(.openLogicalChannelReject):
            transmitCodec = nil
        case .request(.closeLogicalChannel(let clc)):
            out.append(.send(.response(.closeLogicalChannelAck(CloseLogicalChannelAck(forwardLogicalChannelNumber: clc.forwardLogicalChannelNumber)))))
        case .request(.roundTripDelayRequest(let rtd)):
            out.append(.send(.response(.roundTripDelayResponse(RoundTripDelayResponse(sequenceNumber: rtd.sequenceNumber)))))
        case .response(.roundTripDelayResponse(let rtd)):
            if let sent = rtdSentAt.removeValue(forKey: rtd.sequenceNumber) { out.append(.roundTripDelay(ms: now >= sent ? now - sent : 0)) }
        case .command(.endSessionCommand):
            out.append(.endSession)
        case .indication(.userInput(let uii)):
            switch uii {
            case .alphanumeric(let s):
                for c in s where DTMF.event(c) != nil { out.append(.userInput(c, durationMs: 100)) }
            case .signal(let signal):
                if let c = signal.signalType.first, DTMF.event(c) != nil { out.append(.userInput(c, durationMs: signal.duration ?? 100)) }
            default: break
            }
        default:
            break
        }
        out += openOurChannelIfReady()
        return out
    }

    /// H.245 C.2: the larger terminal type is master; on a tie, the determination numbers decide.
    private func decideMaster(remoteType: Int, remoteNumber: Int) -> Bool {
        if terminalType != remoteType { return terminalType > remoteType }
        let difference = (remoteNumber - determinationNumber) & 0xFF_FFFF
        return difference != 0 && difference < 0x80_0000
    }

    private mutating func acceptChannel(_ olc: OpenLogicalChannel) -> [H245Output] {
        let number = olc.forwardLogicalChannelNumber
        guard let codec = AudioCodec(olc.forwardLogicalChannelParameters.dataType), codecs.contains(codec) else {
            return [.send(.response(.openLogicalChannelReject(OpenLogicalChannelReject(forwardLogicalChannelNumber: number, cause: .dataTypeNotSupported))))]
        }
        receiveCodec = codec
        let ack = OpenLogicalChannelAck(
            forwardLogicalChannelNumber: number,
            forwardMultiplexAckParameters: .h2250LogicalChannelAckParameters(H2250LogicalChannelAckParameters(
                sessionID: 1, mediaChannel: localRTP.h245Address, mediaControlChannel: localRTCP.h245Address)))
        return [.send(.response(.openLogicalChannelAck(ack))), .receive(codec)]
    }

    /// Once both sides know each other's capabilities, open our transmit channel with the
    /// first of our codecs the peer can receive.
    private mutating func openOurChannelIfReady() -> [H245Output] {
        guard !olcSent, tcsAcked, isMaster != nil, let remote = remoteCodecs else { return [] }
        // Prefer what the peer already sends us: the appliance never transcodes, so both directions match.
        guard let codec = receiveCodec.flatMap({ remote.contains($0) ? $0 : nil }) ?? codecs.first(where: { remote.contains($0) }) else { return [] }
        olcSent = true
        transmitCodec = codec
        let olc = OpenLogicalChannel(
            forwardLogicalChannelNumber: outgoingChannel,
            forwardLogicalChannelParameters: .init(dataType: .audioData(codec.capability),
                                                   multiplexParameters: .h2250LogicalChannelParameters(Self.h2250(media: nil, control: localRTCP))))
        return [.send(.request(.openLogicalChannel(olc)))]
    }
}
