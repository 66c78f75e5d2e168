// The `update` verbs as one entry point, shared by `bloo update ...` and the CLI
// (`update status|install|confirm|rollback`, `show update`), so both say the same thing.
import Glibc

public enum UpdateVerbs {
    public static let keyringDirectory = "/etc/bloo/keyring"

    /// Runs one verb. `install` reads the bundle from `input` (stdin for SSH). Normal output
    /// goes to `say`, progress and refusals to `warn`. Returns the exit status (0 or 1).
    public static func run(verb: String, input: Int32 = STDIN_FILENO, runningVersion: String,
                           keyring keyringDirectory: String = keyringDirectory,
                           isHealthy: () -> Bool = { false },
                           say: (String) -> Void, warn: @escaping (String) -> Void) -> Int32 {
        do {
            var board = try Board.load()
            board.apply(commandLine: (try? FileIO.readText("/proc/cmdline", limit: 4096)) ?? "")
            let store = BootStateStore(path: board.bootState)
            switch verb {
            case "status":
                say(BootControl.statusText(try store.read()))
            case "install":
                // A dropped SSH connection must end in a clean refusal, not a kill mid-write.
                signal(SIGPIPE, SIG_IGN)
                let installer = Installer(board: board, store: store, keyring: try Keyring(directory: keyringDirectory),
                                          runningFallback: FirmwareVersion(runningVersion) ?? FirmwareVersion("0")!,
                                          lockPath: "/run/bloo-update/lock", progress: warn)
                var source = DescriptorSource(fd: input)
                let manifest = try installer.install(from: &source)
                say("update: installed \(manifest.version); reboot to try it (it is confirmed once the daemon reports healthy)")
            case "confirm":
                let state = try store.update { $0 = try BootControl.confirm($0, reason: "confirmed by an admin") }
                say("update: \(state.event)")
            case "rollback":
                let state = try store.update { $0 = try BootControl.rollback($0) }
                say("update: \(state.event)")
            case "watchdog":
                return TrialWatchdog.run(board: board, store: store, isHealthy: isHealthy, say: say)
            default:
                warn("update: unknown verb '\(verb)' (expected status, install, confirm or rollback)")
                return 2
            }
            return 0
        } catch let refusal as BundleRefusal {
            warn("update \(verb): refused: \(refusal)")
            return 1
        } catch {
            warn("update \(verb): \(error)")
            return 1
        }
    }
}
