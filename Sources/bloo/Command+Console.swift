import Config
import Console
import Control
import Glibc
import Update

/// `bloo console DEVICE` (the serial console, started by init) and `bloo cli` (the SSH
/// login shell, and one-shot commands such as `bloo cli show version`).
enum ConsoleCommands {
    static let options: Set<String> = ["data-dir", "confirm-unit-seconds", "reboot-command", "idle-timeout"]

    static let console = Command(
        name: "console", summary: "serial console: 115200 8N1 raw, banner, login, then the CLI",
        usage: "bloo console [--data-dir DIR] DEVICE   (e.g. /dev/ttyS0; TERM decides whether ANSI is used)"
    ) { words in
        let arguments = try Arguments(words, command: "console", options: options)
        guard arguments.positionals.count == 1, let device = arguments.positionals.first else {
            throw UsageError("console: expected one terminal device, e.g. /dev/ttyS0")
        }
        let settings = try backendSettings(arguments, command: "console")
        TerminalDriver.installSignalHandlers()
        var firstOpen = true
        while !TerminalDriver.terminationRequested {
            let fd = open(device, O_RDWR | O_NOCTTY | O_CLOEXEC)
            guard fd >= 0 else {
                if firstOpen {
                    writeLine(STDERR_FILENO, "bloo: console: cannot open \(device): \(String(cString: strerror(errno)))")
                    return ExitStatus.failure
                }
                sleep(1)  // the line is gone for now (USB serial unplugged, pty closed)
                continue
            }
            firstOpen = false
            let saved = TerminalDriver.makeRaw(fd, serial: true)
            let size = TerminalDriver.windowSize(fd)
            let capabilities = TerminalCapabilities(term: environment("TERM"), width: size?.columns ?? 80,
                                                    height: size?.rows ?? 24)
            var shellSettings = ShellSettings(requireLogin: true)
            shellSettings.localTopics = localTopics
            shellSettings.idleTimeoutSeconds = settings.idleTimeoutSeconds
            let shell = Shell(backend: try makeBackend(settings), capabilities: capabilities, settings: shellSettings)
            let ended = TerminalDriver.run(shell, input: fd, output: fd)
            TerminalDriver.restore(fd, saved)
            close(fd)
            // After a hangup the line may stay dead for a while: do not spin on it.
            if !ended { sleep(1) }
        }
        return ExitStatus.success
    }

    static let cli = Command(
        name: "cli", summary: "the CLI as a login shell, or one command: bloo cli show version",
        usage: "bloo cli [--data-dir DIR] [COMMAND WORDS...] | bloo cli -c \"COMMAND\""
    ) { words in
        var words = words
        // A login shell runs `ssh box show calls` as `bloo-cli -c "show calls"`.
        if let dash = words.firstIndex(of: "-c") {
            guard dash + 2 == words.count else { throw UsageError("cli: -c takes one command string, last") }
            do {
                words = Array(words[..<dash]) + (try ConfigLexer.words(words[dash + 1]))
            } catch let error as ConfigLexer.Failure {
                throw UsageError("cli: \(error.message)")
            }
        }
        let arguments = try Arguments(words, command: "cli", options: options)
        // `ssh admin@box update install < bundle`, `show update`: the update verbs read the
        // session's stdin and work without the daemon (issue of the image).
        if let status = UpdateCommand.fromCLI(arguments.positionals) { return status }
        let settings = try backendSettings(arguments, command: "cli")
        let backend = try makeBackend(settings)
        guard let identity = identity(backend) else {
            writeLine(STDERR_FILENO, "bloo: cli: user \(currentUserName()) is not a user of this appliance")
            return ExitStatus.failure
        }
        var shellSettings = ShellSettings(requireLogin: false, presetUser: identity.name, presetClass: identity.loginClass)
        shellSettings.localTopics = localTopics
        if !arguments.positionals.isEmpty {
            let shell = Shell(backend: backend, capabilities: TerminalCapabilities(ansi: false, height: 0),
                              settings: shellSettings)
            let (output, success) = shell.runBatch(arguments.positionals)
            write(success ? STDOUT_FILENO : STDERR_FILENO, output)
            return success ? ExitStatus.success : ExitStatus.failure
        }
        guard isatty(STDIN_FILENO) == 1 else {
            writeLine(STDERR_FILENO, "bloo: cli: standard input is not a terminal; give the command as arguments")
            return ExitStatus.usage
        }
        TerminalDriver.installSignalHandlers()
        let saved = TerminalDriver.makeRaw(STDIN_FILENO, serial: false)
        let size = TerminalDriver.windowSize(STDOUT_FILENO)
        shellSettings.showBanner = true
        shellSettings.idleTimeoutSeconds = settings.idleTimeoutSeconds
        let shell = Shell(backend: backend,
                          capabilities: TerminalCapabilities(term: environment("TERM"), width: size?.columns ?? 80,
                                                             height: size?.rows ?? 24),
                          settings: shellSettings)
        TerminalDriver.run(shell, input: STDIN_FILENO, output: STDOUT_FILENO)
        TerminalDriver.restore(STDIN_FILENO, saved)
        return ExitStatus.success
    }

