// A configuration text is hostile (a pasted file, a damaged data partition): parsing must
// never trap, and whatever parses must print to text that parses back to the same tree.
import Config
import FuzzSupport
import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let tree = try? ConfigTree(parsing: text) else { return 0 }
    guard let again = try? ConfigTree(parsing: tree.text), again == tree else {
        fatalError("printed configuration does not parse back to the same tree")
    }
    if let configuration = try? Configuration(tree: tree) {
        guard (try? Configuration(text: configuration.text)) == configuration else {
            fatalError("a valid configuration does not round-trip")
        }
    }
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
