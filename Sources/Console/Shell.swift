import Config
import Glibc
import Log

// One CLI session as a state machine: bytes and clock ticks in, bytes out. It owns the
// line editor, the login, the candidate configuration of configure mode, the pager and
// yes/no questions. The driver (serial line, SSH pty) only moves bytes and time.

public struct ShellSettings: Sendable {
    /// Ask for login and password (the serial console). `bloo cli` is already authenticated.
    public var requireLogin: Bool
    /// The logged-in user when `requireLogin` is false.
    public var presetUser: String
    public var presetClass: Configuration.LoginClass
    /// Print the banner before the login prompt.
    public var showBanner: Bool
    public var idleTimeoutSeconds: Int64 = 900
    public var loginTimeoutSeconds: Int64 = 60
    /// Waits after the 1st, 2nd, ... failed login.
    public var failureDelaysSeconds: [Int64] = [2, 4, 8]
    /// Failed logins before the session ends (the console then starts a new one).
    public var maximumLoginFailures = 3
    /// `show` topics answered in this process rather than by the backend (`show update`
    /// reads the boot state itself): topic -> (text, success).
    public var localTopics: [String: @Sendable () -> (text: String, success: Bool)] = [:]

    public init(requireLogin: Bool, presetUser: String = "", presetClass: Configuration.LoginClass = .operator,
                showBanner: Bool = true) {
        self.requireLogin = requireLogin
        self.presetUser = presetUser
        self.presetClass = presetClass
        self.showBanner = showBanner
    }
}

public final class Shell {
    enum State: Equatable {
        case loginName
        case loginPassword(String)
        case loginDelay(until: Int64)
        case command
        case paging
        case question(Question)
        case newPassword(user: String, first: String?)
        /// A program (ping) runs; its output is shown as it arrives, ^C interrupts it.
        case running
        case finished
    }

    enum Question: Equatable { case reboot, factoryReset }

    public let backend: any ManagementBackend
    public let settings: ShellSettings
    public private(set) var editor: LineEditor
    private(set) var state: State = .loginName
    public private(set) var mode: ShellMode = .operational
    public private(set) var user = ""
    private(set) var loginClass: Configuration.LoginClass = .operator
    public private(set) var candidate = ConfigTree()
    private var candidateBase = 0
    private var hostname = "bloo"
    private var output: [UInt8] = []
    private var pageQueue: [String] = []
    private var now: Int64 = 0
    private var lastActivity: Int64 = 0
    private var lastAnnouncementCheck: Int64 = 0
    private var failures = 0
    /// Batch mode (`bloo cli show version`): output is collected, never paged.
    private var batchOutput: String?
    /// The program of `.running` and the command line that started it.
    private var job: (program: RunningProgram, name: String, address: String)?
    private let log = Logger(subsystem: "console")

    public init(backend: any ManagementBackend, capabilities: TerminalCapabilities, settings: ShellSettings) {
        self.backend = backend
        self.settings = settings
        self.editor = LineEditor(capabilities: capabilities)
    }

    public var isFinished: Bool { state == .finished }

    /// The output descriptor of a running program (ping) that the driver polls with the
    /// terminal: call `jobReadable` when it is readable.
    public var jobDescriptor: Int32? { job?.program.descriptor }

    /// The running program has output (or ended): show it; at the end, report and prompt.
    public func jobReadable(now: Int64) {
        self.now = now
        lastActivity = now
        guard let running = job else { return }
        while let bytes = running.program.read() {
            if bytes.isEmpty { return }
            write(String(decoding: bytes, as: UTF8.self))
        }
        job = nil
        let status = running.program.wait()
        if status != 0 && !running.program.interrupted {
            write("error: \(running.name): \(status == 1 ? "no reply from \(running.address)" : "\(running.program.name) exited with status \(status)")\n")
        }
        guard state == .running else { return }
        prompt()
    }

    public func takeOutput() -> [UInt8] {
        defer { output = [] }
        return output
    }

    // MARK: Driver entry points (times in milliseconds of a monotonic clock)

