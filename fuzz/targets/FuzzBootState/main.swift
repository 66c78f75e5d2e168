// The boot state is read by process 1 from a partition a power cut may have torn:
// decoding any 512 bytes must not trap, and whatever decodes re-encodes to itself.
import FuzzSupport
import Glibc
import Update

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let record = Array(UnsafeBufferPointer(start: data, count: min(size, BootState.recordSize)))
    guard let state = BootState.decode(record) else { return 0 }
    if BootState.decode(state.encoded()) != state { fatalError("boot state does not round-trip") }
    _ = BootControl.chooseSlot(state)
    _ = BootControl.statusText(state)
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
