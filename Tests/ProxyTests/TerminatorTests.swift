import IO
import Testing
@testable import Proxy

@Suite struct SubscriberTableTests {
    @Test func parsesAliasesSecretsAndComments() throws {
        let table = try SubscriberTable(parsing: "# subscribers\nalice  alice-secret\n\n+3221234 hex:00ff10203040506070 # office\n")
        #expect(table.secrets["alice"] == Array("alice-secret".utf8))
        #expect(table.secrets["+3221234"] == [0x00, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70])
    }

    @Test func rejectsBadLinesWithTheirNumber() {
        for (text, reason) in [("alice\n", "expected"), ("a short\n", "shorter than 8"), ("a hex:0g00000000000000\n", "invalid hex"),
                               ("a aaaaaaaaaa\na bbbbbbbbbb\n", "duplicate")] {
            do {
                _ = try SubscriberTable(parsing: text)
                Issue.record("accepted \(text)")
            } catch let error as SubscriberTable.ParseError {
                #expect(error.description.contains(reason))
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
    }
}

@Suite struct ProbeTests {
    @Test func answersAValidProbeWithTheLoad() {
        let request: [UInt8] = [0x42, 0x4c, 0x50, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x39] + [UInt8](repeating: 0, count: 16)
        let reply = request.withUnsafeBytes { ProbeMessage.answer($0, serverTimeMicros: 5, activeCalls: 7, capacity: 1000) }
        #expect(reply?.count == 32)
        #expect(reply.map { Array($0[0..<5]) } == [0x42, 0x4c, 0x50, 1, 2])
        #expect(reply.map { Array($0[8..<16]) } == [0, 0, 0, 0, 0, 0, 0x30, 0x39])
        #expect(reply.map { Array($0[24..<32]) } == [0, 0, 0, 7, 0, 0, 0x03, 0xe8])
    }

    @Test func ignoresShortOrForeignDatagrams() {
        let short: [UInt8] = [0x42, 0x4c, 0x50, 1, 1] + [UInt8](repeating: 0, count: 10)
        let foreign = [UInt8](repeating: 0x42, count: 40)
        for datagram in [short, foreign] {
            #expect(datagram.withUnsafeBytes { ProbeMessage.answer($0, serverTimeMicros: 0, activeCalls: 0, capacity: 0) } == nil)
        }
    }
}

@Suite struct AdmissionTests {
    @Test func perSourceRateAndGlobalCap() {
        var config = TerminatorConfig()
        config.perSourceRate = 2
        config.perSourceBurst = 3
        config.maxConnections = 4
        let shared = TerminatorShared(config: config, subscribers: SubscriberTable(), tls: nil)
        let a: UInt32 = 0x7f00_0001, b: UInt32 = 0x7f00_0002
        let second: UInt64 = 1_000_000_000
        #expect((0..<3).allSatisfy { _ in shared.admit(source: a, now: 0) == .admitted })
        #expect(shared.admit(source: a, now: 0) == .rateLimited)  // burst used up
        #expect(shared.admit(source: a, now: second / 2) == .admitted)  // one token back after 0.5 s at 2/s
        #expect(shared.admit(source: b, now: second) == .overloaded)  // 4 connections held: the cap
        shared.released()
        #expect(shared.admit(source: b, now: second) == .admitted)
        #expect(shared.refusedRateLimited.load(ordering: .relaxed) == 1)
        #expect(shared.refusedOverloaded.load(ordering: .relaxed) == 1)
    }
}
