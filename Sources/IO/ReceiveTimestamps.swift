// Kernel receive timestamps (SO_TIMESTAMPNS), for measurements only (bench/tunnel):
// the time a packet reached the socket, independent of when the reader got to it.
// The kernel stamps with CLOCK_REALTIME; `ReceiveClock` maps that to monotonicNanoseconds.

import CSystem
import Glibc

/// Converts kernel receive stamps (CLOCK_REALTIME) to this process's monotonic clock.
public struct ReceiveClock: Sendable {
    private var offset: Int64 = 0

    public init() { resync() }

    /// Re-reads the offset between the two clocks (call once per measurement window).
    public mutating func resync() {
        var realtime = timespec()
        clock_gettime(CLOCK_REALTIME, &realtime)
        let monotonic = Int64(bitPattern: monotonicNanoseconds())
        offset = Int64(realtime.tv_sec) * 1_000_000_000 + Int64(realtime.tv_nsec) - monotonic
    }

    /// A kernel stamp on the monotonic clock, nil when the kernel gave none.
    public func monotonic(_ stamp: Int64) -> UInt64? {
        stamp > 0 ? UInt64(bitPattern: stamp - offset) : nil
    }
}

extension TCPSocket {
    public func enableReceiveTimestamps() throws {
        let rc = csys_enable_receive_timestamps(fd)
        guard rc == 0 else { throw SystemError("setsockopt(SO_TIMESTAMPNS)", -rc) }
    }

    /// Like `read`, plus the kernel's receive stamp of the last segment read (0: none).
    public func read(into buffer: UnsafeMutableRawBufferPointer, stamp: inout Int64) -> ReadResult {
        let n = csys_recv_timestamped(fd, buffer.baseAddress, buffer.count, nil, 0, &stamp)
        if n > 0 { return .bytes(n) }
        if n == 0 { return .endOfStream }
        let code = Int32(-n)
        return code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? .wouldBlock : .failed(code)
    }
}

extension UDPSocket {
    public func enableReceiveTimestamps() throws {
        let rc = csys_enable_receive_timestamps(fd)
        guard rc == 0 else { throw SystemError("setsockopt(SO_TIMESTAMPNS)", -rc) }
    }

    /// Like `receive`, plus the kernel's receive stamp (0: none).
    public func receive(into buffer: UnsafeMutableRawBufferPointer, stamp: inout Int64) -> (count: Int, from: IPv4Endpoint)? {
        var raw = sockaddr_in()
        let n = withUnsafeMutablePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                csys_recv_timestamped(fd, buffer.baseAddress, buffer.count, $0, socklen_t(MemoryLayout<sockaddr_in>.size), &stamp)
            }
        }
        return n >= 0 ? (n, IPv4Endpoint(raw)) : nil
    }
}
