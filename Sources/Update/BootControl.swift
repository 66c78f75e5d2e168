// The decisions about slots, as pure functions of the boot state: which slot boots,
// confirm, roll back, and the marks an install makes. Callers persist the result.

public struct BootControlError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}

public enum BootControl {
    /// What `bloo init` boots, and the state to write before it does.
    public static func chooseSlot(_ state: BootState) -> (slot: Slot, state: BootState) {
        var next = state
        if let trial = state.trial {
            if state.triesLeft > 0, state[version: trial] != nil {
                next.triesLeft -= 1
                next.booted = trial
                next.event = "trial boot of slot \(state.describe(trial)), \(next.triesLeft) tries left after this one"
                return (trial, next)
            }
            // The trial slot used its boots without being confirmed: back to the last good one.
            let why = state.failure ?? "it was not confirmed during its trial boot"
            next.trial = nil
            next.triesLeft = 0
            next.event = "rolled back to slot \(state.describe(state.good)): slot \(state.describe(trial)) failed its trial (\(why))"
        }
        next.booted = state.good
        return (state.good, next)
    }

    /// Called when a slot on trial failed to mount: fall back at once.
    public static func trialUnbootable(_ state: BootState, reason: String) -> BootState {
        var next = state
        if let trial = state.trial {
            next.trial = nil
            next.triesLeft = 0
            next.booted = state.good
            next.failure = reason
            next.event = "rolled back to slot \(state.describe(state.good)): slot \(state.describe(trial)) failed its trial (\(reason))"
        }
        return next
    }

    /// The running trial slot is healthy: it becomes the good slot and raises the floor.
    public static func confirm(_ state: BootState, reason: String) throws -> BootState {
        guard let booted = state.booted else { throw BootControlError("the boot state does not say which slot is running") }
        guard state.trial == booted else {
            throw BootControlError("nothing to confirm: slot \(state.describe(booted)) is running and is not on trial")
        }
        var next = state
        next.good = booted
        next.trial = nil
        next.triesLeft = 0
        next.failure = nil
        if let version = state[version: booted], version > next.floor { next.floor = version }
        next.event = "slot \(state.describe(booted)) confirmed (\(reason))"
        return next
    }

    /// The watchdog found the trial slot unhealthy past its deadline.
    public static func trialFailed(_ state: BootState, reason: String) -> BootState {
        var next = state
        next.failure = reason
        next.triesLeft = 0
        next.event = "slot \(state.booted.map(state.describe) ?? "?") failed its trial: \(reason)"
        return next
    }

    /// An admin's rollback: abandon a trial (running or pending), or go back to the other
    /// slot when it holds a version at or above the floor. Takes effect at the next boot.
    public static func rollback(_ state: BootState) throws -> BootState {
        var next = state
        if let trial = state.trial {
            next.trial = nil
            next.triesLeft = 0
            next.failure = "rolled back by an admin"
            next.event = state.booted == trial
                ? "trial of slot \(state.describe(trial)) abandoned by an admin: the next boot returns to slot \(state.describe(state.good))"
                : "pending trial of slot \(state.describe(trial)) cancelled by an admin"
            return next
        }
        let other = state.good.other
        guard let version = state[version: other] else {
            throw BootControlError("cannot roll back: slot \(other.rawValue) holds no firmware")
        }
        guard version >= state.floor else {
            throw BootControlError("cannot roll back to slot \(state.describe(other)): below the anti-downgrade floor \(state.floor)")
        }
        next.good = other
        next.event = "rolled back by an admin: the next boot uses slot \(state.describe(other))"
        return next
    }

    /// Before the first byte is written to `slot`: it no longer holds anything bootable,
    /// and a pending trial of it is cancelled. The running slot and good slot are unchanged.
    public static func beginInstall(_ state: BootState, slot: Slot) throws -> BootState {
        guard slot != state.booted, slot != state.good else {
            throw BootControlError("refusing to write slot \(slot.rawValue): it is the running or the last good slot")
        }
        var next = state
        if next.trial == slot { next.trial = nil; next.triesLeft = 0 }
        next[version: slot] = nil
        return next
    }

    /// After the payload's hash matched and the slot was synced: one trial boot.
    public static func finishInstall(_ state: BootState, slot: Slot, version: FirmwareVersion, tries: Int) -> BootState {
        var next = state
        next[version: slot] = version
        next.trial = slot
        next.triesLeft = tries
        next.failure = nil
        next.event = "installed \(version) in slot \(slot.rawValue): it boots on trial at the next reboot"
        return next
    }

    /// Human-readable status, as `update status` / `show update` print it.
    public static func statusText(_ state: BootState) -> String {
        var lines: [String] = []
        if let booted = state.booted {
            let mode = state.trial == booted ? "on trial, not confirmed yet" : "confirmed"
            lines.append("running:  slot \(state.describe(booted)), \(mode)")
        } else {
            lines.append("running:  unknown (not booted through bloo init)")
        }
        for slot in Slot.allCases {
            var notes: [String] = []
            if state.good == slot { notes.append("last good") }
            if state.trial == slot { notes.append("trial, \(state.triesLeft) boots left") }
            lines.append("slot \(slot.rawValue):   \(state[version: slot].map { "\($0)" } ?? "empty")\(notes.isEmpty ? "" : " (" + notes.joined(separator: ", ") + ")")")
        }
        lines.append("floor:    \(state.floor) (anti-downgrade)")
        if let failure = state.failure { lines.append("failure:  \(failure)") }
        lines.append("last:     \(state.event)")
        return lines.joined(separator: "\n")
    }
}
