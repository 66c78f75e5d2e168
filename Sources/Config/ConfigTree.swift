// The configuration as the CLI sees it: an ordered list of `set` statements, each checked
// against the schema and stored in canonical words. Printing it gives text that parses back
// to the same tree, so `show configuration` output can be pasted into `configure`.

/// One problem in a configuration text or command, with the line when there is one.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int?
    public let message: String

    public init(line: Int? = nil, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "line \(line): \(message)" }
        return message
    }
}

/// Several problems found in one pass; a configuration is rejected when any is present.
public struct ConfigErrors: Error, Equatable, Sendable, CustomStringConvertible {
    public let errors: [ConfigError]
    public init(_ errors: [ConfigError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// A `set` statement in canonical words. `line` is where it came from (not part of equality).
public struct Statement: Equatable, Sendable, CustomStringConvertible {
    public let words: [String]
    /// How many leading words identify the setting: a second statement with the same slot
    /// replaces the first (`system hostname` for a leaf; all words for addresses).
    public let slotLength: Int
    public var line: Int?

    public static func == (lhs: Statement, rhs: Statement) -> Bool { lhs.words == rhs.words }

    public var slot: ArraySlice<String> { words.prefix(slotLength) }

    /// The text form, `set ...`, with quotes where a word needs them.
    public var description: String { "set " + words.map(ConfigLexer.quoted).joined(separator: " ") }

    /// The value of the statement's last word.
    public var value: String { words.last ?? "" }
}

/// Where a command path leads in the schema.
public struct ResolvedPath: Equatable, Sendable {
    public let words: [String]
    /// nil when the path stops before a complete statement (allowed for `delete`).
    public let slotLength: Int?
}

public struct ConfigTree: Equatable, Sendable {
    public private(set) var statements: [Statement] = []

    public init() {}

    /// Parses a whole configuration text; collects every error (up to 50) before failing.
    public init(parsing text: String) throws(ConfigErrors) {
        var errors: [ConfigError] = []
        var number = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            guard errors.count < 50 else { break }
            var words: [String]
            do {
                words = try ConfigLexer.words(String(rawLine))
            } catch {
                errors.append(ConfigError(line: number, error.message))
                continue
            }
            guard let first = words.first else { continue }
            guard first == "set" else {
                errors.append(ConfigError(line: number, "expected 'set' at the start of the line, found '\(first)'"))
                continue
            }
            words.removeFirst()
            do {
                try set(words, line: number)
            } catch {
                errors.append(ConfigError(line: number, error.message))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
    }

    /// The text form: one `set` statement per line, in tree order.
    public var text: String {
        statements.map { $0.description + "\n" }.joined()
    }

    /// Checks `words` (after `set`) against the schema and stores the statement, replacing
    /// the one with the same slot. Keywords may be abbreviated when unambiguous.
    public mutating func set(_ words: [String], line: Int? = nil) throws(ConfigError) {
        let path = try ConfigTree.resolve(words, partial: false)
        guard let slotLength = path.slotLength else { throw ConfigError("incomplete statement") }
        let statement = Statement(words: path.words, slotLength: slotLength, line: line)
        if let index = statements.firstIndex(where: { $0.slot == statement.slot }) {
            statements[index] = statement
            return
        }
        // Keep related statements together: insert after the last statement that shares
        // the longest prefix, so `show configuration` stays grouped.
        var bestIndex = statements.count - 1, bestShared = 0
        for (index, other) in statements.enumerated() {
            let shared = zip(other.words, statement.words).prefix { $0 == $1 }.count
            if shared >= bestShared, shared > 0 { bestShared = shared; bestIndex = index }
        }
        statements.insert(statement, at: bestShared == 0 ? statements.count : bestIndex + 1)
    }

    /// Removes every statement under `words` (a leaf with or without its value, a list
    /// entry, a whole container). Returns how many were removed; none is an error.
    @discardableResult
    public mutating func delete(_ words: [String]) throws(ConfigError) -> Int {
        let path = try ConfigTree.resolve(words, partial: true)
        let before = statements.count
        statements.removeAll { $0.words.starts(with: path.words) }
        let removed = before - statements.count
        if removed == 0 {
            throw ConfigError("'\(path.words.joined(separator: " "))' is not configured")
        }
        return removed
    }

    /// The statements whose words start with `prefix`.
    public func statements(under prefix: [String]) -> [Statement] {
        statements.filter { $0.words.starts(with: prefix) }
    }

    /// The value of a leaf, e.g. `value(["system", "hostname"])`.
    public func value(_ slot: [String]) -> String? {
        statements.first { $0.slotLength == slot.count && $0.slot.elementsEqual(slot) && $0.words.count == slot.count + 1 }?.value
    }

    /// Walks `words` through the schema: expands abbreviations, canonicalises values, and
    /// says precisely what was expected where a word does not fit.
    public static func resolve(_ words: [String], partial: Bool) throws(ConfigError) -> ResolvedPath {
        var node = ConfigSchema.root
        var canonical: [String] = []
        var index = 0
        func context() -> String { canonical.isEmpty ? "" : " after '\(canonical.joined(separator: " "))'" }
        func expectedWords(_ node: SchemaNode) -> String { node.children.map(\.keyword).joined(separator: ", ") }
        while true {
            guard index < words.count else {
                if partial, !canonical.isEmpty { return ResolvedPath(words: canonical, slotLength: nil) }
                throw ConfigError("incomplete\(context()): expected one of: \(expectedWords(node))")
            }
            let word = words[index]
            let matches = node.children(matching: word)
            guard let child = matches.first else {
                throw ConfigError("unknown word '\(word)'\(context()): expected one of: \(expectedWords(node))")
            }
            guard matches.count == 1 else {
                throw ConfigError("'\(word)' is ambiguous\(context()): could be \(matches.map(\.keyword).joined(separator: ", "))")
            }
            canonical.append(child.keyword)
            index += 1
            func value(_ kind: ValueKind) throws(ConfigError) -> Bool {
                guard index < words.count else {
                    if partial { return false }
                    throw ConfigError("incomplete after '\(canonical.joined(separator: " "))': expected \(kind.placeholder)")
                }
                switch kind.canonical(words[index]) {
                case .success(let text): canonical.append(text)
                case .failure(let error):
                    throw ConfigError("'\(words[index])' after '\(canonical.joined(separator: " "))': \(error.reason)")
                }
                index += 1
                return true
            }
            func end(slot: Int) throws(ConfigError) -> ResolvedPath {
                if index < words.count {
                    throw ConfigError("unexpected '\(words[index])' after '\(canonical.joined(separator: " "))': expected end of line")
                }
                return ResolvedPath(words: canonical, slotLength: slot)
            }
            switch child.kind {
            case .container:
                node = child
            case .interactive:
                throw ConfigError("'\(child.keyword)' is asked for interactively at the console; in a configuration text use '\(child.keyword)-hash'")
            case .flag:
                return try end(slot: canonical.count)
            case .leaf(let kind):
                let slot = canonical.count
                guard try value(kind) else { return ResolvedPath(words: canonical, slotLength: slot) }
                return try end(slot: slot)
            case .leafList(let kind):
                guard try value(kind) else { return ResolvedPath(words: canonical, slotLength: nil) }
                return try end(slot: canonical.count)
            case .list(let kind):
                guard try value(kind) else { return ResolvedPath(words: canonical, slotLength: nil) }
                if child.children.isEmpty { return try end(slot: canonical.count) }
                if index == words.count, partial { return ResolvedPath(words: canonical, slotLength: nil) }
                node = child
            }
        }
    }
}

/// Splits a line into words: blanks separate, double quotes group, backslash escapes
/// inside quotes, `#` starts a comment. Control characters are refused.
public enum ConfigLexer {
    public struct Failure: Error, Equatable { public let message: String }

    public static func words(_ line: String) throws(Failure) -> [String] {
        var words: [String] = []
        var current: [UInt8] = []
        var inWord = false, inQuotes = false, escaped = false
        for byte in line.utf8 {
            if byte < 0x20 && byte != 0x09 && byte != 0x0d || byte == 0x7f {
                throw Failure(message: "control character 0x\(String(byte, radix: 16)) in line")
            }
            if inQuotes {
                if escaped { current.append(byte); escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inQuotes = false }
                else { current.append(byte) }
                continue
            }
            switch byte {
            case UInt8(ascii: " "), 0x09, 0x0d:
                if inWord { words.append(String(decoding: current, as: UTF8.self)); current = []; inWord = false }
            case UInt8(ascii: "\""):
                inQuotes = true; inWord = true
            case UInt8(ascii: "#") where !inWord:
                return words
            default:
                current.append(byte); inWord = true
            }
        }
        if inQuotes { throw Failure(message: "unterminated quoted string") }
        if inWord { words.append(String(decoding: current, as: UTF8.self)) }
        return words
    }

    /// `word`, or `"word"` with escapes when it holds blanks, quotes, '#' or is empty.
    public static func quoted(_ word: String) -> String {
        let needsQuotes = word.isEmpty || word.utf8.contains {
            $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "#") || $0 == 0x09
        }
        guard needsQuotes else { return word }
        var out = "\""
        for character in word {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out + "\""
    }
}
