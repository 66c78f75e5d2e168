// A bundle arrives from an SSH session: whatever its bytes, the header reader either
// refuses with a BundleRefusal or accepts only a manifest signed by a trusted key, and
// streaming the payload never writes more than the manifest declared.
import FuzzSupport
import Glibc
import Update

struct FuzzSource: ByteSource {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        // Odd-sized reads, as a pipe delivers them.
        let count = min(buffer.count, bytes.count - position, 1 + position % 7)
        guard count > 0 else { return 0 }
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[position..<position + count]))
        position += count
        return count
    }
}

// A fixed key so that a fuzzer-found signature is a real forgery, not a test artefact.
let trusted = PrivateKey(seed: [UInt8](repeating: 7, count: 32))!
let keyring = Keyring(keys: [try! trusted.publicKey()])

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    var source = FuzzSource(bytes: UnsafeBufferPointer(start: data, count: size))
    _ = try? Manifest(parsing: Array(UnsafeBufferPointer(start: data, count: min(size, 5000))))
    guard let header = try? BundleReader.readHeader(from: &source, keyring: keyring) else { return 0 }
    var written: UInt64 = 0
    _ = try? BundleReader.streamPayload(from: &source, manifest: header.manifest, chunkSize: 64) { _, chunk, _ in
        written += UInt64(chunk.count)
    }
    if written > header.manifest.payloadSize { fatalError("streamed more than the manifest declared") }
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
