import Glibc
import Testing
@testable import Update

@Suite struct BootStateTests {
    func fresh() -> BootState {
        var state = BootState(good: .a, version: FirmwareVersion("0.1.0")!, event: "built")
        state.booted = .a
        return state
    }

    @Test func recordRoundTripsAndDetectsCorruption() {
        var state = fresh()
        state.trial = .b
        state.triesLeft = 1
        state.versionB = FirmwareVersion("0.2.0")
        state.failure = "line\nbreak"
        let record = state.encoded()
        #expect(record.count == BootState.recordSize)
        var decoded = BootState.decode(record)
        #expect(decoded?.failure == "line break")
        decoded?.failure = state.failure
        #expect(decoded?.trial == .b && decoded?.triesLeft == 1 && decoded?.versionB == FirmwareVersion("0.2.0"))
        for index in stride(from: 0, to: 300, by: 37) {
            var corrupt = record
            corrupt[index] ^= 0x01
            #expect(BootState.decode(corrupt) == nil, "flipped byte \(index) went unnoticed")
        }
        #expect(BootState.decode([UInt8](repeating: 0, count: 512)) == nil)
    }

    @Test func tornWriteKeepsThePreviousCopy() throws {
        let scratch = try Scratch()
        let first = try scratch.store.read()
        var next = first
        next.event = "second"
        let written = try scratch.store.write(next, after: first)
        #expect(try scratch.store.read().event == "second")
        // Tear the copy that was just written: the reader falls back to the other one.
        let offset = BootState.copyOffsets[Int(written.generation % 2)]
        let fd = open(scratch.board.bootState, O_WRONLY)
        defer { close(fd) }
        try FileIO.writeAll(fd, [UInt8](repeating: 0x55, count: 100), at: offset + 50, what: "test")
        let survivor = try scratch.store.read()
        #expect(survivor.event == first.event && survivor.generation == first.generation)
    }

    @Test func trialBootsOnceThenRollsBack() throws {
        var state = BootControl.finishInstall(fresh(), slot: .b, version: FirmwareVersion("0.2.0")!, tries: 1)
        var choice = BootControl.chooseSlot(state)
        #expect(choice.slot == .b && choice.state.triesLeft == 0 && choice.state.booted == .b)
        state = BootControl.trialFailed(choice.state, reason: "no health report")
        choice = BootControl.chooseSlot(state)
        #expect(choice.slot == .a && choice.state.trial == nil && choice.state.good == .a)
        #expect(choice.state.event.contains("rolled back to slot A (0.1.0)") && choice.state.event.contains("no health report"))
        // Also when the box died during the trial boot (nobody recorded a reason).
        var crashed = BootControl.chooseSlot(BootControl.finishInstall(fresh(), slot: .b, version: FirmwareVersion("0.2.0")!, tries: 1)).state
        crashed.booted = .b
        #expect(BootControl.chooseSlot(crashed).slot == .a)
    }

    @Test func confirmMakesTheTrialGoodAndRaisesTheFloor() throws {
        let installed = BootControl.finishInstall(fresh(), slot: .b, version: FirmwareVersion("0.2.0")!, tries: 1)
        #expect(throws: BootControlError.self) { try BootControl.confirm(installed, reason: "x") }  // not booted yet
        let booted = BootControl.chooseSlot(installed).state
        let confirmed = try BootControl.confirm(booted, reason: "healthy")
        #expect(confirmed.good == .b && confirmed.trial == nil && confirmed.floor == FirmwareVersion("0.2.0")!)
        #expect(BootControl.chooseSlot(confirmed).slot == .b)
        // Rolling back to 0.1.0 now would cross the floor.
        #expect(throws: BootControlError.self) { try BootControl.rollback(confirmed) }
    }

    @Test func adminRollbackAbandonsARunningTrial() throws {
        let booted = BootControl.chooseSlot(BootControl.finishInstall(fresh(), slot: .b, version: FirmwareVersion("0.2.0")!, tries: 1)).state
        let rolledBack = try BootControl.rollback(booted)
        #expect(rolledBack.trial == nil && BootControl.chooseSlot(rolledBack).slot == .a)
    }

    @Test func installNeverTouchesTheRunningOrGoodSlot() {
        #expect(throws: BootControlError.self) { try BootControl.beginInstall(fresh(), slot: .a) }
    }
}

@Suite struct TrialWatchdogTests {
    @Test func healthyOnlyWhenTheDaemonSaysSo() {
        #expect(TrialWatchdog.healthyReply("healthy=yes\nconfig=applied\n"))
        #expect(!TrialWatchdog.healthyReply("healthy=no\nconfig=errors\n"))
        #expect(!TrialWatchdog.healthyReply("unhealthy=yes\n"))
        #expect(!TrialWatchdog.healthyReply(""))
    }

    @Test func confirmsTheTrialSlotWhenHealthy() throws {
        let scratch = try Scratch()
        try scratch.store.update {
            $0 = BootControl.chooseSlot(BootControl.finishInstall($0, slot: .b, version: FirmwareVersion("1.1.0")!, tries: 1)).state
        }
        var probes = 0
        let status = TrialWatchdog.run(board: scratch.board, store: scratch.store, isHealthy: { probes += 1; return probes >= 2 },
                                       say: { _ in })
        #expect(status == 0 && probes == 2)
        let state = try scratch.store.read()
        #expect(state.good == .b && state.trial == nil && state.floor == FirmwareVersion("1.1.0")!)
        #expect(state.event.contains("confirmed (the daemon reported healthy)"))
    }
}
