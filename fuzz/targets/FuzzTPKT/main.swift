// TPKT stream reassembly: the input is cut into chunks (sizes taken from its first octet)
// and fed in order. Never a trap; memory stays within one packet; every packet returned
// is exactly what was framed in the stream.
import FuzzSupport
import Glibc
import H323

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let chunk = Int(bytes[0] % 16) + 1
    let stream = Array(bytes.dropFirst())
    var reassembler = TPKTReassembler(maxPayload: 2048)
    var payloadTotal = 0
    var packets = 0
    var offset = 0
    while offset < stream.count {
        let end = min(offset + chunk, stream.count)
        guard let got = try? reassembler.append(stream[offset..<end]) else { return 0 }
        for p in got {
            if p.count > 2048 { fatalError("packet above the configured maximum") }
            payloadTotal += p.count
        }
        packets += got.count
        if reassembler.pendingCount > 2048 + 4 + chunk { fatalError("reassembler holds more than one packet") }
        offset = end
    }
    if payloadTotal + 4 * packets + reassembler.pendingCount != stream.count { fatalError("octets lost or invented") }
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
