import Foundation
@testable import Update

/// A scratch directory with a board whose devices are plain files.
final class Scratch {
    let directory: String
    let board: Board
    let key: PrivateKey
    let keyring: Keyring

    init(slotBytes: Int = 1 << 20) throws {
        directory = NSTemporaryDirectory() + "bloo-update-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in ["bootstate", "a", "b", "data"] {
            let size = name == "bootstate" ? 1 << 20 : slotBytes
            FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data(count: size))
        }
        board = try Board(parsing: """
            board=test-board
            bootstate=\(directory)/bootstate
            slot-a=\(directory)/a
            slot-b=\(directory)/b
            data=\(directory)/data
            trial-tries=1
            trial-deadline=30
            """)
        key = try PrivateKey.generate()
        keyring = Keyring(keys: [try key.publicKey()])
        var state = BootState(good: .a, version: FirmwareVersion("1.0.0")!, event: "fresh")
        state.booted = .a
        try BootStateStore(path: board.bootState).write(state, after: nil)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    var store: BootStateStore { BootStateStore(path: board.bootState) }

    func file(_ name: String) -> [UInt8] { Array(FileManager.default.contents(atPath: "\(directory)/\(name)") ?? Data()) }

    /// A bundle for `payload` as bytes.
    func bundle(payload: [UInt8], version: String = "1.1.0", minimum: String = "0", board: String = "test-board",
                signer: PrivateKey? = nil) throws -> [UInt8] {
        let image = "\(directory)/payload-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: image, contents: Data(payload))
        let output = image + ".bundle"
        _ = try BundleWriter.create(output: output, key: signer ?? key, board: board, version: FirmwareVersion(version)!,
                                    minimumVersion: FirmwareVersion(minimum)!, images: [("rootfs", image)])
        return file(String(output.dropFirst(directory.count + 1)))
    }

    func installer(progress: @escaping (String) -> Void = { _ in }) -> Installer {
        Installer(board: board, store: store, keyring: keyring, runningFallback: FirmwareVersion("1.0.0")!,
                  lockPath: nil, progress: progress)
    }
}

/// Bytes in memory as a byte source, optionally handing them out in small pieces.
struct MemorySource: ByteSource {
    let bytes: [UInt8]
    var position = 0
    var piece = Int.max

    init(_ bytes: [UInt8], piece: Int = Int.max) {
        self.bytes = bytes
        self.piece = piece
    }

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, bytes.count - position, piece)
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { raw in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[position..<position + count]))
        }
        position += count
        return count
    }
}

func randomBytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255) } }
