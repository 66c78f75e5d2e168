// The sans-I/O TLS engine: real OpenSSL handshakes between a server and a client
// engine in memory, with certificates made by the openssl tool for each run.
import Foundation
import IO
import Testing

/// A CA, a server certificate it signed, and an unrelated CA, in a fresh directory.
final class TestPKI {
    let directory: String
    var ca: String { directory + "/ca.pem" }
    var otherCA: String { directory + "/other-ca.pem" }
    var cert: String { directory + "/server.pem" }
    var key: String { directory + "/server.key" }

    init() throws {
        directory = NSTemporaryDirectory() + "tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try TestPKI.openssl(["req", "-x509"] + ec + ["-keyout", directory + "/ca.key", "-out", ca, "-days", "2", "-subj", "/CN=Test CA"])
        try TestPKI.openssl(["req", "-x509"] + ec + ["-keyout", directory + "/other.key", "-out", otherCA, "-days", "2", "-subj", "/CN=Other CA"])
        try TestPKI.openssl(["req"] + ec + ["-keyout", key, "-out", directory + "/server.csr", "-subj", "/CN=localhost"])
        try "subjectAltName=DNS:localhost\n".write(toFile: directory + "/ext", atomically: true, encoding: .utf8)
        try TestPKI.openssl(["x509", "-req", "-in", directory + "/server.csr", "-CA", ca, "-CAkey", directory + "/ca.key",
                             "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", directory + "/ext"])
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TLSTestError.openssl(arguments.joined(separator: " ")) }
    }
}

enum TLSTestError: Error { case openssl(String) }

/// Moves ciphertext between two engines until neither has anything to say.
func pump(_ a: TLSEngine, _ b: TLSEngine) {
    var buffer = [UInt8](repeating: 0, count: 65536)
    for _ in 0..<20 {
        var moved = false
        for (from, to) in [(a, b), (b, a)] {
            from.advance()
            let count = buffer.withUnsafeMutableBytes { from.takeCiphertext(into: $0) }
            if count > 0 {
                buffer.withUnsafeBytes { to.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                to.advance()
                moved = true
            }
        }
        if !moved { return }
    }
}

func readAll(_ engine: TLSEngine) -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = buffer.withUnsafeMutableBytes { engine.read(into: $0) }
        if count == 0 { return out }
        out += buffer[0..<count]
    }
}

@Suite struct TLSEngineTests {
    @Test func handshakeNegotiatesALPNAndCarriesData() throws {
        let pki = try TestPKI()
        let server = try TLSEngine(context: try TLSContext.server(certificatePath: pki.cert, keyPath: pki.key))
        let client = try TLSEngine(context: try TLSContext.client(caPath: pki.ca), serverName: "localhost")
        pump(client, server)
        #expect(client.status == .established)
        #expect(server.status == .established)
        #expect(server.negotiatedALPN == "bloo/1")
        #expect(server.protocolVersion == "TLSv1.3")
        #expect(client.write(Array("HELLO tunnel".utf8)))
        pump(client, server)
        #expect(readAll(server) == Array("HELLO tunnel".utf8))
        #expect(server.write([UInt8](repeating: 7, count: 40_000)))  // several records
        pump(server, client)
        #expect(readAll(client) == [UInt8](repeating: 7, count: 40_000))
        server.shutdown()
        pump(server, client)
        _ = readAll(client)
        #expect(client.status == .closed)
    }

    @Test func bufferedInputTellsWhenAnotherReadWouldFindData() throws {
        let pki = try TestPKI()
        let server = try TLSEngine(context: try TLSContext.server(certificatePath: pki.cert, keyPath: pki.key))
        let client = try TLSEngine(context: try TLSContext.client(caPath: pki.ca), serverName: "localhost")
        pump(client, server)
        _ = readAll(server)
        #expect(!server.hasBufferedInput)
        // Two records fed at once, read with a small buffer: more is pending until both are out.
        #expect(client.write([UInt8](repeating: 1, count: 300)))
        #expect(client.write([UInt8](repeating: 2, count: 300)))
        pump(client, server)
        var buffer = [UInt8](repeating: 0, count: 100)
        var total = 0
        while server.hasBufferedInput {
            let count = buffer.withUnsafeMutableBytes { server.read(into: $0) }
            total += count
            if count == 0 { break }
        }
        #expect(total == 600)
        #expect(!server.hasBufferedInput)
        let more = buffer.withUnsafeMutableBytes { server.read(into: $0) }
        #expect(more == 0)
    }

    @Test func clientWithTheWrongCAFailsTheHandshake() throws {
        let pki = try TestPKI()
        let server = try TLSEngine(context: try TLSContext.server(certificatePath: pki.cert, keyPath: pki.key))
        let client = try TLSEngine(context: try TLSContext.client(caPath: pki.otherCA), serverName: "localhost")
        pump(client, server)
        guard case let .failed(reason) = client.status else {
            Issue.record("client accepted an appliance its CA did not sign: \(client.status)")
            return
        }
        #expect(reason.contains("certificate verify failed"))
        #expect(server.status != .established)
    }

    @Test func clientCheckingAnotherNameFails() throws {
        let pki = try TestPKI()
        let server = try TLSEngine(context: try TLSContext.server(certificatePath: pki.cert, keyPath: pki.key))
        let client = try TLSEngine(context: try TLSContext.client(caPath: pki.ca), serverName: "proxy.example.net")
        pump(client, server)
        if case .failed = client.status {} else { Issue.record("host name not checked: \(client.status)") }
    }

    @Test func garbageFailsCleanly() throws {
        let pki = try TestPKI()
        let server = try TLSEngine(context: try TLSContext.server(certificatePath: pki.cert, keyPath: pki.key))
        Array("GET / HTTP/1.1\r\n\r\n".utf8).withUnsafeBytes { server.feed($0) }
        if case .failed = server.advance() {} else { Issue.record("HTTP accepted as TLS: \(server.status)") }
        #expect(!server.write([1, 2, 3]))
    }

    @Test func mismatchedKeyAndMissingFilesAreClearErrors() throws {
        let pki = try TestPKI()
        #expect(throws: TLSError.self) { try TLSContext.server(certificatePath: pki.cert, keyPath: pki.directory + "/other.key") }
        #expect(throws: TLSError.self) { try TLSContext.server(certificatePath: pki.directory + "/missing.pem", keyPath: pki.key) }
        #expect(throws: TLSError.self) { try TLSContext.client(caPath: pki.directory + "/missing.pem") }
    }

    @Test func establishedConnectionsSurviveANewContext() throws {
        // What a certificate reload does: new connections get a new context, old ones keep theirs.
        let pki = try TestPKI()
        var context: TLSContext? = try TLSContext.server(certificatePath: pki.cert, keyPath: pki.key)
        let server = try TLSEngine(context: context!)
        let client = try TLSEngine(context: try TLSContext.client(caPath: pki.ca), serverName: "localhost")
        pump(client, server)
        context = try TLSContext.server(certificatePath: pki.cert, keyPath: pki.key)  // the old one is released here
        #expect(context != nil)
        #expect(client.write(Array("still here".utf8)))
        pump(client, server)
        #expect(readAll(server) == Array("still here".utf8))
    }

    @Test func hmacMatchesRFC4231() {
        // RFC 4231 test case 2.
        let mac = TLSCrypto.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        let hex = mac.map { String(format: "%02x", $0) }.joined()
        #expect(hex == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(TLSCrypto.randomBytes(32) != TLSCrypto.randomBytes(32))
    }
}
