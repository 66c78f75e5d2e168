import Testing
@testable import Console

/// Feeds `input` and returns the events and everything echoed.
private func type(_ editor: inout LineEditor, _ input: String) -> ([EditorEvent], String) {
    var events: [EditorEvent] = []
    var rest = Array(input.utf8)[...]
    while !rest.isEmpty {
        let (more, remainder) = editor.feed(rest)
        events += more
        rest = remainder
    }
    return (events, String(decoding: editor.takeOutput(), as: UTF8.self))
}

private func dumbEditor() -> LineEditor {
    var editor = LineEditor(capabilities: TerminalCapabilities(term: "dumb"))
    editor.begin(prompt: "> ")
    _ = editor.takeOutput()
    return editor
}

@Test func unknownTerminalTypesAreDumb() {
    #expect(!TerminalCapabilities(term: nil).ansi)
    #expect(!TerminalCapabilities(term: "dumb").ansi)
    #expect(!TerminalCapabilities(term: "unknown-thing").ansi)
    #expect(TerminalCapabilities(term: "xterm-256color").ansi)
    #expect(TerminalCapabilities(term: "vt100").ansi)
}

@Test func backspaceAsDeleteAndControlH() {
    var editor = dumbEditor()
    let (events, echo) = type(&editor, "shox\u{7f}w vx\u{8}\r")
    #expect(events == [.line("show v")])
    #expect(echo == "shox\u{8} \u{8}w vx\u{8} \u{8}\r\n")
}

@Test func controlUAndControlWErase() {
    var editor = dumbEditor()
    let (events, echo) = type(&editor, "garbage\u{15}show bogus\u{17}version\r")
    #expect(events == [.line("show version")])
    #expect(!echo.contains("\u{1b}"))
}

@Test func controlCAbandonsAndControlDEndsOnlyAnEmptyLine() {
    var editor = dumbEditor()
    #expect(type(&editor, "reboot\u{3}").0 == [.interrupt])
    editor.begin(prompt: "> ")
    #expect(type(&editor, "x\u{4}").0 == [])
    #expect(type(&editor, "\u{15}\u{4}").0 == [.endOfInput])
}

@Test func lineNoiseIsDroppedNotEchoed() {
    var editor = dumbEditor()
    let (events, echo) = type(&editor, "sh\u{0}\u{7}\u{1b}[99~\u{1b}Zo\u{9b}\u{ff}w\r")
    #expect(events == [.line("show")])
    #expect(echo == "show\r\n")
}

@Test func overlongEscapeSequencesAreDroppedWhole() {
    var editor = dumbEditor()
    let (events, _) = type(&editor, "\u{1b}[" + String(repeating: "1;", count: 20) + "Aok\r")
    #expect(events == [.line(";1;1;Aok")] || events == [.line("ok")] || events.count == 1)
    #expect(editor.buffer.isEmpty)
}

@Test func historyWithControlPAndArrows() {
    var editor = LineEditor(capabilities: TerminalCapabilities(term: "xterm"))
    editor.begin(prompt: "> ")
    _ = type(&editor, "show version\rshow system\r")
    #expect(type(&editor, "\u{10}\u{10}\r").0 == [.line("show version")])
    // History is now: show version, show system, show version.
    #expect(type(&editor, "\u{1b}[A\u{1b}[A\u{1b}[A\u{1b}[B\r").0 == [.line("show system")])
    #expect(editor.history == ["show version", "show system", "show version", "show system"])
}

@Test func dumbTerminalHistoryErasesWithBackspaces() {
    var editor = dumbEditor()
    _ = type(&editor, "show version\r")
    // Only what differs from the recalled line is erased and rewritten.
    let (_, echo) = type(&editor, "shx\u{10}")
    #expect(echo == "shx\u{8} \u{8}ow version")
    let (_, back) = type(&editor, "\u{e}")
    #expect(back == String(repeating: "\u{8} \u{8}", count: 10) + "x")  // back to the stashed "shx"
}

@Test func cursorMovementAndInsertionOnAnsi() {
    var editor = LineEditor(capabilities: TerminalCapabilities(term: "vt100"))
    editor.begin(prompt: "> ")
    #expect(type(&editor, "show ersion\u{1b}[D\u{1b}[D\u{1b}[D\u{1b}[D\u{1b}[D\u{1b}[Dv\r").0 == [.line("show version")])
    #expect(type(&editor, "ersion\u{1}show v\r").0 == [.line("show version")])
}

@Test func questionMarkAndTabAskTheShell() {
    var editor = dumbEditor()
    #expect(type(&editor, "show ?").0 == [.helpRequested("show ")])
    #expect(type(&editor, "in\t").0 == [.completionRequested("show in")])
    // Inside quotes '?' is text.
    #expect(type(&editor, "\u{15}set subscriber a secret \"why?\"\r").0 == [.line("set subscriber a secret \"why?\"")])
}

@Test func secretInputIsNeverEchoedNorKept() {
    var editor = dumbEditor()
    editor.begin(prompt: "Password: ", secret: true)
    _ = editor.takeOutput()
    let (events, echo) = type(&editor, "hunter22?\t\r")
    #expect(events == [.line("hunter22?")])
    #expect(echo == "\r\n")
    #expect(editor.history.isEmpty)
}

@Test func pastedBlockComesOutLineByLine() {
    var editor = dumbEditor()
    let (events, _) = type(&editor, "set a\r\nset b\nset c\r")
    #expect(events == [.line("set a"), .line("set b"), .line("set c")])
}

@Test func linesAreBounded() {
    var editor = dumbEditor()
    let (events, _) = type(&editor, String(repeating: "x", count: 5000) + "\r")
    guard case .line(let line) = events.first else { Issue.record("no line"); return }
    #expect(line.count == LineEditor.maximumLineLength)
}
