// Ed25519 signatures and SHA-256 through OpenSSL's EVP interface.
import COpenSSL
import Glibc
import Hex

/// Errors raised by the OpenSSL layer; the message names the failing step.
public struct CryptoError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Incremental SHA-256, so a payload is hashed while it streams.
public final class SHA256Hasher {
    private let context: OpaquePointer

    public init() {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func finish() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return digest
    }

    public static func digest(_ bytes: [UInt8]) -> [UInt8] {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finish()
    }
}

/// An Ed25519 public key: 32 raw bytes. Its id is the first 8 bytes of its SHA-256.
public struct PublicKey: Equatable, Sendable {
    public let raw: [UInt8]

    public init?(raw: [UInt8]) {
        guard raw.count == 32 else { return nil }
        self.raw = raw
    }

    public var id: String { Hex.encode(SHA256Hasher.digest(raw).prefix(8)) }

    /// Whether `signature` is a valid Ed25519 signature of `message` by this key.
    public func verifies(signature: [UInt8], of message: [UInt8]) -> Bool {
        guard signature.count == 64,
              let key = raw.withUnsafeBufferPointer({
                  EVP_PKEY_new_raw_public_key(NID_ED25519, nil, $0.baseAddress, 32)
              }) else { return false }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, nil, nil, key) == 1 else { return false }
        return EVP_DigestVerify(context, signature, signature.count, message, message.count) == 1
    }
}

/// An Ed25519 private key (its 32-byte seed).
public struct PrivateKey {
    let seed: [UInt8]

    public init?(seed: [UInt8]) {
        guard seed.count == 32 else { return nil }
        self.seed = seed
    }

    /// A fresh key from OpenSSL's random generator.
    public static func generate() throws -> PrivateKey {
        var seed = [UInt8](repeating: 0, count: 32)
        guard RAND_bytes(&seed, 32) == 1, let key = PrivateKey(seed: seed) else {
            throw CryptoError("the random generator failed")
        }
        return key
    }

    private func withKey<T>(_ body: (OpaquePointer) throws -> T) throws -> T {
        guard let key = seed.withUnsafeBufferPointer({
            EVP_PKEY_new_raw_private_key(NID_ED25519, nil, $0.baseAddress, 32)
        }) else { throw CryptoError("OpenSSL refused the Ed25519 private key") }
        defer { EVP_PKEY_free(key) }
        return try body(key)
    }

    public func publicKey() throws -> PublicKey {
        try withKey { key in
            var raw = [UInt8](repeating: 0, count: 32)
            var length = 32
            guard EVP_PKEY_get_raw_public_key(key, &raw, &length) == 1, length == 32,
                  let publicKey = PublicKey(raw: raw) else {
                throw CryptoError("cannot derive the Ed25519 public key")
            }
            return publicKey
        }
    }

    /// Ed25519 signature (64 bytes) through EVP_DigestSign.
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        try withKey { key in
            guard let context = EVP_MD_CTX_new() else { throw CryptoError("out of memory") }
            defer { EVP_MD_CTX_free(context) }
            guard EVP_DigestSignInit(context, nil, nil, nil, key) == 1 else {
                throw CryptoError("EVP_DigestSignInit failed")
            }
            var signature = [UInt8](repeating: 0, count: 64)
            var length = 64
            guard EVP_DigestSign(context, &signature, &length, message, message.count) == 1, length == 64 else {
                throw CryptoError("EVP_DigestSign failed")
            }
            return signature
        }
    }
}
