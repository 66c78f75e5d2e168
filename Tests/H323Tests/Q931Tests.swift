// Q.931 / H.225.0 framing: the tshark-checked Setup sample from ../shared/asn1/samples
// (Vectors/q931-setup.hex), IEs, codeset shifts, unknown IEs, hostile input.
import Foundation
import PER
import H323
import Testing

@Suite struct Q931Tests {
    static func sampleSetup() throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: "q931-setup", withExtension: "hex", subdirectory: "Vectors"))
        let text = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return try OracleJSON.bytes(hex: text)
    }

    @Test func decodesTheSharedSetupSample() throws {
        var reassembler = TPKTReassembler()
        let packets = try reassembler.append(try Self.sampleSetup())
        #expect(packets.count == 1)
        let message = try Q931Message(decoding: try #require(packets.first))
        #expect(message.messageType == .setup)
        #expect(message.callReference == Q931CallReference(value: 1, fromDestination: false, length: 2))
        let bearer = try #require(try message.bearerCapability())
        #expect(bearer.transferCapability == 0 && bearer.transferRate == 16 && bearer.layer1Protocol == 2)
        #expect(try message.calledPartyNumber()?.digits == "1002")
        let info = try message.userInformation()
        guard case .setup(let setup) = info.h323UuPdu.h323MessageBody else {
            Issue.record("not a setup")
            return
        }
        #expect(setup.sourceAddress == [.h323ID("alice")])
        let channels = try setup.fastStartChannels()
        #expect(channels.count == 1)
        #expect(channels.first?.forwardLogicalChannelNumber == 1)
        // Byte-identical re-encoding of the whole TPKT.
        #expect(try message.framed() == (try Self.sampleSetup()))
    }

    @Test func buildsEveryH323MessageTypeAndReadsItBack() throws {
        let types: [Q931MessageType] = [.setup, .callProceeding, .alerting, .connect, .releaseComplete, .facility,
                                        .progress, .information, .notify, .status, .statusEnquiry, .setupAcknowledge]
        for type in types {
            var m = Q931Message(callReference: Q931CallReference(value: 0x1234, fromDestination: type != .setup), messageType: type)
            m.setBearerCapability(Q931BearerCapability(transferCapability: 8, layer1Protocol: 5))
            m.setCause(Q931Cause(value: Q931Cause.userBusy, location: .publicRemote))
            m.callState = 10
            m.display = "Alice"
            m.keypad = "12#"
            m.setProgressIndicator(Q931ProgressIndicator(description: 8, location: .privateLocal))
            m.signal = 1
            m.setCallingPartyNumber(Q931PartyNumber(digits: "4930123", typeOfNumber: 1, numberingPlan: 1, presentation: 1, screening: 3))
            m.setCalledPartyNumber(Q931PartyNumber(digits: "1002", typeOfNumber: 4))
            m.setConnectedNumber(Q931PartyNumber(digits: "1002", presentation: 0, screening: 1))
            let bytes = try m.encoded()
            let back = try Q931Message(decoding: bytes)
            #expect(back == m)
            #expect(back.messageType == type)
            #expect(back.callReference.value == 0x1234)
            #expect(try back.cause() == Q931Cause(value: 17, location: .publicRemote))
            #expect(try back.callingPartyNumber()?.presentation == 1)
            #expect(try back.callingPartyNumber()?.screening == 3)
            #expect(try back.calledPartyNumber()?.typeOfNumber == 4)
            #expect(try back.connectedNumber()?.digits == "1002")
            #expect(back.display == "Alice" && back.keypad == "12#" && back.callState == 10 && back.signal == 1)
            #expect(try back.progressIndicator()?.description == 8)
            #expect(try back.bearerCapability()?.layer1Protocol == 5)
            // IEs in ascending order (Q.931 4.5.1).
            let ids = back.elements.map(\.identifier)
            #expect(ids == ids.sorted())
        }
    }

    @Test func causeWireFormat() throws {
        // Normal call clearing, location public network serving the remote user: 08 02 84 90.
        var m = Q931Message(callReference: Q931CallReference(value: 1), messageType: .releaseComplete)
        m.setCause(Q931Cause(value: Q931Cause.normalCallClearing, location: .publicRemote))
        #expect(try m.encoded() == [0x08, 0x02, 0x00, 0x01, 0x5A, 0x08, 0x02, 0x84, 0x90])
        // With the optional recommendation octet 3a.
        let c = try Q931Cause(contents: [0x02, 0x80, 0x95, 0x01])
        #expect(c.location == 2 && c.recommendation == 0 && c.value == 21 && c.diagnostics == [1])
        #expect(c.contents == [0x02, 0x80, 0x95, 0x01])
    }

    @Test func skipsUnknownElementsAndHandlesCodesetShifts() throws {
        // SETUP; unknown IE 0x7F? no: 0x73 (unknown, codeset 0); locking shift to 6, IE 0x01 in
        // codeset 6; locking shift back is not allowed, so a non-locking shift to 5 applies to
        // one IE; sending complete (single octet); display.
        let bytes: [UInt8] = [0x08, 0x02, 0x80, 0x07, 0x05,
                              0x73, 0x02, 0xAA, 0xBB,
                              0x9D, 0x28, 0x01, 0x41,   // non-locking shift to 5: this display is codeset 5
                              0x28, 0x02, 0x48, 0x49,   // display "HI" in codeset 0
                              0x96, 0x01, 0x01, 0x09,   // locking shift to 6
                              0xA1]                     // sending complete (codeset 6 now)
        let m = try Q931Message(decoding: bytes)
        #expect(m.callReference == Q931CallReference(value: 7, fromDestination: true))
        #expect(m.elements.count == 5)
        #expect(m.elements[0] == Q931InformationElement(codeset: 0, identifier: 0x73, contents: [0xAA, 0xBB]))
        #expect(m.elements[1] == Q931InformationElement(codeset: 5, identifier: 0x28, contents: [0x41]))
        #expect(m.display == "HI")
        #expect(m.elements[3].codeset == 6 && m.elements[3].identifier == 0x01)
        #expect(m.elements[4] == Q931InformationElement(codeset: 6, identifier: 0xA1))
        // Re-encoding keeps every IE and its codeset (shifts are written as non-locking).
        let again = try Q931Message(decoding: try m.encoded())
        #expect(again == m)
    }

    @Test func hostileInputGivesErrorsNotTraps() throws {
        #expect(throws: Q931Error.truncated("header")) { try Q931Message(decoding: [0x08]) }
        #expect(throws: Q931Error.badProtocolDiscriminator(0x09)) { try Q931Message(decoding: [0x09, 0x00, 0x05]) }
        #expect(throws: Q931Error.badCallReferenceLength(15)) { try Q931Message(decoding: [0x08, 0x0F, 0x05]) }
        #expect(throws: Q931Error.truncated("call reference")) { try Q931Message(decoding: [0x08, 0x02, 0x00]) }
        #expect(throws: Q931Error.truncated("IE 0x28")) { try Q931Message(decoding: [0x08, 0x00, 0x05, 0x28, 0x09, 0x41]) }
        #expect(throws: Q931Error.truncated("IE 0x7e")) { try Q931Message(decoding: [0x08, 0x00, 0x05, 0x7E, 0xFF, 0xFF, 0x05]) }
        #expect(throws: Q931Error.truncated("length of IE 0x7e")) { try Q931Message(decoding: [0x08, 0x00, 0x05, 0x7E, 0x00]) }
        let many = [UInt8]([0x08, 0x00, 0x05]) + [UInt8](repeating: 0xA1, count: 100)
        #expect(throws: Q931Error.tooManyElements(64)) { try Q931Message(decoding: many) }
        #expect(throws: Q931Error.badElement("cause of 1 octets")) { try Q931Cause(contents: [0x80]) }
        // A User-user IE that is not H.225.0.
        var m = Q931Message(callReference: Q931CallReference(value: 1), messageType: .setup)
        m.setElement(Q931IE.userUser, [0x04, 0x00])
        #expect(throws: H225Error.badUserUserProtocol(4)) { try m.userInformation() }
        m.setElement(Q931IE.userUser, nil)
        #expect(throws: H225Error.noUserUser) { try m.userInformation() }
    }
}

