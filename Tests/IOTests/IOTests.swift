import Testing
import Glibc
import Synchronization
@testable import IO

private func loopbackSocket() throws -> (UDPSocket, IPv4Endpoint) {
    let socket = try UDPSocket.bound(to: .loopback(port: 0))
    return (socket, try socket.localEndpoint())
}

private final class Recorder: IOHandler {
    var seen: [(IOEvents, UInt64)] = []
    func handle(events: IOEvents, tag: UInt64) { seen.append((events, tag)) }
}

@Suite struct EventLoopTests {
    @Test func dispatchesReadableWithTag() throws {
        let loop = try EventLoop()
        let (a, aEnd) = try loopbackSocket()
        let (b, _) = try loopbackSocket()
        defer { a.close(); b.close() }
        let recorder = Recorder()
        let registration = try loop.register(fd: a.fd, events: .readable, handler: recorder, tag: 42)
        #expect(try loop.runOnce(timeoutMilliseconds: 0) == 0)
        #expect(b.send([1, 2, 3], to: aEnd) == 3)
        #expect(try loop.runOnce(timeoutMilliseconds: 1000) == 1)
        #expect(recorder.seen.count == 1)
        #expect(recorder.seen.first?.1 == 42)
        #expect(recorder.seen.first?.0.contains(.readable) == true)
        loop.unregister(registration)
        #expect(loop.registrationCount == 0)
        #expect(try loop.runOnce(timeoutMilliseconds: 0) == 0)
    }

    @Test func batchHandlerGetsEveryReadyDescriptorOfAWakeUpInOneCall() throws {
        final class BatchRecorder: IOBatchHandler {
            var calls: [[UInt64]] = []
            func handle(ready: UnsafeBufferPointer<ReadyEvent>) { calls.append(ready.map(\.tag)) }
        }
        let loop = try EventLoop()
        let batch = BatchRecorder(), ordinary = Recorder()
        loop.setBatchHandler(batch)
        let (a, aEnd) = try loopbackSocket()
        let (b, bEnd) = try loopbackSocket()
        let (c, cEnd) = try loopbackSocket()
        defer { a.close(); b.close(); c.close() }
        try loop.registerBatched(fd: a.fd, events: .readable, tag: 7)
        try loop.registerBatched(fd: b.fd, events: .readable, tag: (1 << 62) + 1)
        let plain = try loop.register(fd: c.fd, events: .readable, handler: ordinary, tag: 9)
        #expect(loop.batchedRegistrationCount == 2)
        #expect(c.send([1], to: aEnd) == 1 && c.send([2], to: bEnd) == 1 && a.send([3], to: cEnd) == 1)
        usleep(10_000)
        #expect(try loop.runOnce(timeoutMilliseconds: 1000) == 3)
        #expect(batch.calls.count == 1)
        let tags = Set(batch.calls.first ?? [])
        #expect(tags == Set<UInt64>([7, (1 << 62) + 1]))
        #expect(ordinary.seen.map(\.1) == [9])
        loop.unregisterBatched(fd: a.fd)
        loop.unregisterBatched(fd: b.fd)
        loop.unregister(plain)
        #expect(loop.batchedRegistrationCount == 0)
        #expect(c.send([4], to: aEnd) == 1)
        #expect(try loop.runOnce(timeoutMilliseconds: 50) == 0)
        #expect(batch.calls.count == 1)
    }

    @Test func timersFireInDeadlineOrderAndCancel() throws {
        let loop = try EventLoop()
        var fired: [Int] = []
        loop.schedule(afterNanoseconds: 30_000_000) { fired.append(3) }
        loop.schedule(afterNanoseconds: 10_000_000) { fired.append(1) }
        let cancelled = loop.schedule(afterNanoseconds: 20_000_000) { fired.append(2) }
        loop.schedule(afterNanoseconds: 40_000_000) { loop.stop() }
        loop.cancel(cancelled)
        let start = monotonicNanoseconds()
        try loop.run()
        #expect(fired == [1, 3])
        #expect(monotonicNanoseconds() - start >= 40_000_000)
        #expect(loop.pendingTimers == 0)
    }

    @Test func wakeupCrossesThreads() throws {
        let loop = try EventLoop()
        let wakeup = try Wakeup()
        var woke = 0
        try loop.register(fd: wakeup.fd, events: .readable, handler: ClosureHandler { _ in
            woke += Int(wakeup.drain())
            loop.stop()
        })
        let thread = try WorkerThread.start(name: "waker") { wakeup.signal() }
        try loop.run()
        thread.join()
        #expect(woke == 1)
    }
}

