// The lab gatekeeper's decisions, driven with real RAS messages. The H.235 hashes are
// computed by OpenSSL here and compared with values computed independently by Python's
// hashlib over the oracle's PER bytes (see EndpointTests/H235PasswordTests).
import Endpoint
import H323
import IO
import Testing
@testable import Lab

@Suite struct GatekeeperTests {
    static let gkRAS = EndpointAddress(parsing: "10.0.0.1:1719")!
    static let gkCS = EndpointAddress(parsing: "10.0.0.1:1721")!
    static let now = 1_700_000_000

    static func config(passwords: [String: String]? = nil) -> LabGatekeeperConfig {
        var c = LabGatekeeperConfig(rasAddress: gkRAS, callSignalAddress: gkCS)
        c.h235Passwords = passwords
        c.h235WindowSeconds = 60
        return c
    }

    static func rrq(alias: String, port: UInt16, seq: Int = 1, tokens: [CryptoH323Token]? = nil) -> RasMessage {
        let ras = EndpointAddress(ip: 0xC000_020A, port: port)
        let cs = EndpointAddress(ip: 0xC000_020A, port: port &+ 10_000)
        return .registrationRequest(RegistrationRequest(
            requestSeqNum: seq, protocolIdentifier: EndpointIdentity.h2250Protocol, discoveryComplete: false,
            callSignalAddress: [cs.transportAddress], rasAddress: [ras.transportAddress], terminalType: EndpointIdentity.terminal,
            terminalAlias: [.h323ID(alias)], endpointVendor: EndpointIdentity.vendor, timeToLive: 60, cryptoTokens: tokens,
            keepAlive: false, willSupplyUUIEs: false))
    }

    static func token(alias: String, password: String, at timeStamp: Int) throws -> CryptoH323Token {
        let bytes = try H235PasswordHash.hashedBytes(alias: alias, password: password, timeStamp: timeStamp)
        return H235PasswordHash.cryptoToken(alias: alias, timeStamp: timeStamp, hash: TLSCrypto.md5(bytes))
    }

    static func outcome(_ replies: [(RasMessage, EndpointAddress)]) -> String {
        switch replies.first?.0 {
        case .registrationConfirm?: "RCF"
        case .registrationReject(let rrj)?: "RRJ \(rrj.rejectReason)"
        default: "none"
        }
    }

