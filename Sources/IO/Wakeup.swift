import Glibc
import CSystem

/// A cross-thread doorbell (eventfd). Any thread may `signal()`; the owning loop
/// registers `fd` for .readable and calls `drain()` when it fires.
public final class Wakeup: Sendable {
    public let fd: Int32

    public init() throws {
        let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard fd >= 0 else { throw SystemError("eventfd") }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Rings the doorbell. Never blocks; coalesces with pending rings.
    public func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
    }

    /// Clears pending rings; returns how many were coalesced (0 if none).
    @discardableResult
    public func drain() -> UInt64 {
        var value: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &value) { read(fd, $0.baseAddress, 8) }
        return n == 8 ? value : 0
    }
}

/// Adapts a closure to `IOHandler`, for the few registrations that are not on a hot path.
public final class ClosureHandler: IOHandler {
    private let body: (IOEvents) -> Void
    public init(_ body: @escaping (IOEvents) -> Void) { self.body = body }
    public func handle(events: IOEvents, tag: UInt64) { body(events) }
}
