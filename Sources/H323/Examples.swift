// Representative H.323 messages built with the typed API: one of each kind the appliance
// and the phone exchange. The tshark system test (`bloo h323 samples`) and the benchmark
// use them; they also show how the typed API reads.
import PER

public enum H323Examples {
    public static let h2250 = PERObjectIdentifier([0, 0, 8, 2250, 0, 7])
    public static let h245Version = PERObjectIdentifier([0, 0, 8, 245, 0, 15])
    public static let vendor = VendorIdentifier(
        vendor: H221NonStandard(t35CountryCode: 181, t35Extension: 0, manufacturerCode: 21324),
        productId: Array("bloophone".utf8), versionId: Array("1.0".utf8))
    public static let terminal = EndpointType(vendor: vendor, terminal: TerminalInfo(), mc: false, undefinedNode: false)
    public static let callIdentifier = CallIdentifier(guid: (0..<16).map { 0xA0 + UInt8($0) })
    public static let conferenceID: [UInt8] = (0..<16).map { 0x10 * UInt8($0 & 0x0F) | UInt8($0 & 0x0F) }

    public static func ip(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: Int) -> TransportAddress {
        .ipAddress(TransportAddress.IpAddress(ip: [a, b, c, d], port: port))
    }

    static func rtp(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: Int) -> H245TransportAddress {
        .unicastAddress(.iPAddress(UnicastAddress.IPAddress(network: [a, b, c, d], tsapIdentifier: port)))
    }

    public static let aliases: [AliasAddress] = [.h323ID("alice"), .dialledDigits("1001")]
    public static let clearToken = ClearToken(tokenOID: PERObjectIdentifier([0, 0, 8, 235, 0, 2, 5]), timeStamp: 1_700_000_000, generalID: "GK1")
    public static let passwordHash = CryptoH323Token.cryptoEPPwdHash(CryptoH323Token.CryptoEPPwdHash(
        alias: .h323ID("alice"), timeStamp: 1_700_000_000,
        token: HASHED(algorithmOID: PERObjectIdentifier([1, 2, 840, 113549, 2, 5]), paramS: H235Params(),
                      hash: PERBitString(bytes: Array(repeating: 0x5A, count: 16), count: 128))))

    // MARK: RAS

    public static func gatekeeperRequest() -> RasMessage {
        .gatekeeperRequest(GatekeeperRequest(requestSeqNum: 1, protocolIdentifier: h2250, rasAddress: ip(192, 168, 1, 10, port: 1719),
                                             endpointType: terminal, endpointAlias: aliases, supportsAltGK: PERNull()))
    }

    public static func registrationRequest(seq: Int = 2) -> RasMessage {
        .registrationRequest(RegistrationRequest(
            requestSeqNum: seq, protocolIdentifier: h2250, discoveryComplete: true,
            callSignalAddress: [ip(192, 168, 1, 10, port: 1720)], rasAddress: [ip(192, 168, 1, 10, port: 1719)],
            terminalType: terminal, terminalAlias: aliases, gatekeeperIdentifier: "GK1", endpointVendor: vendor,
            timeToLive: 300, tokens: [clearToken], cryptoTokens: [passwordHash], keepAlive: false,
            willSupplyUUIEs: false, maintainConnection: true))
    }

    /// The lightweight RRQ that refreshes a registration (H.225.0 7.9.1).
    public static func keepAliveRequest(seq: Int = 3) -> RasMessage {
        .registrationRequest(RegistrationRequest(
            requestSeqNum: seq, protocolIdentifier: h2250, discoveryComplete: false, callSignalAddress: [], rasAddress: [],
            terminalType: terminal, gatekeeperIdentifier: "GK1", endpointVendor: vendor, timeToLive: 300,
            keepAlive: true, endpointIdentifier: "EP0001", willSupplyUUIEs: false, maintainConnection: true))
    }

    public static func registrationConfirm() -> RasMessage {
        .registrationConfirm(RegistrationConfirm(
            requestSeqNum: 2, protocolIdentifier: h2250, callSignalAddress: [ip(10, 0, 0, 1, port: 1720)], terminalAlias: aliases,
            gatekeeperIdentifier: "GK1", endpointIdentifier: "EP0001", timeToLive: 300, willRespondToIRR: false,
            maintainConnection: true))
    }