    @Test func md5MatchesHashlibOverTheOracleBytes() throws {
        // python3 -c 'import hashlib; print(hashlib.md5(bytes.fromhex("6100...")).hexdigest())'
        #expect(TLSCrypto.md5(try H235PasswordHash.hashedBytes(alias: "alice", password: "s3cret", timeStamp: 1_700_000_000))
                == hex("ac6cd9b1a516bc861a91ed9b0e5ae90e"))
        #expect(TLSCrypto.md5(try H235PasswordHash.hashedBytes(alias: "1001", password: "pässwörd-ß", timeStamp: 1_234_567_890))
                == hex("a97bb33231ead1f38a12823527bc95e2"))
    }

    @Test func goodPasswordRegistersWrongOrMissingIsSecurityDenial() throws {
        var gk = GatekeeperCore(config: Self.config(passwords: ["alice": "s3cret", "bob": "b0b-pass"]))
        let from = EndpointAddress(ip: 0xC000_020A, port: 40_000)
        let good = try Self.token(alias: "alice", password: "s3cret", at: Self.now)
        #expect(Self.outcome(gk.handle(Self.rrq(alias: "alice", port: 40_000, tokens: [good]), from: from, now: 1,
                                       wallClockSeconds: Self.now)) == "RCF")
        let wrong = try Self.token(alias: "bob", password: "guess", at: Self.now)
        #expect(Self.outcome(gk.handle(Self.rrq(alias: "bob", port: 40_001, tokens: [wrong]), from: from, now: 1,
                                       wallClockSeconds: Self.now)) == "RRJ securityDenial")
        #expect(gk.lastSecurityRefusal == "wrong password hash for bob")
        #expect(Self.outcome(gk.handle(Self.rrq(alias: "bob", port: 40_001), from: from, now: 1,
                                       wallClockSeconds: Self.now)) == "RRJ securityDenial")
        // A token for one alias does not register another.
        let stolen = try Self.token(alias: "alice", password: "s3cret", at: Self.now + 1)
        #expect(Self.outcome(gk.handle(Self.rrq(alias: "bob", port: 40_001, tokens: [stolen]), from: from, now: 1,
                                       wallClockSeconds: Self.now)) == "RRJ securityDenial")
        let unknown = try Self.token(alias: "mallory", password: "s3cret", at: Self.now)
        #expect(Self.outcome(gk.handle(Self.rrq(alias: "mallory", port: 40_002, tokens: [unknown]), from: from, now: 1,
                                       wallClockSeconds: Self.now)) == "RRJ securityDenial")
        #expect(gk.registrations.count == 1)
    }

    @Test func oldTimestampsAndReplaysAreRefused() throws {
        var gk = GatekeeperCore(config: Self.config(passwords: ["alice": "s3cret"]))
        let from = EndpointAddress(ip: 0xC000_020A, port: 40_000)
        let stale = try Self.token(alias: "alice", password: "s3cret", at: Self.now - 61)
        #expect(Self.outcome(gk.handle(Self.rrq(alias: "alice", port: 40_000, tokens: [stale]), from: from, now: 1,
                                       wallClockSeconds: Self.now)) == "RRJ securityError(H323.SecurityErrors.securityWrongSyncTime)")
        let fresh = try Self.token(alias: "alice", password: "s3cret", at: Self.now)
        let message = Self.rrq(alias: "alice", port: 40_000, tokens: [fresh])
        #expect(Self.outcome(gk.handle(message, from: from, now: 1, wallClockSeconds: Self.now)) == "RCF")
        let replayed = Self.rrq(alias: "alice", port: 40_000, seq: 2, tokens: [fresh])
        #expect(Self.outcome(gk.handle(replayed, from: from, now: 2, wallClockSeconds: Self.now + 5))
                == "RRJ securityError(H323.SecurityErrors.securityReplay)")
        // The same RRQ again from the same endpoint is a retransmission (its RCF was lost): answered.
        #expect(Self.outcome(gk.handle(message, from: from, now: 2, wallClockSeconds: Self.now + 5)) == "RCF")
        // The same token from elsewhere, or in a new request, is a replay.
        let elsewhere = EndpointAddress(ip: 0xC000_020B, port: 40_000)
        #expect(Self.outcome(gk.handle(message, from: elsewhere, now: 2, wallClockSeconds: Self.now + 5))
                == "RRJ securityError(H323.SecurityErrors.securityReplay)")
        // After URQ the same bytes from the same address are a replay, not a retransmission.
        _ = gk.handle(.unregistrationRequest(UnregistrationRequest(requestSeqNum: 9, callSignalAddress: [],
                                                                   endpointIdentifier: "EP1")), from: from, now: 2)
        #expect(Self.outcome(gk.handle(message, from: from, now: 2, wallClockSeconds: Self.now + 5))
                == "RRJ securityError(H323.SecurityErrors.securityReplay)")
        let next = try Self.token(alias: "alice", password: "s3cret", at: Self.now + 1)
        #expect(Self.outcome(gk.handle(Self.rrq(alias: "alice", port: 40_000, tokens: [next]), from: from, now: 3,
                                       wallClockSeconds: Self.now + 5)) == "RCF")
    }

    @Test func withoutAPasswordTableTokensAreNotRequired() {
        var gk = GatekeeperCore(config: Self.config())
        let from = EndpointAddress(ip: 0xC000_020A, port: 40_000)
        #expect(Self.outcome(gk.handle(Self.rrq(alias: "alice", port: 40_000), from: from, now: 1)) == "RCF")
    }

    @Test func passwordFileParsing() throws {
        #expect(try LabGatekeeperConfig.parsePasswords("# subscribers\nalice s3cret\n\nbob  b0b-pass # comment\n")
                == ["alice": "s3cret", "bob": "b0b-pass"])
        #expect(throws: LabConfigError.self) { try LabGatekeeperConfig.parsePasswords("alice") }
        #expect(throws: LabConfigError.self) { try LabGatekeeperConfig.parsePasswords("alice a\nalice b") }
    }

    @Test func manyRegistrationsRouteAndExpireThroughTheIndexes() {
        var gk = GatekeeperCore(config: Self.config())
        for i in 0..<2000 {
            let port = UInt16(20_000 + i)
            let from = EndpointAddress(ip: 0xC000_020A, port: port)
            #expect(Self.outcome(gk.handle(Self.rrq(alias: "user\(i)", port: port), from: from, now: 1)) == "RCF")
        }
        #expect(gk.registrations.count == 2000)
        #expect(gk.route([.h323ID("user1234")]) == EndpointAddress(ip: 0xC000_020A, port: UInt16(20_000 + 1234) &+ 10_000))
        // Another endpoint claiming a registered alias is a duplicate; the same endpoint again keeps its identifier.
        let other = EndpointAddress(ip: 0xC000_020B, port: 1719)
        guard case .registrationReject(let rrj)? = gk.handle(Self.rrq(alias: "user7", port: 1719), from: other, now: 2).first?.0,
              case .duplicateAlias = rrj.rejectReason else {
            Issue.record("duplicate alias accepted")
            return
        }
        // All expire together after the time to live (60 s).
        _ = gk.handle(.gatekeeperRequest(GatekeeperRequest(requestSeqNum: 1, protocolIdentifier: EndpointIdentity.h2250Protocol,
            rasAddress: other.transportAddress, endpointType: EndpointIdentity.terminal)), from: other, now: 61_001)
        #expect(gk.registrations.isEmpty)
        #expect(gk.route([.h323ID("user1234")]) == nil)
    }
}

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
