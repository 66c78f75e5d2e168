// RASDriver with a real UDP socket on 127.0.0.1 as the gatekeeper: what the client sends
// leaves through the owner's transmit closure, everything else reaches the owner, the
// keep-alive goes out on the driver's own timer, and nothing does once it is closed.
import Endpoint
import EndpointIO
import H323
import IO
import Testing

@Suite struct RASDriverTests {
    static let loopback: UInt32 = 0x7F00_0001

    /// The next RAS message the gatekeeper socket receives within `seconds`, the loop
    /// running meanwhile (nil: none came).
    static func nextMessage(at gatekeeper: UDPSocket, loop: EventLoop, seconds: Double) throws -> RasMessage? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        while monotonicNanoseconds() < deadline {
            if let got = buffer.withUnsafeMutableBytes({ gatekeeper.receive(into: $0) }) {
                return try RasMessage(decoding: Array(buffer[0..<got.count]))
            }
            _ = try loop.runOnce(timeoutMilliseconds: 10)
        }
        return nil
    }

    @Test func sendsThroughTheOwnerKeepsTheRegistrationAliveAndStopsWhenClosed() throws {
        let loop = try EventLoop()
        let gatekeeper = try UDPSocket.bound(to: IPv4Endpoint(address: Self.loopback, port: 0))
        defer { gatekeeper.close() }
        let endpoint = try UDPSocket.bound(to: IPv4Endpoint(address: Self.loopback, port: 0))
        defer { endpoint.close() }
        let gk = EndpointAddress(ip: Self.loopback, port: try gatekeeper.localEndpoint().port)
        let me = EndpointAddress(ip: Self.loopback, port: try endpoint.localEndpoint().port)
        let client = RASClient(config: RASConfig(gatekeeper: gk, rasAddress: me, callSignalAddress: me,
                                                 aliases: [.h323ID("alice")], discover: false, timeToLive: 2))
        var transmitted: [EndpointAddress] = []
        let driver = RASDriver(loop: loop, client: client) { bytes, to in
            transmitted.append(to)
            _ = endpoint.send(bytes, to: IPv4Endpoint(address: to.ip, port: to.port))
        }
        var actions: [RASAction] = []
        driver.onAction = { actions.append($0) }

        driver.handle(.start)
        guard case .registrationRequest(let rrq)? = try Self.nextMessage(at: gatekeeper, loop: loop, seconds: 2) else {
            Issue.record("no RRQ reached the gatekeeper")
            return
        }
        #expect(transmitted == [gk])
        #expect(actions.isEmpty)  // a send is the driver's, not the owner's
        driver.handle(.received(.registrationConfirm(RegistrationConfirm(
            requestSeqNum: rrq.requestSeqNum, protocolIdentifier: EndpointIdentity.h2250Protocol, callSignalAddress: [],
            gatekeeperIdentifier: "GK", endpointIdentifier: "EP1", timeToLive: 2)), from: gk))
        #expect(actions == [.registered(endpointIdentifier: "EP1", timeToLive: 2)])
        #expect(driver.isRegistered)

        // Nobody calls handle(.tick): the keep-alive (half the 2 s time to live) comes from
        // the driver's timer.
        guard case .registrationRequest(let keepAlive)? = try Self.nextMessage(at: gatekeeper, loop: loop, seconds: 3) else {
            Issue.record("no keep-alive RRQ")
            return
        }
        #expect(keepAlive.keepAlive == true)
        #expect(keepAlive.endpointIdentifier == "EP1")

        // Closed, with the keep-alive unanswered: its retries would follow within a few
        // seconds, and none may.
        driver.close()
        driver.handle(.tick)
        #expect(try Self.nextMessage(at: gatekeeper, loop: loop, seconds: 3.5) == nil)
        #expect(transmitted.count == 2)
    }
}
