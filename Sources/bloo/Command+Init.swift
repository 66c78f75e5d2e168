// `bloo init`: PID 1 in the initramfs (see Update/InitProcess.swift).
import Glibc
import Update

enum InitCommand {
    static func run(_ words: [String]) throws -> Int32 {
        guard words.isEmpty else { throw UsageError("init: takes no arguments") }
        guard getpid() == 1 else {
            writeLine(STDERR_FILENO, "init: must run as process 1 in the initramfs")
            return ExitStatus.failure
        }
        InitProcess.run()
    }
}
