import Glibc
import IO
import RTP
@testable import Relay

/// A UDP peer on a loopback address (127.0.0.0/8 only).
final class Peer {
    let socket: UDPSocket
    let endpoint: IPv4Endpoint

    init(_ address: String = "127.0.0.1") throws {
        socket = try UDPSocket.bound(to: IPv4Endpoint(address, port: 0)!)
        endpoint = try socket.localEndpoint()
    }

    deinit { socket.close() }

    func sendRTP(seq: UInt16, ts: UInt32? = nil, ssrc: UInt32 = 0x11223344, to destination: IPv4Endpoint, payload: Int = 160) {
        var bytes = [UInt8](repeating: 0xD5, count: 12 + payload)
        bytes.withUnsafeMutableBytes {
            RTPPacket.writeHeader(into: $0, payloadType: 0, sequence: seq, timestamp: ts ?? UInt32(seq) * 160, ssrc: ssrc)
        }
        _ = socket.send(bytes, to: destination)
    }

    func send(_ bytes: [UInt8], to destination: IPv4Endpoint) { _ = socket.send(bytes, to: destination) }

    /// Datagrams that arrive within `milliseconds` (stops early once `count` arrived).
    func receive(count: Int = 1, milliseconds: Int = 1000) -> [(bytes: [UInt8], from: IPv4Endpoint)] {
        var result: [(bytes: [UInt8], from: IPv4Endpoint)] = []
        let deadline = monotonicNanoseconds() + UInt64(milliseconds) * 1_000_000
        var buffer = [UInt8](repeating: 0, count: 2048)
        while result.count < count {
            let now = monotonicNanoseconds()
            if now >= deadline { break }
            var pfd = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, Int32((deadline - now) / 1_000_000) + 1)
            while let got = buffer.withUnsafeMutableBytes({ socket.receive(into: $0) }) {
                result.append((Array(buffer[0..<got.count]), got.from))
            }
        }
        return result
    }
}

func rtpSequence(_ bytes: [UInt8]) -> UInt16 { UInt16(bytes[2]) << 8 | UInt16(bytes[3]) }

func waitForEvents(_ relay: Relay, milliseconds: Int = 2000, until done: ([RelayEvent]) -> Bool) -> [RelayEvent] {
    var events: [RelayEvent] = []
    let deadline = monotonicNanoseconds() + UInt64(milliseconds) * 1_000_000
    while monotonicNanoseconds() < deadline {
        relay.pollEvents { events.append($0) }
        if done(events) { break }
        usleep(2000)
    }
    return events
}

/// The stats of one session, asked for and waited on.
func stats(_ relay: Relay, _ id: SessionID) throws -> SessionStats? {
    try relay.requestStats(id)
    let events = waitForEvents(relay) { $0.contains { if case .stats(let s) = $0, s.id == id { true } else { false } } }
    for event in events { if case .stats(let s) = event, s.id == id { return s } }
    return nil
}

/// A relay on a random high port range of 127.0.0.1, one unpinned worker thread.
func testConfiguration(pairs: Int = 50) -> RelayConfiguration {
    var configuration = RelayConfiguration()
    let base = UInt16(20000 + 2 * Int.random(in: 0..<6000))
    configuration.gatewayPorts = base...(base + UInt16(pairs * 2 - 1))
    configuration.clientPorts = configuration.gatewayPorts
    configuration.cpus = [nil]
    configuration.quarantineNanoseconds = 0
    return configuration
}

/// The set-up most forwarding tests share: a started relay, a gateway and a client peer
/// on 127.0.0.1 and one session between them, with 20 ms for the worker to arm the
/// session's sockets before `body` sends. The relay is shut down when `body` returns.
func withSession(_ configuration: RelayConfiguration = testConfiguration(),
                 rtcpMux: (gateway: Bool, client: Bool) = (false, false),
                 _ body: (_ relay: Relay, _ gateway: Peer, _ client: Peer, _ info: SessionInfo) throws -> Void) throws {
    let relay = try Relay(configuration: configuration)
    try relay.start()
    defer { relay.shutdown() }
    let gateway = try Peer(), client = try Peer()
    let info = try relay.createSession(gatewayAnnounced: gateway.endpoint, client: .udp(announced: client.endpoint), rtcpMux: rtcpMux)
    usleep(20_000)
    try body(relay, gateway, client, info)
}

/// How many UDP sockets are bound to 127.0.0.1:`port`, from the kernel's table.
func socketsBound(toLoopbackPort port: UInt16) throws -> Int {
    guard let file = fopen("/proc/net/udp", "r") else { throw SystemError("fopen(/proc/net/udp)") }
    defer { fclose(file) }
    let wanted = "0100007F:" + String(port, radix: 16, uppercase: true).leftPadded(to: 4)
    var count = 0
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let fields = text.split(separator: " ")
        if fields.count > 1 && fields[1] == wanted { count += 1 }
    }
    return count
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
