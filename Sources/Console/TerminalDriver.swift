import CSystem
import Glibc
import Log

// The thin I/O side of a shell session: a terminal file descriptor in raw mode, poll,
// signals, a monotonic clock. Everything that decides anything is in Shell.

/// Set from signal handlers, read by the poll loop.
nonisolated(unsafe) private var hangupSignalled: sig_atomic_t = 0
nonisolated(unsafe) private var terminateSignalled: sig_atomic_t = 0

public enum TerminalDriver {
    /// Milliseconds of CLOCK_MONOTONIC.
    public static func monotonicMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// SIGHUP ends the session as a hangup, SIGTERM/SIGINT end it and restore the line.
    public static func installSignalHandlers() {
        signal(SIGHUP) { _ in hangupSignalled = 1 }
        signal(SIGTERM) { _ in terminateSignalled = 1 }
        signal(SIGPIPE, SIG_IGN)
    }

    public static var terminationRequested: Bool { terminateSignalled != 0 }

    /// Rows and columns of the terminal, or nil (a serial line does not know).
    public static func windowSize(_ fd: Int32) -> (rows: Int, columns: Int)? {
        var size = winsize()
        guard csys_ioctl_ptr(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return nil }
        return (Int(size.ws_row), Int(size.ws_col))
    }

    /// Puts `fd` in raw mode (no echo, no line discipline, 8 bits, no output processing);
    /// with `serialSpeed`, also 115200 8N1 without modem control. Returns the settings to
    /// restore, or nil when `fd` is not a terminal.
    public static func makeRaw(_ fd: Int32, serial: Bool) -> termios? {
        var saved = termios()
        guard tcgetattr(fd, &saved) == 0 else { return nil }
        var raw = saved
        cfmakeraw(&raw)
        if serial {
            raw.c_cflag &= ~(tcflag_t(CSIZE) | tcflag_t(PARENB) | tcflag_t(CSTOPB) | tcflag_t(CRTSCTS))
            raw.c_cflag |= tcflag_t(CS8) | tcflag_t(CREAD) | tcflag_t(CLOCAL)
            cfsetispeed(&raw, speed_t(B115200))
            cfsetospeed(&raw, speed_t(B115200))
        }
        // Keep ^C/^Z/^\ as bytes (ISIG off by cfmakeraw): the shell handles them itself.
        withUnsafeMutableBytes(of: &raw.c_cc) { bytes in
            bytes[Int(VMIN)] = 1
            bytes[Int(VTIME)] = 0
        }
        guard tcsetattr(fd, TCSAFLUSH, &raw) == 0 else { return nil }
        return saved
    }

    public static func restore(_ fd: Int32, _ saved: termios?) {
        guard var saved else { return }
        tcsetattr(fd, TCSADRAIN, &saved)
    }

    /// Runs `shell` on a terminal until it finishes, the line hangs up or SIGTERM arrives.
    /// Returns false on hangup/termination.
    @discardableResult
    public static func run(_ shell: Shell, input: Int32, output: Int32) -> Bool {
        hangupSignalled = 0
        shell.start(now: monotonicMilliseconds())
        guard flush(shell, output) else { shell.hangup(); return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !shell.isFinished {
            if terminateSignalled != 0 { shell.hangup(); return false }
            if hangupSignalled != 0 { shell.hangup(); return false }
            // A running program's output (ping) is polled with the terminal: each line
            // is shown as it arrives, and ^C still reaches the shell.
            var descriptors = [pollfd(fd: input, events: Int16(POLLIN), revents: 0)]
            if let job = shell.jobDescriptor { descriptors.append(pollfd(fd: job, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&descriptors, nfds_t(descriptors.count), 200)
            if ready < 0 && errno != EINTR { shell.hangup(); return false }
            if ready > 0, descriptors.count > 1, descriptors[1].revents != 0 {
                shell.jobReadable(now: monotonicMilliseconds())
            }
            let descriptor = descriptors[0]
            if ready > 0 {
                if descriptor.revents & Int16(POLLIN) != 0 {
                    let count = read(input, &buffer, buffer.count)
                    if count == 0 || (count < 0 && errno != EINTR && errno != EAGAIN) {
                        shell.hangup()
                        return false
                    }
                    if count > 0 { shell.receive(Array(buffer[0..<count]), now: monotonicMilliseconds()) }
                } else if descriptor.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
                    shell.hangup()
                    return false
                }
            }
            shell.tick(now: monotonicMilliseconds())
            guard flush(shell, output) else { shell.hangup(); return false }
        }
        return true
    }

    /// Writes the shell's pending output; false when the terminal is gone.
    private static func flush(_ shell: Shell, _ fd: Int32) -> Bool {
        var bytes = shell.takeOutput()[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    // A flow-controlled serial line: wait for it, but not for ever.
                    var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    if poll(&descriptor, 1, 10_000) <= 0 { return false }
                    continue
                }
                return false
            }
            bytes = bytes.dropFirst(written)
        }
        return true
    }
}
