// The streaming installer: header verified before any slot byte is written, payload
// hashed while it is written to the inactive slot, trial marked only on a hash match.
import Glibc

public struct InstallError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

public struct Installer {
    public let board: Board
    public let store: BootStateStore
    public let keyring: Keyring
    /// The version the running binary reports, used when the boot state lacks one.
    public let runningFallback: FirmwareVersion
    /// Where progress lines go as the install proceeds.
    public let progress: (String) -> Void
    /// Serialises installs; nil in unit tests that run one at a time.
    public let lockPath: String?

    public init(board: Board, store: BootStateStore, keyring: Keyring, runningFallback: FirmwareVersion,
                lockPath: String? = "/run/bloo-update/lock", progress: @escaping (String) -> Void) {
        self.board = board
        self.store = store
        self.keyring = keyring
        self.runningFallback = runningFallback
        self.lockPath = lockPath
        self.progress = progress
    }

    /// Installs the bundle read from `source` into the inactive slot. On any error the
    /// good slot, the running slot and the next boot's choice are left as they were.
    public func install(from source: inout some ByteSource) throws -> Manifest {
        var lockFD: Int32 = -1
        if let lockPath {
            lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o660)  // rcS makes it: root:update 0660
            guard lockFD >= 0 else { throw SystemError("cannot open \(lockPath)") }
            guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
                close(lockFD)
                throw InstallError("another install is already running")
            }
        }
        defer { if lockFD >= 0 { close(lockFD) } }

        let state = try store.read()
        guard let running = state.booted else { throw InstallError("the boot state does not say which slot is running") }
        guard state.trial != running else {
            throw InstallError("slot \(state.describe(running)) is on trial: confirm it or roll back before installing")
        }
        let target = running.other

        let header = try BundleReader.readHeader(from: &source, keyring: keyring)
        let manifest = header.manifest
        let policy = BundlePolicy(board: board.name, keyring: keyring, floor: state.floor,
                                  running: state[version: running] ?? runningFallback)
        try BundleReader.check(manifest, against: policy)
        for image in manifest.images where image.name != "rootfs" { throw BundleRefusal.unknownImage(image.name) }
        guard let rootfs = manifest.images.first(where: { $0.name == "rootfs" }) else { throw BundleRefusal.missingImage("rootfs") }

        let device = board.device(of: target)
        let fd = open(device, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("cannot open slot \(target.rawValue) (\(device))") }
        defer { close(fd) }
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else { throw SystemError("cannot size slot \(target.rawValue) (\(device))") }
        guard rootfs.size <= UInt64(end) else {
            throw BundleRefusal.doesNotFit(image: rootfs.name, size: rootfs.size, slot: UInt64(end))
        }
        progress("install: bundle \(manifest.version) for \(manifest.board) signed by key \(manifest.keyID): signature good")
        progress("install: writing \(rootfs.size) bytes to slot \(target.rawValue) (\(device))")

        // From here the target slot holds nothing bootable until the hash has matched.
        let marked = try store.write(try BootControl.beginInstall(state, slot: target), after: state)
        var nextReport: UInt64 = 0
        let step = max(rootfs.size / 10, 1)
        try BundleReader.streamPayload(from: &source, manifest: manifest) { _, chunk, offset in
            var done = 0
            while done < chunk.count {
                let written = pwrite(fd, chunk.baseAddress! + done, chunk.count - done, off_t(offset) + off_t(done))
                if written < 0 {
                    if errno == EINTR { continue }
                    if errno == ENOSPC { throw InstallError("slot \(target.rawValue) is full after \(offset + UInt64(done)) bytes") }
                    throw SystemError("cannot write slot \(target.rawValue) (\(device))")
                }
                done += written
            }
            let total = offset + UInt64(chunk.count)
            if total >= nextReport || total == rootfs.size {
                progress("install: \(total * 100 / rootfs.size)% (\(total / 1024) of \(rootfs.size / 1024) KiB)")
                nextReport = (total / step + 1) * step
            }
        }
        guard fsync(fd) == 0 else { throw SystemError("cannot sync slot \(target.rawValue) (\(device))") }
        try store.write(BootControl.finishInstall(marked, slot: target, version: manifest.version, tries: board.trialTries),
                        after: marked)
        progress("install: hash good; slot \(target.rawValue) holds \(manifest.version) and boots on trial at the next reboot")
        return manifest
    }
}