    public func start(now: Int64) {
        self.now = now
        lastActivity = now
        lastAnnouncementCheck = now
        refreshHostname()
        if settings.showBanner { write(banner()) }
        if settings.requireLogin {
            loginPrompt()
        } else {
            user = settings.presetUser
            loginClass = settings.presetClass
            loggedIn()
        }
    }

    public func receive(_ bytes: [UInt8], now: Int64) {
        self.now = now
        lastActivity = now
        var input = bytes[...]
        while !input.isEmpty {
            switch state {
            case .finished:
                return
            case .loginDelay:
                return  // type-ahead during the delay is dropped: no password guessing by paste
            case .running:
                // Only ^C means something while a program runs; other keys are dropped.
                if input.contains(0x03), let running = job, !running.program.interrupted {
                    write("^C\n")
                    running.program.interrupt()
                }
                return
            case .paging:
                let key = input.removeFirst()
                pagerKey(key)
            default:
                let (events, rest) = editor.feed(input)
                input = rest
                output += editor.takeOutput()
                for event in events { handle(event) }
            }
        }
    }

    public func tick(now: Int64) {
        self.now = now
        if now - lastAnnouncementCheck >= 1000 {
            lastAnnouncementCheck = now
            for message in backend.announcements() { announce(message) }
        }
        switch state {
        case .loginDelay(let until) where now >= until:
            loginPrompt()
        case .loginName, .loginPassword:
            if now - lastActivity > settings.loginTimeoutSeconds * 1000 {
                lastActivity = now
                write("\nlogin timed out\n")
                loginPrompt()
            }
        case .command, .paging, .question, .newPassword:
            if now - lastActivity > settings.idleTimeoutSeconds * 1000 {
                write("\nidle for \(settings.idleTimeoutSeconds) seconds: logged out\n")
                log.notice("console.idle_logout", ["user": user])
                finish()
            }
        default:
            break
        }
    }

    /// The line dropped (carrier lost, SSH connection gone): end without another word.
    public func hangup() {
        if state != .finished, !user.isEmpty {
            log.notice("console.hangup", ["user": user, "uncommitted": String(mode == .configure)])
        }
        if let running = job {
            job = nil
            running.program.interrupt()
            _ = running.program.wait()
        }
        state = .finished
    }

    /// Runs one command without a terminal (`bloo cli show version`). Returns the output
    /// and whether it succeeded.
    public func runBatch(_ words: [String]) -> (output: String, success: Bool) {
        user = settings.presetUser
        loginClass = settings.presetClass
        refreshHostname()
        batchOutput = ""
        defer { batchOutput = nil }
        let success = execute(words, interactive: false)
        return (batchOutput ?? "", success)
    }

    // MARK: Events from the line editor

    private func handle(_ event: EditorEvent) {
        switch state {
        case .loginName:
            switch event {
            case .line(let name):
                let trimmed = name.trimmingBlanks
                if trimmed.isEmpty { loginPrompt(); return }
                state = .loginPassword(trimmed)
                editor.begin(prompt: "Password: ", secret: true)
                output += editor.takeOutput()
            case .interrupt, .endOfInput: loginPrompt()
            default: break
            }
        case .loginPassword(let name):
            switch event {
            case .line(let password): checkLogin(name: name, password: password)
            case .interrupt, .endOfInput: loginPrompt()
            default: break
            }
        case .command:
            switch event {
            case .line(let text): runLine(text)
            case .interrupt: prompt()
            case .endOfInput:
                if mode == .configure, candidateHasChanges { write("uncommitted changes discarded\n") }
                write("logged out\n")
                finish()
            case .completionRequested(let text): complete(text)
            case .helpRequested(let text): help(text)
            }
        case .question(let question):
            guard case .line(let answer) = event else { write("cancelled\n"); prompt(); return }
            state = .command
            if answer.trimmingBlanks == "yes" { answered(question) } else { write("cancelled\n") }
            if state == .command { prompt() }
        case .newPassword(let name, let first):
            guard case .line(let password) = event else { write("password not changed\n"); state = .command; prompt(); return }
            if let first {
                state = .command
                if first != password {
                    write("error: set: the passwords do not match; password not changed\n")
                } else if let hash = PasswordHash.make(password: password) {
                    do {
                        try candidate.set(["system", "user", name, "password-hash", hash])
                    } catch {
                        write("error: set: \(error.message)\n")
                    }
                } else {
                    write("error: set: cannot hash the password\n")
                }
                prompt()
            } else if password.utf8.count < 8 {
                write("error: set: a password needs at least 8 characters\n")
                state = .command
                prompt()
            } else {
                state = .newPassword(user: name, first: password)
                editor.begin(prompt: "Retype new password: ", secret: true)
                output += editor.takeOutput()
            }
        default:
            break
        }
    }

