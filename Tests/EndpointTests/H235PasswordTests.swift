// H.235.1 pwdHash: the bytes hashed are checked against the independent PER oracle
// (/work/shared/asn1/per_oracle.py encode ClearToken ...), the MD5 values in the Lab
// tests against Python's hashlib over the same bytes.
import H323
import PER
import Testing
@testable import Endpoint

func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var i = text.startIndex
    while i < text.endIndex {
        let j = text.index(i, offsetBy: 2)
        bytes.append(UInt8(text[i..<j], radix: 16)!)
        i = j
    }
    return bytes
}

@Suite struct H235PasswordTests {
    @Test func clearTokenBytesMatchTheOracle() throws {
        // per_oracle.py encode ClearToken '{"tokenOID":"0.0","timeStamp":1700000000,
        //   "password":"s3cret\u0000","generalID":"alice\u0000"}'
        #expect(try H235PasswordHash.hashedBytes(alias: "alice", password: "s3cret", timeStamp: 1_700_000_000)
                == hex("61000100c06553f0ff0c00730033006300720065007400000a0061006c0069006300650000"))
        // Non-ASCII BMP characters are two-byte BMPString characters.
        #expect(try H235PasswordHash.hashedBytes(alias: "1001", password: "pässwörd-ß", timeStamp: 1_234_567_890)
                == hex("61000100c0499602d114007000e400730073007700f600720064002d00df00000800310030003000310000"))
    }

    @Test func textOutsideTheBMPIsRefused() {
        #expect(throws: H235PasswordHash.Failure.notBMPText) { try H235PasswordHash.hashedBytes(alias: "alice", password: "🔑secret", timeStamp: 1) }
        #expect(throws: H235PasswordHash.Failure.notBMPText) { try H235PasswordHash.hashedBytes(alias: "", password: "secret", timeStamp: 1) }
        #expect(H235PasswordHash.password(fromSecret: [0xFF, 0xFE, 0x41]) == nil)
        #expect(H235PasswordHash.password(fromSecret: Array("alice-secret".utf8)) == "alice-secret")
    }

    @Test func theTokenSurvivesTheRRQEncodingAndIsFoundAgain() throws {
        let hash = Array(UInt8(0)..<16)
        let token = H235PasswordHash.cryptoToken(alias: "alice", timeStamp: 1_700_000_000, hash: hash)
        let rrq = RasMessage.registrationRequest(RegistrationRequest(
            requestSeqNum: 1, protocolIdentifier: EndpointIdentity.h2250Protocol, discoveryComplete: false,
            callSignalAddress: [], rasAddress: [], terminalType: EndpointIdentity.terminal, terminalAlias: [.h323ID("alice")],
            endpointVendor: EndpointIdentity.vendor, cryptoTokens: [token], keepAlive: false, willSupplyUUIEs: false))
        guard case .registrationRequest(let decoded) = try RasMessage(decoding: try rrq.encoded()) else {
            Issue.record("not an RRQ")
            return
        }
        #expect(H235PasswordHash.presented(in: decoded.cryptoTokens)
                == H235PasswordHash.Presented(alias: "alice", timeStamp: 1_700_000_000, hash: hash))
        // A token with another algorithm is not taken for an MD5 password hash.
        let sha1 = CryptoH323Token.cryptoEPPwdHash(.init(alias: .h323ID("alice"), timeStamp: 1, token: HASHED(
            algorithmOID: PERObjectIdentifier([1, 3, 14, 3, 2, 26]), paramS: H235Params(), hash: PERBitString(bytes: hash, count: 128))))
        #expect(H235PasswordHash.presented(in: [sha1]) == nil)
    }

    @Test func timeStampsNeverRepeat() {
        var stamps = H235TimeStamps()
        #expect(stamps.next(nowSeconds: 100) == 100)
        #expect(stamps.next(nowSeconds: 100) == 101)
        #expect(stamps.next(nowSeconds: 99) == 102)
        #expect(stamps.next(nowSeconds: 200) == 200)
    }

    @Test func rejectReasonsKeepTheirChoiceIndexForTheTunnel() {
        #expect(RegistrationRejectReason.securityDenial.index == 11)
        #expect(RegistrationRejectReason.securityError(.securityReplay).index == 17)
        #expect(RegistrationRejectReason.securityDenial.displayText.contains("refused the credentials"))
    }

    @Test func tunnelDTMFIsTheASCIICodeOfTheDigit() {
        // docs/tunnel-protocol.md §3: DTMF carries ASCII 0-9 * # A-D, not RFC 4733 event numbers.
        for c in "0123456789*#ABCD" {
            #expect(DTMF.tunnelByte(c) == c.asciiValue)
            #expect(DTMF.character(tunnelByte: c.asciiValue!) == c)
        }
        #expect(DTMF.tunnelByte("a") == UInt8(ascii: "A"))
        #expect(DTMF.tunnelByte("x") == nil)
        #expect(DTMF.character(tunnelByte: 0) == nil && DTMF.character(tunnelByte: 11) == nil)
        #expect(DTMF.character(tunnelByte: UInt8(ascii: "E")) == nil)
    }
}
