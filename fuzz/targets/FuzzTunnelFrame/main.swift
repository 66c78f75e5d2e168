// The tunnel is the appliance's most exposed surface: any bytes from the Internet
// reach the frame decoder and the server session. Whatever they are:
// - nothing traps, and the decoder never buffers more than one frame plus one read;
// - every message that decodes re-encodes to a frame that decodes to the same message;
// - an unauthenticated session never reports signalling or media, except CREDENTIALS and
//   REGISTER on channel 0 for an alias left to the gatekeeper ("gk..." here, AUTH_DEFER).
// The first input byte picks the read size, so frames split across reads are covered.
import FuzzSupport
import IO
import Tunnel
import Glibc

struct FuzzCrypto: TunnelCrypto {
    func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] { TLSCrypto.hmacSHA256(key: key, message: message) }
    func randomBytes(_ count: Int) -> [UInt8] { [UInt8](repeating: 0x5a, count: count) }  // deterministic runs
}

struct FuzzCredentials: TunnelCredentials {
    func secret(forAlias alias: String) -> [UInt8]? { alias == "alice" ? Array("alice-secret".utf8) : nil }
    func canResume(alias: String, token: [UInt8]) -> Bool { false }
    func verifiedByGatekeeper(alias: String) -> Bool { alias.hasPrefix("gk") }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let chunk = Int(data[0]) % 64 + 1
    let input = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let maxPayload = 2048

    var decoder = FrameDecoder(maxPayload: maxPayload)
    var config = ServerSessionConfig()
    config.maxPayload = maxPayload
    var session = ServerSession(config: config, crypto: FuzzCrypto(), credentials: FuzzCredentials(), now: 0)
    var offset = 0
    var clock: UInt64 = 1
    var authenticated = false
    var deferred = false
    while offset < input.count {
        let end = min(input.count, offset + chunk)
        let piece = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[offset..<end])
        decoder.feed(piece)
        if decoder.bufferedCount > maxPayload + Frame.headerSize + chunk { fatalError("decoder buffered \(decoder.bufferedCount)") }
        while case let .success(frame)? = decoder.next() {
            if case let .message(message) = Message.decode(frame) {
                let again = Message.decode(message.frame(channel: frame.channel))
                if again != .message(message) { fatalError("\(message.type) does not round-trip") }
            }
        }
        session.receive(piece, now: clock)
        for output in session.outputs {
            switch output {
            case .authenticated, .resumed:
                authenticated = true
            case .deferredToGatekeeper:
                deferred = true
            case let .signalling(channel, message) where deferred && !authenticated:
                switch message {
                case .credentials, .register: if channel != 0 { fatalError("deferred signalling on channel \(channel)") }
                default: fatalError("\(message.type) relayed before the gatekeeper's verdict")
                }
            case .signalling, .media:
                if !authenticated { fatalError("relayed before authentication") }
            default:
                break
            }
        }
        session.outputs.removeAll()
        var sink: [UInt8] = []
        session.outbound.take(now: clock, into: &sink, limit: 1 << 20)
        clock += 1_000_000
        offset = end
    }
    session.tick(now: 11_000_000_000)
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