    // MARK: Login

    private func loginPrompt() {
        state = .loginName
        editor.begin(prompt: "\(hostname) login: ")
        output += editor.takeOutput()
    }

    /// A hash that matches nothing: checking unknown users costs the same time as known ones.
    private static let decoyHash = "pbkdf2-sha256$200000$00000000000000000000000000000000$0000000000000000000000000000000000000000000000000000000000000000"

    private func checkLogin(name: String, password: String) {
        var users: [Configuration.User] = []
        do {
            users = try backend.running().configuration.users
        } catch {
            write("cannot read the users: \(error.message)\n")
        }
        let account = users.first { $0.name == name }
        let valid = PasswordHash.verify(password: password, hash: account?.passwordHash ?? Self.decoyHash) && account != nil
        guard let account, valid else {
            failures += 1
            log.warning("console.login_failed", ["user": name.count <= 32 ? name : String(name.prefix(32)), "failures": String(failures)])
            write("Login incorrect\n")
            if failures >= settings.maximumLoginFailures {
                write("too many failed logins\n")
                finish()
                return
            }
            let delays = settings.failureDelaysSeconds
            let delay = delays.isEmpty ? 0 : delays[min(failures - 1, delays.count - 1)]
            state = .loginDelay(until: now + delay * 1000)
            if delay == 0 { loginPrompt() }
            return
        }
        failures = 0
        user = account.name
        loginClass = account.loginClass
        log.notice("console.login", ["user": user, "class": loginClass.rawValue])
        loggedIn()
    }

    private func loggedIn() {
        write("\(user) logged in, class \(loginClass.rawValue). Type '?' for help.\n")
        if let pending = try? backend.history().first, let deadline = pending.confirmDeadline {
            write("note: commit \(pending.sequence) by \(pending.user) awaits 'confirm' (reverts at \(formatTime(deadline)))\n")
        }
        state = .command
        prompt()
    }

    private func finish() {
        state = .finished
        mode = .operational
    }

    // MARK: Commands

    private func prompt() {
        state = .command
        let marker = mode == .configure ? "#" : ">"
        if mode == .configure { write("[edit]\n") }
        editor.begin(prompt: "\(user)@\(hostname)\(marker) ")
        output += editor.takeOutput()
    }

    private func runLine(_ text: String) {
        let words: [String]
        do {
            words = try ConfigLexer.words(text)
        } catch {
            write("error: \(error.message)\n")
            prompt()
            return
        }
        if words.isEmpty { prompt(); return }
        _ = execute(words, interactive: true)
        if state == .command { prompt() }  // not while a program runs: its end prompts
    }

