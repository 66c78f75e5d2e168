// A datagram on a relay port is hostile: the classifier must never trap, its offsets
// must stay inside the datagram, and the statistics must accept any header values.
import FuzzSupport
import Glibc
import RTP

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch RTPPacket.classify(bytes) {
    case .rtp(let header):
        if header.payloadOffset < 12 || header.payloadLength < 0 || header.payloadOffset + header.payloadLength > size {
            fatalError("RTP payload outside the datagram")
        }
        var stats = StreamStatistics()
        stats.record(sequence: header.sequence, timestamp: header.timestamp, ssrc: header.ssrc, arrival: header.timestamp)
        stats.record(sequence: header.sequence &+ header.sequence, timestamp: 0, ssrc: header.ssrc, arrival: UInt32(size))
        if stats.lost > stats.expected { fatalError("lost exceeds expected") }
    case .rtcp(let packets):
        if packets < 1 || packets * 4 > size { fatalError("impossible RTCP packet count") }
    case .malformed:
        break
    }
    _ = RTPPacket.validateRTCP(bytes)
    _ = RTPPacket.rtcpSenderSSRC(bytes)
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
