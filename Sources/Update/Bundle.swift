// The bundle container: magic, manifest, Ed25519 signature, then the images (docs/update.md).
//
//   offset 0        "BLOOBNDL"                     8 bytes
//   offset 8        manifest length L, big endian  4 bytes (1...Manifest.maximumLength)
//   offset 12       manifest text                  L bytes
//   offset 12+L     Ed25519 signature              64 bytes, over bytes [0, 12+L)
//   offset 76+L     images, in manifest order      exactly the sizes the manifest gives
//
// The signature covers only the header; the header carries each image's SHA-256, so a
// reader can check the signature before it has read (or written) one byte of payload.
import Hex
import Glibc

public enum BundleFormat {
    public static let magic: [UInt8] = Array("BLOOBNDL".utf8)
    public static let signatureLength = 64
}

/// Every reason a bundle is refused. Each message says precisely what is wrong.
public enum BundleRefusal: Error, CustomStringConvertible, Equatable {
    case notABundle
    case truncatedHeader(got: Int)
    case badManifestLength(Int)
    case badManifest(String)
    case unknownKey(String)
    case badSignature(String)
    case otherBoard(bundle: String, appliance: String)
    case belowFloor(version: FirmwareVersion, floor: FirmwareVersion)
    case needsNewerFirmware(minimum: FirmwareVersion, running: FirmwareVersion)
    case missingImage(String)
    case unknownImage(String)
    case doesNotFit(image: String, size: UInt64, slot: UInt64)
    case truncated(image: String, got: UInt64, expected: UInt64)
    case hashMismatch(image: String, expected: String, actual: String)
    case trailingData

    public var description: String {
        switch self {
        case .notABundle: "not a bloo bundle (bad magic)"
        case .truncatedHeader(let got): "bundle truncated inside its header (\(got) bytes)"
        case .badManifestLength(let length): "manifest length \(length) outside 1...\(Manifest.maximumLength)"
        case .badManifest(let why): "bad manifest: \(why)"
        case .unknownKey(let id): "signed with unknown key \(id): it is not in this appliance's keyring"
        case .badSignature(let id): "bad signature: the manifest does not match its signature by key \(id)"
        case .otherBoard(let bundle, let appliance): "bundle is for board \(bundle), this appliance is \(appliance)"
        case .belowFloor(let version, let floor): "version \(version) is below the anti-downgrade floor \(floor)"
        case .needsNewerFirmware(let minimum, let running): "bundle requires firmware \(minimum) or newer to install; running \(running)"
        case .missingImage(let name): "bundle carries no \(name) image"
        case .unknownImage(let name): "bundle carries unknown image '\(name)'"
        case .doesNotFit(let image, let size, let slot): "image \(image) (\(size) bytes) does not fit the slot (\(slot) bytes)"
        case .truncated(let image, let got, let expected): "bundle truncated: image \(image) got \(got) of \(expected) bytes"
        case .hashMismatch(let image, let expected, let actual): "image \(image) hash mismatch: manifest says \(expected), data is \(actual)"
        case .trailingData: "unexpected bytes after the last image"
        }
    }
}

/// Anything bytes can be read from: a pipe, a file, memory in tests.
public protocol ByteSource {
    /// Reads up to `buffer.count` bytes; 0 means end of stream.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A file descriptor as a byte source (stdin for `update install`).
public struct DescriptorSource: ByteSource {
    let fd: Int32
    public init(fd: Int32) { self.fd = fd }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            throw SystemError("cannot read the bundle")
        }
    }
}

extension ByteSource {
    /// Reads exactly `count` bytes or fewer at end of stream.
    mutating func readUpTo(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = try bytes.withUnsafeMutableBytes {
                try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[done...]))
            }
            if got == 0 { break }
            done += got
        }
        return Array(bytes[0..<done])
    }
}

/// What the appliance accepts: its board, its keyring, its anti-downgrade floor and
/// the version it runs (for the manifest's min-version).
public struct BundlePolicy: Sendable {
    public var board: String
    public var keyring: Keyring
    public var floor: FirmwareVersion
    public var running: FirmwareVersion

    public init(board: String, keyring: Keyring, floor: FirmwareVersion, running: FirmwareVersion) {
        self.board = board
        self.keyring = keyring
        self.floor = floor
        self.running = running
    }
}

/// A bundle's header, read and verified: nothing after it has been consumed yet.
public struct VerifiedHeader: Sendable {
    public let manifest: Manifest
    public let headerLength: Int
}

