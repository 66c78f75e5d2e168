import Config

// The command language of the shell: operational commands, and in configure mode the
// candidate commands whose tail is a configuration path checked by the Config schema.
// One grammar answers three questions: what does this line mean (parse), what may come
// next (help on '?'), and how does this word end (completion on Tab).

public enum ShellMode: Sendable, Equatable { case operational, configure }

public enum Action: String, Sendable, Equatable {
    case showVersion, showSystem, showInterfaces, showRoutes, showTunnels, showRegistrations, showCalls
    case showRelay, showCDR, showLog, showUpdate
    case showConfiguration, showConfigurationRunning, showConfigurationCandidate, showConfigurationHistory
    case configure, ping, reboot, factoryReset, logout
    case set, delete, compare, commit, confirm, rollback, discard, exitConfigure
}

/// A value a keyword takes: `rollback 3`, `ping 192.0.2.1`.
public struct ValueSpec: Sendable {
    public let kind: ValueKind
    public let help: String
    /// The keyword may stand alone (`rollback` = `rollback 0`).
    public let optional: Bool
}

public struct CommandNode: Sendable {
    public let word: String
    public let help: String
    public let value: ValueSpec?
    public let action: Action?
    /// The words after this keyword are a configuration path (set, delete).
    public let takesConfigPath: Bool
    public let children: [CommandNode]

    init(_ word: String, _ help: String, value: ValueSpec? = nil, action: Action? = nil,
         configPath: Bool = false, _ children: [CommandNode] = []) {
        self.word = word
        self.help = help
        self.value = value
        self.action = action
        self.takesConfigPath = configPath
        self.children = children
    }
}

/// A parsed command line.
public struct ParsedCommand: Equatable, Sendable {
    public let action: Action
    /// The canonical keywords that led to the action (for messages: "show interfaces").
    public let keywords: [String]
    /// Values by the keyword that introduced them ("rollback": "3").
    public let values: [String: String]
    /// The configuration path after `set` / `delete`, as typed.
    public let path: [String]
}

public struct CommandError: Error, Equatable, Sendable, CustomStringConvertible {
    public let command: String
    public let reason: String
    public var description: String { command.isEmpty ? reason : "\(command): \(reason)" }
}

/// One line of `?` help.
public struct HelpItem: Equatable, Sendable {
    public let word: String
    public let help: String
    /// A word that Tab can insert (false for placeholders such as `<address>` and `<cr>`).
    public let completes: Bool
}

public enum CommandGrammar {
    static let show = CommandNode("show", "display status and configuration", [
        CommandNode("version", "firmware version and build", action: .showVersion),
        CommandNode("system", "host name, uptime, load, memory, CPUs", action: .showSystem),
        CommandNode("interfaces", "network interfaces and addresses", action: .showInterfaces),
        CommandNode("routes", "the routing table", action: .showRoutes),
        CommandNode("tunnels", "client tunnels", action: .showTunnels),
        CommandNode("registrations", "H.323 registrations", action: .showRegistrations),
        CommandNode("calls", "calls in progress", action: .showCalls),
        CommandNode("relay", "media relay ports and counters", action: .showRelay),
        CommandNode("cdr", "call detail records", action: .showCDR),
        CommandNode("log", "recent log lines", action: .showLog),
        CommandNode("configuration", "the configuration (running outside configure, candidate inside)",
                    action: .showConfiguration, [
            CommandNode("running", "the configuration in effect", action: .showConfigurationRunning),
            CommandNode("candidate", "the configuration being edited", action: .showConfigurationCandidate),
            CommandNode("history", "the kept commits (what 'rollback N' loads)", action: .showConfigurationHistory),
        ]),
        CommandNode("update", "firmware slots and update state", action: .showUpdate),
    ])

    static let operational: [CommandNode] = [
        show,
        CommandNode("configure", "edit a candidate configuration", action: .configure),
        CommandNode("ping", "send ICMP echo requests", value: ValueSpec(kind: .ipAddress, help: "address to ping", optional: false),
                    action: .ping, [
            CommandNode("count", "number of requests (default 4)", value: ValueSpec(kind: .integer(1...100), help: "requests", optional: false), action: .ping),
        ]),
        CommandNode("reboot", "restart the appliance (asks for confirmation)", action: .reboot),
        CommandNode("factory-reset", "erase the configuration and restart (asks for confirmation)", action: .factoryReset),
        CommandNode("exit", "log out", action: .logout),
        CommandNode("logout", "log out", action: .logout),
    ]

