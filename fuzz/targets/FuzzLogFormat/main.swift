// Hostile text (a peer's alias, a console line) must never forge a log line:
// the formatted value holds no control character, whatever the input.
import FuzzSupport
import Glibc
import Log

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let line = LogFormat.line(time: "T", level: .info, subsystem: "fuzz", event: text, fields: ["value": text])
    if line.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
        fatalError("control character escaped the formatter")
    }
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
