// The UDP probe service on the tunnel ports (docs/tunnel-protocol.md §7): a client
// measures the round trip to each appliance and reads its load, then picks the
// nearest one with room. The answer is never larger than the request, so the
// service cannot be used to amplify traffic towards a spoofed source.

import IO

public enum ProbeMessage {
    public static let magic: [UInt8] = [UInt8(ascii: "B"), UInt8(ascii: "L"), UInt8(ascii: "P"), 1]
    public static let request: UInt8 = 1
    public static let reply: UInt8 = 2
    /// Requests shorter than this are ignored (the reply is this long).
    public static let size = 32

    /// The reply to `request`, or nil when it is not a valid probe.
    public static func answer(_ request: UnsafeRawBufferPointer, serverTimeMicros: UInt64,
                              activeCalls: UInt32, capacity: UInt32) -> [UInt8]? {
        guard request.count >= size, request.count <= 1500,
              Array(request[0..<4]) == magic, request[4] == ProbeMessage.request else { return nil }
        var reply = magic + [ProbeMessage.reply, 0, 0, 0]
        reply += request[8..<16]  // the client's timestamp, echoed
        for shift in stride(from: 56, through: 0, by: -8) { reply.append(UInt8(truncatingIfNeeded: serverTimeMicros >> UInt64(shift))) }
        for value in [activeCalls, capacity] {
            for shift in stride(from: 24, through: 0, by: -8) { reply.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
        }
        return reply
    }
}

final class ProbeResponder: IOHandler {
    unowned let worker: TerminatorWorker
    let socket: UDPSocket

    init(worker: TerminatorWorker, socket: UDPSocket) {
        self.worker = worker
        self.socket = socket
    }

    func handle(events: IOEvents, tag: UInt64) {
        for _ in 0..<64 {
            let received = worker.readScratch.withUnsafeMutableBytes { socket.receive(into: $0) }
            guard let (count, source) = received else { return }
            let load = worker.shared.load
            let reply = worker.readScratch.withUnsafeBytes {
                ProbeMessage.answer(UnsafeRawBufferPointer(rebasing: $0[0..<count]), serverTimeMicros: monotonicNanoseconds() / 1_000,
                                    activeCalls: load.activeCalls, capacity: load.capacity)
            }
            if let reply { _ = socket.send(reply, to: source) }
        }
    }
}
