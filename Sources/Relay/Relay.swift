import Glibc
import IO
import Log

private let log = Logger(subsystem: "relay")

/// Where a new session's ports are.
public struct SessionInfo: Sendable, Equatable {
    public var id: SessionID
    public var worker: Int
    /// RTP port facing the gateway (RTCP is +1).
    public var gatewayPort: UInt16
    /// RTP port facing the client, nil when the client leg is a sink.
    public var clientPort: UInt16?
}

/// The relay's control plane: owns the workers, the port ranges and the session map.
/// Used from one thread (it is the single producer of every worker's command queue
/// and the single consumer of its event queue).
public final class Relay {
    public let configuration: RelayConfiguration
    public let workers: [RelayWorker]
    /// Rung whenever a worker queued an event; register it in the control loop.
    public let eventWakeup: Wakeup
    private var threads: [WorkerThread] = []
    private var ports: MediaPorts
    private var sessions: [SessionID: SessionInfo] = [:]
    private var nextID: UInt64 = 1
    private var nextWorker = 0

    public init(configuration: RelayConfiguration) throws {
        guard !configuration.cpus.isEmpty else { throw RelayError.noWorkers }
        self.configuration = configuration
        let eventWakeup = try Wakeup()
        self.eventWakeup = eventWakeup
        workers = try configuration.cpus.indices.map {
            try RelayWorker(index: $0, configuration: configuration, eventWakeup: eventWakeup)
        }
        ports = try MediaPorts(configuration: configuration)
    }

    /// Starts one pinned thread per worker.
    public func start() throws {
        for (index, worker) in workers.enumerated() {
            let cpu = configuration.cpus[index]
            let thread = try WorkerThread.start(name: "relay-\(index)", cpu: cpu) { worker.run() }
            threads.append(thread)
            log.info("worker started", ["worker": String(index), "cpu": cpu.map(String.init) ?? "any"])
        }
    }

    public var sessionCount: Int { sessions.count }

    public func info(_ id: SessionID) -> SessionInfo? { sessions[id] }

    /// Allocates ports, opens and binds the sockets, and hands the session to a worker.
    /// Throws `RelayError.portsExhausted` when no pair is free.
    public func createSession(gatewayAnnounced: IPv4Endpoint?, client: ClientLeg,
                              rtcpMux: (gateway: Bool, client: Bool) = (false, false),
                              worker requested: Int? = nil) throws -> SessionInfo {
        let workerIndex = requested ?? nextWorker
        guard workerIndex >= 0 && workerIndex < workers.count else { throw RelayError.noWorkers }
        if requested == nil { nextWorker = (nextWorker + 1) % workers.count }
        let gateway = try ports.open(client: false, dscp: configuration.dscp)
        var clientPair: MediaPair?
        var clientAnnounced: IPv4Endpoint?
        var sink: MediaSink?
        switch client {
        case .udp(let announced):
            do { clientPair = try ports.open(client: true, dscp: configuration.dscp) } catch {
                ports.close(gateway, client: false)
                throw error
            }
            clientAnnounced = announced
        case .sink(let clientSink):
            sink = clientSink
        }
        let id = SessionID(nextID)
        nextID += 1
        let setup = SessionSetup(id: id, gatewayRTP: gateway.rtp.fd, gatewayRTPSend: gateway.rtpSend?.fd ?? -1,
                                 gatewayRTCP: gateway.rtcp.fd, gatewayAnnounced: gatewayAnnounced,
                                 clientRTP: clientPair?.rtp.fd ?? -1, clientRTPSend: clientPair?.rtpSend?.fd ?? -1,
                                 clientRTCP: clientPair?.rtcp.fd ?? -1,
                                 clientAnnounced: clientAnnounced, clientSink: sink, rtcpMux: rtcpMux)
        guard workers[workerIndex].commands.push(.create(setup)) else {
            ports.close(gateway, client: false)
            if let clientPair { ports.close(clientPair, client: true) }
            throw RelayError.queueFull(worker: workerIndex)
        }
        workers[workerIndex].wakeup.signal()
        let info = SessionInfo(id: id, worker: workerIndex, gatewayPort: gateway.port, clientPort: clientPair?.port)
        sessions[id] = info
        return info
    }

    public func updateRemote(_ id: SessionID, side: Side, to endpoint: IPv4Endpoint, rtcp: IPv4Endpoint? = nil) throws {
        try send(.updateRemote(id, side, endpoint, rtcp: rtcp), to: id)
    }

    public func setMode(_ id: SessionID, _ mode: SessionMode) throws {
        try send(.setMode(id, mode), to: id)
    }

    public func requestStats(_ id: SessionID) throws {
        try send(.requestStats(id), to: id)
    }

    /// The worker closes the sockets and reports `.destroyed`; the ports go to quarantine.
    public func destroy(_ id: SessionID) throws {
        guard let info = sessions[id] else { throw RelayError.unknownSession(id) }
        try send(.destroy(id), to: id)
        sessions[id] = nil
        ports.release(port: info.gatewayPort, client: false)
        if let port = info.clientPort { ports.release(port: port, client: true) }
    }

    /// Hands every queued worker event to `body`; returns how many there were.
    @discardableResult
    public func pollEvents(_ body: (RelayEvent) -> Void) -> Int {
        eventWakeup.drain()
        var count = 0
        for worker in workers {
            while let event = worker.events.pop() {
                body(event)
                count += 1
            }
        }
        return count
    }

    /// Stops every worker (closing all sessions) and waits for the threads.
    public func shutdown() {
        for worker in workers {
            while !worker.commands.push(.stop) { usleep(1000) }
            worker.wakeup.signal()
        }
        for thread in threads { thread.join() }
        threads.removeAll()
        sessions.removeAll()
    }

    private func send(_ command: RelayCommand, to id: SessionID) throws {
        guard let info = sessions[id] else { throw RelayError.unknownSession(id) }
        guard workers[info.worker].commands.push(command) else { throw RelayError.queueFull(worker: info.worker) }
        workers[info.worker].wakeup.signal()
    }
}