    public static func admissionRequest() -> RasMessage {
        .admissionRequest(AdmissionRequest(
            requestSeqNum: 5, callType: .pointToPoint, callModel: .direct, endpointIdentifier: "EP0001",
            destinationInfo: [.dialledDigits("0049301234567")], srcInfo: aliases, srcCallSignalAddress: ip(192, 168, 1, 10, port: 1720),
            bandWidth: 1280, callReferenceValue: 42, conferenceID: conferenceID, activeMC: false, answerCall: false,
            canMapAlias: true, callIdentifier: callIdentifier, willSupplyUUIEs: false, canMapSrcAlias: false))
    }

    public static func admissionConfirm() -> RasMessage {
        .admissionConfirm(AdmissionConfirm(
            requestSeqNum: 5, bandWidth: 1280, callModel: .gatekeeperRouted, destCallSignalAddress: ip(10, 0, 0, 1, port: 1720),
            willRespondToIRR: false,
            uuiesRequested: UUIEsRequested(setup: false, callProceeding: false, connect: true, alerting: false, information: false,
                                           releaseComplete: true, facility: false, progress: false, empty: false,
                                           status: false, statusInquiry: false, setupAcknowledge: false, notify: false)))
    }

    public static func disengageRequest() -> RasMessage {
        .disengageRequest(DisengageRequest(requestSeqNum: 7, endpointIdentifier: "EP0001", conferenceID: conferenceID,
                                           callReferenceValue: 42, disengageReason: .normalDrop, callIdentifier: callIdentifier,
                                           answeredCall: false))
    }

    public static func unregistrationRequest() -> RasMessage {
        .unregistrationRequest(UnregistrationRequest(requestSeqNum: 4, callSignalAddress: [ip(192, 168, 1, 10, port: 1720)],
                                                     endpointIdentifier: "EP0001", reason: .maintenance))
    }

    // MARK: H.245

    public static func fastStartChannel() -> OpenLogicalChannel {
        let audio = DataType.audioData(.g711Alaw64k(20))
        return OpenLogicalChannel(
            forwardLogicalChannelNumber: 1,
            forwardLogicalChannelParameters: OpenLogicalChannel.ForwardLogicalChannelParameters(
                dataType: audio,
                multiplexParameters: .h2250LogicalChannelParameters(H2250LogicalChannelParameters(
                    sessionID: 1, mediaControlChannel: rtp(192, 168, 1, 10, port: 5001)))),
            reverseLogicalChannelParameters: OpenLogicalChannel.ReverseLogicalChannelParameters(
                dataType: audio,
                multiplexParameters: .h2250LogicalChannelParameters(H2250LogicalChannelParameters(
                    sessionID: 1, mediaChannel: rtp(192, 168, 1, 10, port: 5000), mediaControlChannel: rtp(192, 168, 1, 10, port: 5001)))))
    }

    public static func masterSlaveDetermination() -> MultimediaSystemControlMessage {
        .request(.masterSlaveDetermination(MasterSlaveDetermination(terminalType: 50, statusDeterminationNumber: 12345)))
    }

    public static func terminalCapabilitySet() -> MultimediaSystemControlMessage {
        let caps: [Capability] = [
            .receiveAudioCapability(.g711Alaw64k(20)), .receiveAudioCapability(.g711Ulaw64k(20)),
            .receiveAudioCapability(.g729(2)), .receiveAudioCapability(.g729AnnexA(2)),
            .receiveAudioCapability(.g7231(AudioCapability.G7231(maxAlSduAudioFrames: 1, silenceSuppression: false))),
            .receiveAudioCapability(.gsmFullRate(GSMAudioCapability(audioUnitSize: 33, comfortNoise: false, scrambled: false))),
            .receiveUserInputCapability(.basicString), .receiveUserInputCapability(.dtmf),
            .receiveRTPAudioTelephonyEventCapability(AudioTelephonyEventCapability(dynamicRTPPayloadType: 101, audioTelephoneEvent: "0-16")),
        ]
        return .request(.terminalCapabilitySet(TerminalCapabilitySet(
            sequenceNumber: 1, protocolIdentifier: h245Version,
            capabilityTable: caps.enumerated().map { CapabilityTableEntry(capabilityTableEntryNumber: $0 + 1, capability: $1) },
            capabilityDescriptors: [CapabilityDescriptor(capabilityDescriptorNumber: 0, simultaneousCapabilities: [[1, 2, 3, 4, 5, 6], [7, 8, 9]])])))
    }

