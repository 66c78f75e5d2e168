// Crash-loop guard. Every start is recorded in a small file; a clean stop clears it.
// When the daemon keeps dying, each further start waits longer (up to 5 minutes) and
// says so loudly in the log and on the console, instead of spinning.
import Glibc
import Log

struct StartHistory {
    let path: String
    /// Unclean starts within this window count towards a crash loop.
    static let windowSeconds = 600
    /// From this many recent unclean starts on, the daemon holds off.
    static let threshold = 3

    /// Records this start; returns the earlier unclean starts still in the window.
    func recordStart(now: Int = Int(time(nil))) -> [Int] {
        let earlier = read().filter { now - $0 < Self.windowSeconds && $0 <= now }
        write(earlier + [now])
        return earlier
    }

    /// A clean stop: the next start is not part of a loop.
    func clear() { unlink(path) }

    /// Seconds to wait before starting after `unclean` recent unclean starts.
    static func holdOff(unclean: Int) -> Int {
        guard unclean >= threshold else { return 0 }
        return min(300, 5 << min(6, unclean - threshold))
    }

    private func read() -> [Int] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = Glibc.read(fd, &buffer, buffer.count)
        guard count > 0 else { return [] }
        return String(decoding: buffer.prefix(count), as: UTF8.self).split(separator: "\n").compactMap { Int($0) }.suffix(50)
    }

    private func write(_ starts: [Int]) {
        let text = starts.suffix(50).map(String.init).joined(separator: "\n") + "\n"
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        fsync(fd)
        close(fd)
        rename(temporary, path)
    }
}
