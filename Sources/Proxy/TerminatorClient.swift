// One authenticated subscriber on one worker: outlives its TCP connection for the
// resume grace period. The service behind the terminator (the mirror endpoint, or
// the lab backend) talks to the client only through this object.

import IO
import Tunnel

/// What the terminator reports to the service that carries the client's calls.
/// One instance per worker, called on that worker's thread only.
public protocol TunnelBackend: AnyObject {
    func clientStarted(_ client: TunnelClient)
    func clientSignalling(_ client: TunnelClient, channel: UInt16, message: Message)
    func clientMedia(_ client: TunnelClient, channel: UInt16, kind: MediaKind, packet: [UInt8])
    /// The connection broke; the grace period runs. Calls stay up, media is lost meanwhile.
    func clientDetached(_ client: TunnelClient)
    func clientResumed(_ client: TunnelClient)
    /// BYE, or the grace period ran out: unregister and release the calls.
    func clientEnded(_ client: TunnelClient, graceExpired: Bool)
}

public final class TunnelClient {
    public let alias: String
    public let resumeToken: [UInt8]
    public let workerIndex: Int
    /// Authenticated by the operator's gatekeeper (H.235 token in the mirror's RRQ) rather
    /// than by the subscriber table. Until REGISTERED it is only provisionally admitted;
    /// it is never resumable (the appliance cannot check a RESUME MAC without the secret).
    public internal(set) var verifiedByGatekeeper = false
    /// The service's own per-client state (the mirror), kept here for it.
    public var context: AnyObject?
    /// Strong, not weak: a weak reference gives every connection a side table, and each
    /// retain of it on the packet path then takes the runtime's slow path. The cycle with
    /// `TunnelConnection.client` is broken wherever either side lets go, and at the latest
    /// in `TunnelConnection.finish`.
    var connection: TunnelConnection?
    var detachedSince: UInt64?
    /// Signalling produced while detached, delivered on resume (bounded).
    var pending: [(UInt16, Message)] = []
    static let maxPending = 128
    var overflowed = false
    /// What the client's HELLO and the appliance agreed on (the latest connection's).
    var capabilities: Capabilities = []
    /// Calls whose audio may move to UDP (docs/tunnel-protocol.md §8).
    var udpLegs: [UInt16: UDPAudioLeg] = [:]
    weak var worker: TerminatorWorker?

    init(alias: String, resumeToken: [UInt8], workerIndex: Int) {
        self.alias = alias
        self.resumeToken = resumeToken
        self.workerIndex = workerIndex
    }

    public var isAttached: Bool { connection != nil }

    /// Signalling to the client; kept across a reconnect, never dropped.
    public func send(_ message: Message, channel: UInt16 = 0) {
        deliver(message, channel: channel)
        guard channel != 0 else { return }
        switch message {
        case .connected: offerUDP(channel: channel)
        case .hangup: closeUDP(channel: channel)
        default: break
        }
    }

    private func deliver(_ message: Message, channel: UInt16) {
        if let connection {
            connection.sendSignalling(message, channel: channel)
        } else if pending.count < TunnelClient.maxPending {
            pending.append((channel, message))
        } else {
            overflowed = true  // the worker ends this client at its next tick
        }
    }

    /// Media to the client; dropped while detached or when it waited too long.
    public func sendMedia(channel: UInt16, kind: MediaKind, packet: UnsafeRawBufferPointer) {
        if let leg = udpLegs[channel], leg.send(packet) { return }
        connection?.sendMedia(channel: channel, kind: kind, packet: packet)
    }

    /// After CONNECTED: a UDP port and key for the call's audio, if the client can use them.
    private func offerUDP(channel: UInt16) {
        guard capabilities.contains(.udpUpgrade), udpLegs[channel] == nil, let worker, worker.shared.udp.enabled,
              let local = try? connection?.socket.localEndpoint() else { return }
        do {
            let leg = try UDPAudioLeg(worker: worker, client: self, channel: channel, bindAddress: local.address)
            udpLegs[channel] = leg
            deliver(.udpOffer(port: leg.port, address: 0, key: leg.leg.key), channel: channel)
        } catch {
            worker.log.warning("tunnel-udp-offer-failed", ["alias": alias, "channel": "\(channel)", "error": "\(error)"])
        }
    }

    func closeUDP(channel: UInt16) {
        udpLegs.removeValue(forKey: channel)?.close()
    }

    func closeAllUDP() {
        for channel in Array(udpLegs.keys) { closeUDP(channel: channel) }
    }
}
