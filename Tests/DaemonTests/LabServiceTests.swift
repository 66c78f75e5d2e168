import Config
import Endpoint
import Glibc
import H323
import EndpointIO
import IO
import Lab
import Testing
@testable import Daemon

private let gk = EndpointAddress(ip: 0x7F00_0001, port: 1719)
/// A port on 127.0.0.1 that is free now (UDP and TCP).
private func freePort() throws -> Int {
    let socket = try UDPSocket.bound(to: IPv4Endpoint("127.0.0.1", port: 0)!)
    defer { socket.close() }
    return Int(try socket.localEndpoint().port)
}

/// A blocking TCP connect to 127.0.0.1:port.
private func connects(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

private func labConfiguration(ras: Int, signalling: Int) throws -> Configuration {
    try Configuration(text: FactoryDefault.text + """
        set lab gatekeeper ras 127.0.0.1:\(ras)
        set lab gateway signalling 127.0.0.1:\(signalling)
        set lab gateway media-ports 16000-16099

        """)
}

@Suite(.serialized) struct LabServiceTests {
    /// The lab service's tools run: real sockets on 127.0.0.1, a real GRQ and GCF, a TCP connect.
    @Test func theLabGatekeeperRunsAndAnswersAGatekeeperRequest() throws {
        let ras = try freePort(), signalling = try freePort()
        let service = LabService()
        defer { service.stop(deadline: 5) }
        #expect(service.apply(try labConfiguration(ras: ras, signalling: signalling)).isEmpty)
        let health = service.health()
        #expect(health.listeners.map(\.name) == ["lab.gatekeeper-ras-127.0.0.1:\(ras)", "lab.gateway-127.0.0.1:\(signalling)"])
        #expect(health.listeners.allSatisfy(\.up) && health.problem == nil)

        // A GatekeeperRequest (what the mirror's reachability probe sends) gets its confirm.
        let loop = try EventLoop()
        let port = try UDPPort(loop: loop, address: EndpointAddress(ip: 0x7F00_0001, port: 0))
        var confirmed = false
        port.onDatagram = { bytes, _ in
            if case .gatekeeperConfirm(let gcf)? = try? RasMessage(decoding: Array(bytes)), gcf.requestSeqNum == 7 { confirmed = true }
        }
        let grq = RasMessage.gatekeeperRequest(GatekeeperRequest(requestSeqNum: 7, protocolIdentifier: EndpointIdentity.h2250Protocol,
            rasAddress: port.address.transportAddress, endpointType: EndpointIdentity.gateway))
        port.send(try grq.encoded(), to: EndpointAddress(ip: 0x7F00_0001, port: UInt16(ras)))
        for _ in 0..<40 where !confirmed { _ = try loop.runOnce(timeoutMilliseconds: 100) }
        port.close()
        #expect(confirmed)

        #expect(connects(port: signalling))  // the gateway listens for calls
    }

    @Test func settingsChangesRestartAndRemovalFreesThePorts() throws {
        let ras = try freePort(), signalling = try freePort()
        let service = LabService()
        defer { service.stop(deadline: 5) }
        #expect(service.apply(try labConfiguration(ras: ras, signalling: signalling)).isEmpty)
        let moved = try freePort()
        #expect(service.apply(try labConfiguration(ras: moved, signalling: signalling)).isEmpty)
        #expect(service.health().listeners.map(\.name).first == "lab.gatekeeper-ras-127.0.0.1:\(moved)")
        // The old RAS port is free again: the restarted tools closed their sockets.
        let old = try UDPSocket.bound(to: IPv4Endpoint("127.0.0.1", port: UInt16(ras))!)
        old.close()
        #expect(service.apply(try Configuration(text: FactoryDefault.text)).isEmpty)
        #expect(service.health().listeners.isEmpty)
        let freed = try UDPSocket.bound(to: IPv4Endpoint("127.0.0.1", port: UInt16(moved))!)
        freed.close()
    }

    @Test func aTakenPortIsAProblemForHealthNotATrap() throws {
        let taken = try UDPSocket.bound(to: IPv4Endpoint("127.0.0.1", port: 0)!)
        defer { taken.close() }
        let ras = Int(try taken.localEndpoint().port)
        let service = LabService()
        defer { service.stop(deadline: 5) }
        let problems = service.apply(try labConfiguration(ras: ras, signalling: try freePort()))
        #expect(problems.count == 1 && problems[0].hasPrefix("lab gatekeeper 127.0.0.1:\(ras):"))
        let health = service.health()
        #expect(health.listeners.first?.up == false && health.listeners.last?.up == true)
    }
}

/// The lab service's gatekeeper lets an alias move to a new port of the same host (a test
/// call run twice: the mirror registers each new tunnel from a new RAS port), and still
/// refuses it from another host.
@Test func anAliasFollowsItsHostToANewPortButNotToAnotherHost() {
    func rrq(_ ip: UInt32, _ port: UInt16) -> RasMessage {
        let ras = EndpointAddress(ip: ip, port: port)
        return .registrationRequest(RegistrationRequest(requestSeqNum: Int(port), protocolIdentifier: EndpointIdentity.h2250Protocol,
            discoveryComplete: false, callSignalAddress: [EndpointAddress(ip: ip, port: port + 1).transportAddress],
            rasAddress: [ras.transportAddress], terminalType: EndpointIdentity.terminal, terminalAlias: [.h323ID("demo")],
            endpointVendor: EndpointIdentity.vendor))
    }
    func confirmed(_ replies: [(RasMessage, EndpointAddress)]) -> Bool {
        if case .registrationConfirm = replies.first?.0 { return true }
        return false
    }
    var config = LabGatekeeperConfig(rasAddress: gk, callSignalAddress: EndpointAddress(ip: 0x7F00_0001, port: 1721))
    config.aliasesFollowTheirHost = true
    var core = GatekeeperCore(config: config)
    #expect(confirmed(core.handle(rrq(0x7F00_0001, 30000), from: EndpointAddress(ip: 0x7F00_0001, port: 30000), now: 0)))
    #expect(confirmed(core.handle(rrq(0x7F00_0001, 30002), from: EndpointAddress(ip: 0x7F00_0001, port: 30002), now: 1)))
    #expect(core.registrations.count == 1)
    #expect(!confirmed(core.handle(rrq(0x7F00_0002, 30000), from: EndpointAddress(ip: 0x7F00_0002, port: 30000), now: 2)))

    var strict = GatekeeperCore(config: LabGatekeeperConfig(rasAddress: gk, callSignalAddress: gk))
    #expect(confirmed(strict.handle(rrq(0x7F00_0001, 30000), from: EndpointAddress(ip: 0x7F00_0001, port: 30000), now: 0)))
    #expect(!confirmed(strict.handle(rrq(0x7F00_0001, 30002), from: EndpointAddress(ip: 0x7F00_0001, port: 30002), now: 1)))
}
