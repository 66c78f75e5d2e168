// The appliance's UDP leg of one call (docs/tunnel-protocol.md §8): a UDP socket on
// the client's worker, bound to the address the client reached the tunnel at. It is
// offered with CONNECTED when the client announced the UDP upgrade; the protocol
// (latching only a proven source, fallback when UDP falls silent) is
// Tunnel.ApplianceUDPLeg. Backends need not know: TunnelClient.sendMedia picks the
// path, and audio arriving here reaches the backend as if it came in MEDIA frames.

import Glibc
import IO
import Log
import Tunnel

final class UDPAudioLeg: IOHandler {
    unowned let worker: TerminatorWorker
    unowned let client: TunnelClient
    let socket: UDPSocket
    /// The bound port, read once: offered to the client, and given back to the pool at close.
    let port: UInt16
    var registration: Registration?
    var leg: ApplianceUDPLeg<IPv4Endpoint>
    private var buffer = [UInt8](repeating: 0, count: 2048)
    private(set) var packetsSent: UInt64 = 0

    init(worker: TerminatorWorker, client: TunnelClient, channel: UInt16, bindAddress: UInt32) throws {
        self.worker = worker
        self.client = client
        socket = try worker.bindUDPAudioSocket(address: bindAddress)
        port = (try? socket.localEndpoint())?.port ?? 0
        worker.shared.markMedia(socket)
        leg = ApplianceUDPLeg(channel: channel, key: TLSCrypto.randomBytes(UDPUpgradeWire.keySize),
                              config: worker.shared.udp.protocolConfig, crypto: OpenSSLTunnelCrypto())
        do {
            registration = try worker.loop.register(fd: socket.fd, events: .readable, handler: self)
        } catch {
            worker.releaseUDPAudioPort(port)
            socket.close()
            throw error
        }
    }

    var channel: UInt16 { leg.channel }

    func handle(events: IOEvents, tag: UInt64) {
        // A call's leg sees one packet per 20 ms each way; a few reads per wake-up suffice.
        for _ in 0..<4 {
            guard let (count, source) = buffer.withUnsafeMutableBytes({ socket.receive(into: $0) }) else { break }
            let verdict = buffer.withUnsafeBytes { leg.receive(UnsafeRawBufferPointer(rebasing: $0[0..<count]), from: source, now: worker.now) }
            switch verdict {
            case let .answer(bytes, to):
                _ = socket.send(bytes, to: to)
            case let .media(kind):
                worker.backend.clientMedia(client, channel: channel, kind: kind, packet: Array(buffer[0..<count]))
            case .dropped:
                break
            }
        }
        reportPath()
    }

    /// Sends the call's audio on UDP when that is the path; false: use MEDIA frames.
    func send(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard let destination = leg.udpDestination else { return false }
        _ = socket.send(packet, to: destination)
        packetsSent += 1
        return true
    }

    func tick() {
        leg.tick(now: worker.now)
        reportPath()
    }

    func peerReported(_ path: AudioPath) {
        leg.peerReported(path)
        if path == .tunnel { note(.tunnel, why: "the client stopped hearing UDP") }
    }

    /// Tells the client the path changed (UDP_PATH) and counts it.
    private func reportPath() {
        guard let path = leg.pendingReport else { return }
        leg.pendingReport = nil
        client.send(.udpPath(path), channel: channel)
        note(path, why: path == .udp ? "the client's audio arrived from the proven source" : "UDP silent for \(leg.config.fallbackAfterNanos / 1_000_000) ms")
    }

    private func note(_ path: AudioPath, why: String) {
        if path == .udp {
            worker.shared.udpUpgrades.add(1, ordering: .relaxed)
        } else {
            worker.shared.udpFallbacks.add(1, ordering: .relaxed)
        }
        worker.log.info(path == .udp ? "tunnel-udp-audio" : "tunnel-udp-fallback",
                        ["alias": client.alias, "channel": "\(channel)", "peer": leg.latched.map { "\($0)" } ?? "-", "why": why])
    }

    func close() {
        if let registration { worker.loop.unregister(registration) }
        registration = nil
        worker.releaseUDPAudioPort(port)
        socket.close()
        let c = leg.counters
        worker.log.info("tunnel-udp-leg-closed", ["alias": client.alias, "channel": "\(channel)", "udp_in": "\(c.mediaReceived)",
                                                  "udp_out": "\(packetsSent)", "upgrades": "\(c.upgrades)",
                                                  "fallbacks": "\(c.fallbacks)", "probes": "\(c.probesAccepted)",
                                                  "refused": "\(c.probesRefused + c.strangersDropped)"])
    }
}

extension TerminatorWorker {
    /// A socket for a call's UDP leg: on the configured `ports` (this worker's share, least
    /// recently released first; a port another program holds is skipped), or on a port
    /// the kernel chooses when none are configured.
    func bindUDPAudioSocket(address: UInt32) throws -> UDPSocket {
        let range = shared.udp.ports
        if range != udpPorts?.range {
            // A commit changed the range: a new pool (a port an open leg still holds fails
            // to bind below and goes to the back of the queue, once: see PortPool.give).
            udpPorts = range.map { ($0, PortPool(range: $0, worker: index, workers: max(1, shared.config.workers))) }
        }
        if let range, let opened = try udpPorts?.pool.open("UDP audio (\(range.lowerBound)-\(range.upperBound))", {
            try UDPSocket.bound(to: IPv4Endpoint(address: address, port: $0))
        }) {
            return opened.0
        }
        return try UDPSocket.bound(to: IPv4Endpoint(address: address, port: 0))
    }

    /// Gives a leg's port back to the pool it came from (not to a pool of another range).
    func releaseUDPAudioPort(_ port: UInt16) {
        guard let range = udpPorts?.range, range.contains(port) else { return }
        udpPorts?.pool.give(port)
    }
}
