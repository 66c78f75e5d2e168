import Testing
@testable import Update

@Suite struct BundleTests {
    @Test func versionsCompareNumerically() {
        #expect(FirmwareVersion("0.10.0")! > FirmwareVersion("0.9.9")!)
        #expect(FirmwareVersion("1.0")! == FirmwareVersion("1.0.0")!)
        #expect(FirmwareVersion("1.2.3")!.description == "1.2.3")
        for bad in ["", "1..2", "a.b", "1.2.3.4.5", "-1", "1.2 ", "1234567"] { #expect(FirmwareVersion(bad) == nil) }
    }

    @Test func signatureRoundTripAndTamperDetection() throws {
        let key = try PrivateKey.generate()
        let message = Array("manifest".utf8)
        let signature = try key.sign(message)
        #expect(try key.publicKey().verifies(signature: signature, of: message))
        #expect(!(try key.publicKey().verifies(signature: signature, of: Array("manifesT".utf8))))
        var flipped = signature
        flipped[10] ^= 1
        #expect(!(try key.publicKey().verifies(signature: flipped, of: message)))
        #expect(!(try PrivateKey.generate().publicKey().verifies(signature: signature, of: message)))
    }

    @Test func keyFilesRoundTrip() throws {
        let key = try PrivateKey.generate()
        let publicKey = try key.publicKey()
        let text = KeyFile.publicText(publicKey, comment: "test")
        #expect(try KeyFile.field(text, tag: KeyFile.publicTag, path: "x") == publicKey.raw)
        #expect(throws: KeyError.self) { try KeyFile.field(text, tag: KeyFile.secretTag, path: "x") }
    }

    @Test func manifestRoundTripsAndRejectsHostileText() throws {
        let manifest = Manifest(board: "qemu-x86_64", version: FirmwareVersion("0.2.0")!, minimumVersion: FirmwareVersion("0.1.0")!,
                                keyID: "0011223344556677", images: [ImageEntry(name: "rootfs", size: 42, sha256: [UInt8](repeating: 7, count: 32))])
        #expect(try Manifest(parsing: Array(manifest.text.utf8)) == manifest)
        let hostile = [
            "bloo-bundle 2\n", "bloo-bundle 1\nboard a\n", "bloo-bundle 1\nboard a b\n",
            manifest.text.replacingOccurrences(of: "image rootfs 42", with: "image rootfs 99999999999999"),
            manifest.text + "image rootfs 1 " + String(repeating: "0", count: 64) + "\n",
            manifest.text + "shell rm -rf /\n", String(manifest.text.dropLast()),
        ]
        for text in hostile {
            #expect(throws: ManifestError.self) { try Manifest(parsing: Array(text.utf8)) }
        }
        #expect(throws: ManifestError.self) { try Manifest(parsing: [UInt8](repeating: 0x41, count: 5000)) }
    }

    @Test func headerRefusalsArePrecise() throws {
        let scratch = try Scratch()
        let good = try scratch.bundle(payload: randomBytes(1000))
        var source = MemorySource(good, piece: 7)
        let header = try BundleReader.readHeader(from: &source, keyring: scratch.keyring)
        #expect(header.manifest.version == FirmwareVersion("1.1.0")!)

        func refusal(_ bytes: [UInt8], keyring: Keyring? = nil) -> BundleRefusal? {
            var source = MemorySource(bytes)
            do { _ = try BundleReader.readHeader(from: &source, keyring: keyring ?? scratch.keyring) } catch let error as BundleRefusal {
                return error
            } catch { return nil }
            return nil
        }
        #expect(refusal(Array("GARBAGE!xxxx".utf8)) == .notABundle)
        #expect(refusal(Array(good.prefix(30))) == .truncatedHeader(got: 30))
        let keyID = try scratch.key.publicKey().id
        #expect(refusal(good, keyring: Keyring(keys: [])) == .unknownKey(keyID))
        var badSignature = good
        badSignature[header.headerLength - 5] ^= 0x40
        #expect(refusal(badSignature) == .badSignature(keyID))
        var hugeLength = good
        hugeLength[8] = 0x7f
        #expect(refusal(hugeLength) == .badManifestLength(0x7f00_0000 | Int(good[9]) << 16 | Int(good[10]) << 8 | Int(good[11])))
    }

    @Test func policyRefusesOtherBoardDowngradeAndTooOldFirmware() throws {
        let manifest = Manifest(board: "qemu-x86_64", version: FirmwareVersion("0.2.0")!, minimumVersion: FirmwareVersion("0.1.5")!,
                                keyID: "0011223344556677", images: [])
        let keyring = Keyring(keys: [])
        func policy(board: String = "qemu-x86_64", floor: String = "0.1.0", running: String = "0.1.9") -> BundlePolicy {
            BundlePolicy(board: board, keyring: keyring, floor: FirmwareVersion(floor)!, running: FirmwareVersion(running)!)
        }
        try BundleReader.check(manifest, against: policy())
        #expect(throws: BundleRefusal.otherBoard(bundle: "qemu-x86_64", appliance: "rack-1u")) {
            try BundleReader.check(manifest, against: policy(board: "rack-1u"))
        }
        #expect(throws: BundleRefusal.belowFloor(version: FirmwareVersion("0.2.0")!, floor: FirmwareVersion("0.3.0")!)) {
            try BundleReader.check(manifest, against: policy(floor: "0.3.0"))
        }
        #expect(throws: BundleRefusal.needsNewerFirmware(minimum: FirmwareVersion("0.1.5")!, running: FirmwareVersion("0.1.0")!)) {
            try BundleReader.check(manifest, against: policy(running: "0.1.0"))
        }
        #expect(BundleRefusal.belowFloor(version: FirmwareVersion("0.0.9")!, floor: FirmwareVersion("0.1.0")!).description
                == "version 0.0.9 is below the anti-downgrade floor 0.1.0")
    }
}
