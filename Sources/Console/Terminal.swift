// What the terminal at the other end can do. A serial console is often a dumb terminal
// (or a terminal emulator whose type nobody set): then only printable characters, CR, LF,
// BS and BEL are sent; ANSI cursor control is used only for terminal types known to have it.
public struct TerminalCapabilities: Equatable, Sendable {
    /// The terminal understands ANSI/VT100 cursor movement and erase sequences.
    public var ansi: Bool
    public var width: Int
    /// Lines per page for the pager; 0 disables paging.
    public var height: Int

    public init(ansi: Bool, width: Int = 80, height: Int = 24) {
        self.ansi = ansi
        self.width = max(20, min(width, 1000))
        self.height = max(0, min(height, 1000))
    }

    /// ANSI only for terminal types that certainly have it.
    public init(term: String?, width: Int = 80, height: Int = 24) {
        let known = ["xterm", "vt100", "vt102", "vt220", "linux", "screen", "tmux", "rxvt", "ansi", "putty", "konsole", "alacritty", "foot", "kitty"]
        let name = (term ?? "").lowercased()
        let ansi = known.contains { name == $0 || name.hasPrefix($0 + "-") }
        self.init(ansi: ansi, width: width, height: height)
    }
}

/// Text for a raw line: every "\n" becomes "\r\n" (no output processing in raw mode).
func terminalBytes(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count + 16)
    var previous: UInt8 = 0
    for byte in text.utf8 {
        if byte == 0x0a && previous != 0x0d { out.append(0x0d) }
        out.append(byte)
        previous = byte
    }
    return out
}
