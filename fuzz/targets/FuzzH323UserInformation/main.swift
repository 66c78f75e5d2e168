// The H.225.0 User-user contents of every call-signalling message: whatever the bytes, decoding gives a value or a PERError, never a trap; a
// decoded value encodes again and decodes to the same value.
import FuzzSupport
import Glibc
import H323
import PER

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let message = try? H323UserInformation(decoding: bytes) else { return 0 }
    guard let again = try? message.encoded() else { fatalError("a decoded H323UserInformation does not encode") }
    guard let back = try? H323UserInformation(decoding: again), back == message else { fatalError("H323UserInformation round trip changed the value") }
    return 0
}

/// The H.323 schema is built once and lives for the whole process; Swift keeps enum case
/// tags in pointer spare bits, so LeakSanitizer cannot see those references and reports the
/// schema as leaked at exit. Only that one-time table is suppressed.
@_cdecl("__lsan_default_suppressions")
func leakSuppressions() -> UnsafePointer<CChar>? {
    UnsafeRawPointer(("leak:SchemaTable\n" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
