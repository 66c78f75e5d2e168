// One data-plane worker of the terminator: a pinned thread with its own epoll loop,
// its own listeners (SO_REUSEPORT spreads connections over workers), its own probe
// socket, and the clients whose tunnels it carries. A resumed connection that lands
// on another worker is handed to the client's worker, so a client's tunnel and its
// relay sockets stay on one thread.

import IO
import Glibc
import Log
import Synchronization
import Tunnel

/// A connection moving between workers after a resume (ownership moves with it).
struct HandOff: @unchecked Sendable {
    let socket: TCPSocket
    let peer: IPv4Endpoint
    let tls: TLSEngine?
    let session: ServerSession
    let output: (buffer: [UInt8], offset: Int)
    let token: [UInt8]
}

/// The cross-thread entrance of a worker: a doorbell and an inbox.
final class WorkerMailbox: Sendable {
    let wakeup: Wakeup
    let inbox = Mutex<[HandOff]>([])
    init() throws { wakeup = try Wakeup() }
}

/// Listening sockets given to one worker.
struct WorkerSockets: Sendable {
    var tls: TCPSocket?
    var tcp: TCPSocket?
    var probes: [UDPSocket] = []
}

public final class TerminatorWorker {
    public let index: Int
    public let shared: TerminatorShared
    public let loop: EventLoop
    public private(set) var now: UInt64
    let log = Logger(subsystem: "tunnel")
    var backend: TunnelBackend!
    let control: WorkerControl
    private let mailboxes: [WorkerMailbox]
    private let sockets: WorkerSockets
    private let crypto = OpenSSLTunnelCrypto()
    private let credentials: TerminatorCredentials

    var readScratch = [UInt8](repeating: 0, count: 64 * 1024)
    var plainScratch = [UInt8](repeating: 0, count: 64 * 1024)
    var cipherScratch = [UInt8](repeating: 0, count: 64 * 1024)
    var frameScratch: [UInt8] = []
    var dirty: [TunnelConnection] = []
    /// The batch being flushed, swapped with `dirty` so that neither array is reallocated.
    private var flushing: [TunnelConnection] = []
    private var connections: [ObjectIdentifier: TunnelConnection] = [:]
    private var clients: [[UInt8]: TunnelClient] = [:]
    private var nextTick: UInt64 = 0
    private static let tickInterval: UInt64 = 100_000_000
    private var nextStatus: UInt64 = 0
    /// This worker's share of the UDP legs' ports, and the range it was built from (nil:
    /// no range configured, the kernel chooses).
    var udpPorts: (range: ClosedRange<UInt16>, pool: PortPool)?

    init(index: Int, shared: TerminatorShared, sockets: WorkerSockets, mailboxes: [WorkerMailbox],
         control: WorkerControl) throws {
        self.index = index
        self.shared = shared
        self.sockets = sockets
        self.mailboxes = mailboxes
        self.control = control
        credentials = TerminatorCredentials(shared: shared)
        loop = try EventLoop(maxEvents: 512)
        now = monotonicNanoseconds()
        frameScratch.reserveCapacity(64 * 1024)
        if let tls = sockets.tls { try loop.register(fd: tls.fd, events: .readable, handler: Listener(worker: self, socket: tls, isTLS: true)) }
        if let tcp = sockets.tcp { try loop.register(fd: tcp.fd, events: .readable, handler: Listener(worker: self, socket: tcp, isTLS: false)) }
        for probe in sockets.probes { try loop.register(fd: probe.fd, events: .readable, handler: ProbeResponder(worker: self, socket: probe)) }
        let mailbox = mailboxes[index]
        try loop.register(fd: mailbox.wakeup.fd, events: .readable, handler: ClosureHandler { [unowned self] _ in
            mailbox.wakeup.drain()
            self.receiveHandOffs()
        })
    }

    public var connectionCount: Int { connections.count }

    func run() {
        while !control.stopping.load(ordering: .relaxed) { step(timeoutMilliseconds: dirty.isEmpty ? 100 : 0) }
        shutDown()
    }

