import Config
import Control
import CSystem
import Glibc
import Log

// What the shell asks of the appliance. The real implementation talks to the daemon over
// the control socket; when the daemon is not running (first boot gone wrong, a field tech
// repairing the box) the shell works on the configuration store directly, so the console
// can always fix a configuration. Both write through the same locked, atomic store.

public struct BackendError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public protocol ManagementBackend: AnyObject {
    /// One line for the banner and `show system`: how the shell reaches the appliance.
    var connection: String { get }
    /// Status text for `show <topic>` (version, system, interfaces, routes, calls, ...).
    func show(_ topic: String) throws(BackendError) -> String
    /// The running configuration and the commit sequence it came from.
    func running() throws(BackendError) -> (configuration: Configuration, sequence: Int)
    /// Kept commits, newest first (index = the N of `rollback N`).
    func history() throws(BackendError) -> [CommitInfo]
    /// The configuration of `rollback N`.
    func rollback(_ index: Int) throws(BackendError) -> Configuration
    /// Applies `configuration`; returns what to tell the user.
    func commit(_ configuration: Configuration, user: String, comment: String, confirmMinutes: Int?) throws(BackendError) -> String
    func confirm(user: String) throws(BackendError) -> String
    func reboot(user: String) throws(BackendError) -> String
    func factoryReset(user: String) throws(BackendError) -> String
    /// Starts ping; the shell shows its output line by line as it arrives, ^C interrupts it.
    func ping(_ address: String, count: Int) throws(BackendError) -> RunningProgram
    /// Messages for every open session since the last call (automatic reverts). Called
    /// about once a second; in local mode it is also what performs an expired revert.
    func announcements() -> [String]
}

public enum Firmware {
    public static var version: String { String(cString: bloo_build_version()) }
    public static var line: String {
        "bloo \(version) (revision \(String(cString: bloo_build_revision())), built \(String(cString: bloo_build_date())))"
    }
}

/// Works on the configuration store in a directory, without a daemon.
public final class LocalBackend: ManagementBackend {
    public let store: ConfigStore
    /// argv of the program that reboots the box (tests point it at a harmless program).
    let rebootCommand: [String]
    private var lastSequence: Int?
    private let log = Logger(subsystem: "console")

    private var pending: [String] = []

    /// Opening the store is when a `commit confirmed` whose deadline passed while nobody
    /// was running (a crash, a reboot) is reverted; the revert is announced by the first
    /// `announcements()` call.
    public init(store: ConfigStore, rebootCommand: [String] = ["/sbin/reboot"]) {
        self.store = store
        self.rebootCommand = rebootCommand
        pending = revertIfExpired()
        lastSequence = try? store.running().info.sequence
    }

    private func revertIfExpired() -> [String] {
        do {
            guard let reverted = try store.revertIfExpired() else { return [] }
            lastSequence = reverted.sequence
            return ["*** \(reverted.comment): running configuration restored as commit \(reverted.sequence) ***"]
        } catch {
            log.error("console.store", ["error": error.message])
            return []
        }
    }

    public var connection: String { "configuration store \(store.directory) (daemon not running)" }

    public func show(_ topic: String) throws(BackendError) -> String {
        switch topic {
        case "version": return Firmware.line + "\n"
        case "system": return SystemFacts.system(hostname: (try? running().configuration.hostname) ?? "?") + "mode: \(connection)\n"
        case "interfaces": return SystemFacts.interfaces()
        case "routes": return SystemFacts.routes()
        default:
            throw BackendError("the daemon is not running: no \(topic) to show")
        }
    }

    public func running() throws(BackendError) -> (configuration: Configuration, sequence: Int) {
        do {
            let (configuration, info) = try store.running()
            return (configuration, info.sequence)
        } catch { throw BackendError(error.message) }
    }

    public func history() throws(BackendError) -> [CommitInfo] {
        do { return try store.history() } catch { throw BackendError(error.message) }
    }

    public func rollback(_ index: Int) throws(BackendError) -> Configuration {
        do { return try store.rollback(index) } catch { throw BackendError(error.message) }
    }

    public func commit(_ configuration: Configuration, user: String, comment: String, confirmMinutes: Int?) throws(BackendError) -> String {
        do {
            let info = try store.commit(configuration, user: user, comment: comment, confirmMinutes: confirmMinutes)
            lastSequence = info.sequence
            var text = "commit \(info.sequence) stored; the daemon is not running: it applies this configuration when it starts\n"
            if let deadline = info.confirmDeadline {
                text += "reverts to commit \(info.revertTo ?? 0) in \(deadline - Int64(time(nil))) seconds unless 'confirm' is entered\n"
            }
            return text
        } catch { throw BackendError(error.message) }
    }

