// The primitives the tunnel's challenge-response (and H.235 password tokens) need, through OpenSSL.

import COpenSSL

public enum TLSCrypto {
    /// HMAC-SHA-256 (32 bytes).
    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { messageBytes in
                HMAC(EVP_sha256(), keyBytes.baseAddress, Int32(keyBytes.count),
                     messageBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), messageBytes.count,
                     &output, &length) != nil
            }
        }
        precondition(ok && length == 32, "HMAC-SHA-256 unavailable")  // a broken libcrypto, not input
        return Array(output.prefix(32))
    }

    /// MD5 (16 bytes), only for H.235.1 password tokens, which the operator's gatekeeper
    /// defines; never for anything this product chooses itself.
    public static func md5(_ message: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = message.withUnsafeBytes { bytes in
            EVP_Digest(bytes.baseAddress, bytes.count, &output, &length, EVP_md5(), nil) == 1
        }
        precondition(ok && length == 16, "MD5 unavailable")  // a broken libcrypto, not input
        return Array(output.prefix(16))
    }

    /// Bytes from OpenSSL's CSPRNG.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        let ok = RAND_bytes(&output, Int32(count)) == 1
        precondition(ok, "RAND_bytes failed")  // no entropy: refusing to continue is the only safe choice
        return output
    }
}