    static let commitOptions: [CommandNode] = [
        CommandNode("comment", "note stored with the commit", value: ValueSpec(kind: .text, help: "comment (quote it if it has blanks)", optional: false), action: .commit),
    ]

    static let configure: [CommandNode] = [
        CommandNode("set", "add or change a statement", action: .set, configPath: true),
        CommandNode("delete", "remove statements", action: .delete, configPath: true),
        CommandNode("compare", "differences between the candidate and the running configuration", action: .compare, [
            CommandNode("rollback", "compare with a kept commit", value: ValueSpec(kind: .integer(0...19), help: "commit number (see show configuration history)", optional: false), action: .compare),
        ]),
        CommandNode("commit", "validate and apply the candidate", action: .commit, [
            CommandNode("confirmed", "revert automatically unless 'confirm' follows in time",
                        value: ValueSpec(kind: .integer(1...1440), help: "minutes before the automatic revert", optional: false),
                        action: .commit, commitOptions),
        ] + commitOptions),
        CommandNode("confirm", "keep the configuration of 'commit confirmed'", action: .confirm),
        CommandNode("rollback", "load a kept commit into the candidate", value: ValueSpec(kind: .integer(0...19), help: "commit number, 0 = running (see show configuration history)", optional: true), action: .rollback),
        CommandNode("discard", "throw away the changes in the candidate", action: .discard),
        show,
        CommandNode("exit", "leave configure mode", action: .exitConfigure),
    ]

    public static func roots(_ mode: ShellMode) -> [CommandNode] {
        mode == .operational ? operational : configure
    }

    /// Keywords among `nodes` that `word` abbreviates; an exact match wins.
    static func matches(_ word: String, in nodes: [CommandNode]) -> [CommandNode] {
        if let exact = nodes.first(where: { $0.word == word }) { return [exact] }
        return nodes.filter { $0.word.hasPrefix(word) }
    }

    public static func parse(_ words: [String], mode: ShellMode) throws(CommandError) -> ParsedCommand {
        var nodes = roots(mode)
        var current: CommandNode?
        var keywords: [String] = []
        var values: [String: String] = [:]
        var index = 0
        func name() -> String { keywords.joined(separator: " ") }
        while index < words.count {
            if let current, current.takesConfigPath {
                return ParsedCommand(action: current.action ?? .set, keywords: keywords, values: values, path: Array(words[index...]))
            }
            let word = words[index]
            let found = matches(word, in: nodes)
            guard let node = found.first else {
                let expected = nodes.map(\.word).joined(separator: ", ")
                throw CommandError(command: keywords.isEmpty ? word : name(),
                                   reason: keywords.isEmpty ? "unknown command: expected one of: \(expected)"
                                                            : "unknown word '\(word)': expected one of: \(expected)")
            }
            guard found.count == 1 else {
                throw CommandError(command: keywords.isEmpty ? word : name(),
                                   reason: "'\(word)' is ambiguous: could be \(found.map(\.word).joined(separator: ", "))")
            }
            keywords.append(node.word)
            index += 1
            if let spec = node.value {
                if index < words.count {
                    switch spec.kind.canonical(words[index]) {
                    case .success(let value): values[node.word] = value
                    case .failure(let error):
                        if !spec.optional { throw CommandError(command: name(), reason: "'\(words[index])': \(error.reason)") }
                        // An optional value that does not fit may be the next keyword.
                        current = node; nodes = node.children
                        continue
                    }
                    index += 1
                } else if !spec.optional {
                    throw CommandError(command: name(), reason: "incomplete: expected \(spec.kind.placeholder) (\(spec.help))")
                }
            }
            current = node
            nodes = node.children
        }
        guard let current else { throw CommandError(command: "", reason: "empty command") }
        if current.takesConfigPath {
            return ParsedCommand(action: current.action ?? .set, keywords: keywords, values: values, path: [])
        }
        guard let action = current.action else {
            throw CommandError(command: name(), reason: "incomplete: expected one of: \(current.children.map(\.word).joined(separator: ", "))")
        }
        return ParsedCommand(action: action, keywords: keywords, values: values, path: [])
    }