    /// `show update` in an interactive session: the image's status verb, captured.
    static let localTopics: [String: @Sendable () -> (text: String, success: Bool)] = [
        "update": {
            final class Collected: @unchecked Sendable { var text = "" }
            let collected = Collected()
            let status = UpdateVerbs.run(verb: "status", runningVersion: BuildInfo.version,
                                         say: { collected.text += $0 + "\n" }, warn: { collected.text += $0 + "\n" })
            return (collected.text, status == 0)
        },
    ]

    struct BackendSettings {
        let dataDirectory: String
        let confirmUnitSeconds: Int64
        let rebootCommand: [String]
        let idleTimeoutSeconds: Int64
    }

    static func backendSettings(_ arguments: Arguments, command: String) throws -> BackendSettings {
        let unit = try arguments.integer("confirm-unit-seconds", command: command, range: 1...60) ?? 60
        let reboot = arguments.value("reboot-command").map { $0.split(separator: " ").map(String.init) } ?? ["/sbin/reboot"]
        return BackendSettings(dataDirectory: arguments.value("data-dir") ?? environment("BLOO_DATA_DIR") ?? ConfigStore.defaultDirectory,
                               confirmUnitSeconds: Int64(unit), rebootCommand: reboot,
                               idleTimeoutSeconds: Int64(try arguments.integer("idle-timeout", command: command, range: 1...86400) ?? 900))
    }

    /// The daemon when it answers; otherwise the configuration store itself, so that the
    /// console can repair a box whose daemon does not start.
    static func makeBackend(_ settings: BackendSettings) throws -> any ManagementBackend {
        let control = ControlBackend(client: ControlClient())
        if control.reachable() { return control }
        do {
            let store = try ConfigStore(directory: settings.dataDirectory, confirmUnitSeconds: settings.confirmUnitSeconds)
            return LocalBackend(store: store, rebootCommand: settings.rebootCommand)
        } catch {
            throw UsageError("cannot open the configuration store: \(error.message)")
        }
    }

    /// Root is admin; anyone else must be a configured user, with that user's class.
    static func identity(_ backend: any ManagementBackend) -> (name: String, loginClass: Configuration.LoginClass)? {
        if getuid() == 0 { return ("root", .admin) }
        let name = currentUserName()
        guard let user = try? backend.running().configuration.users.first(where: { $0.name == name }) else { return nil }
        return (user.name, user.loginClass)
    }

    static func currentUserName() -> String {
        guard let entry = getpwuid(getuid()), let name = entry.pointee.pw_name else { return "uid \(getuid())" }
        return String(cString: name)
    }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name), value.pointee != 0 else { return nil }
        return String(cString: value)
    }

    static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 { if errno == EINTR { continue }; return }
            bytes = bytes.dropFirst(written)
        }
    }
}
