// What a phone parses from the network and from its configuration: RTP packets,
// RTCP reports, UDP probe answers and the configuration text. None may trap,
// and a parsed RTP payload range always lies inside the packet.
import FuzzSupport
import Glibc
import Phone

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let (_, payload) = RTPHeader.parse(bytes), payload.lowerBound < 12 || payload.upperBound > bytes.count {
        fatalError("RTP payload range outside the packet")
    }
    PhoneDecoders.exercise(bytes)
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
