import IO

/// The relay for a component that already runs on a data-plane worker's thread: the
/// appliance's mirror, on the tunnel worker that holds the client. Its `RelayWorker`
/// shares that component's event loop (one `LocalRelay` per loop: a loop has one batch
/// handler), commands take effect at once, events come back through a closure. The same
/// sessions, latching, counters, marking and batching as `Relay`, and no thread hop: a
/// call's tunnel and its relay sockets are served by one thread (docs/relay.md).
/// Used on that thread only.
public final class LocalRelay {
    public let worker: RelayWorker
    private var ports: MediaPorts
    private var gatewayPorts: [SessionID: UInt16] = [:]
    private var nextID: UInt64 = 1

    /// `configuration.gatewayPorts` is this relay's own range (not shared with another
    /// relay); sessions here always have the caller as their client leg (a sink).
    public init(configuration: RelayConfiguration, loop: EventLoop, index: Int = 0,
                onEvent: @escaping (RelayEvent) -> Void) throws {
        ports = try MediaPorts(configuration: configuration)
        worker = try RelayWorker(index: index, configuration: configuration, eventWakeup: nil,
                                 loop: loop, eventHandler: onEvent)
    }

    public var sessionCount: Int { gatewayPorts.count }
    public var portRange: ClosedRange<UInt16> { ports.gatewayRange }
    /// Pairs a new session could take now, and pairs released but still in quarantine.
    public var freePairs: Int { ports.gatewayPairsFree }
    public var quarantinedPairs: Int { ports.gatewayPairsQuarantined }

    /// Opens a gateway-facing RTP/RTCP pair whose traffic goes to `sink`, marked with
    /// `dscp` (nil: unmarked). Throws `RelayError.portsExhausted` when no pair is free.
    public func createSession(gatewayAnnounced: IPv4Endpoint?, sink: MediaSink, dscp: UInt8?) throws -> SessionInfo {
        let pair = try ports.open(client: false, dscp: dscp)
        let id = SessionID(nextID)
        nextID += 1
        worker.apply(.create(SessionSetup(id: id, gatewayRTP: pair.rtp.fd, gatewayRTPSend: pair.rtpSend?.fd ?? -1,
                                          gatewayRTCP: pair.rtcp.fd, gatewayAnnounced: gatewayAnnounced,
                                          clientRTP: -1, clientRTCP: -1, clientAnnounced: nil, clientSink: sink,
                                          rtcpMux: (false, false))))
        gatewayPorts[id] = pair.port
        return SessionInfo(id: id, worker: worker.index, gatewayPort: pair.port, clientPort: nil)
    }

    /// Signalling announced (or changed) where a side's media comes from and goes to;
    /// `rtcp` when RTCP is announced apart (nil: the RTP port + 1).
    public func updateRemote(_ id: SessionID, side: Side, to endpoint: IPv4Endpoint, rtcp: IPv4Endpoint? = nil) {
        worker.apply(.updateRemote(id, side, endpoint, rtcp: rtcp))
    }

    public func setMode(_ id: SessionID, _ mode: SessionMode) { worker.apply(.setMode(id, mode)) }

    /// What the client sent (through the tunnel) for the gateway.
    public func receiveFromClient(session id: SessionID, bytes: UnsafeRawBufferPointer) {
        worker.receiveFromClient(session: id, bytes: bytes)
    }

    public func stats(_ id: SessionID) -> SessionStats? { worker.stats(of: id) }

    /// Closes the session's sockets (its last counters come as `.destroyed`); its ports
    /// go to quarantine.
    public func destroy(_ id: SessionID) {
        guard let port = gatewayPorts.removeValue(forKey: id) else { return }
        worker.apply(.destroy(id))
        ports.release(port: port, client: false)
    }

    /// Closes every session (the component is going away).
    public func shutdown() {
        worker.apply(.stop)
        for port in gatewayPorts.values { ports.release(port: port, client: false) }
        gatewayPorts.removeAll()
    }
}