@Suite struct UDPTests {
    @Test func batchReceiveAndGSOSend() throws {
        let (sender, _) = try loopbackSocket()
        let (receiver, receiverEnd) = try loopbackSocket()
        defer { sender.close(); receiver.close() }
        // 20 datagrams of 172 bytes and a short 50-byte tail: one GSO run.
        let payload = UnsafeMutableRawPointer.allocate(byteCount: 21 * 172, alignment: 8)
        defer { payload.deallocate() }
        for i in 0..<(21 * 172) { payload.storeBytes(of: UInt8(truncatingIfNeeded: i / 172), toByteOffset: i, as: UInt8.self) }
        let send = UDPSendBatch(capacity: 8)
        for i in 0..<20 { #expect(send.append(payload + i * 172, length: 172, to: receiverEnd)) }
        #expect(send.append(payload + 20 * 172, length: 50, to: receiverEnd))
        #expect(send.messageCount == (send.segmentationOffload ? 1 : 21))
        #expect(send.flush(sender.fd) == 21)
        let batch = UDPReceiveBatch(capacity: 32)
        var lengths: [Int] = []
        var firstBytes: [UInt8] = []
        for _ in 0..<100 where lengths.count < 21 {
            let n = batch.receive(from: receiver.fd)
            for i in 0..<max(n, 0) {
                lengths.append(batch.length(at: i))
                firstBytes.append(batch.bytes(at: i).load(as: UInt8.self))
                #expect(batch.source(at: i) == (try sender.localEndpoint()))
            }
            if n == 0 { usleep(1000) }
        }
        #expect(lengths == Array(repeating: 172, count: 20) + [50])
        #expect(firstBytes == (0..<21).map { UInt8($0) })
    }

    @Test func differentDestinationsAreSeparateMessages() throws {
        let (sender, _) = try loopbackSocket()
        let (r1, e1) = try loopbackSocket()
        let (r2, e2) = try loopbackSocket()
        defer { sender.close(); r1.close(); r2.close() }
        var bytes = [UInt8](repeating: 7, count: 64)
        try bytes.withUnsafeMutableBytes { raw in
            let send = UDPSendBatch(capacity: 4)
            #expect(send.append(raw.baseAddress!, length: 64, to: e1))
            #expect(send.append(raw.baseAddress!, length: 64, to: e2))
            #expect(send.append(raw.baseAddress!, length: 64, to: e1))
            #expect(send.messageCount == 3)
            #expect(send.flush(sender.fd) == 3)
            usleep(2000)
            let batch = UDPReceiveBatch(capacity: 8)
            #expect(batch.receive(from: r1.fd) == 2)
            #expect(batch.receive(from: r2.fd) == 1)
            _ = try sender.localEndpoint()
        }
    }

    @Test func tosIsMarkedAndReadBack() throws {
        let (sender, _) = try loopbackSocket()
        let (receiver, end) = try loopbackSocket()
        defer { sender.close(); receiver.close() }
        try sender.setTOS(UDPSocket.tos(dscp: 46))
        try receiver.enableReceiveTOS()
        #expect(sender.send([1, 2, 3, 4], to: end) == 4)
        usleep(2000)
        let batch = UDPReceiveBatch(capacity: 4)
        #expect(batch.receive(from: receiver.fd) == 1)
        #expect(batch.ancillary(at: 0).tos == 0xB8)
    }

    @Test func kernelDropsAreReported() throws {
        let (sender, _) = try loopbackSocket()
        let receiver = try UDPSocket.open()
        defer { sender.close(); receiver.close() }
        try receiver.setOption(SOL_SOCKET, SO_RCVBUF, 2048, "SO_RCVBUF")
        try receiver.bind(.loopback(port: 0))
        try receiver.enableDropCounter()
        let end = try receiver.localEndpoint()
        let bytes = [UInt8](repeating: 0, count: 1000)
        for _ in 0..<200 { _ = sender.send(bytes, to: end) }
        let batch = UDPReceiveBatch(capacity: 64)
        let n = batch.receive(from: receiver.fd)
        #expect(n > 0)
        #expect(n < 200)
        // Drops happen after the first queued datagrams: the latest one carries the count.
        let first = batch.receive(from: receiver.fd) // drain remainder
        _ = first
        #expect(sender.send(bytes, to: end) == 1000)
        usleep(1000)
        #expect(batch.receive(from: receiver.fd) == 1)
        let drops = batch.ancillary(at: 0).drops
        #expect(drops != nil)
        #expect((drops ?? 0) + UInt32(n) >= 190)
    }

    @Test func endpointParsing() {
        #expect(IPv4Endpoint(parsing: "127.0.0.1:5004") == .loopback(port: 5004))
        #expect(IPv4Endpoint(parsing: "127.0.0.1") == nil)
        #expect(IPv4Endpoint(parsing: "300.0.0.1:5") == nil)
        #expect(IPv4Endpoint(parsing: "1.2.3.4:70000") == nil)
        #expect(IPv4Endpoint.loopback(port: 9).description == "127.0.0.1:9")
    }
}

@Suite struct ThreadTests {
    @Test func pinsToAnAllowedCPU() throws {
        let allowed = WorkerThread.currentCPUs()
        let target = try #require(allowed.last)
        let observed = Mutex<[Int]>([])
        let thread = try WorkerThread.start(name: "pinned", cpu: target) {
            let cpus = WorkerThread.currentCPUs()
            let now = WorkerThread.currentCPU()
            observed.withLock { $0 = cpus + [now] }
        }
        thread.join()
        #expect(thread.pinError == 0)
        #expect(observed.withLock { $0 } == [target, target])
    }

    @Test func spscQueueKeepsOrderAcrossThreads() throws {
        let queue = SPSCQueue<Int>(capacity: 100)
        #expect(queue.capacity == 128)
        let total = 200_000
        let producer = try WorkerThread.start(name: "producer") {
            var next = 0
            while next < total {
                if queue.push(next) { next += 1 }
            }
        }
        var expected = 0
        var outOfOrder = 0
        while expected < total {
            if let value = queue.pop() {
                if value != expected { outOfOrder += 1 }
                expected += 1
            }
        }
        producer.join()
        #expect(outOfOrder == 0)
        #expect(queue.pop() == nil)
    }

    @Test func spscQueueIsBoundedAndReleasesElements() {
        final class Token { static let live = Atomic<Int>(0); init() { Token.live.add(1, ordering: .relaxed) }; deinit { Token.live.subtract(1, ordering: .relaxed) } }
        do {
            let queue = SPSCQueue<Token>(capacity: 4)
            for _ in 0..<4 { #expect(queue.push(Token())) }
            #expect(!queue.push(Token()))
            #expect(queue.count == 4)
            #expect(queue.pop() != nil)
            #expect(Token.live.load(ordering: .relaxed) == 3)
        }
        #expect(Token.live.load(ordering: .relaxed) == 0)
    }
}
