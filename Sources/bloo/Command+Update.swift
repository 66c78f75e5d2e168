// `bloo bundle ...` and `bloo update ...`: thin wrappers over the Update module.
import Control
import Glibc
import Update


func updateFailure(_ area: String, _ error: Error) -> Int32 {
    if error is BundleRefusal {
        writeLine(STDERR_FILENO, "\(area): refused: \(error)")
    } else {
        writeLine(STDERR_FILENO, "\(area): \(error)")
    }
    return ExitStatus.failure
}

func parseVersion(_ text: String, flag: String, command: String) throws -> FirmwareVersion {
    guard let version = FirmwareVersion(text) else {
        throw UsageError("\(command): --\(flag) '\(text)' is not a version like 1.2.3")
    }
    return version
}

enum BundleCommand {
    static let usage = """
        bloo bundle keygen --output PREFIX [--comment TEXT]
               bloo bundle create --key K --rootfs IMG --version V --board B [--min-version M] [--output FILE]
               bloo bundle verify [--keyring DIR | --public-key FILE] [--board B] BUNDLE
        """

    static func run(_ words: [String]) throws -> Int32 {
        guard let verb = words.first else { throw UsageError("bundle: expected keygen, create or verify") }
        let rest = Array(words.dropFirst())
        switch verb {
        case "keygen":
            let arguments = try Arguments(rest, command: "bundle keygen", options: ["output", "comment"])
            let prefix = try arguments.required("output", command: "bundle keygen")
            guard arguments.positionals.isEmpty else { throw UsageError("bundle keygen: unexpected '\(arguments.positionals[0])'") }
            do {
                let key = try PrivateKey.generate()
                let publicKey = try key.publicKey()
                guard access(prefix + ".key", F_OK) != 0 else {
                    writeLine(STDERR_FILENO, "bundle keygen: \(prefix).key exists; not overwriting a signing key")
                    return ExitStatus.failure
                }
                try FileIO.writeAtomically(prefix + ".key", Array(KeyFile.secretText(key).utf8), mode: 0o600)
                try FileIO.writeAtomically(prefix + ".pub", Array(KeyFile.publicText(publicKey, comment: arguments.value("comment") ?? "bloo").utf8))
                writeLine(STDOUT_FILENO, "key \(publicKey.id): secret \(prefix).key, public \(prefix).pub")
                return ExitStatus.success
            } catch { return updateFailure("bundle keygen", error) }
        case "create":
            let command = "bundle create"
            let arguments = try Arguments(rest, command: command,
                                          options: ["key", "rootfs", "version", "board", "min-version", "output"])
            guard arguments.positionals.isEmpty else { throw UsageError("\(command): unexpected '\(arguments.positionals[0])'") }
            let version = try parseVersion(try arguments.required("version", command: command), flag: "version", command: command)
            let minimum = try arguments.value("min-version").map { try parseVersion($0, flag: "min-version", command: command) }
                ?? FirmwareVersion("0")!
            let board = try arguments.required("board", command: command)
            let output = arguments.value("output") ?? "\(board)-\(version).bundle"
            do {
                let key = try KeyFile.readSecret(try arguments.required("key", command: command))
                let manifest = try BundleWriter.create(output: output, key: key, board: board, version: version,
                                                       minimumVersion: minimum,
                                                       images: [("rootfs", try arguments.required("rootfs", command: command))])
                writeLine(STDOUT_FILENO, "\(output): version \(manifest.version) for \(manifest.board), \(manifest.payloadSize) payload bytes, key \(manifest.keyID)")
                return ExitStatus.success
            } catch { return updateFailure(command, error) }
        case "verify":
            let command = "bundle verify"
            let arguments = try Arguments(rest, command: command, options: ["keyring", "public-key", "board"])
            guard arguments.positionals.count == 1 else { throw UsageError("\(command): expected one bundle file") }
            let path = arguments.positionals[0]
            do {
                let keyring: Keyring
                if let file = arguments.value("public-key") {
                    keyring = Keyring(keys: [try KeyFile.readPublic(file)])
                } else {
                    keyring = try Keyring(directory: arguments.value("keyring") ?? UpdateVerbs.keyringDirectory)
                }
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw SystemError("cannot open \(path)") }
                defer { close(fd) }
                var source = DescriptorSource(fd: fd)
                let header = try BundleReader.readHeader(from: &source, keyring: keyring)
                if let board = arguments.value("board"), board != header.manifest.board {
                    throw BundleRefusal.otherBoard(bundle: header.manifest.board, appliance: board)
                }
                try BundleReader.streamPayload(from: &source, manifest: header.manifest) { _, _, _ in }
                writeLine(STDOUT_FILENO, "\(path): good: signed by key \(header.manifest.keyID), all image hashes match\n" + header.manifest.text)
                return ExitStatus.success
            } catch { return updateFailure(command, error) }
        default:
            throw UsageError("bundle: unknown verb '\(verb)' (expected keygen, create or verify)")
        }
    }
}

