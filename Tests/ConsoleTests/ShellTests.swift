import Config
import Glibc
import Testing
@testable import Console

// The shell against the real configuration store in a temporary directory: bytes in as a
// terminal would send them, text out.

private func temporaryDirectory() -> String {
    var template = Array("/tmp/bloo-shell-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

private final class Session {
    let shell: Shell
    let store: ConfigStore
    var now: Int64 = 1_000
    var screen = ""

    init(login: Bool = true, confirmUnitSeconds: Int64 = 60) throws {
        store = try ConfigStore(directory: temporaryDirectory(), confirmUnitSeconds: confirmUnitSeconds)
        var settings = ShellSettings(requireLogin: login, presetUser: "admin", presetClass: .admin)
        settings.failureDelaysSeconds = [2]
        shell = Shell(backend: LocalBackend(store: store, rebootCommand: ["true"]),
                      capabilities: TerminalCapabilities(ansi: false, height: 0), settings: settings)
        shell.start(now: now)
        drain()
    }

    @discardableResult
    func type(_ text: String) -> String {
        shell.receive(Array(text.utf8), now: now)
        return drain()
    }

    func wait(milliseconds: Int64) {
        now += milliseconds
        shell.tick(now: now)
        drain()
    }

    @discardableResult
    func drain() -> String {
        let text = String(decoding: shell.takeOutput(), as: UTF8.self)
        screen += text
        return text
    }
}

@Test func loginChecksTheHashAndDelaysFailures() throws {
    let session = try Session()
    #expect(session.screen.contains("bloo login: "))
    session.type("admin\r")
    session.type("guess\r")
    #expect(session.screen.contains("Login incorrect"))
    // During the delay typed input is dropped and no prompt appears.
    #expect(session.type("admin\r") == "")
    session.wait(milliseconds: 2_100)
    #expect(session.screen.hasSuffix("bloo login: "))
    session.type("admin\r")
    session.type("bloophone\r")
    #expect(session.screen.hasSuffix("admin@bloo> "))
    #expect(!session.screen.contains("bloophone"))
}

@Test func threeFailuresEndTheSession() throws {
    let session = try Session()
    for _ in 0..<3 {
        session.type("root\r")
        session.type("toor\r")
        session.wait(milliseconds: 2_100)
    }
    #expect(session.shell.isFinished)
    #expect(session.screen.contains("too many failed logins"))
}

@Test func commitRollbackAndCompareThroughTheStore() throws {
    let session = try Session(login: false)
    session.type("configure\r")
    session.type("set system hostname alpha\r")
    #expect(session.type("commit comment first\r").contains("commit complete"))
    #expect(try session.store.running().configuration.hostname == "alpha")
    session.type("set system hostname beta\r")
    session.type("commit\r")
    session.type("rollback 1\r")
    let compare = session.type("compare\r")
    #expect(compare.contains("- set system hostname beta"))
    #expect(compare.contains("+ set system hostname alpha"))
    session.type("commit\r")
    #expect(try session.store.running().configuration.hostname == "alpha")
    #expect(try session.store.history().map(\.sequence) == [3, 2, 1, 0])
}

@Test func invalidCandidateIsNotCommitted() throws {
    let session = try Session(login: false)
    session.type("configure\r")
    session.type("delete system user\r")
    let out = session.type("commit\r")
    #expect(out.contains("error: commit: the candidate is not valid; nothing was changed"))
    #expect(out.contains("no user of class admin"))
    #expect(try session.store.running().info.sequence == 0)
}

@Test func commitConfirmedIsAnnouncedAndReverted() throws {
    let session = try Session(login: false, confirmUnitSeconds: 1)
    session.type("configure\r")
    session.type("set system hostname risky\r")
    session.type("commit confirmed 1\r")
    #expect(try session.store.pendingConfirm() != nil)
    sleep(2)  // the store's deadline is wall-clock seconds
    session.wait(milliseconds: 1_500)
    #expect(session.screen.contains("automatic rollback: commit 1 was not confirmed"))
    #expect(try session.store.running().configuration.hostname == "bloo")
    // The candidate was made from the reverted commit: committing it is refused.
    #expect(session.type("commit\r").contains("the running configuration changed"))
}

@Test func anotherSessionsCommitMakesTheCandidateStale() throws {
    let session = try Session(login: false)
    session.type("configure\r")
    session.type("set system hostname mine\r")
    try session.store.commit(FactoryDefault.configuration, user: "other")
    #expect(session.type("commit\r").contains("error: commit: the running configuration changed"))
}

@Test func operatorsCannotConfigureOrReboot() throws {
    let store = try ConfigStore(directory: temporaryDirectory())
    let shell = Shell(backend: LocalBackend(store: store, rebootCommand: ["false"]),
                      capabilities: TerminalCapabilities(ansi: false, height: 0),
                      settings: ShellSettings(requireLogin: false, presetUser: "noc", presetClass: .operator))
    let configure = shell.runBatch(["configure"])
    #expect(!configure.success)
    let reboot = shell.runBatch(["reboot"])
    #expect(!reboot.success && reboot.output.contains("class operator may not"))
    let version = shell.runBatch(["show", "version"])
    #expect(version.success && version.output.hasPrefix("bloo "))
}

/// Polls the running program's output like the terminal driver, until `done` or 10 s.
private func pump(_ session: Session, until done: () -> Bool) {
    var waited = 0
    while !done(), waited < 10_000, let fd = session.shell.jobDescriptor {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&ready, 1, 100)
        waited += 100
        session.shell.jobReadable(now: session.now)
        session.drain()
    }
}

@Test func pingShowsEachReplyAsItArrivesAndCtrlCStopsIt() throws {
    guard access("/usr/bin/ping", X_OK) == 0 || access("/bin/ping", X_OK) == 0 else {
        Issue.record("ping is not installed (scripts/deps.sh installs iputils-ping)")
        return
    }
    let session = try Session(login: false)
    session.type("ping 127.0.0.1 count 3\r")
    #expect(session.shell.jobDescriptor != nil)
    // The first reply is on the screen while the program still runs (no prompt yet).
    pump(session) { session.screen.contains("icmp_seq=1 ") }
    #expect(session.screen.contains("icmp_seq=1 "))
    #expect(!session.screen.contains("icmp_seq=3 ") && session.shell.jobDescriptor != nil)
    #expect(!session.screen.hasSuffix("admin@bloo> "))
    // Keys other than ^C are dropped while it runs.
    #expect(session.type("show version\r") == "")
    pump(session) { session.shell.jobDescriptor == nil }
    #expect(session.screen.contains("3 packets transmitted, 3 received"))
    #expect(session.screen.hasSuffix("admin@bloo> "))

    session.type("ping 127.0.0.1 count 50\r")
    pump(session) { session.screen.contains("icmp_seq=1 ") }
    session.type("\u{03}")
    pump(session) { session.shell.jobDescriptor == nil }
    #expect(session.shell.jobDescriptor == nil)
    #expect(session.screen.contains("^C") && session.screen.contains("127.0.0.1 ping statistics"))
    #expect(!session.screen.contains("icmp_seq=10 "))
    #expect(!session.screen.contains("error: ping"))
    #expect(session.screen.hasSuffix("admin@bloo> "))
}
