// A line editor as a sans-I/O state machine: bytes from the terminal go in, bytes to echo
// and events (a finished line, ^C, ^D, a request for completion or help) come out. It works
// on a dumb terminal (echo, BS-space-BS to erase) and uses ANSI cursor movement only when
// the terminal has it. Bytes it does not understand are dropped, never echoed.

public enum EditorEvent: Equatable, Sendable {
    /// Enter was pressed; the line (without CR/LF).
    case line(String)
    /// ^C: the line was abandoned.
    case interrupt
    /// ^D on an empty line.
    case endOfInput
    /// Tab: the shell should call `complete(with:)` or `list(_:)`.
    case completionRequested(String)
    /// '?': the shell should call `list(_:)` with the help for the text so far.
    case helpRequested(String)
}

public struct LineEditor: Sendable {
    public static let maximumLineLength = 1024
    public static let historyLimit = 100

    public var capabilities: TerminalCapabilities
    public private(set) var prompt: String = ""
    /// Characters typed are not echoed (passwords); no history, completion or help.
    public private(set) var secret = false
    public private(set) var buffer: [UInt8] = []
    public private(set) var cursor = 0
    public private(set) var history: [String] = []
    private var historyIndex: Int?
    private var stash: [UInt8] = []
    private var escape: [UInt8]?
    private var lastWasCR = false
    private var output: [UInt8] = []

    public init(capabilities: TerminalCapabilities) {
        self.capabilities = capabilities
    }

    /// Starts a new line: prints the prompt.
    public mutating func begin(prompt: String, secret: Bool = false) {
        self.prompt = prompt
        self.secret = secret
        buffer = []
        cursor = 0
        historyIndex = nil
        emit(prompt)
    }

    /// Bytes to send to the terminal since the last call.
    public mutating func takeOutput() -> [UInt8] {
        defer { output = [] }
        return output
    }

