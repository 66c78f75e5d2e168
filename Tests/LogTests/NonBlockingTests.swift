import Glibc
import Testing
@testable import Log

/// A console nobody reads (or a slow serial line) must cost log lines, never a stalled
/// thread: the daemon's workers log too.
@Suite struct NonBlockingStandardErrorTests {
    @Test func aFullPipeDropsAndCountsLinesInsteadOfBlocking() throws {
        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        let flagsBefore = fcntl(ends[1], F_GETFL)
        #expect(LogSink.reopenNonBlocking(ends[1]))
        #expect(fcntl(ends[1], F_GETFL) & O_NONBLOCK != 0)
        // The reopen gave us a description of our own: another holder of the old one
        // (here the read end's process, in production init's console) is unaffected.
        #expect(flagsBefore & O_NONBLOCK == 0)
        let before = LogSink.droppedLines
        // 64 KiB of pipe buffer, 1 MiB of lines, nobody reading: a blocking write would
        // hang this test forever.
        let line = String(repeating: "x", count: 1023) + "\n"
        for _ in 0..<1024 { LogSink.writeAll(ends[1], line) }
        #expect(LogSink.droppedLines > before)
        // What did get through is whole lines up to the point the pipe filled.
        var buffer = [UInt8](repeating: 0, count: 4096)
        let got = read(ends[0], &buffer, buffer.count)
        #expect(got > 0 && buffer[0] == UInt8(ascii: "x"))
    }

    @Test func regularFilesAreLeftAlone() throws {
        let path = "/tmp/bloo-log-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_CREAT | O_WRONLY | O_APPEND, 0o600)
        #expect(fd >= 0)
        defer { close(fd); unlink(path) }
        #expect(!LogSink.reopenNonBlocking(fd))
        #expect(fcntl(fd, F_GETFL) & O_APPEND != 0)
    }
}
