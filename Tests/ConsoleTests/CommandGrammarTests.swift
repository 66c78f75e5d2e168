import Config
import Testing
@testable import Console

@Test func uniqueAbbreviationsExpand() throws {
    let parsed = try CommandGrammar.parse(["sh", "int"], mode: .operational)
    #expect(parsed.action == .showInterfaces)
    #expect(parsed.keywords == ["show", "interfaces"])
    #expect(try CommandGrammar.parse(["sh", "conf", "hist"], mode: .operational).action == .showConfigurationHistory)
    #expect(try CommandGrammar.parse(["commi", "conf", "5", "comm", "try it"], mode: .configure).values
            == ["confirmed": "5", "comment": "try it"])
}

@Test func errorsNameTheCommandAndWhatWasExpected() {
    #expect(throws: CommandError(command: "com", reason: "'com' is ambiguous: could be compare, commit")) {
        try CommandGrammar.parse(["com"], mode: .configure)
    }
    #expect(throws: CommandError(command: "show", reason: "'re' is ambiguous: could be registrations, relay")) {
        try CommandGrammar.parse(["show", "re"], mode: .operational)
    }
    #expect(throws: CommandError(command: "commit confirmed", reason: "'0': expected a number in 1-1440")) {
        try CommandGrammar.parse(["commit", "confirmed", "0"], mode: .configure)
    }
    #expect(throws: CommandError(command: "set", reason: "unknown command: expected one of: show, configure, ping, reboot, factory-reset, exit, logout")) {
        try CommandGrammar.parse(["set", "system"], mode: .operational)
    }
    #expect(throws: CommandError(command: "show", reason: "incomplete: expected one of: version, system, interfaces, routes, tunnels, registrations, calls, relay, cdr, log, configuration, update")) {
        try CommandGrammar.parse(["show"], mode: .operational)
    }
}

@Test func rollbackNumberIsOptional() throws {
    #expect(try CommandGrammar.parse(["rollback"], mode: .configure).values == [:])
    #expect(try CommandGrammar.parse(["rollback", "3"], mode: .configure).values == ["rollback": "3"])
}

@Test func setTakesTheRestAsAConfigurationPath() throws {
    let parsed = try CommandGrammar.parse(["set", "sys", "host", "x"], mode: .configure)
    #expect(parsed.action == .set)
    #expect(parsed.path == ["sys", "host", "x"])
}

@Test func helpListsWhatFitsAtEveryPoint() {
    let tree = try! ConfigTree(parsing: "set interfaces eth0 mtu 1500\nset interfaces eth1 mtu 1500\n")
    let root = CommandGrammar.help(for: "", mode: .operational, candidate: tree).items.map(\.word)
    #expect(root.contains("show") && root.contains("configure"))
    let show = CommandGrammar.help(for: "show re", mode: .operational, candidate: tree)
    #expect(show.partial == "re")
    #expect(show.items.map(\.word) == ["registrations", "relay"])
    let interfaces = CommandGrammar.help(for: "set interfaces ", mode: .configure, candidate: tree).items.map(\.word)
    #expect(interfaces == ["eth0", "eth1", "<interface>"])
    let level = CommandGrammar.help(for: "set sys logging level ", mode: .configure, candidate: tree).items.map(\.word)
    #expect(level == ConfigSchema.logLevels)
    let commit = CommandGrammar.help(for: "commit ", mode: .configure, candidate: tree).items.map(\.word)
    #expect(commit == ["confirmed", "comment", "<cr>"])
    let minutes = CommandGrammar.help(for: "commit confirmed ", mode: .configure, candidate: tree).items.map(\.word)
    #expect(minutes == ["<1-1440>"])
    let deleting = CommandGrammar.help(for: "delete interfaces eth0 ", mode: .configure, candidate: tree).items.map(\.word)
    #expect(deleting.contains("mtu") && deleting.contains("<cr>"))
    #expect(CommandGrammar.help(for: "show bogus ", mode: .operational, candidate: tree).items.isEmpty)
}