    /// Feeds bytes; returns the events they caused, in order. After a `.line`, `.interrupt`
    /// or `.endOfInput`, the editor is idle until `begin` is called again: the rest of the
    /// input is returned unconsumed (`remainder`) so that a pasted block is processed line by line.
    public mutating func feed(_ bytes: ArraySlice<UInt8>) -> (events: [EditorEvent], remainder: ArraySlice<UInt8>) {
        var events: [EditorEvent] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            index += 1
            if let event = handle(byte) {
                events.append(event)
                switch event {
                case .line, .interrupt, .endOfInput: return (events, bytes[index...])
                default: break
                }
            }
        }
        return (events, bytes[bytes.endIndex...])
    }

    private mutating func handle(_ byte: UInt8) -> EditorEvent? {
        if escape != nil { return handleEscape(byte) }
        // CR LF or LF CR from a paste or a terminal sending both: one Enter.
        if byte == 0x0a, lastWasCR { lastWasCR = false; return nil }
        lastWasCR = byte == 0x0d
        switch byte {
        case 0x0d, 0x0a:
            let line = String(decoding: buffer, as: UTF8.self)
            emit("\r\n")
            if !secret, !line.allSatisfy({ $0 == " " }), history.last != line {
                history.append(line)
                if history.count > LineEditor.historyLimit { history.removeFirst() }
            }
            buffer = []; cursor = 0
            return .line(line)
        case 0x03:
            emit("^C\r\n")
            buffer = []; cursor = 0
            return .interrupt
        case 0x04:
            if buffer.isEmpty { emit("\r\n"); return .endOfInput }
            if capabilities.ansi, cursor < buffer.count { buffer.remove(at: cursor); redrawTail(erased: 1) }
        case 0x7f, 0x08:
            backspace()
        case 0x15:
            replaceLine(with: [])
        case 0x17:
            deleteWordBackwards()
        case 0x09:
            if !secret { return .completionRequested(String(decoding: buffer[..<cursor], as: UTF8.self)) }
        case 0x10: if !secret { recall(older: true) }    // ^P
        case 0x0e: if !secret { recall(older: false) }   // ^N
        case 0x01: moveCursor(to: 0)                       // ^A
        case 0x05: moveCursor(to: buffer.count)            // ^E
        case 0x02: moveCursor(to: cursor - 1)              // ^B
        case 0x06: moveCursor(to: cursor + 1)              // ^F
        case 0x0c: redisplay()                             // ^L
        case 0x1b: escape = []
        case UInt8(ascii: "?") where !secret && !insideQuotes:
            return .helpRequested(String(decoding: buffer[..<cursor], as: UTF8.self))
        case 0x20...0x7e:
            insert([byte])
        default:
            break  // other control characters and non-ASCII bytes: line noise, dropped
        }
        return nil
    }

    /// ESC [ params final, or ESC O final: arrows and Home/End/Delete. Anything else,
    /// or an over-long sequence, is dropped whole.
    private mutating func handleEscape(_ byte: UInt8) -> EditorEvent? {
        guard var sequence = escape else { return nil }
        sequence.append(byte)
        if sequence.count == 1 {
            escape = (byte == UInt8(ascii: "[") || byte == UInt8(ascii: "O")) ? sequence : nil
            return nil
        }
        if (0x40...0x7e).contains(byte) {
            escape = nil
            guard !secret else { return nil }
            switch (sequence.dropFirst().dropLast().map { Character(UnicodeScalar($0)) }.reduce("") { $0 + String($1) }, byte) {
            case ("", UInt8(ascii: "A")): recall(older: true)
            case ("", UInt8(ascii: "B")): recall(older: false)
            case ("", UInt8(ascii: "C")): moveCursor(to: cursor + 1)
            case ("", UInt8(ascii: "D")): moveCursor(to: cursor - 1)
            case ("", UInt8(ascii: "H")), ("1", UInt8(ascii: "~")): moveCursor(to: 0)
            case ("", UInt8(ascii: "F")), ("4", UInt8(ascii: "~")): moveCursor(to: buffer.count)
            case ("3", UInt8(ascii: "~")):
                if capabilities.ansi, cursor < buffer.count { buffer.remove(at: cursor); redrawTail(erased: 1) }
            default: break
            }
            return nil
        }
        escape = sequence.count < 16 && (0x20...0x3f).contains(byte) ? sequence : nil
        return nil
    }

    private var insideQuotes: Bool { buffer[..<cursor].filter { $0 == UInt8(ascii: "\"") }.count % 2 == 1 }

    // MARK: Editing

    public mutating func insert(_ bytes: [UInt8]) {
        let room = LineEditor.maximumLineLength - buffer.count
        guard room > 0 else { output.append(0x07); return }
        let accepted = Array(bytes.prefix(room))
        buffer.insert(contentsOf: accepted, at: cursor)
        cursor += accepted.count
        if secret { return }
        output.append(contentsOf: accepted)
        if cursor < buffer.count { redrawTail(erased: 0) }
    }

    private mutating func backspace() {
        guard cursor > 0 else { return }
        buffer.remove(at: cursor - 1)
        cursor -= 1
        if secret { return }
        if cursor == buffer.count {
            emit("\u{8} \u{8}")
        } else {
            emit("\u{8}")
            redrawTail(erased: 1)
        }
    }

    private mutating func deleteWordBackwards() {
        var start = cursor
        while start > 0, buffer[start - 1] == UInt8(ascii: " ") { start -= 1 }
        while start > 0, buffer[start - 1] != UInt8(ascii: " ") { start -= 1 }
        let tail = Array(buffer[cursor...])
        replaceLine(with: Array(buffer[..<start]) + tail, cursor: start)
    }

    /// Replaces the whole line, erasing what is shown: BS-space-BS on a dumb terminal.
    private mutating func replaceLine(with bytes: [UInt8], cursor newCursor: Int? = nil) {
        let old = buffer
        buffer = Array(bytes.prefix(LineEditor.maximumLineLength))
        cursor = min(newCursor ?? buffer.count, buffer.count)
        if secret { return }
        if capabilities.ansi {
            emit("\r\u{1b}[K")
            output.append(contentsOf: terminalBytes(prompt))
            output.append(contentsOf: buffer)
            if cursor < buffer.count { emit("\u{1b}[\(buffer.count - cursor)D") }
        } else {
            // Dumb terminal: the cursor is always at the end of the line.
            let common = zip(old, buffer).prefix { $0 == $1 }.count
            for _ in common..<old.count { emit("\u{8} \u{8}") }
            output.append(contentsOf: buffer[common...])
            cursor = buffer.count
        }
    }

    /// Moves the cursor (only on an ANSI terminal; a dumb one always edits at the end).
    private mutating func moveCursor(to position: Int) {
        guard capabilities.ansi, !secret else { return }
        let target = max(0, min(position, buffer.count))
        if target < cursor { emit("\u{1b}[\(cursor - target)D") }
        if target > cursor { emit("\u{1b}[\(target - cursor)C") }
        cursor = target
    }

    /// Rewrites the line from the cursor to its end after an insertion or deletion.
    private mutating func redrawTail(erased: Int) {
        let tail = buffer[cursor...]
        output.append(contentsOf: tail)
        for _ in 0..<erased { output.append(0x20) }
        let back = tail.count + erased
        if back > 0 { emit("\u{1b}[\(back)D") }
    }

    private mutating func recall(older: Bool) {
        guard !history.isEmpty else { return }
        var index: Int
        if let current = historyIndex {
            index = older ? current - 1 : current + 1
        } else {
            guard older else { return }
            stash = buffer
            index = history.count - 1
        }
        if index < 0 { output.append(0x07); return }
        if index >= history.count {
            historyIndex = nil
            replaceLine(with: stash)
            return
        }
        historyIndex = index
        replaceLine(with: Array(history[index].utf8))
    }

    // MARK: Completion and help results

    /// Replaces the text before the cursor with `text` (completion).
    public mutating func complete(with text: String) {
        let tail = Array(buffer[cursor...])
        let head = Array(text.utf8)
        replaceLine(with: head + tail, cursor: head.count)
    }

    /// Prints `lines` below the input line, then the prompt and the line again.
    public mutating func list(_ lines: [String]) {
        emit("\r\n")
        for line in lines { emit(line + "\r\n") }
        redisplay()
    }

    /// Prints a message on its own line(s) and redraws the prompt with the text typed so far
    /// (used for announcements that arrive while someone is typing).
    public mutating func interject(_ text: String) {
        emit("\r\n")
        output.append(contentsOf: terminalBytes(text))
        if !text.hasSuffix("\n") { emit("\r\n") }
        redisplay()
    }

    private mutating func redisplay() {
        output.append(contentsOf: terminalBytes(prompt))
        if secret { return }
        output.append(contentsOf: buffer)
        if capabilities.ansi, cursor < buffer.count { emit("\u{1b}[\(buffer.count - cursor)D") }
        else { cursor = capabilities.ansi ? cursor : buffer.count }
    }

    private mutating func emit(_ text: String) { output.append(contentsOf: text.utf8) }
}
