import Glibc
import CSystem

/// A failed system call: which call and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    public let call: String
    public let code: Int32

    public init(_ call: String, _ code: Int32 = csys_errno()) {
        self.call = call
        self.code = code
    }

    public var description: String {
        "\(call): \(String(cString: strerror(code))) (errno \(code))"
    }
}

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC).
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Sets O_NONBLOCK on a descriptor.
public func setNonBlocking(_ fd: Int32) throws {
    let flags = csys_fcntl_int(fd, F_GETFL, 0)
    guard flags >= 0 else { throw SystemError("fcntl(F_GETFL)") }
    guard csys_fcntl_int(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw SystemError("fcntl(F_SETFL)") }
}