@Suite struct TPKTTests {
    @Test func reassemblesAcrossArbitraryChunks() throws {
        let payloads: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 0x55, count: 1000), [9]]
        var stream: [UInt8] = []
        for p in payloads { stream += try TPKT.frame(p) }
        for chunkSize in [1, 2, 3, 5, 7, 64, stream.count] {
            var reassembler = TPKTReassembler()
            var got: [[UInt8]] = []
            var i = 0
            while i < stream.count {
                let end = min(i + chunkSize, stream.count)
                got += try reassembler.append(stream[i..<end])
                i = end
            }
            #expect(got == payloads, "chunk size \(chunkSize)")
            #expect(reassembler.pendingCount == 0)
        }
    }

    @Test func rejectsHostileStreams() throws {
        var r = TPKTReassembler(maxPayload: 100)
        #expect(throws: TPKTError.badVersion(4)) { try r.append([4, 0, 0, 8]) }
        r = TPKTReassembler(maxPayload: 100)
        #expect(throws: TPKTError.badLength(3)) { try r.append([3, 0, 0, 3]) }
        r = TPKTReassembler(maxPayload: 100)
        #expect(throws: TPKTError.tooLarge(0xFFFF)) { try r.append([3, 0, 0xFF, 0xFF]) }
        // Memory stays bounded by one packet while it is incomplete.
        r = TPKTReassembler(maxPayload: 100)
        #expect(try r.append([3, 0, 0, 104] + [UInt8](repeating: 0, count: 50)).isEmpty)
        #expect(r.pendingCount == 54)
        #expect(throws: TPKTError.tooLarge(65540)) { try TPKT.frame([UInt8](repeating: 0, count: 65536)) }
    }
}
