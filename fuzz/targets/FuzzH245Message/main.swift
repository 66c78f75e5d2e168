// H.245 messages, on their own channel, tunnelled or fast-started: whatever the bytes, decoding gives a value or a PERError, never a trap; a
// decoded value encodes again and decodes to the same value.
import FuzzSupport
import Glibc
import H323
import PER

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let message = try? MultimediaSystemControlMessage(decoding: bytes) else { return 0 }
    guard let again = try? message.encoded() else { fatalError("a decoded MultimediaSystemControlMessage does not encode") }
    guard let back = try? MultimediaSystemControlMessage(decoding: again), back == message else { fatalError("MultimediaSystemControlMessage round trip changed the value") }
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
