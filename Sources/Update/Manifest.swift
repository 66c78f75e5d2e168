// The bundle manifest: a short signed text, one field per line (docs/update.md).

import Hex

/// One image carried by a bundle.
public struct ImageEntry: Equatable, Sendable {
    public let name: String
    public let size: UInt64
    public let sha256: [UInt8]
}

/// Why a manifest was rejected; the text says which line and why.
public struct ManifestError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}

public struct Manifest: Equatable, Sendable {
    public static let formatVersion = 1
    /// Bound on the manifest text, so a hostile header cannot make us allocate much.
    public static let maximumLength = 4096
    public static let maximumImages = 4
    /// Bound on one image: larger than any slot this firmware supports.
    public static let maximumImageSize: UInt64 = 1 << 34

    public var format: Int
    public var board: String
    public var version: FirmwareVersion
    public var minimumVersion: FirmwareVersion
    public var keyID: String
    public var images: [ImageEntry]

    public init(board: String, version: FirmwareVersion, minimumVersion: FirmwareVersion,
                keyID: String, images: [ImageEntry]) {
        self.format = Manifest.formatVersion
        self.board = board
        self.version = version
        self.minimumVersion = minimumVersion
        self.keyID = keyID
        self.images = images
    }

    public var text: String {
        var lines = ["bloo-bundle \(format)", "board \(board)", "version \(version)",
                     "min-version \(minimumVersion)", "key \(keyID)"]
        for image in images {
            lines.append("image \(image.name) \(image.size) \(Hex.encode(image.sha256))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Total payload bytes that follow the signature.
    public var payloadSize: UInt64 { images.reduce(0) { $0 + $1.size } }

    static func isName(_ text: Substring) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
        }
    }

    public init(parsing bytes: [UInt8]) throws {
        guard bytes.count <= Manifest.maximumLength else { throw ManifestError("manifest longer than \(Manifest.maximumLength) bytes") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ManifestError("manifest is not UTF-8 text") }
        guard text.hasSuffix("\n") else { throw ManifestError("manifest does not end with a newline") }
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
        var format: Int?, board: String?, version: FirmwareVersion?, minimum: FirmwareVersion?, key: String?
        var images: [ImageEntry] = []
        for (number, line) in lines.enumerated() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            let where_ = "manifest line \(number + 1)"
            guard let field = fields.first else { throw ManifestError("\(where_): empty") }
            if number == 0 {
                guard field == "bloo-bundle", fields.count == 2, let value = Int(fields[1]) else {
                    throw ManifestError("\(where_): expected 'bloo-bundle <format>'")
                }
                guard value == Manifest.formatVersion else {
                    throw ManifestError("bundle format \(value) is not supported (this firmware reads format \(Manifest.formatVersion))")
                }
                format = value
                continue
            }
            switch field {
            case "board":
                guard fields.count == 2, Manifest.isName(fields[1]), board == nil else { throw ManifestError("\(where_): bad or repeated board") }
                board = String(fields[1])
            case "version":
                guard fields.count == 2, version == nil, let value = FirmwareVersion(fields[1]) else { throw ManifestError("\(where_): bad or repeated version") }
                version = value
            case "min-version":
                guard fields.count == 2, minimum == nil, let value = FirmwareVersion(fields[1]) else { throw ManifestError("\(where_): bad or repeated min-version") }
                minimum = value
            case "key":
                guard fields.count == 2, key == nil, fields[1].utf8.count == 16, Hex.decode(fields[1]) != nil else {
                    throw ManifestError("\(where_): bad or repeated key id")
                }
                key = String(fields[1])
            case "image":
                guard fields.count == 4, Manifest.isName(fields[1]),
                      fields[2].utf8.count <= 12, fields[2].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                      let size = UInt64(fields[2]), size > 0, size <= Manifest.maximumImageSize,
                      fields[3].utf8.count == 64, let digest = Hex.decode(fields[3]) else {
                    throw ManifestError("\(where_): expected 'image <name> <size> <sha256>'")
                }
                guard images.count < Manifest.maximumImages else { throw ManifestError("more than \(Manifest.maximumImages) images") }
                guard !images.contains(where: { $0.name == fields[1] }) else { throw ManifestError("\(where_): image \(fields[1]) repeated") }
                images.append(ImageEntry(name: String(fields[1]), size: size, sha256: digest))
            default:
                throw ManifestError("\(where_): unknown field '\(field)'")
            }
        }
        guard let format else { throw ManifestError("manifest is empty") }
        guard let board else { throw ManifestError("manifest has no board") }
        guard let version else { throw ManifestError("manifest has no version") }
        guard let minimum else { throw ManifestError("manifest has no min-version") }
        guard let key else { throw ManifestError("manifest has no key id") }
        guard !images.isEmpty else { throw ManifestError("manifest lists no image") }
        self.format = format
        self.board = board
        self.version = version
        self.minimumVersion = minimum
        self.keyID = key
        self.images = images
    }
}
