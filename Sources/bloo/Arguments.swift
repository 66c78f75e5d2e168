/// A command-line mistake: reported on stderr with exit status 2.
struct UsageError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// A small, strict argument scanner for subcommands: declared flags only,
/// `--name value` or `--name=value`, and positionals. Anything undeclared is a
/// UsageError, so a typo never silently changes behaviour.
struct Arguments {
    private(set) var values: [String: String] = [:]
    private(set) var switches: Set<String> = []
    private(set) var positionals: [String] = []

    /// - Parameters:
    ///   - options: flags that take a value, without the leading dashes.
    ///   - flags: boolean switches, without the leading dashes.
    init(_ words: [String], command: String, options: Set<String> = [], flags: Set<String> = []) throws {
        var index = 0
        var onlyPositionals = false
        while index < words.count {
            let word = words[index]
            index += 1
            if onlyPositionals || !word.hasPrefix("--") || word == "-" {
                if !onlyPositionals, word.hasPrefix("-"), word != "-", Int(word) == nil {
                    throw UsageError("\(command): unknown option '\(word)'")
                }
                positionals.append(word)
                continue
            }
            if word == "--" { onlyPositionals = true; continue }
            var name = String(word.dropFirst(2))
            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if flags.contains(name) {
                guard inlineValue == nil else { throw UsageError("\(command): --\(name) takes no value") }
                switches.insert(name)
            } else if options.contains(name) {
                if let inlineValue {
                    values[name] = inlineValue
                } else {
                    guard index < words.count else { throw UsageError("\(command): --\(name) needs a value") }
                    values[name] = words[index]
                    index += 1
                }
            } else {
                throw UsageError("\(command): unknown option '--\(name)'")
            }
        }
    }

    func value(_ name: String) -> String? { values[name] }

    func has(_ flag: String) -> Bool { switches.contains(flag) }

    func required(_ name: String, command: String) throws -> String {
        guard let value = values[name] else { throw UsageError("\(command): --\(name) is required") }
        return value
    }

    func integer(_ name: String, command: String, range: ClosedRange<Int>) throws -> Int? {
        guard let text = values[name] else { return nil }
        guard let number = Int(text), range.contains(number) else {
            throw UsageError("\(command): --\(name) must be a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }
}
