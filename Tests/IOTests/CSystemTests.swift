import CSystem
import Glibc
import Testing

/// The C surface works from Swift alongside Glibc (the reason CSystem's public
/// header does not define _GNU_SOURCE).
@Suite struct CSystemTests {
    @Test func recvmmsgAndSendmmsgMoveABatchOverLoopback() {
        let receiver = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        let sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(receiver); close(sender) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                #expect(bind(receiver, $0, length) == 0)
                #expect(getsockname(receiver, $0, &length) == 0)
                #expect(connect(sender, $0, length) == 0)
            }
        }
        // Buffers and vectors live in manually allocated memory, as on the hot path.
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 12 * 2048, alignment: 16)
        let vectors = UnsafeMutableBufferPointer<iovec>.allocate(capacity: 12)
        let messages = UnsafeMutableBufferPointer<csys_mmsghdr>.allocate(capacity: 12)
        defer { storage.deallocate(); vectors.deallocate(); messages.deallocate() }
        for index in 0..<12 {
            let buffer = storage.baseAddress! + index * 2048
            memset(buffer, index < 4 ? Int32(index) : 0xff, 2048)
            vectors[index] = iovec(iov_base: buffer, iov_len: index < 4 ? 172 : 2048)
            messages[index] = csys_mmsghdr()
            messages[index].msg_hdr.msg_iov = vectors.baseAddress! + index
            messages[index].msg_hdr.msg_iovlen = 1
        }
        #expect(csys_sendmmsg(sender, messages.baseAddress, 4, 0) == 4)
        let count = csys_recvmmsg(receiver, messages.baseAddress! + 4, 8, Int32(MSG_DONTWAIT), nil)
        #expect(count == 4)
        #expect((4..<8).allSatisfy { messages[$0].msg_len == 172 })
        let third = storage.baseAddress! + 7 * 2048
        #expect(third.load(as: UInt8.self) == 3 && third.load(fromByteOffset: 171, as: UInt8.self) == 3)
    }

    @Test func pinningTheCurrentThreadIsReadBack() {
        var cpus = [Int32](repeating: -1, count: 64)
        let before = csys_current_thread_cpus(&cpus, 64)
        #expect(before >= 1)
        let target = cpus[0]
        let pinned = Thread_runPinned(to: target)
        #expect(pinned == [target])
    }

    @Test func epollReportsAReadableEventFd() {
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        let event = eventfd(0, Int32(EFD_NONBLOCK))
        defer { close(epoll); close(event) }
        var registration = epoll_event()
        registration.events = EPOLLIN.rawValue
        registration.data.fd = event
        #expect(epoll_ctl(epoll, EPOLL_CTL_ADD, event, &registration) == 0)
        var one: UInt64 = 1
        #expect(write(event, &one, 8) == 8)
        var ready = [epoll_event](repeating: epoll_event(), count: 4)
        #expect(epoll_wait(epoll, &ready, 4, 1000) == 1)
        #expect(ready[0].data.fd == event)
    }
}

/// Pins a fresh thread (never the test runner's own) and returns its CPU set.
private func Thread_runPinned(to cpu: Int32) -> [Int32] {
    final class Box: @unchecked Sendable { var cpus: [Int32] = []; let cpu: Int32; init(_ cpu: Int32) { self.cpu = cpu } }
    let box = Box(cpu)
    var thread = pthread_t()
    let retained = Unmanaged.passRetained(box).toOpaque()
    pthread_create(&thread, nil, { argument in
        let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
        guard csys_pin_current_thread(box.cpu) == 0 else { return nil }
        var cpus = [Int32](repeating: -1, count: 64)
        let count = csys_current_thread_cpus(&cpus, 64)
        box.cpus = Array(cpus.prefix(Int(max(count, 0))))
        return nil
    }, retained)
    pthread_join(thread, nil)
    return box.cpus
}
