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
    private var gatewayPorts: PortAllocator
    private var clientPorts: PortAllocator?
    private var sessions: [SessionID: SessionInfo] = [:]
    private var nextID: UInt64 = 1
    private var nextWorker = 0
    /// Set for good when the kernel refused a separate send socket (logged once).
    private var sendSocketsRefused = false

    private struct MediaPair {
        var rtp: UDPSocket
        var rtpSend: UDPSocket?
        var rtcp: UDPSocket
        var port: UInt16
    }

    public init(configuration: RelayConfiguration) throws {
        guard !configuration.cpus.isEmpty else { throw RelayError.noWorkers }
        self.configuration = configuration
        let eventWakeup = try Wakeup()
        self.eventWakeup = eventWakeup
        workers = try configuration.cpus.indices.map {
            try RelayWorker(index: $0, configuration: configuration, eventWakeup: eventWakeup)
        }
        gatewayPorts = try PortAllocator(range: configuration.gatewayPorts, quarantineNanoseconds: configuration.quarantineNanoseconds)
        if configuration.clientAddress.address != configuration.gatewayAddress.address {
            clientPorts = try PortAllocator(range: configuration.clientPorts, quarantineNanoseconds: configuration.quarantineNanoseconds)
        }
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
        let gateway = try openPair(client: false)
        var clientPair: MediaPair?
        var clientAnnounced: IPv4Endpoint?
        var sink: MediaSink?
        switch client {
        case .udp(let announced):
            do { clientPair = try openPair(client: true) } catch {
                closePair(gateway, client: false)
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
            closePair(gateway, client: false)
            if let clientPair { closePair(clientPair, client: true) }
            throw RelayError.queueFull(worker: workerIndex)
        }
        workers[workerIndex].wakeup.signal()
        let info = SessionInfo(id: id, worker: workerIndex, gatewayPort: gateway.port, clientPort: clientPair?.port)
        sessions[id] = info
        return info
    }

    public func updateRemote(_ id: SessionID, side: Side, to endpoint: IPv4Endpoint) throws {
        try send(.updateRemote(id, side, endpoint), to: id)
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
        let now = monotonicNanoseconds()
        gatewayPorts.release(info.gatewayPort, now: now)
        if let port = info.clientPort {
            if clientPorts != nil { clientPorts!.release(port, now: now) } else { gatewayPorts.release(port, now: now) }
        }
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

    private func closePair(_ pair: MediaPair, client: Bool) {
        pair.rtp.close()
        pair.rtpSend?.close()
        pair.rtcp.close()
        if client, clientPorts != nil { clientPorts!.release(pair.port, now: monotonicNanoseconds()) }
        else { gatewayPorts.release(pair.port, now: monotonicNanoseconds()) }
    }

    private func openPair(client: Bool) throws -> MediaPair {
        let address = client ? configuration.clientAddress.address : configuration.gatewayAddress.address
        let useClientRange = client && clientPorts != nil
        var attempts = useClientRange ? clientPorts!.available : gatewayPorts.available
        while attempts > 0 {
            attempts -= 1
            let now = monotonicNanoseconds()
            let allocated = useClientRange ? clientPorts!.allocate(now: now) : gatewayPorts.allocate(now: now)
            guard let port = allocated else { break }
            do {
                let rtp = try openMediaSocket(IPv4Endpoint(address: address, port: port))
                do {
                    let rtcp = try openMediaSocket(IPv4Endpoint(address: address, port: port + 1))
                    return MediaPair(rtp: rtp, rtpSend: openSendSocket(beside: rtp, IPv4Endpoint(address: address, port: port)),
                                     rtcp: rtcp, port: port)
                } catch {
                    rtp.close()
                    throw error
                }
            } catch let error as SystemError where error.code == EADDRINUSE || error.code == EACCES {
                // Taken by another program: put it back behind the others and try the next.
                if useClientRange { clientPorts!.release(port, now: now) } else { gatewayPorts.release(port, now: now) }
            } catch {
                // Anything else (EMFILE, ENOBUFS, EADDRNOTAVAIL...) is not about this port:
                // trying the next one would only hide the real reason behind "exhausted".
                if useClientRange { clientPorts!.release(port, now: now) } else { gatewayPorts.release(port, now: now) }
                log.warning("media socket failed", ["port": String(port), "error": String(describing: error)])
                throw RelayError.socketFailed(String(describing: error))
            }
        }
        let allocator = useClientRange ? clientPorts! : gatewayPorts
        let error = RelayError.portsExhausted(address: IPv4Endpoint(address: address, port: 0).addressText,
                                              range: allocator.range, inUse: allocator.inUse,
                                              quarantined: allocator.quarantined(now: monotonicNanoseconds()))
        log.warning("ports exhausted", ["error": error.description])
        throw error
    }

    /// A second socket on an RTP port, in no epoll set, that the worker sends from.
    /// Why: freeing a sent datagram wakes every waiter on its socket, and a socket in an
    /// epoll set always has one (epoll's own callback, which then finds nothing to do).
    /// That wake-up was about 5% of the relay's CPU per packet. The receiving socket
    /// stays the only one that gets datagrams (a reuseport steering program). Nil (send
    /// from the receiving socket) when disabled or when the kernel refuses.
    private func openSendSocket(beside receiver: UDPSocket, _ endpoint: IPv4Endpoint) -> UDPSocket? {
        guard configuration.separateSendSockets && !sendSocketsRefused else { return nil }
        var opened: UDPSocket?
        do {
            try receiver.allowPortSharing()
            let sender = try UDPSocket.open()
            opened = sender
            // It never reads: the smallest receive buffer bounds what could ever queue there.
            try sender.setReceiveBuffer(bytes: 0)
            if let bytes = configuration.sendBufferBytes { try sender.setSendBuffer(bytes: bytes) }
            if let dscp = configuration.dscp { try sender.setTOS(UDPSocket.tos(dscp: dscp)) }
            try sender.setDontFragment()
            try sender.allowPortSharing()
            try sender.bind(endpoint)
            try receiver.receiveAllOfPort()
            return sender
        } catch {
            opened?.close()
            sendSocketsRefused = true
            log.warning("separate send sockets unavailable, sending from the receiving sockets",
                        ["error": String(describing: error)])
            return nil
        }
    }

    private func openMediaSocket(_ endpoint: IPv4Endpoint) throws -> UDPSocket {
        let socket = try UDPSocket.open()
        do {
            if let bytes = configuration.receiveBufferBytes { try socket.setReceiveBuffer(bytes: bytes) }
            if let bytes = configuration.sendBufferBytes { try socket.setSendBuffer(bytes: bytes) }
            if let dscp = configuration.dscp { try socket.setTOS(UDPSocket.tos(dscp: dscp)) }
            try socket.setDontFragment()
            try socket.enableDropCounter()
            try socket.bind(endpoint)
        } catch {
            socket.close()
            throw error
        }
        return socket
    }
}