enum UpdateCommand {
    static func run(_ words: [String]) throws -> Int32 {
        guard let verb = words.first else { throw UsageError("update: expected status, install, confirm or rollback") }
        if verb == "init-state" { return try initState(Array(words.dropFirst())) }
        let arguments = try Arguments(Array(words.dropFirst()), command: "update \(verb)", options: ["keyring"])
        guard arguments.positionals.isEmpty else { throw UsageError("update \(verb): unexpected '\(arguments.positionals[0])'") }
        guard ["status", "install", "confirm", "rollback", "watchdog"].contains(verb) else {
            throw UsageError("update: unknown verb '\(verb)' (expected status, install, confirm or rollback)")
        }
        return UpdateVerbs.run(verb: verb, runningVersion: BuildInfo.version,
                               keyring: arguments.value("keyring") ?? UpdateVerbs.keyringDirectory,
                               isHealthy: daemonIsHealthy,
                               say: { writeLine(STDOUT_FILENO, $0) }, warn: { writeLine(STDERR_FILENO, $0) })
    }

    /// Hook for `bloo cli`: the update verbs the CLI accepts (`update status|install|confirm|
    /// rollback`, `show update`), run with the session's stdin (the bundle over SSH).
    /// Returns nil when `words` are not an update command, so the CLI handles them.
    /// Who may write is enforced by the kernel: the slots and the boot state belong to
    /// group `update` (admin), so an operator's install fails before anything is written.
    static func fromCLI(_ words: [String]) -> Int32? {
        let verb: String
        switch (words.first, words.count) {
        case ("update", 2) where ["status", "install", "confirm", "rollback"].contains(words[1]): verb = words[1]
        case ("show", 2) where words[1] == "update": verb = "status"
        default: return nil
        }
        return UpdateVerbs.run(verb: verb, runningVersion: BuildInfo.version,
                               say: { writeLine(STDOUT_FILENO, $0) }, warn: { writeLine(STDERR_FILENO, $0) })
    }

    /// The daemon's own verdict, over the control socket; no answer is not healthy.
    static func daemonIsHealthy() -> Bool {
        guard let reply = try? ControlClient(timeoutSeconds: 5).show("health", format: .kv) else { return false }
        return TrialWatchdog.healthyReply(reply)
    }

    /// Image builds only: a fresh boot state in a file (slot A good, holding VERSION).
    static func initState(_ words: [String]) throws -> Int32 {
        let command = "update init-state"
        let arguments = try Arguments(words, command: command, options: ["output", "version"])
        let version = try parseVersion(try arguments.required("version", command: command), flag: "version", command: command)
        let path = try arguments.required("output", command: command)
        do {
            try FileIO.writeAtomically(path, [UInt8](repeating: 0, count: 1 << 20))
            let store = BootStateStore(path: path)
            let state = try store.write(BootState(good: .a, version: version, event: "image built with \(version) in slot A"), after: nil)
            writeLine(STDOUT_FILENO, BootControl.statusText(state))
            return ExitStatus.success
        } catch { return updateFailure(command, error) }
    }
}
