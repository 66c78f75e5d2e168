// Challenge-response authentication (docs/tunnel-protocol.md §4). The secret never
// crosses the wire: the client proves it knows it with an HMAC over both nonces,
// and the appliance proves it back, so a client also detects a fake appliance that
// does not hold the subscriber table. The MAC itself is computed by the caller
// (OpenSSL in the appliance), keeping this module free of crypto libraries.

import Hex

/// The two cryptographic primitives the protocol needs.
public protocol TunnelCrypto: Sendable {
    /// HMAC-SHA-256 of `message` under `key` (32 bytes).
    func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8]
    /// `count` bytes from a cryptographically secure generator.
    func randomBytes(_ count: Int) -> [UInt8]
}

/// Where the appliance finds what it needs to check a client.
public protocol TunnelCredentials: Sendable {
    /// The subscriber's shared secret, or nil when the alias is unknown here.
    func secret(forAlias alias: String) -> [UInt8]?
    /// Whether `token` is a live (detached, within grace) session of `alias`.
    func canResume(alias: String, token: [UInt8]) -> Bool
    /// Whether an alias that `secret(forAlias:)` does not know is left to the operator's
    /// gatekeeper (H.235 password token in the mirror's RRQ) instead of being refused.
    func verifiedByGatekeeper(alias: String) -> Bool
}

extension TunnelCredentials {
    public func verifiedByGatekeeper(alias: String) -> Bool { false }
}

/// The MAC inputs, shared by client and server. Labels separate the three uses so
/// that one MAC can never be replayed as another.
public enum TunnelAuth {
    static let clientLabel = Array("bloo/1 client-auth".utf8) + [0]
    static let serverLabel = Array("bloo/1 server-proof".utf8) + [0]
    static let resumeLabel = Array("bloo/1 resume".utf8) + [0]

    /// AUTH mac = HMAC(secret, "bloo/1 client-auth\0" | server nonce | client nonce | alias).
    public static func clientMAC(_ crypto: TunnelCrypto, secret: [UInt8], serverNonce: [UInt8],
                                 clientNonce: [UInt8], alias: String) -> [UInt8] {
        crypto.hmacSHA256(key: secret, message: clientLabel + serverNonce + clientNonce + Array(alias.utf8))
    }

    /// AUTH_OK proof = HMAC(secret, "bloo/1 server-proof\0" | client nonce | server nonce).
    public static func serverProof(_ crypto: TunnelCrypto, secret: [UInt8], serverNonce: [UInt8],
                                   clientNonce: [UInt8]) -> [UInt8] {
        crypto.hmacSHA256(key: secret, message: serverLabel + clientNonce + serverNonce)
    }

    /// RESUME mac = HMAC(secret, "bloo/1 resume\0" | server nonce | client nonce | token | alias).
    public static func resumeMAC(_ crypto: TunnelCrypto, secret: [UInt8], serverNonce: [UInt8],
                                 clientNonce: [UInt8], token: [UInt8], alias: String) -> [UInt8] {
        crypto.hmacSHA256(key: secret, message: resumeLabel + serverNonce + clientNonce + token + Array(alias.utf8))
    }

    /// Comparison whose time does not depend on where the inputs differ.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// A subscriber's secret as the appliance's subscriber table and the phone's settings
/// write it: the text's own bytes, or `hex:` and an even number of hex digits for any bytes.
public enum SecretText {
    /// Shorter secrets are refused by both sides.
    public static let minimumBytes = 8

    /// The secret's bytes; nil when a `hex:` secret is not an even number of hex digits.
    public static func bytes<S: StringProtocol>(_ text: S) -> [UInt8]? {
        guard text.hasPrefix("hex:") else { return Array(text.utf8) }
        return Hex.decode(text.dropFirst(4))
    }
}
