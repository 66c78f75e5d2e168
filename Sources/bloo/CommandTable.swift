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
        Command(name: "daemon", summary: "run the appliance: interfaces, privileges, workers, control socket",
                usage: DaemonCommand.usage) { try DaemonCommand.run($0) },
        ConsoleCommands.console,
        ConsoleCommands.cli,
        Command(name: "init", summary: "boot: choose a slot and start the system (process 1 of the initramfs)",
                usage: "bloo init", run: InitCommand.run),
        Command(name: "bundle", summary: "create, sign and verify firmware update bundles",
                usage: BundleCommand.usage, run: BundleCommand.run),
        Command(name: "update", summary: "firmware update: status, install (bundle on stdin), confirm, rollback",
                usage: "bloo update status|install|confirm|rollback", run: UpdateCommand.run),
        Command(name: "tunnel-serve", summary: "run the tunnel terminator alone (lab backend)",
                usage: TunnelCommand.usage) { try TunnelCommand.run($0) },
        Command(name: "tunnel-load", summary: "tunnel benchmark load generator (G.711 calls over tunnels)",
                usage: TunnelLoadCommand.usage) { try TunnelLoadCommand.run($0) },
        RelayCommandLine.command,
        Command(name: "h323", summary: "decode H.323 messages (RAS, Q.931, H.225, H.245); print sample encodings",
                usage: H323Command.usage) { try H323Command.run($0) },
        Command(name: "phone", summary: "the command-line softphone: scan, register, call, listen",
                usage: PhoneCommand.usage) { try PhoneCommand.run($0) },
        Command(name: "lab", summary: "lab tools: H.323 gatekeeper and gateway for tests (not for service)",
                usage: LabCommand.usage) { try LabCommand.run($0) },
        Command(name: "mirror-serve", summary: "run the tunnel terminator with the H.323 mirror backend",
                usage: MirrorCommand.usage) { try MirrorCommand.run($0) },
        Command(name: "cdr", summary: "show the last call detail records", usage: MirrorCommand.cdrUsage) { try MirrorCommand.cdr($0) },
    ]

    static func find(_ name: String) -> Command? { all.first { $0.name == name } }
}