    /// Runs one command; returns whether it succeeded.
    @discardableResult
    private func execute(_ words: [String], interactive: Bool) -> Bool {
        let parsed: ParsedCommand
        do {
            parsed = try CommandGrammar.parse(words, mode: mode)
        } catch {
            write("error: \(error.description)\n")
            return false
        }
        let name = parsed.keywords.joined(separator: " ")
        func fail(_ reason: String) -> Bool {
            write("error: \(name): \(reason)\n")
            return false
        }
        func needAdmin() -> Bool {
            loginClass == .admin
        }
        do {
            switch parsed.action {
            case .showVersion, .showSystem, .showInterfaces, .showRoutes, .showTunnels, .showRegistrations,
                 .showCalls, .showRelay, .showCDR, .showLog, .showUpdate:
                let topic = parsed.keywords.last ?? ""
                if let local = settings.localTopics[topic] {
                    let (text, success) = local()
                    present(text)
                    return success
                }
                present(try backend.show(topic))
            case .showConfiguration:
                present(mode == .configure ? candidate.text : try backend.running().configuration.text)
            case .showConfigurationRunning:
                present(try backend.running().configuration.text)
            case .showConfigurationCandidate:
                guard mode == .configure else { return fail("there is no candidate outside configure mode") }
                present(candidate.text)
            case .showConfigurationHistory:
                present(historyText(try backend.history()))
            case .configure:
                guard interactive else { return fail("needs an interactive session") }
                guard needAdmin() else { return fail("user '\(user)' of class \(loginClass.rawValue) may not change the configuration") }
                let running = try backend.running()
                candidate = running.configuration.tree
                candidateBase = running.sequence
                mode = .configure
                write("entering configure mode: private candidate copied from commit \(running.sequence)\n")
            case .ping:
                let count = parsed.values["count"].flatMap { Int($0) } ?? 4
                let address = parsed.values["ping"] ?? ""
                let program = try backend.ping(address, count: count)
                guard batchOutput == nil else {
                    let (output, status) = program.runToEnd()
                    write(String(decoding: output, as: UTF8.self))
                    return status == 0 ? true : fail(status == 1 ? "no reply from \(address)" : "\(program.name) exited with status \(status)")
                }
                job = (program, name, address)
                state = .running
            case .reboot, .factoryReset:
                guard needAdmin() else { return fail("user '\(user)' of class \(loginClass.rawValue) may not do this") }
                guard interactive else { return fail("asks for confirmation: use an interactive session") }
                if parsed.action == .reboot {
                    write("Reboot the appliance? Calls in progress are dropped.\n")
                } else {
                    write("Erase the configuration and all kept commits, and reboot with the factory default?\n")
                }
                state = .question(parsed.action == .reboot ? .reboot : .factoryReset)
                editor.begin(prompt: "Type 'yes' to proceed: ")
                output += editor.takeOutput()
            case .logout:
                write("logged out\n")
                finish()
            case .set:
                return set(parsed.path, interactive: interactive)
            case .delete:
                let removed = try candidate.delete(parsed.path)
                if removed > 1 { write("\(removed) statements deleted\n") }
            case .compare:
                let base: ConfigTree
                if let index = parsed.values["rollback"].flatMap({ Int($0) }) {
                    base = try backend.rollback(index).tree
                } else {
                    base = try backend.running().configuration.tree
                }
                let lines = candidate.difference(from: base)
                present(lines.isEmpty ? "no differences\n" : lines.map { $0 + "\n" }.joined())
            case .commit:
                return commit(parsed)
            case .confirm:
                write(try backend.confirm(user: user))
            case .rollback:
                let index = parsed.values["rollback"].flatMap { Int($0) } ?? 0
                candidate = try backend.rollback(index).tree
                candidateBase = try backend.running().sequence
                write("commit \(index == 0 ? "0 (running)" : String(index)) loaded into the candidate: 'compare' to review, 'commit' to apply\n")
            case .discard:
                let running = try backend.running()
                candidate = running.configuration.tree
                candidateBase = running.sequence
                write("candidate reset to the running configuration\n")
            case .exitConfigure:
                if candidateHasChanges {
                    return fail("the candidate has uncommitted changes: 'commit' them or 'discard' them first")
                }
                mode = .operational
            }
            return true
        } catch let error as BackendError {
            return fail(error.message)
        } catch let error as ConfigError {
            return fail(error.message)
        } catch {
            return fail("\(error)")
        }
    }

    private var candidateHasChanges: Bool {
        guard mode == .configure else { return false }
        return (try? backend.running().configuration.tree) != candidate
    }

