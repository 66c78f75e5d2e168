// Q.931 messages as they arrive on TCP 1720 (after TPKT): never a trap; a decoded message
// encodes again to the same elements; the User-user H323-UserInformation decodes or errs.
import FuzzSupport
import Glibc
import H323
import PER

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let message = try? Q931Message(decoding: bytes) else { return 0 }
    _ = try? message.userInformation()
    _ = try? message.cause()
    _ = try? message.bearerCapability()
    _ = try? message.callingPartyNumber()
    _ = try? message.calledPartyNumber()
    _ = try? message.connectedNumber()
    _ = try? message.progressIndicator()
    _ = (message.display, message.keypad, message.callState, message.signal)
    guard let again = try? message.encoded() else { fatalError("a decoded Q.931 message does not encode") }
    guard let back = try? Q931Message(decoding: again), back == message else { fatalError("Q.931 round trip changed the message") }
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
