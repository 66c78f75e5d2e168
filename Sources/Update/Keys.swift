// Key files and the keyring of trusted public keys.
import Hex
import Glibc

/// Errors about key files: which file and why.
public struct KeyError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Key files are one text line: `bloo-ed25519-public <64 hex digits> [comment]`
/// or `bloo-ed25519-secret <64 hex digits>` (the secret file is created mode 0600).
public enum KeyFile {
    public static let publicTag = "bloo-ed25519-public"
    public static let secretTag = "bloo-ed25519-secret"

    public static func publicText(_ key: PublicKey, comment: String) -> String {
        "\(publicTag) \(Hex.encode(key.raw)) \(comment)\n"
    }

    public static func secretText(_ key: PrivateKey) -> String {
        "\(secretTag) \(Hex.encode(key.seed))\n"
    }

    static func field(_ text: String, tag: String, path: String) throws -> [UInt8] {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count >= 2, words[0] == tag, let bytes = Hex.decode(words[1]), bytes.count == 32 else {
            throw KeyError("\(path): not a \(tag) key file")
        }
        return bytes
    }

    public static func readPublic(_ path: String) throws -> PublicKey {
        let raw = try field(try FileIO.readText(path, limit: 4096), tag: publicTag, path: path)
        guard let key = PublicKey(raw: raw) else { throw KeyError("\(path): bad public key") }
        return key
    }

    public static func readSecret(_ path: String) throws -> PrivateKey {
        let seed = try field(try FileIO.readText(path, limit: 4096), tag: secretTag, path: path)
        guard let key = PrivateKey(seed: seed) else { throw KeyError("\(path): bad secret key") }
        return key
    }
}

/// The public keys the appliance trusts: every `*.pub` file of one directory.
public struct Keyring: Sendable {
    public private(set) var keys: [String: PublicKey] = [:]

    public init(keys: [PublicKey]) {
        for key in keys { self.keys[key.id] = key }
    }

    /// Reads `directory/*.pub`; a missing directory is an empty keyring.
    public init(directory: String) throws {
        guard let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard name.hasSuffix(".pub") else { continue }
            let key = try KeyFile.readPublic(directory + "/" + name)
            keys[key.id] = key
        }
    }

    public func key(id: String) -> PublicKey? { keys[id] }
}