    /// One turn: ready events, pending writes, and the housekeeping tick when due.
    private func step(timeoutMilliseconds: Int32) {
        _ = try? loop.runOnce(timeoutMilliseconds: timeoutMilliseconds)
        now = monotonicNanoseconds()
        flushDirty()
        if now >= nextTick {
            tick()
            nextTick = now &+ TerminatorWorker.tickInterval
            flushDirty()
        }
    }

    /// BYE to every connection, listeners closed.
    private func shutDown() {
        for connection in Array(connections.values) {
            connection.session.close(nil, "appliance shutting down", now: now)
            connection.afterSessionActivity()
            connection.flush()
            connection.finish()
        }
        // Clients in their grace period (no connection now) end too: their calls are
        // released and their aliases unregistered, like everyone else's.
        for client in Array(clients.values) { endClient(client, graceExpired: false) }
        sockets.tls?.close()
        sockets.tcp?.close()
        sockets.probes.forEach { $0.close() }
    }

    /// Runs this worker inside another thread's loop (see `Terminator.attach`): this
    /// worker's epoll descriptor is watched by `host`, a `host` timer drives the tick,
    /// and a stop request (mailbox doorbell) shuts the worker down there; `finished` then runs.
    func host(in host: EventLoop, finished: @escaping () -> Void) {
        var registration: Registration?
        var timer: TimerID?
        var done = false
        // Strong on purpose: the host's registration keeps this worker alive until it shuts down.
        let turn = { [self] in
            guard !done else { return }
            step(timeoutMilliseconds: 0)
            guard control.stopping.load(ordering: .relaxed) else { return }
            done = true
            shutDown()
            if let registration { host.unregister(registration) }
            if let timer { host.cancel(timer) }
            finished()
        }
        registration = try? host.register(fd: loop.epollFD, events: .readable, handler: ClosureHandler { _ in turn() })
        timer = host.scheduleRepeating(everyNanoseconds: TerminatorWorker.tickInterval) { turn() }
        if registration == nil { log.error("tunnel-worker-not-hosted", ["worker": "\(index)"]) }
    }

    private func flushDirty() {
        guard !dirty.isEmpty else { return }
        swap(&dirty, &flushing)
        // Indexed: a flush may mark connections dirty again (into `dirty`), never into `flushing`.
        var index = 0
        while index < flushing.count {
            let connection = flushing[index]
            index += 1
            if connection.isDirty { connection.flush() }
        }
        flushing.removeAll(keepingCapacity: true)
    }

    private func tick() {
        for connection in connections.values where !connection.isClosing {
            connection.session.tick(now: now)
            connection.afterSessionActivity()
        }
        let grace = UInt64(shared.config.session.graceSeconds) * 1_000_000_000
        for client in Array(clients.values) {
            if client.overflowed { endClient(client, graceExpired: true); continue }
            if let since = client.detachedSince, now &- since >= grace { endClient(client, graceExpired: true); continue }
            for leg in client.udpLegs.values { leg.tick() }
        }
        if now >= nextStatus {
            nextStatus = now &+ Self.statusInterval
            publishStatus()
        }
    }

    /// The clients in alias order (what `show` lists).
    var clientsByAlias: [TunnelClient] { clients.values.sorted { $0.alias < $1.alias } }

    // MARK: Accepting

    fileprivate func accepted(_ socket: TCPSocket, peer: IPv4Endpoint, isTLS: Bool) {
        now = monotonicNanoseconds()
        switch shared.admit(source: peer.address, now: now) {
        case .admitted:
            break
        case .overloaded, .rateLimited:
            // Plain TCP peers get a readable refusal; a TLS peer cannot read one before its handshake.
            if !isTLS {
                let code: ErrorCode = shared.connections.load(ordering: .relaxed) >= shared.config.maxConnections ? .overloaded : .rateLimited
                let frame = Message.error(code: code.rawValue, text: code == .overloaded ? "appliance full" : "too many connections").frame().encoded
                _ = frame.withUnsafeBytes { socket.write($0) }
            }
            socket.close()
            return
        }
        try? socket.setNoDelay()
        try? socket.setOption(SOL_SOCKET, SO_SNDBUF, shared.config.socketSendBuffer, "SO_SNDBUF")
        var tls: TLSEngine?
        if isTLS {
            guard let context = shared.tls.withLock({ $0 }), let engine = try? TLSEngine(context: context) else {
                socket.close()
                shared.released()
                return
            }
            tls = engine
        }
        var sessionConfig = shared.config.session
        if !shared.udp.enabled { sessionConfig.capabilities.remove(.udpUpgrade) }
        let session = ServerSession(config: sessionConfig, crypto: crypto, credentials: credentials, now: now)
        let connection = TunnelConnection(worker: self, socket: socket, peer: peer, tls: tls, session: session)
        add(connection)
    }

