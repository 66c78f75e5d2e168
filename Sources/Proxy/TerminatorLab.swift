// A backend for running the terminator without gatekeeper or gateway: tests, the
// benchmark, and a field check of a client. REGISTER is accepted; CALL "echo"
// answers and returns the client's own audio; CALL "udp:127.x.y.z:port" relays the
// call's RTP between the tunnel and that UDP port on the client's worker (the same
// path the mirror's relay takes). Destinations outside 127.0.0.0/8 are refused.

import Endpoint
import Glibc
import IO
import Tunnel

public final class LabBackend: TunnelBackend {
    unowned let worker: TerminatorWorker

    public init(worker: TerminatorWorker) { self.worker = worker }

    final class LabState {
        var calls: [UInt16: LabCall] = [:]
    }

    final class LabCall: IOHandler {
        let channel: UInt16
        unowned let client: TunnelClient
        /// Unchecked: the worker outlives its calls (see TunnelConnection.worker).
        unowned(unsafe) let worker: TerminatorWorker
        let socket: UDPSocket?
        let target: IPv4Endpoint?
        var registration: Registration?
        var buffer = [UInt8](repeating: 0, count: 2048)

        init(channel: UInt16, client: TunnelClient, worker: TerminatorWorker, socket: UDPSocket?, target: IPv4Endpoint?) {
            self.channel = channel
            self.client = client
            self.worker = worker
            self.socket = socket
            self.target = target
        }

        /// UDP from the far end goes into the tunnel (dropped while the client is detached).
        func handle(events: IOEvents, tag: UInt64) {
            guard let socket else { return }
            // One datagram per wake-up: a call's socket sees one packet per 20 ms, and
            // level-triggered epoll reports the next one, which saves a read returning EAGAIN.
            for _ in 0..<1 {
                guard let (count, source) = buffer.withUnsafeMutableBytes({ socket.receive(into: $0) }) else { return }
                guard source == target else { continue }
                buffer.withUnsafeBytes { client.sendMedia(channel: channel, kind: .rtp, packet: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            }
        }

        func release() {
            if let registration { worker.loop.unregister(registration) }
            registration = nil
            socket?.close()
            worker.shared.activeCalls.subtract(1, ordering: .relaxed)
        }
    }

    private func state(_ client: TunnelClient) -> LabState {
        if let state = client.context as? LabState { return state }
        let state = LabState()
        client.context = state
        return state
    }

    public func clientStarted(_ client: TunnelClient) { client.context = LabState() }

    public func clientSignalling(_ client: TunnelClient, channel: UInt16, message: Message) {
        let calls = state(client)
        switch message {
        case let .register(aliases):
            client.send(.registered(aliases: aliases.isEmpty ? [client.alias] : aliases, ttlSeconds: 300))
        case let .call(destination, codecs):
            guard channel != 0, calls.calls[channel] == nil else {
                client.send(.hangup(cause: Q850.invalidCallReference), channel: channel)
                return
            }
            var socket: UDPSocket?
            var target: IPv4Endpoint?
            if destination.hasPrefix("udp:") {
                guard let endpoint = IPv4Endpoint(parsing: String(destination.dropFirst(4))), endpoint.address >> 24 == 127,
                      let bound = try? UDPSocket.bound(to: .loopback(port: 0)) else {
                    client.send(.hangup(cause: Q850.unallocatedNumber), channel: channel)
                    return
                }
                // Connected: each send skips the route lookup, and only the far end's datagrams arrive.
                do { try bound.connect(endpoint) } catch {
                    bound.close()
                    client.send(.hangup(cause: Q850.temporaryFailure), channel: channel)
                    return
                }
                worker.shared.markMedia(bound)
                socket = bound
                target = endpoint
            } else if destination != "echo" {
                client.send(.hangup(cause: Q850.unallocatedNumber), channel: channel)
                return
            }
            let call = LabCall(channel: channel, client: client, worker: worker, socket: socket, target: target)
            if let socket {
                guard let registration = try? worker.loop.register(fd: socket.fd, events: .readable, handler: call) else {
                    socket.close()
                    client.send(.hangup(cause: Q850.temporaryFailure), channel: channel)
                    return
                }
                call.registration = registration
            }
            worker.shared.activeCalls.add(1, ordering: .relaxed)
            calls.calls[channel] = call
            client.send(.ringing, channel: channel)
            client.send(.connected(codec: codecs.first ?? .pcmu, packetTimeMs: 20), channel: channel)
        case .hangup:
            calls.calls.removeValue(forKey: channel)?.release()
        case let .dtmf(digit, duration):
            if calls.calls[channel] != nil { client.send(.dtmf(digit: digit, durationMs: duration), channel: channel) }
        default:
            break
        }
    }

    public func clientMedia(_ client: TunnelClient, channel: UInt16, kind: MediaKind, packet: [UInt8]) {
        guard let call = state(client).calls[channel] else { return }
        if let socket = call.socket {
            // The socket is connected to the far end: a plain send, no address per packet.
            if kind == .rtp { _ = packet.withUnsafeBytes { Glibc.send(socket.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) } }
        } else {
            packet.withUnsafeBytes { client.sendMedia(channel: channel, kind: kind, packet: $0) }
        }
    }

    public func clientDetached(_ client: TunnelClient) {}

    public func clientResumed(_ client: TunnelClient) {}

    public func clientEnded(_ client: TunnelClient, graceExpired: Bool) {
        let calls = state(client)
        for call in calls.calls.values {
            call.release()
            if !graceExpired { client.send(.hangup(cause: Q850.normalClearing), channel: call.channel) }
        }
        calls.calls.removeAll()
    }
}
