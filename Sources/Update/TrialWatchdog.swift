// The trial deadline: on a boot of a slot on trial, wait for the daemon to report
// healthy and confirm the slot; past the deadline, record why and reboot, so that
// `bloo init` returns to the last good slot.
//
// Health comes from the daemon (docs/update.md): the caller passes a probe, which in the
// firmware asks `show health` on the control socket and reads `healthy=yes` (configuration
// applied, listeners up, workers alive, gatekeeper reachable if one is configured).
import CBoot
import Glibc

public enum TrialWatchdog {
    /// True when a `show health` reply in key=value form says `healthy=yes`.
    public static func healthyReply(_ text: String) -> Bool {
        text.split(separator: "\n").contains { $0.trimmingSpaces == "healthy=yes" }
    }

    /// Runs until the trial is settled. Returns the exit status.
    public static func run(board: Board, store: BootStateStore, isHealthy: () -> Bool,
                           say: (String) -> Void) -> Int32 {
        guard let state = try? store.read(), let booted = state.booted, state.trial == booted else {
            say("update watchdog: not on trial, nothing to watch")
            return 0
        }
        say("update watchdog: slot \(state.describe(booted)) on trial: waiting up to \(board.trialDeadline) s for the daemon to report healthy")
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        while true {
            guard let current = try? store.read(), current.trial == booted, current.booted == booted else {
                say("update watchdog: the trial was settled by someone else")
                return 0
            }
            if isHealthy() {
                do {
                    let confirmed = try BootControl.confirm(current, reason: "the daemon reported healthy")
                    try store.write(confirmed, after: current)
                    say("update watchdog: \(confirmed.event)")
                    return 0
                } catch {
                    say("update watchdog: cannot confirm: \(error)")
                    return 1
                }
            }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if Int(now.tv_sec - start.tv_sec) >= board.trialDeadline { break }
            sleep(1)
        }
        let reason = "the daemon did not report healthy within \(board.trialDeadline) s"
        if let current = try? store.read() {
            _ = try? store.write(BootControl.trialFailed(current, reason: reason), after: current)
        }
        say("update watchdog: slot \(state.describe(booted)) failed its trial: \(reason); rebooting to slot \(state.describe(state.good))")
        // Ask init for a clean reboot; force one if it has not happened soon.
        kill(1, SIGTERM)
        sleep(30)
        _ = cboot_reboot()
        return 1
    }
}
