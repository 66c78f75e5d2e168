// The typed API as the endpoint code will use it: build messages in Swift, compare with the
// oracle's bytes, and read the interesting fields back.
import Foundation
import PER
import H323
import Testing

@Suite struct TypedAPITests {
    static let vendor = VendorIdentifier(vendor: H221NonStandard(t35CountryCode: 181, t35Extension: 0, manufacturerCode: 21324),
                                         productId: Array("bloophone".utf8), versionId: Array("1.0".utf8))
    static let endpointType = EndpointType(vendor: vendor, terminal: TerminalInfo(), mc: false, undefinedNode: false)
    static let h2250 = PERObjectIdentifier("0.0.8.2250.0.7")!

    @Test func lightweightKeepAliveRRQMatchesTheOracle() throws {
        let rrq = RegistrationRequest(
            requestSeqNum: 3, protocolIdentifier: Self.h2250, discoveryComplete: false, callSignalAddress: [],
            rasAddress: [], terminalType: Self.endpointType, gatekeeperIdentifier: "GK1", endpointVendor: Self.vendor,
            timeToLive: 300, keepAlive: true, endpointIdentifier: "EP0001", willSupplyUUIEs: false, maintainConnection: true)
        let message = RasMessage.registrationRequest(rrq)
        let vector = try #require(Vector.named("rrq-keepalive"))
        #expect(try message.encoded() == vector.bytes)
        guard case .registrationRequest(let back) = try RasMessage(decoding: vector.bytes) else {
            Issue.record("not an RRQ")
            return
        }
        #expect(back.keepAlive == true)
        #expect(back.endpointIdentifier == "EP0001")
        #expect(back.timeToLive == 300)
    }

    @Test func tokensAndPasswordHashAreTyped() throws {
        let vector = try #require(Vector.named("rrq"))
        guard case .registrationRequest(let rrq) = try RasMessage(decoding: vector.bytes) else {
            Issue.record("not an RRQ")
            return
        }
        let token = try #require(rrq.tokens?.first)
        #expect(token.tokenOID.description == "0.0.8.235.0.2.5")
        #expect(token.timeStamp == 1_700_000_000)
        #expect(token.generalID == "GK1")
        guard case .cryptoEPPwdHash(let hash) = try #require(rrq.cryptoTokens?.first) else {
            Issue.record("not cryptoEPPwdHash")
            return
        }
        #expect(hash.alias == .h323ID("alice"))
        #expect(hash.token.algorithmOID.description == "1.2.840.113549.2.5")
        #expect(hash.token.hash.count == 128)
        // H.460 genericData and featureSet are decoded, not dropped.
        #expect(rrq.featureSet?.supportedFeatures?.count == 2)
        #expect(rrq.genericData?.first?.id == .standard(19))
    }

    @Test func h245MessagesAreTyped() throws {
        let tcsVector = try #require(Vector.named("tcs"))
        guard case .request(.terminalCapabilitySet(let tcs)) = try MultimediaSystemControlMessage(decoding: tcsVector.bytes) else {
            Issue.record("not a TCS")
            return
        }
        let caps = tcs.capabilityTable?.compactMap(\.capability) ?? []
        #expect(caps.contains(.receiveAudioCapability(.g711Alaw64k(20))))
        #expect(caps.contains(.receiveAudioCapability(.g729AnnexA(2))))
        #expect(caps.contains(.receiveRTPAudioTelephonyEventCapability(
            AudioTelephonyEventCapability(dynamicRTPPayloadType: 101, audioTelephoneEvent: "0-16"))))
        let msd = MultimediaSystemControlMessage.request(.masterSlaveDetermination(
            MasterSlaveDetermination(terminalType: 50, statusDeterminationNumber: 12345)))
        #expect(try msd.encoded() == (try #require(Vector.named("msd"))).bytes)
        let uii = MultimediaSystemControlMessage.indication(.userInput(.alphanumeric("5")))
        #expect(try uii.encoded() == (try #require(Vector.named("uii-alphanumeric"))).bytes)
    }
}
