import Testing
import Glibc
import IO
import RTP
import AllocCounting
@testable import Relay

@Suite(.serialized) struct ForwardingTests {
    @Test func forwardsBothDirectionsAndLatches() throws {
        try withSession { relay, gateway, client, info in
            let gatewaySide = IPv4Endpoint.loopback(port: info.gatewayPort)
            let clientSide = IPv4Endpoint.loopback(port: try #require(info.clientPort))
            for seq: UInt16 in 1...5 { gateway.sendRTP(seq: seq, to: gatewaySide) }
            let atClient = client.receive(count: 5)
            #expect(atClient.map { rtpSequence($0.bytes) } == [1, 2, 3, 4, 5])
            #expect(atClient.allSatisfy { $0.from == clientSide && $0.bytes.count == 172 })
            for seq: UInt16 in 100...102 { client.sendRTP(seq: seq, ssrc: 9, to: clientSide) }
            let atGateway = gateway.receive(count: 3)
            #expect(atGateway.map { rtpSequence($0.bytes) } == [100, 101, 102])
            #expect(atGateway.allSatisfy { $0.from == gatewaySide })
            let s = try #require(try stats(relay, info.id))
            #expect(s.fromGateway.packets == 5 && s.fromGateway.forwarded == 5 && s.fromGateway.bytes == 5 * 172)
            #expect(s.fromClient.packets == 3 && s.fromClient.forwarded == 3)
            #expect(s.gatewayRemote == gateway.endpoint && s.clientRemote == client.endpoint)
        }
    }

    @Test func rejectsWrongSourceAndRelatchesFromAnnouncedAddress() throws {
        let relay = try Relay(configuration: testConfiguration())
        try relay.start()
        defer { relay.shutdown() }
        let gateway = try Peer("127.0.0.1"), client = try Peer("127.0.0.1")
        let stranger = try Peer("127.0.0.2")
        let info = try relay.createSession(gatewayAnnounced: IPv4Endpoint("127.0.0.1", port: 0), client: .udp(announced: client.endpoint))
        let gatewaySide = IPv4Endpoint.loopback(port: info.gatewayPort)
        usleep(20_000)
        stranger.sendRTP(seq: 1, to: gatewaySide)
        #expect(client.receive(count: 1, milliseconds: 200).isEmpty)
        gateway.sendRTP(seq: 2, to: gatewaySide)
        #expect(client.receive(count: 1).map { rtpSequence($0.bytes) } == [2])
        stranger.sendRTP(seq: 3, to: gatewaySide)
        #expect(client.receive(count: 1, milliseconds: 200).isEmpty)
        // Same announced IP, new port (NAT rebinding): accepted and latched.
        let moved = try Peer("127.0.0.1")
        moved.sendRTP(seq: 4, to: gatewaySide)
        #expect(client.receive(count: 1).map { rtpSequence($0.bytes) } == [4])
        // Media toward the gateway now goes to the new source.
        client.sendRTP(seq: 50, to: IPv4Endpoint.loopback(port: info.clientPort!))
        #expect(moved.receive(count: 1).map { rtpSequence($0.bytes) } == [50])
        #expect(gateway.receive(count: 1, milliseconds: 100).isEmpty)
        let s = try #require(try stats(relay, info.id))
        #expect(s.fromGateway.drops.wrongSource == 2)
        #expect(s.fromGateway.relatches == 1)
        #expect(s.fromGateway.forwarded == 2)
        #expect(s.gatewayRemote == moved.endpoint)
    }

    /// RTP leaves from a second socket on the same port (in no epoll set); every datagram
    /// for the port must still reach the receiving socket. Without the steering program
    /// the kernel would spread sources over both sockets by hash, and about half of
    /// these twenty sources would vanish into the socket nobody reads.
    @Test func sendsFromASecondSocketWhileTheFirstReceivesEverything() throws {
        var configuration = testConfiguration()
        configuration.separateSendSockets = true
        let relay = try Relay(configuration: configuration)
        try relay.start()
        defer { relay.shutdown() }
        let client = try Peer()
        let info = try relay.createSession(gatewayAnnounced: IPv4Endpoint("127.0.0.1", port: 0),
                                          client: .udp(announced: client.endpoint))
        let gatewaySide = IPv4Endpoint.loopback(port: info.gatewayPort)
        #expect(try socketsBound(toLoopbackPort: info.gatewayPort) == 2)
        #expect(try socketsBound(toLoopbackPort: info.gatewayPort + 1) == 1)
        usleep(20_000)
        // Each source relatches (same announced address) and is forwarded.
        let sources = try (0..<20).map { _ in try Peer() }
        for (index, source) in sources.enumerated() {
            source.sendRTP(seq: UInt16(index + 1), to: gatewaySide)
            #expect(client.receive(count: 1).map { rtpSequence($0.bytes) } == [UInt16(index + 1)])
        }
        let received = client.receive(count: 1, milliseconds: 50)
        #expect(received.isEmpty)
        let s = try #require(try stats(relay, info.id))
        #expect(s.fromGateway.packets == 20 && s.fromGateway.forwarded == 20 && s.fromGateway.relatches == 19)
        // Toward the last source, from the gateway port: the send socket's source port.
        client.sendRTP(seq: 77, to: IPv4Endpoint.loopback(port: try #require(info.clientPort)))
        let back = try #require(sources.last).receive(count: 1)
        #expect(back.map { rtpSequence($0.bytes) } == [77])
        #expect(back.first?.from == gatewaySide)
    }

    /// Forwarded datagrams carry Don't Fragment and IPv4 ID 0 (RFC 6864 atomic
    /// datagrams), read from the wire of the loopback interface with a packet socket.
    @Test(.enabled(if: geteuid() == 0, "a packet socket needs CAP_NET_RAW"))
    func forwardedDatagramsAreAtomic() throws {
        try withSession { _, gateway, client, info in
            let clientSide = try #require(info.clientPort)
            let capture = socket(AF_PACKET, Int32(SOCK_DGRAM.rawValue), Int32(UInt16(0x0800).bigEndian))  // ETH_P_IP
            try #require(capture >= 0)
            defer { close(capture) }
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(capture, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            // Room for everybody else's loopback traffic until ours is read.
            var room: Int32 = 64 << 20
            setsockopt(capture, SOL_SOCKET, SO_RCVBUFFORCE, &room, socklen_t(MemoryLayout<Int32>.size))
            gateway.sendRTP(seq: 1, to: .loopback(port: info.gatewayPort))
            #expect(client.receive(count: 1).count == 1)
            var header: (flags: UInt16, id: UInt16)?
            var buffer = [UInt8](repeating: 0, count: 2048)
            // The interface carries everybody's loopback traffic: look for ours for 2 s at most.
            let deadline = monotonicNanoseconds() + 2_000_000_000
            while header == nil && monotonicNanoseconds() < deadline {
                let n = recv(capture, &buffer, buffer.count, 0)
                guard n >= 28 else { continue }
                let ihl = Int(buffer[0] & 0x0F) * 4
                guard buffer[9] == UInt8(IPPROTO_UDP), n >= ihl + 8 else { continue }
                let sourcePort = UInt16(buffer[ihl]) << 8 | UInt16(buffer[ihl + 1])
                let destinationPort = UInt16(buffer[ihl + 2]) << 8 | UInt16(buffer[ihl + 3])
                if sourcePort == clientSide && destinationPort == client.endpoint.port {
                    header = (UInt16(buffer[6]) << 8 | UInt16(buffer[7]), UInt16(buffer[4]) << 8 | UInt16(buffer[5]))
                }
            }
            let seen = try #require(header)
            #expect(seen.flags & 0x4000 != 0)
            #expect(seen.id == 0)
        }
    }

    @Test func sendsFromTheReceivingSocketByDefault() throws {
        try withSession { _, gateway, client, info in
            let clientSide = IPv4Endpoint.loopback(port: try #require(info.clientPort))
            #expect(try socketsBound(toLoopbackPort: info.gatewayPort) == 1)
            gateway.sendRTP(seq: 1, to: .loopback(port: info.gatewayPort))
            let atClient = client.receive(count: 1)
            #expect(atClient.map { rtpSequence($0.bytes) } == [1])
            #expect(atClient.first?.from == clientSide)
        }
    }

    @Test func reportsFirstPacketOnce() throws {
        try withSession { relay, gateway, client, info in
            for seq: UInt16 in 1...3 { gateway.sendRTP(seq: seq, to: .loopback(port: info.gatewayPort)) }
            _ = client.receive(count: 3)
            let events = waitForEvents(relay, milliseconds: 300) { _ in false }
            let firsts = events.compactMap { event -> IPv4Endpoint? in
                if case .firstPacket(let id, .gateway, let from) = event, id == info.id { return from }
                return nil
            }
            #expect(firsts == [gateway.endpoint])
        }
    }

    @Test func latchFromAnyAddressWhenConfigured() throws {
        var configuration = testConfiguration()
        configuration.latchFromAnyAddress = true
        let relay = try Relay(configuration: configuration)
        try relay.start()
        defer { relay.shutdown() }
        let client = try Peer(), elsewhere = try Peer("127.0.0.3")
        let info = try relay.createSession(gatewayAnnounced: nil, client: .udp(announced: client.endpoint))
        usleep(20_000)
        elsewhere.sendRTP(seq: 7, to: .loopback(port: info.gatewayPort))
        #expect(client.receive(count: 1).map { rtpSequence($0.bytes) } == [7])
    }

    @Test func dropsMalformedPacketsByReason() throws {
        try withSession { relay, gateway, client, info in
            let gatewaySide = IPv4Endpoint.loopback(port: info.gatewayPort)
            var badVersion = [UInt8](repeating: 0, count: 172)
            badVersion[0] = 0x40
            gateway.send(badVersion, to: gatewaySide)
            gateway.send([0x80, 0, 0, 1, 0, 0], to: gatewaySide)               // truncated fixed header
            gateway.send([0x8F] + [UInt8](repeating: 0, count: 20), to: gatewaySide) // 15 CSRCs announced
            gateway.sendRTP(seq: 1, to: gatewaySide)
            #expect(client.receive(count: 2, milliseconds: 300).map { rtpSequence($0.bytes) } == [1])
            let s = try #require(try stats(relay, info.id))
            #expect(s.fromGateway.drops.badVersion == 1)
            #expect(s.fromGateway.drops.tooShort == 1)
            #expect(s.fromGateway.drops.truncatedHeader == 1)
            #expect(s.fromGateway.packets == 1)
            // A malformed first packet must not have latched anything before the good one.
            #expect(s.gatewayRemote == gateway.endpoint)
        }
    }

    @Test func countsLossAndReorderOfAKnownPattern() throws {
        try withSession { relay, gateway, client, info in
            let gatewaySide = IPv4Endpoint.loopback(port: info.gatewayPort)
            // 1...100 with 10, 20, 30 lost; 41 before 40; 50 twice.
            var order: [UInt16] = Array(1...100).filter { ![10, 20, 30].contains($0) }
            let i40 = order.firstIndex(of: 40)!
            order.swapAt(i40, i40 + 1)
            order.insert(50, at: order.firstIndex(of: 50)!)
            for seq in order { gateway.sendRTP(seq: seq, to: gatewaySide); usleep(200) }
            #expect(client.receive(count: order.count).count == order.count)
            let s = try #require(try stats(relay, info.id)).fromGateway.stream
            #expect(s.expected == 100)
            #expect(s.lost == 3)
            #expect(s.reordered == 1)
            #expect(s.duplicates == 1)
        }
    }

    @Test func relaysRTCPOnItsPortAndMultiplexed() throws {
        // The client multiplexes RTCP on its RTP port (RFC 5761); the gateway does not.
        try withSession(rtcpMux: (gateway: false, client: true)) { relay, gateway, client, info in
            let rr: [UInt8] = [0x80, 201, 0, 1, 0, 0, 0, 7]
            // RTCP from the gateway on the RTCP port goes to the (muxed) client's RTP port.
            gateway.send(rr, to: .loopback(port: info.gatewayPort + 1))
            let got = client.receive(count: 1)
            #expect(got.map(\.bytes) == [rr])
            #expect(got.first?.from == .loopback(port: info.clientPort!))
            // RTCP muxed on the client's RTP port goes to the gateway's RTCP port, from ours.
            // (The gateway's RTCP remote latched to the socket that sent the first RR.)
            client.send(rr, to: .loopback(port: info.clientPort!))
            let back = gateway.receive(count: 1)
            #expect(back.map(\.bytes) == [rr])
            #expect(back.first?.from == .loopback(port: info.gatewayPort + 1))
            let s = try #require(try stats(relay, info.id))
            #expect(s.fromGateway.rtcpPackets == 1 && s.fromClient.rtcpPackets == 1)
        }
    }

    @Test func sendsRTCPWhereSignallingAnnouncedIt() throws {
        // H.245's mediaControlChannel (or SDP's a=rtcp) may put RTCP on a port of its own,
        // not the RTP port + 1.
        try withSession { relay, gateway, client, info in
            let gatewayRTCP = try Peer()
            try relay.updateRemote(info.id, side: .gateway, to: gateway.endpoint, rtcp: gatewayRTCP.endpoint)
            usleep(20_000)
            let rr: [UInt8] = [0x80, 201, 0, 1, 0, 0, 0, 7]
            client.send(rr, to: .loopback(port: info.clientPort! + 1))
            let got = gatewayRTCP.receive(count: 1)
            #expect(got.map(\.bytes) == [rr])
            #expect(got.first?.from == .loopback(port: info.gatewayPort + 1))
            // The gateway's RTCP from there is relayed back (its address is the announced one).
            gatewayRTCP.send(rr, to: .loopback(port: info.gatewayPort + 1))
            #expect(client.receive(count: 1).map(\.bytes) == [rr])
            let s = try #require(try stats(relay, info.id))
            #expect(s.fromGateway.rtcpPackets == 1 && s.fromClient.rtcpPackets == 1)
            #expect(s.fromGateway.drops.wrongSource == 0 && s.fromClient.drops.noDestination == 0)
        }
        // The standalone relay's control line carries it too.
        let rtp = try #require(IPv4Endpoint("127.0.0.1", port: 4000)), rtcp = try #require(IPv4Endpoint("127.0.0.1", port: 4009))
        #expect(ControlLines.parse("remote 3 gateway 127.0.0.1:4000 rtcp=127.0.0.1:4009") == .success(.remote(SessionID(3), .gateway, rtp, rtcp: rtcp)))
        #expect(ControlLines.parse("remote 3 gateway 127.0.0.1:4000") == .success(.remote(SessionID(3), .gateway, rtp, rtcp: nil)))
        for bad in ["remote 3 gateway 127.0.0.1:4000 rtcp=4009", "remote 3 gateway 127.0.0.1:4000 127.0.0.1:4009"] {
            #expect(ControlLines.parse(bad) == .failure(ControlLineError("usage: remote ID gateway|client IP:PORT [rtcp=IP:PORT]")))
        }
    }

    @Test func marksDSCPExpeditedForwarding() throws {
        try withSession { _, gateway, client, info in
            try client.socket.enableReceiveTOS()
            gateway.sendRTP(seq: 1, to: .loopback(port: info.gatewayPort))
            let batch = UDPReceiveBatch(capacity: 4)
            var pfd = pollfd(fd: client.socket.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 1000)
            #expect(batch.receive(from: client.socket.fd) == 1)
            #expect(batch.ancillary(at: 0).tos == 46 << 2)
        }
    }

    @Test func raisesIdleTimeoutAndHoldUsesTheLongerOne() throws {
        var configuration = testConfiguration()
        configuration.idleTimeoutNanoseconds = 150_000_000
        configuration.holdTimeoutNanoseconds = 10_000_000_000
        configuration.scanIntervalNanoseconds = 20_000_000
        let relay = try Relay(configuration: configuration)
        try relay.start()
        defer { relay.shutdown() }
        let gateway = try Peer(), client = try Peer()
        let active = try relay.createSession(gatewayAnnounced: gateway.endpoint, client: .udp(announced: client.endpoint))
        let held = try relay.createSession(gatewayAnnounced: gateway.endpoint, client: .udp(announced: client.endpoint))
        try relay.setMode(held.id, .hold)
        let start = monotonicNanoseconds()
        let events = waitForEvents(relay, milliseconds: 800) { _ in false }
        let timeouts = events.compactMap { event -> (SessionID, UInt64)? in
            if case .timeout(let id, let idle) = event { return (id, idle) }
            return nil
        }
        #expect(timeouts.map(\.0) == [active.id])
        #expect((timeouts.first?.1 ?? 0) >= 150_000_000)
        #expect(monotonicNanoseconds() - start >= 150_000_000)
    }
}

@Suite(.serialized) struct PortTests {
    @Test func allocatorQuarantinesReleasedPairs() throws {
        var allocator = try PortAllocator(range: 40000...40005, quarantineNanoseconds: 1000)
        #expect(allocator.totalPairs == 3)
        #expect(allocator.allocate(now: 10) == 40000)
        #expect(allocator.allocate(now: 10) == 40002)
        allocator.release(40000, now: 20)
        #expect(allocator.allocate(now: 30) == 40004)
        #expect(allocator.allocate(now: 30) == nil)       // 40000 is in quarantine
        #expect(allocator.quarantined(now: 30) == 1)
        #expect(allocator.allocate(now: 1020) == 40000)
        #expect(throws: RelayError.self) { try PortAllocator(range: 40001...40001, quarantineNanoseconds: 0) }
    }

    @Test func exhaustionIsAClearError() throws {
        var configuration = testConfiguration(pairs: 3)
        configuration.quarantineNanoseconds = 60_000_000_000
        let relay = try Relay(configuration: configuration)
        try relay.start()
        defer { relay.shutdown() }
        let first = try relay.createSession(gatewayAnnounced: nil, client: .udp(announced: nil))
        #expect(first.gatewayPort % 2 == 0 && first.clientPort! % 2 == 0)
        do {
            _ = try relay.createSession(gatewayAnnounced: nil, client: .udp(announced: nil))
            Issue.record("second session needed 2 pairs of the 1 left and must fail")
        } catch let error as RelayError {
            guard case .portsExhausted(let address, let range, let inUse, _) = error else { Issue.record("\(error)"); return }
            #expect(address == "127.0.0.1")
            #expect(range == configuration.gatewayPorts)
            #expect(inUse >= 2)
            #expect(error.description.contains("no free RTP/RTCP port pair"))
        }
        // Released pairs stay in quarantine.
        try relay.destroy(first.id)
        #expect(throws: RelayError.self) { try relay.createSession(gatewayAnnounced: nil, client: .udp(announced: nil)) }
    }

    @Test func socketErrorsOtherThanATakenPortAreNamed() throws {
        // 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails with EADDRNOTAVAIL,
        // which says nothing about the port, so the relay must not report "exhausted".
        // Nothing is sent.
        var configuration = testConfiguration(pairs: 3)
        configuration.gatewayAddress = IPv4Endpoint(address: 0xC000_0201, port: 0)
        let relay = try Relay(configuration: configuration)
        try relay.start()
        defer { relay.shutdown() }
        do {
            _ = try relay.createSession(gatewayAnnounced: nil, client: .udp(announced: nil))
            Issue.record("a bind to an address the host does not have must fail")
        } catch let error as RelayError {
            guard case .socketFailed(let reason) = error else { Issue.record("\(error)"); return }
            #expect(reason.contains("bind(192.0.2.1:"))
            #expect(reason.contains("errno \(EADDRNOTAVAIL)"))
        }
    }

    @Test func skipsPortsTakenByOthers() throws {
        let configuration = testConfiguration(pairs: 4)
        let squatter = try UDPSocket.bound(to: .loopback(port: configuration.gatewayPorts.lowerBound + 1))
        defer { squatter.close() }
        let relay = try Relay(configuration: configuration)
        try relay.start()
        defer { relay.shutdown() }
        let info = try relay.createSession(gatewayAnnounced: nil, client: .udp(announced: nil))
        #expect(info.gatewayPort != configuration.gatewayPorts.lowerBound)
    }
}

final class RecordingSink: MediaSink {
    var delivered: [(SessionID, Channel, [UInt8])] = []
    func deliver(session: SessionID, channel: Channel, bytes: UnsafeRawBufferPointer) {
        delivered.append((session, channel, Array(bytes)))
    }
}

@Suite(.serialized) struct SinkLegTests {
    @Test func tunnelLegReceivesAndInjects() throws {
        // The worker is driven on this thread, as the tunnel's worker would be.
        let relay = try Relay(configuration: testConfiguration())
        let worker = relay.workers[0]
        let sink = RecordingSink()
        let gateway = try Peer()
        let info = try relay.createSession(gatewayAnnounced: gateway.endpoint, client: .sink(sink))
        #expect(info.clientPort == nil)
        worker.runOnce(timeoutMilliseconds: 0)
        gateway.sendRTP(seq: 77, to: .loopback(port: info.gatewayPort))
        for _ in 0..<50 where sink.delivered.isEmpty { worker.runOnce(timeoutMilliseconds: 10) }
        #expect(sink.delivered.count == 1)
        #expect(sink.delivered.first.map { rtpSequence($0.2) } == 77)
        #expect(sink.delivered.first?.1 == .rtp)
        // Ten frames handled in one iteration, from one buffer the tunnel reuses at once:
        // they are copied, queued, and leave together when the iteration ends.
        var packet = [UInt8](repeating: 0, count: 172)
        for seq: UInt16 in 5..<15 {
            packet.withUnsafeMutableBytes { RTPPacket.writeHeader(into: $0, payloadType: 0, sequence: seq, timestamp: 0, ssrc: 1) }
            packet.withUnsafeBytes { worker.receiveFromClient(session: info.id, bytes: $0) }
        }
        #expect(gateway.receive(count: 1, milliseconds: 20).isEmpty)
        worker.runOnce(timeoutMilliseconds: 0)
        let back = gateway.receive(count: 10)
        #expect(back.map { rtpSequence($0.bytes) } == Array(5..<15))
        #expect(back.first?.from == .loopback(port: info.gatewayPort))
        try relay.requestStats(info.id)
        for _ in 0..<5 { worker.runOnce(timeoutMilliseconds: 0) }
        var forwarded: UInt64?
        while let event = worker.events.pop() {
            if case .stats(let stats) = event, stats.id == info.id { forwarded = stats.fromClient.forwarded }
        }
        #expect(forwarded == 10)
    }
}

@Suite(.serialized) struct OverloadTests {
    @Test func servesAFloodedSocketInQuotasWithoutStallingOthers() throws {
        // Quota of one 8-datagram batch per socket per wake-up: a burst of 100 on one
        // session must still all get through (backlog), while another session's packet is
        // forwarded in the very first iteration.
        var configuration = testConfiguration()
        configuration.batchSize = 8
        configuration.batchesPerWake = 1
        configuration.segmentationOffload = false
        let relay = try Relay(configuration: configuration)
        let worker = relay.workers[0]
        let floodGateway = try Peer(), floodClient = try Peer(), quietGateway = try Peer(), quietClient = try Peer()
        try floodClient.socket.setReceiveBuffer(bytes: 1 << 20)
        let flood = try relay.createSession(gatewayAnnounced: floodGateway.endpoint, client: .udp(announced: floodClient.endpoint))
        let quiet = try relay.createSession(gatewayAnnounced: quietGateway.endpoint, client: .udp(announced: quietClient.endpoint))
        worker.runOnce(timeoutMilliseconds: 0)
        for seq: UInt16 in 0..<100 { floodGateway.sendRTP(seq: seq, to: .loopback(port: flood.gatewayPort)) }
        quietGateway.sendRTP(seq: 7, to: .loopback(port: quiet.gatewayPort))
        usleep(5000)
        worker.runOnce(timeoutMilliseconds: 100)
        #expect(quietClient.receive(count: 1, milliseconds: 100).map { rtpSequence($0.bytes) } == [7])
        // One iteration: the epoll-reported batch plus one backlog round, 8 each.
        let first = floodClient.receive(count: 100, milliseconds: 50).count
        #expect(first == 16)
        // No new datagram arrives: edge-triggered epoll stays silent, the backlog must serve the rest.
        for _ in 0..<40 { worker.runOnce(timeoutMilliseconds: 0) }
        let rest = floodClient.receive(count: 100 - first, milliseconds: 500).count
        #expect(first + rest == 100)
    }
}

@Suite(.serialized) struct ResourceTests {
    // The malloc interposer is left out of sanitizer builds (the sanitizer owns malloc).
    @Test(.enabled(if: bloo_alloc_counting_available() == 1))
    func forwardsOneHundredThousandPacketsWithoutHeapAllocation() throws {
        // Positive control: the counter does see allocations.
        bloo_alloc_tracking(1)
        let before = bloo_alloc_count()
        let probe = [Int](repeating: 1, count: Int.random(in: 10...20))
        bloo_alloc_tracking(0)
        #expect(bloo_alloc_count() > before && probe.count >= 10)

        var configuration = testConfiguration()
        configuration.scanIntervalNanoseconds = 100_000_000
        configuration.receiveBufferBytes = 4 << 20
        let relay = try Relay(configuration: configuration)
        let worker = relay.workers[0]
        let gateway = try Peer(), client = try Peer()
        try client.socket.setReceiveBuffer(bytes: 8 << 20)
        let info = try relay.createSession(gatewayAnnounced: gateway.endpoint, client: .udp(announced: client.endpoint))
        worker.runOnce(timeoutMilliseconds: 0)
        let destination = IPv4Endpoint.loopback(port: info.gatewayPort)
        let packets = UnsafeMutableRawPointer.allocate(byteCount: 64 * 172, alignment: 16)
        defer { packets.deallocate() }
        let send = UDPSendBatch(capacity: 64, segmentationOffload: false)
        let sink = UDPReceiveBatch(capacity: 64)
        var sequence: UInt16 = 0
        var received = 0
        // Warm up (first-packet event, first timer firings), then count over 100,000 packets.
        for round in 0..<2 {
            let target = round == 0 ? 1_000 : 100_000
            received = 0
            let start = bloo_alloc_count()
            var rounds = 0
            while received < target && rounds < 20_000 {
                rounds += 1
                for i in 0..<64 {
                    RTPPacket.writeHeader(into: UnsafeMutableRawBufferPointer(start: packets + i * 172, count: 172),
                                          payloadType: 0, sequence: sequence, timestamp: UInt32(sequence) &* 160, ssrc: 42)
                    sequence &+= 1
                    _ = send.append(packets + i * 172, length: 172, to: destination)
                }
                send.flush(gateway.socket.fd)
                bloo_alloc_tracking(1)
                worker.runOnce(timeoutMilliseconds: 5)
                bloo_alloc_tracking(0)
                while case let n = sink.receive(from: client.socket.fd), n > 0 { received += n }
            }
            if round == 1 {
                #expect(received >= 100_000)
                #expect(bloo_alloc_count() - start == 0)
                let s = try #require(try { () throws -> SessionStats? in
                    try relay.requestStats(info.id)
                    worker.runOnce(timeoutMilliseconds: 0)
                    var found: SessionStats?
                    relay.pollEvents { if case .stats(let s) = $0 { found = s } }
                    return found
                }())
                #expect(s.fromGateway.forwarded >= 101_000)
                #expect(s.fromGateway.stream.lost == 0)
            }
            if round == 0 {
                // Let the idle scan timer fire a few times too: the runtime instantiates
                // metadata lazily the first time each path runs (once per process).
                let until = monotonicNanoseconds() + 350_000_000
                while monotonicNanoseconds() < until { worker.runOnce(timeoutMilliseconds: 10) }
            }
        }
    }

    // Counted by this thread's malloc/free (the worker is driven here), so tests running
    // in parallel do not disturb the figure. Kernel socket memory is not included.
    @Test(.enabled(if: bloo_alloc_counting_available() == 1))
    func idleSessionCostsAtMostTwoKiB() throws {
        var configuration = testConfiguration(pairs: 2100)
        // 10000-19999: disjoint from testConfiguration's ranges (tests run in parallel).
        let base = UInt16(10000 + 2 * Int.random(in: 0..<2800))
        configuration.gatewayPorts = base...(base + 4199)
        configuration.clientPorts = configuration.gatewayPorts
        let relay = try Relay(configuration: configuration)
        let worker = relay.workers[0]
        // Warm up the tables, then measure growth over 1000 sessions.
        let warm = try relay.createSession(gatewayAnnounced: nil, client: .udp(announced: nil))
        worker.runOnce(timeoutMilliseconds: 0)
        try relay.destroy(warm.id)
        worker.runOnce(timeoutMilliseconds: 0)
        relay.pollEvents { _ in }
        bloo_alloc_tracking(1)
        let before = bloo_alloc_net_bytes()
        for _ in 0..<1000 {
            _ = try relay.createSession(gatewayAnnounced: IPv4Endpoint("127.0.0.1", port: 4000), client: .udp(announced: nil))
            if worker.commands.count > 512 { worker.runOnce(timeoutMilliseconds: 0) }
        }
        worker.runOnce(timeoutMilliseconds: 0)
        let grown = bloo_alloc_net_bytes() - before
        bloo_alloc_tracking(0)
        #expect(worker.sessionCount == 1000)
        #expect(grown > 0)
        let perSession = Double(grown) / 1000
        print("relay: heap per idle session \(Int(perSession)) bytes (user space; the kernel's 4 sockets are extra)")
        #expect(perSession <= 2048)
    }
}

@Suite(.serialized) struct LocalRelayTests {
    /// A LocalRelay on a loop this test owns and runs, as the tunnel worker runs its own.
    @Test func sessionsOnTheHostsLoopLatchRelayMarkAndQuarantine() throws {
        let loop = try EventLoop()
        var configuration = testConfiguration(pairs: 3)
        configuration.quarantineNanoseconds = 60_000_000_000
        var events: [RelayEvent] = []
        let relay = try LocalRelay(configuration: configuration, loop: loop) { events.append($0) }
        let sink = RecordingSink()
        // Latching goes by address: the stranger is on another loopback address.
        let gateway = try Peer(), stranger = try Peer("127.0.0.2")
        try gateway.socket.enableReceiveTOS()
        let info = try relay.createSession(gatewayAnnounced: nil, sink: sink, dscp: 46)
        #expect(info.clientPort == nil && relay.sessionCount == 1)
        let port = IPv4Endpoint.loopback(port: info.gatewayPort)
        // Before signalling says where the gateway is, nothing gets through either way.
        gateway.sendRTP(seq: 1, to: port)
        var packet = [UInt8](repeating: 0, count: 172)
        packet.withUnsafeMutableBytes { RTPPacket.writeHeader(into: $0, payloadType: 0, sequence: 9, timestamp: 0, ssrc: 2) }
        packet.withUnsafeBytes { relay.receiveFromClient(session: info.id, bytes: $0) }
        for _ in 0..<5 { _ = try loop.runOnce(timeoutMilliseconds: 10) }
        #expect(sink.delivered.isEmpty)
        #expect(gateway.receive(count: 1, milliseconds: 20).isEmpty)
        #expect(relay.stats(info.id)?.fromGateway.drops.wrongSource == 1)
        #expect(relay.stats(info.id)?.fromClient.drops.noDestination == 1)
        // Announced: the gateway's media reaches the sink, a stranger's does not, and the
        // client's reaches the gateway from the session's port, marked EF, when the host's
        // iteration ends.
        relay.updateRemote(info.id, side: .gateway, to: gateway.endpoint)
        gateway.sendRTP(seq: 2, to: port)
        stranger.sendRTP(seq: 3, to: port)
        for _ in 0..<50 where sink.delivered.isEmpty { _ = try loop.runOnce(timeoutMilliseconds: 10) }
        for _ in 0..<5 { _ = try loop.runOnce(timeoutMilliseconds: 5) }
        #expect(sink.delivered.map { rtpSequence($0.2) } == [2])
        #expect(events.contains { if case .firstPacket(info.id, .gateway, gateway.endpoint) = $0 { true } else { false } })
        packet.withUnsafeBytes { relay.receiveFromClient(session: info.id, bytes: $0) }
        _ = try loop.runOnce(timeoutMilliseconds: 0)
        let batch = UDPReceiveBatch(capacity: 4)
        var pfd = pollfd(fd: gateway.socket.fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, 1000)
        #expect(batch.receive(from: gateway.socket.fd) == 1)
        #expect(batch.source(at: 0) == port)
        #expect(batch.ancillary(at: 0).tos == 46 << 2)
        let stats = try #require(relay.stats(info.id))
        #expect(stats.fromGateway.forwarded == 1 && stats.fromGateway.drops.wrongSource == 2)
        #expect(stats.fromClient.forwarded == 1)
        // Destroyed: its last counters come as an event, the sockets close, and the pair
        // stays in quarantine while the next session takes another one.
        relay.destroy(info.id)
        #expect(events.contains { if case .destroyed(let last) = $0 { last.id == info.id && last.fromClient.forwarded == 1 } else { false } })
        #expect(try socketsBound(toLoopbackPort: info.gatewayPort) == 0)
        let next = try relay.createSession(gatewayAnnounced: nil, sink: sink, dscp: nil)
        #expect(next.gatewayPort != info.gatewayPort)
        relay.shutdown()
        #expect(try socketsBound(toLoopbackPort: next.gatewayPort) == 0)
        #expect(relay.sessionCount == 0)
    }

    @Test func aFloodedSocketIsServedToTheEndByTheHostsLoop() throws {
        // One 8-datagram batch per socket per wake-up: what is left waits in the backlog,
        // which the host loop's iterations serve without blocking on an empty epoll set.
        let loop = try EventLoop()
        var configuration = testConfiguration(pairs: 2)
        configuration.batchSize = 8
        configuration.batchesPerWake = 1
        let relay = try LocalRelay(configuration: configuration, loop: loop) { _ in }
        let sink = RecordingSink()
        let gateway = try Peer()
        let info = try relay.createSession(gatewayAnnounced: gateway.endpoint, sink: sink, dscp: nil)
        for seq: UInt16 in 0..<100 { gateway.sendRTP(seq: seq, to: .loopback(port: info.gatewayPort)) }
        usleep(20_000)
        // With nothing new arriving, 100 datagrams take a dozen iterations (8 per backlog
        // turn), none of them sitting out its 5 s timeout (a blocked one would).
        let started = monotonicNanoseconds()
        for _ in 0..<20 where sink.delivered.count < 100 { _ = try loop.runOnce(timeoutMilliseconds: 5000) }
        #expect(sink.delivered.count == 100)
        #expect(sink.delivered.map { rtpSequence($0.2) } == Array(0..<100))
        #expect(monotonicNanoseconds() - started < 4_000_000_000)
        relay.shutdown()
    }
}
