// TLS configuration for the tunnel: TLS 1.2 minimum, forward-secret AEAD ciphers
// only, ALPN `bloo/1`, certificate chain and key read from files. A context is
// immutable once built; reloading the certificate means building a new context and
// using it for new connections, while existing connections keep the one they were
// accepted with (OpenSSL reference-counts it), so a reload drops nobody.

import COpenSSL
import Glibc

public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ what: String) { description = "\(what): \(TLSError.drainQueue())" }

    /// The thread's OpenSSL error queue as text (and empties it).
    static func drainQueue() -> String {
        var parts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            parts.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return parts.isEmpty ? "no details" : parts.joined(separator: "; ")
    }
}

public final class TLSContext: @unchecked Sendable {
    // SSL_CTX is safe to share between threads once configured (only SSL_new reads it).
    let handle: OpaquePointer
    public let isServer: Bool

    /// The TLS 1.2 cipher list: ECDHE key exchange, AEAD only. TLS 1.3 suites are
    /// OpenSSL's defaults (all AEAD).
    public static let cipherList =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" +
        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    /// ALPN identifier of the tunnel protocol.
    public static let alpn = "bloo/1"

    private init(handle: OpaquePointer, isServer: Bool) {
        self.handle = handle
        self.isServer = isServer
    }

    deinit { SSL_CTX_free(handle) }

    /// A server context from PEM files: `certificatePath` holds the certificate
    /// followed by any intermediates.
    public static func server(certificatePath: String, keyPath: String) throws -> TLSContext {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError("SSL_CTX_new") }
        let context = TLSContext(handle: ctx, isServer: true)
        try context.applyCommonSettings()
        _ = SSL_CTX_set_options(ctx, bloo_SSL_OP_server_defaults())
        _ = bloo_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
        guard SSL_CTX_use_certificate_chain_file(ctx, certificatePath) == 1 else {
            throw TLSError("cannot load certificate \(certificatePath)")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, keyPath, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError("cannot load private key \(keyPath)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError("private key \(keyPath) does not match certificate \(certificatePath)")
        }
        SSL_CTX_set_alpn_select_cb(ctx, selectALPN, nil)
        return context
    }

    /// A client context that trusts only the CAs in `caPath` (the phone, tests, bench).
    public static func client(caPath: String) throws -> TLSContext {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSError("SSL_CTX_new") }
        let context = TLSContext(handle: ctx, isServer: false)
        try context.applyCommonSettings()
        guard SSL_CTX_load_verify_locations(ctx, caPath, nil) == 1 else {
            throw TLSError("cannot load CA file \(caPath)")
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        return context
    }

    private func applyCommonSettings() throws {
        guard bloo_SSL_CTX_set_min_proto_version(handle, bloo_TLS1_2_VERSION()) == 1 else {
            throw TLSError("cannot require TLS 1.2")
        }
        guard SSL_CTX_set_cipher_list(handle, TLSContext.cipherList) == 1 else {
            throw TLSError("cipher list rejected")
        }
        // Idle connections give their record buffers back (the idle-memory target);
        // partial writes let a memory BIO take what it is given without retries.
        _ = bloo_SSL_CTX_set_mode(handle, bloo_SSL_MODE_RELEASE_BUFFERS() | bloo_SSL_MODE_ENABLE_PARTIAL_WRITE()
                                  | bloo_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER())
    }
}

/// ALPN: the client must offer `bloo/1` if it offers anything; a client that offers
/// only other protocols (a browser: h2, http/1.1) is refused during the handshake.
private let selectALPN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
                                        UnsafeMutablePointer<UInt8>?, UnsafePointer<UInt8>?, UInt32,
                                        UnsafeMutableRawPointer?) -> Int32 = { _, out, outLength, offered, offeredLength, _ in
    guard let out, let outLength, let offered else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    let want = Array(TLSContext.alpn.utf8)
    var index = 0
    let total = Int(offeredLength)
    while index < total {
        let length = Int(offered[index])
        let start = index + 1
        guard start + length <= total else { break }
        if length == want.count, (0..<length).allSatisfy({ offered[start + $0] == want[$0] }) {
            out.pointee = offered + start
            outLength.pointee = UInt8(length)
            return SSL_TLSEXT_ERR_OK
        }
        index = start + length
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL
}
