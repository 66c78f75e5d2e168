import CSystem
import Glibc
import Log

/// Exit statuses shared by every command.
enum ExitStatus {
    static let success: Int32 = 0
    static let failure: Int32 = 1
    /// Bad command line: unknown command, unknown flag, missing value.
    static let usage: Int32 = 2
}

/// One `bloo` command: its name, a one-line summary for `bloo help`, and its body.
struct Command: Sendable {
    let name: String
    let summary: String
    let usage: String
    let run: @Sendable ([String]) throws -> Int32
}

/// Routes `bloo <command> ...` and `bloo-<command> ...` (argv[0] dispatch, so a
/// symlink `bloo-cli` can be a login shell) to the command table.
enum Dispatcher {
    static let programName = "bloo"

    static func run(arguments: [String]) -> Int32 {
        var words = Array(arguments.dropFirst())
        let invokedAs = basename(of: arguments.first ?? programName)
        if invokedAs.hasPrefix(programName + "-") {
            // bloo-cli as a login shell is started as "-bloo-cli" by some
            // login programs; the leading dash was stripped by basename's caller.
            words.insert(String(invokedAs.dropFirst(programName.count + 1)), at: 0)
        }
        do {
            words = try GlobalOptions.consume(words)
            guard let name = words.first else {
                printHelp(to: STDERR_FILENO)
                return ExitStatus.usage
            }
            guard let command = CommandTable.find(name) else {
                writeLine(STDERR_FILENO, "bloo: unknown command '\(name)'. Run 'bloo help' for the list.")
                return ExitStatus.usage
            }
            let arguments = Array(words.dropFirst())
            if arguments.first == "--help" || arguments.first == "-h" {
                writeLine(STDOUT_FILENO, "usage: \(command.usage)\n\n\(command.summary)")
                return ExitStatus.success
            }
            return try command.run(arguments)
        } catch let error as UsageError {
            writeLine(STDERR_FILENO, "bloo: \(error.message)")
            return ExitStatus.usage
        } catch {
            writeLine(STDERR_FILENO, "bloo: \(error)")
            return ExitStatus.failure
        }
    }

    static func basename(of path: String) -> String {
        var name = path.split(separator: "/").last.map(String.init) ?? path
        if name.hasPrefix("-") { name.removeFirst() }  // login shells: argv[0] = "-bloo-cli"
        return name
    }

    static func printHelp(to fd: Int32) {
        var text = "usage: bloo [--log-level LEVEL] <command> [arguments]\n\ncommands:\n"
        let width = CommandTable.all.map(\.name.count).max() ?? 0
        for command in CommandTable.all {
            text += "  " + command.name + String(repeating: " ", count: width - command.name.count + 2)
                + command.summary + "\n"
        }
        text += "\nRun 'bloo <command> --help' for a command's options."
        writeLine(fd, text)
    }
}

/// Options accepted before the command name.
enum GlobalOptions {
    static func consume(_ words: [String]) throws -> [String] {
        var rest = words[...]
        while let word = rest.first, word.hasPrefix("-") {
            rest = rest.dropFirst()
            switch word {
            case "--version", "-V":
                return ["version"]
            case "--help", "-h":
                return ["help"]
            case "--log-level":
                guard let value = rest.first else { throw UsageError("--log-level needs a value") }
                rest = rest.dropFirst()
                try setLogLevel(value)
            default:
                if word.hasPrefix("--log-level=") {
                    try setLogLevel(String(word.dropFirst("--log-level=".count)))
                } else {
                    throw UsageError("unknown option '\(word)'. Run 'bloo help'.")
                }
            }
        }
        return Array(rest)
    }

    private static func setLogLevel(_ name: String) throws {
        guard let level = LogLevel(name: name) else {
            let names = LogLevel.allCases.map(\.name).joined(separator: ", ")
            throw UsageError("unknown log level '\(name)' (expected one of: \(names))")
        }
        LogSink.level = level
    }
}

/// The identity compiled into the binary by the Makefile.
enum BuildInfo {
    static let version = String(cString: bloo_build_version())
    static let revision = String(cString: bloo_build_revision())
    static let date = String(cString: bloo_build_date())

    static var line: String { "bloo \(version) (revision \(revision), built \(date))" }
}

/// Writes a line to a descriptor with one write call.
func writeLine(_ fd: Int32, _ text: String) {
    var line = text
    line.append("\n")
    line.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}