    public static func openLogicalChannel() -> MultimediaSystemControlMessage {
        .request(.openLogicalChannel(OpenLogicalChannel(
            forwardLogicalChannelNumber: 1,
            forwardLogicalChannelParameters: OpenLogicalChannel.ForwardLogicalChannelParameters(
                dataType: .audioData(.g729AnnexA(2)),
                multiplexParameters: .h2250LogicalChannelParameters(H2250LogicalChannelParameters(
                    sessionID: 1, mediaGuaranteedDelivery: false, mediaControlChannel: rtp(192, 168, 1, 10, port: 5001),
                    mediaControlGuaranteedDelivery: false, silenceSuppression: false))))))
    }

    public static func openLogicalChannelAck() -> MultimediaSystemControlMessage {
        .response(.openLogicalChannelAck(OpenLogicalChannelAck(
            forwardLogicalChannelNumber: 1,
            forwardMultiplexAckParameters: .h2250LogicalChannelAckParameters(H2250LogicalChannelAckParameters(
                sessionID: 1, mediaChannel: rtp(10, 0, 0, 1, port: 6000), mediaControlChannel: rtp(10, 0, 0, 1, port: 6001))))))
    }

    public static let h245Messages: [(String, MultimediaSystemControlMessage)] = [
        ("msd", masterSlaveDetermination()),
        ("msd-ack", .response(.masterSlaveDeterminationAck(MasterSlaveDeterminationAck(decision: .master)))),
        ("tcs", terminalCapabilitySet()),
        ("tcs-ack", .response(.terminalCapabilitySetAck(TerminalCapabilitySetAck(sequenceNumber: 1)))),
        ("olc", openLogicalChannel()),
        ("olc-ack", openLogicalChannelAck()),
        ("clc", .request(.closeLogicalChannel(CloseLogicalChannel(forwardLogicalChannelNumber: 1, source: .user)))),
        ("clc-ack", .response(.closeLogicalChannelAck(CloseLogicalChannelAck(forwardLogicalChannelNumber: 1)))),
        ("rtd", .request(.roundTripDelayRequest(RoundTripDelayRequest(sequenceNumber: 7)))),
        ("uii-alphanumeric", .indication(.userInput(.alphanumeric("5")))),
        ("uii-signal", .indication(.userInput(.signal(UserInputIndication.Signal(
            signalType: "#", duration: 200, rtp: UserInputIndication.Signal.Rtp(timestamp: 160000, logicalChannelNumber: 1)))))),
        ("endsession", .command(.endSessionCommand(.disconnect))),
    ]

    // MARK: Call signalling

    static func pdu(_ body: H323UUPDU.H323MessageBody, tunnelling: Bool = false, h245Control: [[UInt8]]? = nil) -> H323UserInformation {
        H323UserInformation(h323UuPdu: H323UUPDU(h323MessageBody: body, h245Tunnelling: tunnelling, h245Control: h245Control))
    }

    public static func setupWithFastStart() throws(PERError) -> H323UserInformation {
        pdu(.setup(SetupUUIE(
            protocolIdentifier: h2250, h245Address: ip(192, 168, 1, 10, port: 1730), sourceAddress: aliases, sourceInfo: terminal,
            destinationAddress: [.dialledDigits("0049301234567")], destCallSignalAddress: ip(10, 0, 0, 1, port: 1720),
            activeMC: false, conferenceID: conferenceID, conferenceGoal: .create, callType: .pointToPoint,
            sourceCallSignalAddress: ip(192, 168, 1, 10, port: 1720), callIdentifier: callIdentifier,
            fastStart: [try fastStartChannel().encoded()], mediaWaitForConnect: false, canOverlapSend: false,
            multipleCalls: false, maintainConnection: false)), tunnelling: true)
    }