    private func set(_ path: [String], interactive: Bool) -> Bool {
        // `set system user NAME password` asks for the password instead of taking it.
        if path.count == 4, path[3] == "password",
           let head = try? ConfigTree.resolve(Array(path.prefix(3)), partial: true),
           head.words.count == 3, head.words[0] == "system", head.words[1] == "user" {
            guard interactive else {
                write("error: set: a password is asked for interactively\n")
                return false
            }
            state = .newPassword(user: head.words[2], first: nil)
            editor.begin(prompt: "New password: ", secret: true)
            output += editor.takeOutput()
            return true
        }
        do {
            try candidate.set(path)
            return true
        } catch {
            write("error: set: \(error.message)\n")
            return false
        }
    }

    private func commit(_ parsed: ParsedCommand) -> Bool {
        let configuration: Configuration
        do {
            // Validate the text exactly as `show configuration candidate` prints it, so
            // that the line numbers of the errors point into that listing.
            configuration = try Configuration(text: candidate.text)
        } catch {
            write("error: commit: the candidate is not valid; nothing was changed:\n")
            for problem in error.errors {
                write("  \(problem.line.map { "line \($0) of 'show configuration candidate'" } ?? "configuration"): \(problem.message)\n")
            }
            return false
        }
        do {
            let running = try backend.running()
            if running.sequence != candidateBase {
                write("error: commit: the running configuration changed (now commit \(running.sequence)) since this candidate was made from commit \(candidateBase): 'compare' to review, 'rollback 0' to start again\n")
                return false
            }
            if running.configuration == configuration, parsed.values["confirmed"] == nil {
                write("commit: no changes to commit\n")
                return true
            }
            for reason in configuration.changesNeedingRestart(from: running.configuration) {
                write("note: \(reason): takes effect after a daemon restart\n")
            }
            let minutes = parsed.values["confirmed"].flatMap { Int($0) }
            write(try backend.commit(configuration, user: user, comment: parsed.values["comment"] ?? "", confirmMinutes: minutes))
            candidateBase = try backend.running().sequence
            candidate = configuration.tree
            refreshHostname()
            write(minutes == nil ? "commit complete\n" : "commit complete; enter 'confirm' within \(minutes!) minute\(minutes == 1 ? "" : "s") or it is rolled back\n")
            return true
        } catch {
            write("error: commit: \(error.message)\n")
            return false
        }
    }

    private func answered(_ question: Question) {
        do {
            switch question {
            case .reboot: write(try backend.reboot(user: user))
            case .factoryReset: write(try backend.factoryReset(user: user))
            }
        } catch {
            write("error: \(question == .reboot ? "reboot" : "factory-reset"): \(error.message)\n")
        }
    }

    // MARK: Help and completion

    private func complete(_ text: String) {
        let (partial, items) = CommandGrammar.help(for: text, mode: mode, candidate: candidate)
        let words = items.filter(\.completes).map(\.word)
        let head = String(text.dropLast(partial.count))
        if words.count == 1 {
            editor.complete(with: head + words[0] + " ")
        } else if words.count > 1, let common = commonPrefix(words), common.count > partial.count {
            editor.complete(with: head + common)
        } else if !items.isEmpty {
            editor.list(format(items))
        } else {
            editor.list([explainNoMatch(text)])
        }
        output += editor.takeOutput()
    }

    private func help(_ text: String) {
        let (_, items) = CommandGrammar.help(for: text, mode: mode, candidate: candidate)
        editor.list(items.isEmpty ? [explainNoMatch(text)] : format(items))
        output += editor.takeOutput()
    }

    /// Why nothing fits: the parser's message for the words so far.
    private func explainNoMatch(_ text: String) -> String {
        guard let words = try? ConfigLexer.words(text), !words.isEmpty else { return "  nothing fits here" }
        do {
            let parsed = try CommandGrammar.parse(words, mode: mode)
            if parsed.action == .set || parsed.action == .delete {
                _ = try ConfigTree.resolve(parsed.path, partial: true)
            }
        } catch let error as CommandError {
            return "  error: \(error.description)"
        } catch let error as ConfigError {
            return "  error: \(error.message)"
        } catch {}
        return "  nothing fits here"
    }