    public func confirm(user: String) throws(BackendError) -> String {
        do {
            try store.confirm(user: user)
            return "commit confirmed: it stays\n"
        } catch { throw BackendError(error.message) }
    }

    public func reboot(user: String) throws(BackendError) -> String {
        log.warning("console.reboot", ["user": user])
        sync()
        let (status, output) = runProgram(rebootCommand)
        guard status == 0 else { throw BackendError("\(rebootCommand.joined(separator: " ")) failed: \(output)") }
        return "the appliance is rebooting\n"
    }

    public func factoryReset(user: String) throws(BackendError) -> String {
        do { try store.factoryReset(user: user) } catch { throw BackendError(error.message) }
        return "configuration reset to the factory default\n" + (try reboot(user: user))
    }

    public func ping(_ address: String, count: Int) throws(BackendError) -> RunningProgram {
        try RunningProgram.ping(address, count: count)
    }

    public func announcements() -> [String] {
        var messages = pending + revertIfExpired()
        pending = []
        if !messages.isEmpty { return messages }
        do {
            // Another session or process may have reverted: announce it here too.
            let info = try store.running().info
            if let last = lastSequence, info.sequence != last, info.user == "system" {
                messages.append("*** \(info.comment): running configuration restored as commit \(info.sequence) ***")
            }
            lastSequence = info.sequence
        } catch {
            log.error("console.store", ["error": error.message])
        }
        return messages
    }
}

/// Talks to `bloo daemon` over the control socket, and only through it: the commit
/// history and old commits come from `config history` and `config get commit N`, so an
/// SSH admin who is not root (the store belongs to the service user) has them too.
public final class ControlBackend: ManagementBackend {
    let client: ControlClient
    private var lastSequence: Int?

    /// Remembers the newest commit now: a revert that happens later (even while the
    /// daemon is down and restarting) is then told apart from history.
    public init(client: ControlClient) {
        self.client = client
        lastSequence = try? client.history().first?.sequence
    }

    /// True when the daemon answers.
    public func reachable() -> Bool { (try? client.show("version")) != nil }

    public var connection: String { "daemon at \(client.socketPath)" }

    private func call<T>(_ body: () throws(ControlClientError) -> T) throws(BackendError) -> T {
        do { return try body() } catch { throw BackendError(error.description) }
    }

    public func show(_ topic: String) throws(BackendError) -> String {
        // The daemon calls its recent log "events".
        let name = topic == "log" ? "events" : topic
        let text = try call { () throws(ControlClientError) in try client.show(name) }
        return text.hasSuffix("\n") || text.isEmpty ? text : text + "\n"
    }

    public func running() throws(BackendError) -> (configuration: Configuration, sequence: Int) {
        let text = try call { () throws(ControlClientError) in try client.configGet(.running) }
        // The running configuration is the newest kept commit (a revert is a commit too).
        let sequence = try call { () throws(ControlClientError) in try client.history() }.first?.sequence ?? 0
        do {
            return (try Configuration(text: text), sequence)
        } catch {
            throw BackendError("the daemon's running configuration does not parse: \(error.description)")
        }
    }

    public func history() throws(BackendError) -> [CommitInfo] {
        try call { () throws(ControlClientError) in try client.history() }.map {
            CommitInfo(sequence: $0.sequence, time: $0.time, user: $0.user, comment: $0.comment,
                       confirmDeadline: $0.confirmDeadline, revertTo: $0.revertTo)
        }
    }

    public func rollback(_ index: Int) throws(BackendError) -> Configuration {
        let text = try call { () throws(ControlClientError) in try client.configGetCommit(index) }
        do {
            return try Configuration(text: text)
        } catch {
            throw BackendError("commit \(index) from the daemon does not parse: \(error.description)")
        }
    }

    public func commit(_ configuration: Configuration, user: String, comment: String, confirmMinutes: Int?) throws(BackendError) -> String {
        try call { () throws(ControlClientError) in
            try client.configCommit(configuration.text, confirmMinutes: confirmMinutes, user: user,
                                    comment: comment.isEmpty ? nil : comment)
        }
    }

    public func confirm(user: String) throws(BackendError) -> String {
        try call { () throws(ControlClientError) in try client.confirm() }
    }

    public func reboot(user: String) throws(BackendError) -> String {
        try call { () throws(ControlClientError) in try client.reboot() }
    }

