// Real gatekeepers send extension additions and CHOICE alternatives we may not model (later
// H.225.0 versions, H.460 features). A decoder that knows an older version of a type must
// skip them, keep them opaque, and write them back unchanged.
import Foundation
import PER
import H323
import Testing

@Suite struct UnknownExtensionTests {
    /// The H.323 schema with one SEQUENCE or CHOICE cut back to its first `keep` additions,
    /// as an older implementation would know it.
    static func olderSchema(_ name: String, keepAdditions keep: Int) throws -> PERSchema {
        let schema = H323Schema.schema
        let index = try #require(schema.index(of: name))
        var types = schema.types
        switch types[index] {
        case .sequence(let s):
            types[index] = .sequence(PERSequenceType(s.name, root: s.root, additions: Array((s.additions ?? []).prefix(keep))))
        case .choice(let c):
            types[index] = .choice(PERChoiceType(c.name, root: c.root, additions: Array((c.additions ?? []).prefix(keep))))
        default:
            Issue.record("\(name) is not constructed")
        }
        return PERSchema(names: schema.names, types: types)
    }

    @Test func unknownSequenceAdditionsAreSkippedAndKept() throws {
        // The GRQ vector carries featureSet and genericData (H.460), additions 9 and 10.
        let vector = try #require(Vector.named("grq"))
        let older = PERCodec(schema: try Self.olderSchema("H323-MESSAGES.GatekeeperRequest", keepAdditions: 2))
        let type = PERType.reference(try #require(H323Schema.schema.index(of: "H323-MESSAGES.RasMessage")))
        let value = try older.decode(type, from: vector.bytes)
        guard case .choice(0, .sequence(let grq)) = value else {
            Issue.record("not a GRQ: \(value)")
            return
        }
        // featureSet and genericData (additions 8 and 9) are unknown here and kept opaque.
        #expect(grq.unknownAdditions.filter { $0.encoding != nil }.map(\.position) == [8, 9])
        // The root and the known additions are still decoded.
        let alias = try #require(H323Schema.schema.index(of: "H323-MESSAGES.GatekeeperRequest"))
        guard case .sequence(let t) = H323Schema.schema.types[alias] else { return }
        #expect(grq[t.index(of: "requestSeqNum") ?? -1] == .integer(1))
        // Re-encoding with the older schema writes the same bytes.
        #expect(try older.encode(value, as: type) == vector.bytes)
        // And the full schema reads the opaque additions as H.460 features.
        guard case .gatekeeperRequest(let full) = try RasMessage(decoding: try older.encode(value, as: type)) else { return }
        #expect(full.featureSet?.supportedFeatures?.first?.id == .standard(18))
        #expect(full.genericData?.first?.parameters?.count == 2)
    }

    @Test func unknownChoiceAlternativeIsKeptOpaque() throws {
        let vector = try #require(Vector.named("rip"))   // requestInProgress: a RAS extension alternative
        let older = PERCodec(schema: try Self.olderSchema("H323-MESSAGES.RasMessage", keepAdditions: 0))
        let type = PERType.reference(try #require(H323Schema.schema.index(of: "H323-MESSAGES.RasMessage")))
        let value = try older.decode(type, from: vector.bytes)
        guard case .choice(let index, .openType(let encoding)) = value else {
            Issue.record("expected an opaque alternative, got \(value)")
            return
        }
        #expect(index == 25)
        #expect(try older.encode(value, as: type) == vector.bytes)
        // The typed API carries an alternative it does not know as unknownExtension.
        let unknown = RasMessage.unknownExtension(90, [0x12, 0x34])
        let bytes = try unknown.encoded()
        #expect(try RasMessage(decoding: bytes) == unknown)
        #expect(!encoding.isEmpty)
    }

    @Test func unknownEnumeratedExtensionValueIsKept() throws {
        // ScreeningIndicator ::= ENUMERATED {4 values, ...}: value index 7 from a later version.
        let message = H323UserInformation(h323UuPdu: H323UUPDU(
            h323MessageBody: .alerting(AlertingUUIE(
                protocolIdentifier: H323Examples.h2250, destinationInfo: H323Examples.terminal,
                callIdentifier: H323Examples.callIdentifier, multipleCalls: false, maintainConnection: false,
                screeningIndicator: .unknownExtension(7))),
            h245Tunnelling: false))
        let back = try H323UserInformation(decoding: try message.encoded())
        #expect(back == message)
    }
}
