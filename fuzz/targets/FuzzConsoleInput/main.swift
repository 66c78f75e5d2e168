// Bytes from a serial line are hostile (line noise, a terminal gone mad, a paste): the
// line editor and the command grammar must never trap, and a dumb terminal must never be
// sent an escape sequence.
import Config
import Console
import FuzzSupport
import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var editor = LineEditor(capabilities: TerminalCapabilities(term: "dumb"))
    editor.begin(prompt: "> ")
    var rest = bytes[...]
    let candidate = ConfigTree()
    while !rest.isEmpty {
        let (events, remainder) = editor.feed(rest)
        rest = remainder
        for event in events {
            switch event {
            case .line(let line):
                if let words = try? ConfigLexer.words(line) {
                    _ = try? CommandGrammar.parse(words, mode: .configure)
                    _ = try? CommandGrammar.parse(words, mode: .operational)
                }
                editor.begin(prompt: "> ")
            case .completionRequested(let text), .helpRequested(let text):
                let (_, items) = CommandGrammar.help(for: text, mode: .configure, candidate: candidate)
                editor.list(items.map(\.word))
            case .interrupt, .endOfInput:
                editor.begin(prompt: "> ")
            }
        }
        if editor.takeOutput().contains(0x1b) { fatalError("escape sent to a dumb terminal") }
    }
    return 0
}

exit(bloo_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
