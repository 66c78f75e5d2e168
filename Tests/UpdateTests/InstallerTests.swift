import Testing
@testable import Update

@Suite struct InstallerTests {
    @Test func streamsIntoTheInactiveSlotAndMarksOneTrial() throws {
        let scratch = try Scratch()
        let payload = randomBytes(300_000)
        var source = MemorySource(try scratch.bundle(payload: payload), piece: 4093)
        var lines: [String] = []
        let manifest = try scratch.installer { lines.append($0) }.install(from: &source)
        #expect(manifest.version == FirmwareVersion("1.1.0")!)
        #expect(Array(scratch.file("b").prefix(payload.count)) == payload)
        #expect(scratch.file("a").allSatisfy { $0 == 0 })
        let state = try scratch.store.read()
        #expect(state.trial == .b && state.triesLeft == 1 && state.versionB == FirmwareVersion("1.1.0")! && state.good == .a)
        #expect(lines.contains { $0.contains("100%") })
    }

    /// Runs a failing install and checks that neither slot A nor the boot choice moved.
    func expectRefusal(_ scratch: Scratch, _ bytes: [UInt8], slotUntouched: Bool, matches: (Error) -> Bool) throws {
        let before = try scratch.store.read()
        let slotBefore = scratch.file("b")
        var source = MemorySource(bytes)
        #expect(performing: { _ = try scratch.installer().install(from: &source) }, throws: matches)
        let after = try scratch.store.read()
        #expect(BootControl.chooseSlot(after).slot == BootControl.chooseSlot(before).slot)
        #expect(after.trial == before.trial && after.good == before.good && after.booted == before.booted)
        #expect(scratch.file("a").allSatisfy { $0 == 0 })
        if slotUntouched {
            #expect(scratch.file("b") == slotBefore)
            #expect(after == before)
        }
    }

    @Test func badSignatureWritesNothing() throws {
        let scratch = try Scratch()
        var bytes = try scratch.bundle(payload: randomBytes(10_000))
        bytes[100] ^= 0x20
        try expectRefusal(scratch, bytes, slotUntouched: true) { "\($0)".contains("bad") }
    }

    @Test func unknownKeyOtherBoardAndDowngradeWriteNothing() throws {
        let scratch = try Scratch()
        let stranger = try PrivateKey.generate()
        try expectRefusal(scratch, try scratch.bundle(payload: randomBytes(100), signer: stranger), slotUntouched: true) {
            ($0 as? BundleRefusal) == .unknownKey(try! stranger.publicKey().id)
        }
        try expectRefusal(scratch, try scratch.bundle(payload: randomBytes(100), board: "other"), slotUntouched: true) {
            ($0 as? BundleRefusal) == .otherBoard(bundle: "other", appliance: "test-board")
        }
        try expectRefusal(scratch, try scratch.bundle(payload: randomBytes(100), version: "0.9"), slotUntouched: true) {
            ($0 as? BundleRefusal) == .belowFloor(version: FirmwareVersion("0.9")!, floor: FirmwareVersion("1.0.0")!)
        }
        try expectRefusal(scratch, try scratch.bundle(payload: randomBytes(100), minimum: "1.0.1"), slotUntouched: true) {
            ($0 as? BundleRefusal) == .needsNewerFirmware(minimum: FirmwareVersion("1.0.1")!, running: FirmwareVersion("1.0.0")!)
        }
    }

    @Test func imageLargerThanTheSlotIsRefusedBeforeWriting() throws {
        let scratch = try Scratch(slotBytes: 4096)
        try expectRefusal(scratch, try scratch.bundle(payload: randomBytes(5000)), slotUntouched: true) {
            ($0 as? BundleRefusal) == .doesNotFit(image: "rootfs", size: 5000, slot: 4096)
        }
    }

    @Test func truncatedStreamWrongHashAndTrailingBytesLeaveTheBootChoice() throws {
        let scratch = try Scratch()
        let bundle = try scratch.bundle(payload: randomBytes(200_000))
        try expectRefusal(scratch, Array(bundle.prefix(150_000)), slotUntouched: false) {
            if case .truncated(_, _, 200_000)? = $0 as? BundleRefusal { return true }
            return false
        }
        var corrupt = bundle
        corrupt[corrupt.count - 10] ^= 0xff
        try expectRefusal(scratch, corrupt, slotUntouched: false) {
            if case .hashMismatch? = $0 as? BundleRefusal { return true }
            return false
        }
        try expectRefusal(scratch, bundle + [0], slotUntouched: false) { ($0 as? BundleRefusal) == .trailingData }
        // The half-written slot is no longer recorded as holding firmware.
        #expect(try scratch.store.read().versionB == nil)
    }

    @Test func refusesWhileRunningOnTrial() throws {
        let scratch = try Scratch()
        var source = MemorySource(try scratch.bundle(payload: randomBytes(1000)))
        _ = try scratch.installer().install(from: &source)
        try scratch.store.update { $0 = BootControl.chooseSlot($0).state }  // reboot into B on trial
        try expectRefusal(scratch, try scratch.bundle(payload: randomBytes(1000), version: "1.2"), slotUntouched: true) {
            "\($0)".contains("on trial")
        }
    }
}
