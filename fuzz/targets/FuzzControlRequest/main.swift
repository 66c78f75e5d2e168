// Hostile bytes on the control socket: the request parser must answer every input with
// a request or a named error, never trap, and what it accepts must encode back to a
// request that parses to the same value. Replies are parsed by clients: same rules
// (the `config history` body too).
import Control
import FuzzSupport
import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    if let request = try? ControlCodec.decodeRequest(bytes) {
        guard let again = try? ControlCodec.decodeRequest(ControlCodec.encode(request)), again == request else {
            fatalError("accepted request does not survive its own encoding: \(request)")
        }
    }
    if let reply = try? ControlCodec.decodeReply(bytes) {
        _ = ControlCodec.encode(reply)
        // A `config history` body: what it accepts must survive its own encoding.
        if case .ok(let body) = reply, let entries = ControlCommitEntry.decode(body) {
            guard ControlCommitEntry.decode(ControlCommitEntry.encode(entries)) == entries else {
                fatalError("accepted history does not survive its own encoding: \(entries)")
            }
        }
    }
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
