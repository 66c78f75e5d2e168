import Glibc
import Synchronization
import Testing
@testable import Config

/// A clock the test advances by hand.
final class ManualClock: Sendable {
    private let now = Atomic<Int64>(1_800_000_000)
    func advance(_ seconds: Int64) { now.add(seconds, ordering: .relaxed) }
    var read: @Sendable () -> Int64 { { self.now.load(ordering: .relaxed) } }
}

func temporaryDirectory() -> String {
    var template = Array("/tmp/bloo-config-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

func configuration(hostname: String) throws -> Configuration {
    let text = FactoryDefault.text.split(separator: "\n")
        .map { $0.hasPrefix("set system hostname ") ? "set system hostname \(hostname)" : String($0) }
        .joined(separator: "\n")
    return try Configuration(text: text)
}

@Test func emptyStoreRunsTheFactoryDefault() throws {
    let store = try ConfigStore(directory: temporaryDirectory())
    let (running, info) = try store.running()
    #expect(info.sequence == 0)
    #expect(running == FactoryDefault.configuration)
}

@Test func commitsAreKeptWithUserTimeAndComment() throws {
    let clock = ManualClock()
    let directory = temporaryDirectory()
    let store = try ConfigStore(directory: directory, clock: clock.read)
    try store.commit(configuration(hostname: "one"), user: "admin", comment: "first")
    clock.advance(10)
    try store.commit(configuration(hostname: "two"), user: "noc", comment: "second \"try\"")
    let reopened = try ConfigStore(directory: directory)
    #expect(try reopened.running().configuration.hostname == "two")
    let history = try reopened.history()
    #expect(history.map(\.sequence) == [2, 1, 0])
    #expect(history[0].user == "noc")
    #expect(history[0].comment == "second \"try\"")
    #expect(history[0].time == history[1].time + 10)
    #expect(try reopened.rollback(1).hostname == "one")
    #expect(try reopened.rollback(2) == FactoryDefault.configuration)
    #expect(throws: StoreError.self) { try reopened.rollback(3) }
}

@Test func onlyTheLastTwentyCommitsAreKept() throws {
    let store = try ConfigStore(directory: temporaryDirectory())
    for index in 1...25 { try store.commit(configuration(hostname: "h\(index)"), user: "admin") }
    let history = try store.history()
    #expect(history.count == 20)
    #expect(history.first?.sequence == 25)
    #expect(history.last?.sequence == 6)
    #expect(try store.rollback(19).hostname == "h6")
}

@Test func commitConfirmedRevertsAfterTheDeadlineEvenAfterReopening() throws {
    let clock = ManualClock()
    let directory = temporaryDirectory()
    let store = try ConfigStore(directory: directory, clock: clock.read)
    try store.commit(configuration(hostname: "good"), user: "admin")
    let risky = try store.commit(configuration(hostname: "risky"), user: "admin", confirmMinutes: 2)
    #expect(risky.confirmDeadline == clock.read() + 120)
    clock.advance(119)
    #expect(try store.revertIfExpired() == nil)
    #expect(try store.running().configuration.hostname == "risky")
    clock.advance(1)
    // A new process (daemon restart, reboot) sees the persisted deadline.
    let afterReboot = try ConfigStore(directory: directory, clock: clock.read)
    let reverted = try #require(try afterReboot.revertIfExpired())
    #expect(reverted.user == "system")
    #expect(reverted.comment.contains("commit 2 was not confirmed"))
    #expect(try afterReboot.running().configuration.hostname == "good")
    #expect(try afterReboot.pendingConfirm() == nil)
    #expect(try afterReboot.revertIfExpired() == nil)
}

@Test func confirmStopsTheRevert() throws {
    let clock = ManualClock()
    let store = try ConfigStore(directory: temporaryDirectory(), clock: clock.read)
    try store.commit(configuration(hostname: "risky"), user: "admin", confirmMinutes: 1)
    #expect(try store.secondsUntilRevert() == 60)
    try store.confirm(user: "admin")
    clock.advance(3600)
    #expect(try store.revertIfExpired() == nil)
    #expect(try store.running().configuration.hostname == "risky")
    #expect(throws: StoreError.self) { try store.confirm(user: "admin") }
}

@Test func repeatedCommitConfirmedRevertsToTheLastConfirmedConfiguration() throws {
    let clock = ManualClock()
    let store = try ConfigStore(directory: temporaryDirectory(), confirmUnitSeconds: 1, clock: clock.read)
    try store.commit(configuration(hostname: "stable"), user: "admin")
    try store.commit(configuration(hostname: "try1"), user: "admin", confirmMinutes: 5)
    try store.commit(configuration(hostname: "try2"), user: "admin", confirmMinutes: 5)
    clock.advance(5)
    try store.revertIfExpired()
    #expect(try store.running().configuration.hostname == "stable")
}

@Test func leftoverTempFilesAndDamagedCommitsDoNotWin() throws {
    let directory = temporaryDirectory()
    let store = try ConfigStore(directory: directory)
    try store.commit(configuration(hostname: "kept"), user: "admin")
    // What a power cut during the next commit can leave: its half-written temp file.
    let fd = open(directory + "/commits/.0000000002.conf.tmp", O_WRONLY | O_CREAT, 0o600)
    _ = "#@ sequence 2\nset system hostname torn\nset system us".withCString { write(fd, $0, strlen($0)) }
    close(fd)
    #expect(try store.running().configuration.hostname == "kept")
    #expect(try store.history().map(\.sequence) == [1, 0])
    // A damaged newest commit (a disk fault) falls back to the previous one.
    try writeAtomically(path: directory + "/commits/0000000002.conf", contents: "#@ sequence 2\nset system hostname")
    #expect(try store.running().configuration.hostname == "kept")
}

@Test func factoryResetForgetsHistory() throws {
    let store = try ConfigStore(directory: temporaryDirectory())
    try store.commit(configuration(hostname: "custom"), user: "admin")
    try store.factoryReset(user: "admin")
    #expect(try store.running().configuration == FactoryDefault.configuration)
    #expect(try store.history().count == 1)
}