    public func factoryReset(user: String) throws(BackendError) -> String {
        _ = try commit(FactoryDefault.configuration, user: user, comment: "factory reset", confirmMinutes: nil)
        return "configuration reset to the factory default\n" + (try reboot(user: user))
    }

    public func ping(_ address: String, count: Int) throws(BackendError) -> RunningProgram {
        try RunningProgram.ping(address, count: count)
    }

    public func announcements() -> [String] {
        guard let info = try? client.history().first else { return [] }
        defer { lastSequence = info.sequence }
        if let last = lastSequence, info.sequence != last, info.user == "system" {
            return ["*** \(info.comment): running configuration restored as commit \(info.sequence) ***"]
        }
        return []
    }
}

/// A program whose output is shown while it runs (ping): stdout and stderr on one
/// non-blocking pipe that the terminal driver polls next to the terminal. The program runs
/// as the CLI's user, in the CLI's process group, with stdin from /dev/null.
public final class RunningProgram {
    /// The read end of the output pipe.
    public let descriptor: Int32
    let pid: pid_t
    let name: String
    private(set) var interrupted = false
    private var status: Int32?

    static func ping(_ address: String, count: Int) throws(BackendError) -> RunningProgram {
        try RunningProgram(["ping", "-c", String(count), "-W", "1", address])
    }

    init(_ argv: [String]) throws(BackendError) {
        var pipeEnds: [Int32] = [0, 0]
        guard !argv.isEmpty, pipe(&pipeEnds) == 0 else { throw BackendError("cannot create a pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
        // The console ignores nothing the child needs: SIGINT back to its default.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let rc = posix_spawnp(&child, argv[0], &actions, &attributes, cArguments, environ)
        close(pipeEnds[1])
        guard rc == 0 else {
            close(pipeEnds[0])
            throw BackendError("cannot run \(argv[0]): \(String(cString: strerror(rc)))")
        }
        _ = csys_fcntl_int(pipeEnds[0], F_SETFD, FD_CLOEXEC)
        _ = csys_fcntl_int(pipeEnds[0], F_SETFL, csys_fcntl_int(pipeEnds[0], F_GETFL, 0) | O_NONBLOCK)
        descriptor = pipeEnds[0]
        pid = child
        name = argv[0]
    }

    /// Output available now: bytes, [] when nothing is ready yet, nil at the end.
    public func read() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = Glibc.read(descriptor, &buffer, buffer.count)
            if count > 0 { return Array(buffer[0..<count]) }
            if count == 0 { return nil }
            if errno == EINTR { continue }
            return errno == EAGAIN ? [] : nil
        }
    }

    /// ^C: the program ends the way it does on a terminal (ping prints its statistics).
    public func interrupt() {
        guard status == nil else { return }
        interrupted = true
        kill(pid, SIGINT)
    }

    /// Reaps the program (after `read` returned nil): its exit status, 128+signal if killed.
    public func wait() -> Int32 {
        if let status { return status }
        close(descriptor)
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        let exited = (raw & 0x7f) == 0
        let result = exited ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        status = result
        return result
    }

    /// Everything it prints, blocking until it ends (one-shot `bloo cli ping ...`).
    func runToEnd() -> (output: [UInt8], status: Int32) {
        var output: [UInt8] = []
        while true {
            var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&ready, 1, 1000)
            guard let bytes = read() else { break }
            if output.count < 65536 { output += bytes.prefix(65536 - output.count) }
        }
        return (output, wait())
    }
}

/// Runs a program with stdin from /dev/null, returns its exit status and combined output
/// (at most 64 KiB).
func runProgram(_ argv: [String]) -> (status: Int32, output: String) {
    var pipeEnds: [Int32] = [0, 0]
    guard !argv.isEmpty, pipe(&pipeEnds) == 0 else { return (-1, "cannot create a pipe") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
    posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
    var pid: pid_t = 0
    let cArguments = argv.map { strdup($0) } + [nil]
    defer { cArguments.forEach { free($0) } }
    let rc = posix_spawnp(&pid, argv[0], &actions, nil, cArguments, environ)
    close(pipeEnds[1])
    guard rc == 0 else {
        close(pipeEnds[0])
        return (-1, "cannot run \(argv[0]): \(String(cString: strerror(rc)))")
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(pipeEnds[0], &buffer, buffer.count)
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        if output.count < 65536 { output.append(contentsOf: buffer[0..<min(count, 65536 - output.count)]) }
    }
    close(pipeEnds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exited = (status & 0x7f) == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), String(decoding: output, as: UTF8.self))
}
