import Testing
@testable import Log

@Suite struct LogFormatTests {
    @Test func lineHasTimeLevelSubsystemEventAndFields() {
        let line = LogFormat.line(time: "T", level: .warning, subsystem: "relay", event: "port pool low",
                                  fields: ["free": "3", "range": "30000-30010"])
        #expect(line == "T warning relay: port pool low free=3 range=30000-30010")
    }

    @Test func valuesWithSpacesOrQuotesAreQuoted() {
        #expect(LogFormat.quotedIfNeeded("a b") == "\"a b\"")
        #expect(LogFormat.quotedIfNeeded("") == "\"\"")
        #expect(LogFormat.quotedIfNeeded("say \"hi\"") == "\"say \\\"hi\\\"\"")
        #expect(LogFormat.quotedIfNeeded("k=v") == "\"k=v\"")
        #expect(LogFormat.quotedIfNeeded("plain") == "plain")
    }

    @Test func hostileValueCannotForgeASecondLine() {
        let line = LogFormat.line(time: "T", level: .info, subsystem: "tunnel", event: "hello",
                                  fields: ["alias": "bob\nT critical system: root shell\u{1b}[2J"])
        #expect(!line.contains("\n"))
        #expect(!line.contains("\u{1b}"))
        #expect(line.hasSuffix("alias=\"bob\\nT critical system: root shell\\x1b[2J\""))
    }

    @Test func timestampIsIso8601Utc() {
        let stamp = LogFormat.timestamp()
        #expect(stamp.count == 24)
        #expect(stamp.hasSuffix("Z"))
        #expect(Array(stamp)[10] == "T")
    }

    @Test func levelsOrderBySeverityAndParseByName() {
        #expect(LogLevel.debug < LogLevel.info)
        #expect(LogLevel.error > LogLevel.warning)
        #expect(LogLevel(name: "notice") == .notice)
        #expect(LogLevel(name: "loud") == nil)
    }
}