    public static func callMessages() throws(PERError) -> [(String, Q931MessageType, H323UserInformation)] {
        let gateway = EndpointType(vendor: vendor, gateway: GatewayInfo(), mc: false, undefinedNode: false)
        return [
            ("setup", .setup, try setupWithFastStart()),
            ("callproceeding", .callProceeding, pdu(.callProceeding(CallProceedingUUIE(
                protocolIdentifier: h2250, destinationInfo: gateway, callIdentifier: callIdentifier,
                multipleCalls: false, maintainConnection: false)))),
            ("alerting", .alerting, pdu(.alerting(AlertingUUIE(
                protocolIdentifier: h2250, destinationInfo: terminal, callIdentifier: callIdentifier,
                fastStart: [try fastStartChannel().encoded()], multipleCalls: false, maintainConnection: false)))),
            ("connect", .connect, pdu(.connect(ConnectUUIE(
                protocolIdentifier: h2250, h245Address: ip(10, 0, 0, 1, port: 1730), destinationInfo: terminal,
                conferenceID: conferenceID, callIdentifier: callIdentifier, multipleCalls: false, maintainConnection: false)),
                tunnelling: true)),
            ("facility-tunnel", .facility, pdu(.facility(FacilityUUIE(
                protocolIdentifier: h2250, reason: .undefinedReason, callIdentifier: callIdentifier,
                multipleCalls: false, maintainConnection: false)),
                tunnelling: true, h245Control: [try masterSlaveDetermination().encoded(), try terminalCapabilitySet().encoded()])),
            ("progress", .progress, pdu(.progress(ProgressUUIE(
                protocolIdentifier: h2250, destinationInfo: gateway, callIdentifier: callIdentifier,
                multipleCalls: false, maintainConnection: false)))),
            ("information", .information, pdu(.information(InformationUUIE(protocolIdentifier: h2250, callIdentifier: callIdentifier)))),
            ("notify", .notify, pdu(.notify(NotifyUUIE(protocolIdentifier: h2250, callIdentifier: callIdentifier)))),
            ("status", .status, pdu(.status(StatusUUIE(protocolIdentifier: h2250, callIdentifier: callIdentifier)))),
            ("releasecomplete", .releaseComplete, pdu(.releaseComplete(ReleaseCompleteUUIE(
                protocolIdentifier: h2250, reason: .destinationRejection, callIdentifier: callIdentifier)))),
        ]
    }

    /// A Q.931 message as H.225.0 sends it, with the IEs each message type usually carries.
    public static func q931(_ type: Q931MessageType, _ info: H323UserInformation, callReference: UInt16 = 1) throws(H225Error) -> Q931Message {
        var m = Q931Message(callReference: Q931CallReference(value: callReference, fromDestination: type != .setup && type != .information),
                            messageType: type)
        switch type {
        case .setup:
            m.setBearerCapability(Q931BearerCapability(transferCapability: 8, layer1Protocol: 5))
            m.display = "Alice"
            m.setCallingPartyNumber(Q931PartyNumber(digits: "1001", typeOfNumber: 4, numberingPlan: 1, presentation: 0, screening: 1))
            m.setCalledPartyNumber(Q931PartyNumber(digits: "0049301234567", typeOfNumber: 1))
        case .alerting, .progress:
            m.setProgressIndicator(Q931ProgressIndicator(description: 8, location: .privateLocal))
            m.signal = 1
        case .connect:
            m.display = "Gateway"
            m.setConnectedNumber(Q931PartyNumber(digits: "0049301234567", typeOfNumber: 1, presentation: 0, screening: 3))
        case .information:
            m.keypad = "5"
        case .status:
            m.setCause(Q931Cause(value: 30, location: .user))
            m.callState = 10
        case .releaseComplete:
            m.setCause(Q931Cause(value: Q931Cause.normalCallClearing, location: .publicRemote))
        default:
            break
        }
        try m.setUserInformation(info)
        return m
    }

    /// Every example with the transport it travels on: "ras" (UDP 1719), "q931" (TPKT on
    /// TCP 1720) or "h245" (TPKT on a separate TCP connection).
    public static func wireSamples() throws -> [(name: String, transport: String, bytes: [UInt8])] {
        var out: [(String, String, [UInt8])] = []
        let ras: [(String, RasMessage)] = [
            ("grq", gatekeeperRequest()), ("rrq", registrationRequest()), ("rrq-keepalive", keepAliveRequest()),
            ("rcf", registrationConfirm()), ("arq", admissionRequest()), ("acf", admissionConfirm()),
            ("drq", disengageRequest()), ("urq", unregistrationRequest()),
        ]
        for (name, message) in ras { out.append((name, "ras", try message.encoded())) }
        for (name, type, info) in try callMessages() {
            out.append((name, "q931", try q931(type, info).framed()))
        }
        for (name, message) in h245Messages { out.append((name, "h245", try TPKT.frame(try message.encoded()))) }
        return out
    }
}
