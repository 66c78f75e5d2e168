/// Every command of the multi-call binary, in the order `bloo help` lists them.
/// Each issue's command adds one line here and its body in `Command+<Area>.swift`.
enum CommandTable {
    static let all: [Command] = [
        Command(name: "help", summary: "list the commands", usage: "bloo help") { _ in
            Dispatcher.printHelp(to: 1)
            return ExitStatus.success
        },
        Command(name: "version", summary: "print the version, git revision and build date",
                usage: "bloo version") { arguments in
            guard arguments.isEmpty else { throw UsageError("version: takes no arguments") }
            writeLine(1, BuildInfo.line)
            return ExitStatus.success
        },
        Command(name: "tunnel-serve", summary: "run the tunnel terminator alone (lab backend)",
                usage: TunnelCommand.usage) { try TunnelCommand.run($0) },
        Command(name: "phone", summary: "the command-line softphone: scan, register, call, listen",
                usage: PhoneCommand.usage) { try PhoneCommand.run($0) },
    ]

    static func find(_ name: String) -> Command? { all.first { $0.name == name } }
}