    private func add(_ connection: TunnelConnection) {
        do {
            connection.registration = try loop.register(fd: connection.socket.fd, events: .readable, handler: connection)
        } catch {
            log.warning("tunnel-register-failed", ["error": "\(error)"])
            connection.socket.close()
            shared.released()
            return
        }
        connections[ObjectIdentifier(connection)] = connection
    }

    func connectionFinished(_ connection: TunnelConnection) {
        guard connections.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
        let counters = connection.session.outbound.counters
        if counters.mediaDroppedStale > 0 { shared.mediaDroppedStale.add(Int(counters.mediaDroppedStale), ordering: .relaxed) }
        if connection.session.state != .awaitingHello || counters.signallingSent > 0 {
            log.info("tunnel-closed", ["peer": "\(connection.peer)", "media_sent": "\(counters.mediaSent)",
                                       "media_dropped_stale": "\(counters.mediaDroppedStale)",
                                       "media_dropped_full": "\(counters.mediaDroppedFull)"])
        }
        shared.released()
    }

    // MARK: Client lifecycle

    func authenticated(_ connection: TunnelConnection, alias: String, token: [UInt8], byGatekeeper: Bool = false) {
        let client = TunnelClient(alias: alias, resumeToken: token, workerIndex: index)
        client.verifiedByGatekeeper = byGatekeeper
        client.connection = connection
        client.worker = self
        client.capabilities = connection.session.peerCapabilities
        connection.client = client
        clients[token] = client
        if !byGatekeeper { shared.resumable.withLock { $0[token] = ResumeEntry(alias: alias, worker: index) } }
        shared.authenticatedClients.add(1, ordering: .relaxed)
        log.info(byGatekeeper ? "tunnel-deferred-to-gatekeeper" : "tunnel-authenticated",
                 ["alias": alias, "peer": "\(connection.peer)", "worker": "\(index)", "tls": connection.tls?.protocolVersion ?? "none"])
        backend.clientStarted(client)
    }

    func resumed(_ connection: TunnelConnection, alias: String, token: [UInt8]) {
        let owner = shared.resumable.withLock { $0[token]?.worker }
        guard let owner, owner != index, owner < mailboxes.count else {
            attach(connection, token: token)
            return
        }
        connection.detachForHandOff()
        connections.removeValue(forKey: ObjectIdentifier(connection))
        let handOff = HandOff(socket: connection.socket, peer: connection.peer, tls: connection.tls,
                              session: connection.session, output: connection.pendingOutput, token: token)
        mailboxes[owner].inbox.withLock { $0.append(handOff) }
        mailboxes[owner].wakeup.signal()
    }

    private func receiveHandOffs() {
        let handOffs = mailboxes[index].inbox.withLock { inbox -> [HandOff] in
            defer { inbox.removeAll() }
            return inbox
        }
        for handOff in handOffs {
            let connection = TunnelConnection(worker: self, socket: handOff.socket, peer: handOff.peer, tls: handOff.tls,
                                              session: handOff.session, handedOff: true)
            connection.adoptPendingOutput(handOff.output)
            add(connection)
            attach(connection, token: handOff.token)
            connection.afterSessionActivity()
            connection.markDirty()
        }
    }