    /// What may be typed at the end of `line`: keywords starting with the partial last word,
    /// value placeholders, and `<cr>` when the command is complete.
    public static func help(for line: String, mode: ShellMode, candidate: ConfigTree) -> (partial: String, items: [HelpItem]) {
        guard let (words, partial) = splitForCompletion(line) else { return ("", []) }
        var nodes = roots(mode)
        var current: CommandNode?
        var index = 0
        var pendingValue: ValueSpec?
        while index < words.count {
            if let current, current.takesConfigPath {
                let items = ConfigPathHelp.items(after: Array(words[index...]), partial: partial,
                                                 deleting: current.action == .delete, candidate: candidate)
                return (partial, items)
            }
            if let spec = pendingValue {
                pendingValue = nil
                if case .success = spec.kind.canonical(words[index]) { index += 1; continue }
                if !spec.optional { return (partial, []) }
            }
            let found = matches(words[index], in: nodes)
            guard found.count == 1, let node = found.first else { return (partial, []) }
            current = node
            nodes = node.children
            pendingValue = node.value
            index += 1
        }
        if let current, current.takesConfigPath {
            return (partial, ConfigPathHelp.items(after: [], partial: partial, deleting: current.action == .delete, candidate: candidate))
        }
        var items: [HelpItem] = []
        if let spec = pendingValue {
            items += ConfigPathHelp.valueItems(spec.kind, help: spec.help, partial: partial, existing: [])
            if !spec.optional { return (partial, items) }
        }
        for node in nodes where node.word.hasPrefix(partial) {
            items.append(HelpItem(word: node.word, help: node.help, completes: true))
        }
        if partial.isEmpty, let current, current.action != nil, pendingValue == nil || pendingValue?.optional == true {
            items.append(HelpItem(word: "<cr>", help: "run the command", completes: false))
        }
        return (partial, items)
    }

    /// Splits the text before the cursor into complete words and the word being typed.
    static func splitForCompletion(_ line: String) -> ([String], String)? {
        guard var words = try? ConfigLexer.words(line) else { return nil }
        if line.isEmpty || line.hasSuffix(" ") || line.hasSuffix("\t") { return (words, "") }
        let partial = words.popLast() ?? ""
        return (words, partial)
    }
}

/// Help and completion inside a configuration path (after `set` or `delete`), driven by
/// the Config schema, offering entries that already exist in the candidate.
enum ConfigPathHelp {
    static func items(after words: [String], partial: String, deleting: Bool, candidate: ConfigTree) -> [HelpItem] {
        var node = ConfigSchema.root
        var canonical: [String] = []
        var index = 0
        // What the next word is: a keyword among node's children, or a value of `pending`.
        var pending: (kind: ValueKind, help: String, then: SchemaNode?)?
        while index < words.count {
            let word = words[index]
            index += 1
            if let value = pending {
                guard case .success(let text) = value.kind.canonical(word) else { return [] }
                canonical.append(text)
                pending = nil
                guard let next = value.then else { return deleting || partial.isEmpty ? [end()] : [] }
                node = next
                continue
            }
            let found = node.children(matching: word)
            guard found.count == 1, let child = found.first else { return [] }
            canonical.append(child.keyword)
            switch child.kind {
            case .container: node = child
            case .flag, .interactive: return partial.isEmpty ? [end()] : []
            case .leaf(let kind), .leafList(let kind): pending = (kind, child.help, nil)
            case .list(let kind): pending = (kind, child.help, child.children.isEmpty ? nil : child)
            }
        }
        if let value = pending {
            let existing = existingWords(at: canonical, in: candidate)
            var items = valueItems(value.kind, help: value.help, partial: partial, existing: existing)
            if deleting, partial.isEmpty { items.append(end()) }
            return items
        }
        var items = node.children.filter { $0.keyword.hasPrefix(partial) }.map {
            HelpItem(word: $0.keyword, help: $0.help, completes: true)
        }
        if deleting, partial.isEmpty, !canonical.isEmpty { items.append(end()) }
        return items
    }

    static func valueItems(_ kind: ValueKind, help: String, partial: String, existing: [String]) -> [HelpItem] {
        var items: [HelpItem] = []
        if case .choice(let words) = kind {
            return words.filter { $0.hasPrefix(partial) }.map { HelpItem(word: $0, help: help, completes: true) }
        }
        for word in existing where word.hasPrefix(partial) {
            items.append(HelpItem(word: word, help: "(configured)", completes: true))
        }
        items.append(HelpItem(word: kind.placeholder, help: help, completes: false))
        return items
    }

    /// Words configured right after `prefix` (entries of a list, values of a leaf).
    static func existingWords(at prefix: [String], in tree: ConfigTree) -> [String] {
        var result: [String] = []
        for statement in tree.statements(under: prefix) where statement.words.count > prefix.count {
            let word = statement.words[prefix.count]
            if !result.contains(word) { result.append(word) }
        }
        return result
    }

    static func end() -> HelpItem { HelpItem(word: "<cr>", help: "end of the statement", completes: false) }
}
