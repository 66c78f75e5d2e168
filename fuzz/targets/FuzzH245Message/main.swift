// H.245 messages, on their own channel, tunnelled or fast-started: whatever the bytes, decoding gives a value or a PERError, never a trap; a
// decoded value encodes again and decodes to the same value; the generated codec and the
// generic one agree.
import FuzzSupport
import Glibc
import H323
import PER

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The generated decoder and the generic one (the PERValue tree) must agree on every input.
    let direct = Result { () throws(PERError) in try MultimediaSystemControlMessage(decoding: bytes) }
    let generic = Result { () throws(PERError) in try MultimediaSystemControlMessage(decodingGeneric: bytes) }
    let message: MultimediaSystemControlMessage
    switch (direct, generic) {
    case (.success(let a), .success(let b)):
        guard a == b else { fatalError("MultimediaSystemControlMessage: the generated and the generic decoders give different values") }
        message = a
    case (.failure(let a), .failure(let b)):
        guard a == b else { fatalError("MultimediaSystemControlMessage: the generated and the generic decoders give different errors: \(a) / \(b)") }
        return 0
    default:
        fatalError("MultimediaSystemControlMessage: only one of the generated and the generic decoders accepts the input")
    }
    guard let again = try? message.encoded() else { fatalError("a decoded MultimediaSystemControlMessage does not encode") }
    guard (try? message.encodedGeneric()) == again else { fatalError("MultimediaSystemControlMessage: the generated and the generic encoders differ") }
    guard let back = try? MultimediaSystemControlMessage(decoding: again), back == message else { fatalError("MultimediaSystemControlMessage round trip changed the value") }
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