    private func attach(_ connection: TunnelConnection, token: [UInt8]) {
        guard let client = clients[token] else {
            // The grace period ended between the check and now.
            connection.session.close(.resumeRefused, "session expired", now: now)
            connection.afterSessionActivity()
            return
        }
        if let old = client.connection, old !== connection {
            // The old path may still look alive (a NAT rebinding): the new one wins.
            old.client = nil
            old.session.close(nil, "superseded by a resumed connection", now: now)
            old.afterSessionActivity()
        }
        client.connection = connection
        client.capabilities = connection.session.peerCapabilities
        client.detachedSince = nil
        connection.client = client
        let pending = client.pending
        client.pending.removeAll()
        for (channel, message) in pending { connection.sendSignalling(message, channel: channel) }
        log.info("tunnel-resumed", ["alias": client.alias, "peer": "\(connection.peer)", "worker": "\(index)"])
        backend.clientResumed(client)
        connection.markDirty()
    }

    func sessionClosed(_ connection: TunnelConnection, reason: CloseReason) {
        guard let client = connection.client else {
            if case let .error(code) = reason { log.info("tunnel-refused", ["peer": "\(connection.peer)", "error": "\(code)"]) }
            return
        }
        connection.client = nil
        if reason == .bye || client.verifiedByGatekeeper {
            endClient(client, graceExpired: false)
        } else {
            detach(client)
        }
    }

    func sessionLost(_ connection: TunnelConnection) {
        guard let client = connection.client else { return }
        connection.client = nil
        // A gatekeeper-verified client cannot resume: nothing to wait for.
        if client.verifiedByGatekeeper { endClient(client, graceExpired: false) } else { detach(client) }
    }

    private func detach(_ client: TunnelClient) {
        guard client.detachedSince == nil else { return }
        client.connection = nil
        client.detachedSince = now
        log.info("tunnel-detached", ["alias": client.alias, "grace_s": "\(shared.config.session.graceSeconds)"])
        backend.clientDetached(client)
    }

    private func endClient(_ client: TunnelClient, graceExpired: Bool) {
        guard clients.removeValue(forKey: client.resumeToken) != nil else { return }
        _ = shared.resumable.withLock { $0.removeValue(forKey: client.resumeToken) }
        shared.authenticatedClients.subtract(1, ordering: .relaxed)
        log.info("tunnel-ended", ["alias": client.alias, "reason": graceExpired ? "grace-expired" : "bye"])
        if let connection = client.connection {
            client.connection = nil
            connection.client = nil
            if client.overflowed { connection.session.close(.internalError, "client stopped reading", now: now) }
            connection.afterSessionActivity()
        }
        backend.clientEnded(client, graceExpired: graceExpired)
        client.closeAllUDP()
    }

    /// Call control from a client: the UDP path reports stay here, the rest goes to the backend.
    func clientSignalling(_ client: TunnelClient, channel: UInt16, message: Message) {
        switch message {
        case let .udpPath(path):
            client.udpLegs[channel]?.peerReported(path)
        case .hangup:
            backend.clientSignalling(client, channel: channel, message: message)
            client.closeUDP(channel: channel)
        default:
            backend.clientSignalling(client, channel: channel, message: message)
        }
    }
}

/// Accepts on one listening socket of a worker.
private final class Listener: IOHandler {
    unowned let worker: TerminatorWorker
    let socket: TCPSocket
    let isTLS: Bool
    private var pausedUntil: UInt64 = 0

    init(worker: TerminatorWorker, socket: TCPSocket, isTLS: Bool) {
        self.worker = worker
        self.socket = socket
        self.isTLS = isTLS
    }

    func handle(events: IOEvents, tag: UInt64) {
        for _ in 0..<64 {
            switch socket.accept() {
            case let .accepted(connection, peer):
                worker.accepted(connection, peer: peer, isTLS: isTLS)
            case .none:
                return
            case let .exhausted(error):
                let now = monotonicNanoseconds()
                if now >= pausedUntil {  // one line a second, not one per wake-up
                    worker.log.warning("tunnel-accept-exhausted", ["error": "\(error)"])
                    pausedUntil = now &+ 1_000_000_000
                }
                return
            }
        }
    }
}
