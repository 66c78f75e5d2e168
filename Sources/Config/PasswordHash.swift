import COpenSSL
import Hex

// Login passwords are stored only as salted PBKDF2-HMAC-SHA256 hashes:
//   pbkdf2-sha256$<iterations>$<salt hex>$<derived key hex>
// The iteration count travels with the hash so that it can be raised later without
// invalidating stored passwords.
public enum PasswordHash {
    public static let defaultIterations = 200_000
    /// Bounds a hostile configuration cannot exceed (a huge count would be a denial of service).
    static let iterationRange = 1_000...5_000_000
    static let prefix = "pbkdf2-sha256$"

    /// Hashes `password` with a fresh random 16-byte salt.
    public static func make(password: String, iterations: Int = defaultIterations) -> String? {
        var salt = [UInt8](repeating: 0, count: 16)
        guard iterationRange.contains(iterations), RAND_bytes(&salt, Int32(salt.count)) == 1,
              let key = derive(password: password, salt: salt, iterations: iterations) else { return nil }
        return prefix + "\(iterations)$" + Hex.encode(salt) + "$" + Hex.encode(key)
    }

    /// True when `password` matches `hash`. Malformed hashes never match.
    public static func verify(password: String, hash: String) -> Bool {
        guard let parts = split(hash),
              let key = derive(password: password, salt: parts.salt, iterations: parts.iterations),
              key.count == parts.key.count else { return false }
        return CRYPTO_memcmp(key, parts.key, key.count) == 0
    }

    public static func isWellFormed(_ hash: String) -> Bool { split(hash) != nil }

    private static func split(_ hash: String) -> (iterations: Int, salt: [UInt8], key: [UInt8])? {
        guard hash.hasPrefix(prefix), hash.utf8.count <= 256 else { return nil }
        let fields = hash.dropFirst(prefix.count).split(separator: "$", omittingEmptySubsequences: false)
        guard fields.count == 3, let iterations = parseDecimal(fields[0]), iterationRange.contains(iterations),
              let salt = Hex.decode(fields[1]), (8...64).contains(salt.count),
              let key = Hex.decode(fields[2]), key.count == 32 else { return nil }
        return (iterations, salt, key)
    }

    private static func derive(password: String, salt: [UInt8], iterations: Int) -> [UInt8]? {
        var key = [UInt8](repeating: 0, count: 32)
        let utf8 = Array(password.utf8)
        let ok = utf8.withUnsafeBufferPointer { passwordBytes in
            passwordBytes.baseAddress.map { base in
                base.withMemoryRebound(to: CChar.self, capacity: utf8.count) { chars in
                    PKCS5_PBKDF2_HMAC(chars, Int32(utf8.count), salt, Int32(salt.count), Int32(iterations),
                                      EVP_sha256(), Int32(key.count), &key)
                }
            } ?? PKCS5_PBKDF2_HMAC("", 0, salt, Int32(salt.count), Int32(iterations), EVP_sha256(), Int32(key.count), &key)
        }
        return ok == 1 ? key : nil
    }
}
