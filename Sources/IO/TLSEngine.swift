// One TLS connection as a sans-I/O engine over memory BIOs: the driver hands in
// ciphertext read from the socket and takes out ciphertext to write; the
// application reads and writes plaintext. No socket is touched here, so the same
// engine serves the epoll terminator, the tests and the benchmark client.

import COpenSSL
import Glibc

public final class TLSEngine {
    public enum Status: Equatable, Sendable {
        case handshaking
        case established
        /// The peer sent close_notify.
        case closed
        case failed(String)
    }

    private let ssl: OpaquePointer
    private let incoming: OpaquePointer   // BIO: socket -> SSL
    private let outgoing: OpaquePointer   // BIO: SSL -> socket
    public private(set) var status: Status = .handshaking

    public init(context: TLSContext, serverName: String? = nil) throws {
        ERR_clear_error()
        guard let ssl = SSL_new(context.handle) else { throw TLSError("SSL_new") }
        guard let incoming = BIO_new(BIO_s_mem()), let outgoing = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError("BIO_new")
        }
        // An empty memory BIO means "no data yet", not end of file.
        _ = bloo_BIO_set_mem_eof_return(incoming, -1)
        _ = bloo_BIO_set_mem_eof_return(outgoing, -1)
        SSL_set_bio(ssl, incoming, outgoing)
        // Read ahead: a record is taken from the memory BIO in one read instead of header
        // then body (`hasBufferedInput` accounts for what it holds).
        SSL_set_read_ahead(ssl, 1)
        self.ssl = ssl
        self.incoming = incoming
        self.outgoing = outgoing
        if context.isServer {
            SSL_set_accept_state(ssl)
        } else {
            SSL_set_connect_state(ssl)
            var protocols: [UInt8] = [UInt8(TLSContext.alpn.utf8.count)] + Array(TLSContext.alpn.utf8)
            _ = SSL_set_alpn_protos(ssl, &protocols, UInt32(protocols.count))
            if let serverName {
                _ = bloo_SSL_set_tlsext_host_name(ssl, serverName)
                _ = SSL_set1_host(ssl, serverName)
            }
        }
    }

    deinit { SSL_free(ssl) }  // frees both BIOs

    /// Ciphertext received from the peer.
    public func feed(_ ciphertext: UnsafeRawBufferPointer) {
        guard let base = ciphertext.baseAddress, ciphertext.count > 0 else { return }
        _ = BIO_write(incoming, base, Int32(clamping: ciphertext.count))
    }

    /// Runs the handshake as far as the buffered input allows.
    @discardableResult
    public func advance() -> Status {
        guard status == .handshaking else { return status }
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            status = .established
        } else {
            let error = SSL_get_error(ssl, result)
            if error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE {
                status = .failed(TLSError.drainQueue())
            }
        }
        return status
    }

    /// Decrypts into `buffer`. Returns the byte count, 0 when nothing is available.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        if status == .handshaking { advance() }
        guard status == .established, let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        ERR_clear_error()
        let result = SSL_read(ssl, base, Int32(clamping: buffer.count))
        if result > 0 { return Int(result) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: break
        case SSL_ERROR_ZERO_RETURN: status = .closed
        default: status = .failed(TLSError.drainQueue())
        }
        return 0
    }

    /// Whether a `read` could return more plaintext now: ciphertext fed but not yet
    /// decrypted, or a decrypted record not fully read. When false, `read` would only
    /// report "nothing available", so the caller can skip that call.
    public var hasBufferedInput: Bool { BIO_ctrl_pending(incoming) > 0 || SSL_has_pending(ssl) == 1 }

    /// Encrypts all of `plaintext` (memory BIOs never refuse).
    @discardableResult
    public func write(_ plaintext: UnsafeRawBufferPointer) -> Bool {
        guard status == .established else { return false }
        var offset = 0
        while offset < plaintext.count, let base = plaintext.baseAddress {
            ERR_clear_error()
            let result = SSL_write(ssl, base + offset, Int32(clamping: plaintext.count - offset))
            guard result > 0 else {
                status = .failed(TLSError.drainQueue())
                return false
            }
            offset += Int(result)
        }
        return true
    }

    public func write(_ plaintext: [UInt8]) -> Bool {
        plaintext.withUnsafeBytes { write($0) }
    }

    /// Ciphertext waiting to be sent to the peer.
    public var pendingCiphertext: Int { Int(BIO_ctrl_pending(outgoing)) }

    /// Moves up to `buffer.count` bytes of pending ciphertext into `buffer`.
    public func takeCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let result = BIO_read(outgoing, base, Int32(clamping: buffer.count))  // empty: -1 (retry), not EOF
        return result > 0 ? Int(result) : 0
    }

    /// Appends all pending ciphertext to `output`.
    public func takeCiphertext(appendingTo output: inout [UInt8]) {
        let count = pendingCiphertext
        guard count > 0 else { return }
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: count))
        let taken = output.withUnsafeMutableBytes { takeCiphertext(into: UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
        output.removeLast(count - taken)
    }

    /// Queues close_notify (take the ciphertext afterwards).
    public func shutdown() {
        guard status == .established else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
    }

    public var negotiatedALPN: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    public var cipherName: String {
        guard let cipher = SSL_get_current_cipher(ssl) else { return "" }
        return String(cString: SSL_CIPHER_get_name(cipher))
    }
}