    private func format(_ items: [HelpItem]) -> [String] {
        let width = min(24, items.map(\.word.count).max() ?? 0)
        return items.map { item in
            let pad = String(repeating: " ", count: max(1, width - item.word.count + 2))
            return "  " + item.word + pad + item.help
        }
    }

    private func commonPrefix(_ words: [String]) -> String? {
        guard var prefix = words.first else { return nil }
        for word in words.dropFirst() {
            while !word.hasPrefix(prefix) { prefix.removeLast() }
        }
        return prefix
    }

    // MARK: Output

    private func write(_ text: String) {
        if batchOutput != nil { batchOutput! += text; return }
        output += terminalBytes(text)
    }

    /// Command output, paged when it is longer than the screen.
    private func present(_ text: String) {
        if batchOutput != nil { batchOutput! += text; return }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        let page = editor.capabilities.height - 1
        guard page > 0, lines.count > page else {
            write(text.isEmpty || text.hasSuffix("\n") ? text : text + "\n")
            return
        }
        for line in lines.prefix(page) { write(line + "\n") }
        pageQueue = Array(lines.dropFirst(page))
        state = .paging
        write(Self.morePrompt)
    }

    private static let morePrompt = "--More-- (space: next page, enter: next line, q: quit)"

    private func pagerKey(_ key: UInt8) {
        // Erase the prompt with CR and blanks: works on a dumb terminal too.
        write("\r" + String(repeating: " ", count: Self.morePrompt.count) + "\r")
        var count: Int
        switch key {
        case UInt8(ascii: " "): count = max(1, editor.capabilities.height - 1)
        case 0x0d, 0x0a, UInt8(ascii: "j"): count = 1
        case UInt8(ascii: "q"), UInt8(ascii: "Q"), 0x03: count = 0; pageQueue = []
        default: write(Self.morePrompt); return
        }
        for line in pageQueue.prefix(count) { write(line + "\n") }
        pageQueue.removeFirst(min(count, pageQueue.count))
        if pageQueue.isEmpty {
            state = .command
            prompt()
        } else {
            write(Self.morePrompt)
        }
    }

    /// A message for this session whatever it is doing (automatic revert).
    private func announce(_ message: String) {
        log.notice("console.announce", ["message": message])
        refreshHostname()
        switch state {
        case .finished: return
        case .command, .loginName:
            editor.interject(message)
            output += editor.takeOutput()
        default:
            write("\n" + message + "\n")
        }
    }

    // MARK: Texts

    private func refreshHostname() {
        if let name = try? backend.running().configuration.hostname, !name.isEmpty { hostname = name }
    }

    private func banner() -> String {
        var text = "\nBloophone ProxyServer \(hostname)\n\(Firmware.line)\n"
        let addresses = SystemFacts.bannerAddresses()
        text += addresses.isEmpty ? "no addresses configured\n" : addresses.map { "  \($0)\n" }.joined()
        text += "management: \(backend.connection)\n\n"
        return text
    }

    private func historyText(_ history: [CommitInfo]) -> String {
        var text = ""
        for (index, info) in history.enumerated() {
            text += "\(index)  commit \(info.sequence)  \(info.time == 0 ? "-" : formatTime(info.time))  \(info.user)"
            if !info.comment.isEmpty { text += "  \"\(info.comment)\"" }
            if let deadline = info.confirmDeadline { text += "  (awaits confirm, reverts at \(formatTime(deadline)))" }
            text += "\n"
        }
        return text
    }
}

/// "2026-11-28 16:40:59 UTC"
func formatTime(_ seconds: Int64) -> String {
    var value = time_t(seconds)
    var parts = tm()
    gmtime_r(&value, &parts)
    func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) UTC"
}

extension String {
    var trimmingBlanks: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