public enum BundleReader {
    /// Reads the header from `source` and checks it: signature by a trusted key first,
    /// then board, floor and min-version. Reads no payload byte.
    public static func readHeader(from source: inout some ByteSource, keyring: Keyring) throws -> VerifiedHeader {
        let fixed = try source.readUpTo(12)
        guard fixed.count == 12 else {
            if fixed.count >= 1, !BundleFormat.magic.starts(with: fixed) { throw BundleRefusal.notABundle }
            throw BundleRefusal.truncatedHeader(got: fixed.count)
        }
        guard Array(fixed[0..<8]) == BundleFormat.magic else { throw BundleRefusal.notABundle }
        let length = fixed[8..<12].reduce(0) { $0 << 8 | Int($1) }
        guard (1...Manifest.maximumLength).contains(length) else { throw BundleRefusal.badManifestLength(length) }
        let manifestBytes = try source.readUpTo(length)
        let signature = try source.readUpTo(BundleFormat.signatureLength)
        guard manifestBytes.count == length, signature.count == BundleFormat.signatureLength else {
            throw BundleRefusal.truncatedHeader(got: 12 + manifestBytes.count + signature.count)
        }
        // The key id is read before the signature is checked only to choose the key;
        // nothing else from the manifest is trusted until the signature holds.
        let manifest: Manifest
        do { manifest = try Manifest(parsing: manifestBytes) } catch { throw BundleRefusal.badManifest("\(error)") }
        guard let key = keyring.key(id: manifest.keyID) else { throw BundleRefusal.unknownKey(manifest.keyID) }
        guard key.verifies(signature: signature, of: fixed + manifestBytes) else {
            throw BundleRefusal.badSignature(manifest.keyID)
        }
        return VerifiedHeader(manifest: manifest, headerLength: 12 + length + BundleFormat.signatureLength)
    }

    /// Board, anti-downgrade floor and min-version checks of a verified manifest.
    public static func check(_ manifest: Manifest, against policy: BundlePolicy) throws {
        guard manifest.board == policy.board else {
            throw BundleRefusal.otherBoard(bundle: manifest.board, appliance: policy.board)
        }
        guard manifest.version >= policy.floor else {
            throw BundleRefusal.belowFloor(version: manifest.version, floor: policy.floor)
        }
        guard policy.running >= manifest.minimumVersion else {
            throw BundleRefusal.needsNewerFirmware(minimum: manifest.minimumVersion, running: policy.running)
        }
    }

    /// Streams the payload, handing each chunk of image `index` to `sink`, and checks
    /// each image's size and hash and that nothing follows the last one.
    public static func streamPayload(from source: inout some ByteSource, manifest: Manifest, chunkSize: Int = 1 << 20,
                                     sink: (_ image: ImageEntry, _ chunk: UnsafeRawBufferPointer, _ offset: UInt64) throws -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        for image in manifest.images {
            let hasher = SHA256Hasher()
            var done: UInt64 = 0
            while done < image.size {
                let want = Int(min(UInt64(chunkSize), image.size - done))
                let got = try buffer.withUnsafeMutableBytes {
                    try source.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]))
                }
                guard got > 0 else { throw BundleRefusal.truncated(image: image.name, got: done, expected: image.size) }
                try buffer.withUnsafeBytes { raw in
                    let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<got])
                    hasher.update(chunk)
                    try sink(image, chunk, done)
                }
                done += UInt64(got)
            }
            let actual = hasher.finish()
            guard actual == image.sha256 else {
                throw BundleRefusal.hashMismatch(image: image.name, expected: Hex.encode(image.sha256), actual: Hex.encode(actual))
            }
        }
        let extra = try buffer.withUnsafeMutableBytes { try source.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<1])) }
        guard extra == 0 else { throw BundleRefusal.trailingData }
    }
}

public enum BundleWriter {
    /// Builds a bundle at `output` from image files: hashes them, writes and signs the
    /// manifest, then copies the images.
    public static func create(output: String, key: PrivateKey, board: String, version: FirmwareVersion,
                              minimumVersion: FirmwareVersion, images: [(name: String, path: String)]) throws -> Manifest {
        var entries: [ImageEntry] = []
        for image in images {
            let hasher = SHA256Hasher()
            let size = try copyFile(image.path, to: nil) { hasher.update($0) }
            entries.append(ImageEntry(name: image.name, size: size, sha256: hasher.finish()))
        }
        let manifest = Manifest(board: board, version: version, minimumVersion: minimumVersion,
                                keyID: try key.publicKey().id, images: entries)
        let text = Array(manifest.text.utf8)
        guard text.count <= Manifest.maximumLength else { throw BundleRefusal.badManifestLength(text.count) }
        let length = UInt32(text.count)
        var header = BundleFormat.magic
        header += [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
        header += text
        header += try key.sign(header)
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError("cannot create \(output)") }
        defer { close(fd) }
        try FileIO.writeAll(fd, header, what: output)
        for (image, entry) in zip(images, entries) {
            let size = try copyFile(image.path, to: fd) { _ in }
            guard size == entry.size else { throw SystemError("\(image.path) changed while the bundle was built", code: EIO) }
        }
        guard fsync(fd) == 0 else { throw SystemError("cannot sync \(output)") }
        return manifest
    }

    /// Streams a file to `fd` (when given), showing each chunk to `observe`; returns its size.
    static func copyFile(_ path: String, to fd: Int32?, observe: (UnsafeRawBufferPointer) -> Void) throws -> UInt64 {
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw SystemError("cannot open \(path)") }
        defer { close(input) }
        var source = DescriptorSource(fd: input)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total: UInt64 = 0
        while true {
            let got = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
            if got == 0 { return total }
            try buffer.withUnsafeBytes { raw in
                let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<got])
                observe(chunk)
                if let fd { try FileIO.writeAll(fd, chunk, what: "the bundle") }
            }
            total += UInt64(got)
        }
    }
}
