import Glibc
import IO
import RTP
import Log

private let log = Logger(subsystem: "relay")

/// One leg of a session, as the worker sees it.
struct LegState {
    var rtpFD: Int32 = -1
    var rtcpFD: Int32 = -1
    var rtpRegistration: Registration?
    var rtcpRegistration: Registration?
    /// Address signalling announced (0: none) and the endpoint to send to before latching.
    var announcedAddress: UInt32 = 0
    var announcedRTP: IPv4Endpoint?
    var rtpRemote: IPv4Endpoint?
    var rtcpRemote: IPv4Endpoint?
    var rtcpMux = false
    /// What this leg's peer sent toward the other leg.
    var counters = DirectionCounters()
    var kernelDropsRTP: UInt32 = 0
    var kernelDropsRTCP: UInt32 = 0

    var rtpDestination: IPv4Endpoint? { rtpRemote ?? announcedRTP }
    var rtcpDestination: IPv4Endpoint? {
        if rtcpMux { return rtpDestination }
        if let rtcpRemote { return rtcpRemote }
        guard let rtp = announcedRTP, rtp.port < UInt16.max else { return nil }
        return IPv4Endpoint(address: rtp.address, port: rtp.port + 1)
    }

    mutating func announce(_ endpoint: IPv4Endpoint) {
        // A new address voids the latch: the new peer latches with its first packet.
        if endpoint.address != announcedAddress {
            rtpRemote = nil
            rtcpRemote = nil
        }
        announcedAddress = endpoint.address
        announcedRTP = endpoint.port != 0 ? endpoint : nil
    }
}

struct SessionState {
    var id = SessionID(0)
    var active = false
    var mode = SessionMode.active
    var timedOut = false
    var createdAt: UInt64 = 0
    var gateway = LegState()
    var client = LegState()
    var sink: MediaSink?

    func stats() -> SessionStats {
        SessionStats(id: id, fromGateway: gateway.counters, fromClient: client.counters,
                     gatewayRemote: gateway.rtpRemote, clientRemote: client.rtpRemote)
    }
}

/// A data-plane worker: one thread, one epoll set, one session table. Everything here
/// runs on the worker's thread; the control plane reaches it only through `commands`
/// (+ `wakeup`) and reads `events`.
public final class RelayWorker: IOHandler, @unchecked Sendable {
    public let index: Int
    /// The worker's event loop: the tunnel registers its connections here too, so a
    /// client's media never crosses a thread.
    public let loop: EventLoop
    public let commands: SPSCQueue<RelayCommand>
    public let events: SPSCQueue<RelayEvent>
    /// Rung by the control plane after pushing commands.
    public let wakeup: Wakeup
    /// Rung by the worker after pushing events (shared by all workers of a relay).
    private let eventWakeup: Wakeup?
    private let configuration: RelayConfiguration
    private var sessions: ContiguousArray<SessionState> = []
    private var freeSlots: [Int] = []
    private var slotByID: [SessionID: Int] = [:]
    private let receiveBatch: UDPReceiveBatch
    private let sendBatch: UDPSendBatch
    private let nanosecondsPerTick: UInt64
    private var lastStatsPush: UInt64 = 0
    /// Sockets left with data after their per-wake quota (edge-triggered epoll will not
    /// report them again): served after the next epoll_wait, which then does not block.
    private var backlog: ContiguousArray<UInt64> = []
    private var backlogInService: ContiguousArray<UInt64> = []
    private var stopped = false
    /// Media from tunnels toward gateways: copied out of the tunnel's buffer (which is
    /// reused as soon as the frame is handled), then sent with one sendmmsg per socket
    /// at the end of the loop iteration. One socket (one session) at a time.
    private let tunnelBatch: UDPSendBatch
    private let tunnelArena: UnsafeMutableRawPointer
    private static let tunnelSlotBytes = 2048
    private var tunnelBatchFD: Int32 = -1
    private var tunnelBatchSlot = -1
    /// Events lost because the control plane did not keep up (the queue is bounded).
    public private(set) var eventsDropped: UInt64 = 0

    public init(index: Int, configuration: RelayConfiguration, eventWakeup: Wakeup?) throws {
        self.index = index
        self.configuration = configuration
        self.eventWakeup = eventWakeup
        loop = try EventLoop()
        commands = SPSCQueue(capacity: configuration.queueCapacity)
        events = SPSCQueue(capacity: configuration.queueCapacity)
        wakeup = try Wakeup()
        receiveBatch = UDPReceiveBatch(capacity: configuration.batchSize, bufferSize: 2048)
        sendBatch = UDPSendBatch(capacity: configuration.batchSize, maxSegments: 64,
                                 segmentationOffload: configuration.segmentationOffload)
        nanosecondsPerTick = 1_000_000_000 / UInt64(max(configuration.clockRate, 1))
        tunnelBatch = UDPSendBatch(capacity: configuration.batchSize, maxSegments: 64,
                                   segmentationOffload: configuration.segmentationOffload)
        tunnelArena = .allocate(byteCount: configuration.batchSize * Self.tunnelSlotBytes, alignment: 16)
        try loop.register(fd: wakeup.fd, events: .readable, handler: self, tag: UInt64.max)
        loop.onIterationEnd { [unowned self] in self.flushTunnelBatch() }
        scheduleScan()
    }

    deinit { tunnelArena.deallocate() }

    public var sessionCount: Int { slotByID.count }

    /// Runs the loop until a `.stop` command.
    public func run() {
        let spin = configuration.busyPollNanoseconds
        var lastActivity: UInt64 = 0
        while !stopped {
            var timeout: Int32 = -1
            if !backlog.isEmpty || (spin > 0 && monotonicNanoseconds() &- lastActivity < spin) { timeout = 0 }
            do {
                if try loop.runOnce(timeoutMilliseconds: timeout) > 0 && spin > 0 { lastActivity = monotonicNanoseconds() }
            } catch {
                log.error("worker loop failed", ["worker": String(index), "error": String(describing: error)])
                return
            }
            serviceBacklog()
        }
    }

    /// One loop iteration (tests drive the worker on their own thread with this).
    public func runOnce(timeoutMilliseconds: Int32) {
        _ = try? loop.runOnce(timeoutMilliseconds: backlog.isEmpty ? timeoutMilliseconds : 0)
        serviceBacklog()
    }

    private func serviceBacklog() {
        guard !backlog.isEmpty else { return }
        swap(&backlog, &backlogInService)
        for tag in backlogInService { handle(events: .readable, tag: tag) }
        backlogInService.removeAll(keepingCapacity: true)
    }

    public var isStopped: Bool { stopped }

    // MARK: Readiness

    public func handle(events: IOEvents, tag: UInt64) {
        if tag == UInt64.max {
            wakeup.drain()
            processCommands()
            return
        }
        let slot = Int(truncatingIfNeeded: tag >> 2)
        let fromClient = (tag >> 1) & 1 == 1
        let rtcpSocket = tag & 1 == 1
        guard slot < sessions.count else { return }
        var leftData = false
        sessions.withUnsafeMutableBufferPointer { table in
            // Through pointers: `table[slot].field` reads copy the whole SessionState
            // (a memmove plus a retain and release of each reference in it) per packet.
            guard let base = table.baseAddress else { return }
            let session = base + slot
            guard session.pointee.active else { return }
            let raw = UnsafeMutableRawPointer(session)
            let gateway = (raw + Self.gatewayLegOffset).assumingMemoryBound(to: LegState.self)
            let client = (raw + Self.clientLegOffset).assumingMemoryBound(to: LegState.self)
            if fromClient {
                leftData = drain(from: &client.pointee, to: &gateway.pointee, toSink: nil, id: session.pointee.id,
                                 side: .client, rtcpSocket: rtcpSocket)
            } else {
                leftData = drain(from: &gateway.pointee, to: &client.pointee, toSink: session.pointee.sink,
                                 id: session.pointee.id, side: .gateway, rtcpSocket: rtcpSocket)
            }
        }
        if leftData { backlog.append(tag) }
    }

    // SessionState is a plain struct of stored properties: these offsets always exist.
    private static let gatewayLegOffset = MemoryLayout<SessionState>.offset(of: \SessionState.gateway) ?? 0
    private static let clientLegOffset = MemoryLayout<SessionState>.offset(of: \SessionState.client) ?? 0

    /// Drains one socket with recvmmsg and forwards each batch with one sendmmsg.
    /// At most `batchesPerWake` batches, so a flooded socket cannot starve the others or
    /// the control plane; returns true when it stopped with data still queued (the socket
    /// then goes to the backlog, since edge-triggered epoll will not report it again).
    @inline(__always)
    private func drain(from: inout LegState, to: inout LegState, toSink: MediaSink?, id: SessionID,
                       side: Side, rtcpSocket: Bool) -> Bool {
        let inFD = rtcpSocket ? from.rtcpFD : from.rtpFD
        // The socket most of this batch leaves through.
        let outFD = rtcpSocket && !to.rtcpMux ? to.rtcpFD : to.rtpFD
        let anyAddress = configuration.latchFromAnyAddress
        var errors = 0
        for _ in 0..<configuration.batchesPerWake {
            let count = receiveBatch.receive(from: inFD)
            if count < 0 {
                // A queued ICMP error is cleared by the call that reports it: read on once.
                errors += 1
                if errors > 1 { return false }
                continue
            }
            if count == 0 { return false }
            // The wake-up time: one clock read per epoll_wait, not per socket.
            let now = loop.wakeTime
            let ticks = UInt32(truncatingIfNeeded: now / nanosecondsPerTick)
            if let drops = receiveBatch.ancillary(at: count - 1).drops {
                let previous = rtcpSocket ? from.kernelDropsRTCP : from.kernelDropsRTP
                from.counters.kernelDrops &+= UInt64(drops &- previous)
                if rtcpSocket { from.kernelDropsRTCP = drops } else { from.kernelDropsRTP = drops }
            }
            for i in 0..<count {
                let length = receiveBatch.length(at: i)
                let bytes = receiveBatch.bytes(at: i)
                if receiveBatch.truncated(at: i) { from.counters.drops.oversize &+= 1; continue }
                let source = receiveBatch.source(at: i)
                let remote = rtcpSocket ? from.rtcpRemote : from.rtpRemote
                let decision = Latching.decide(source: source, remote: remote,
                                               announcedAddress: from.announcedAddress, anyAddress: anyAddress)
                if decision == .reject { from.counters.drops.wrongSource &+= 1; continue }
                let raw = UnsafeRawBufferPointer(start: bytes, count: length)
                var isRTCP = rtcpSocket
                if rtcpSocket {
                    if case .failure(let reason) = RTPPacket.validateRTCP(raw) { from.counters.drops.count(reason); continue }
                    from.counters.rtcpPackets &+= 1
                } else {
                    switch RTPPacket.classify(raw) {
                    case .rtp(let header):
                        from.counters.stream.record(sequence: header.sequence, timestamp: header.timestamp,
                                                    ssrc: header.ssrc, arrival: ticks)
                    case .rtcp:
                        isRTCP = true
                        from.counters.rtcpPackets &+= 1
                    case .malformed(let reason):
                        from.counters.drops.count(reason)
                        continue
                    }
                }
                if decision != .accept {
                    if rtcpSocket { from.rtcpRemote = source } else { from.rtpRemote = source }
                    if decision == .relatch { from.counters.relatches &+= 1 }
                    else if !rtcpSocket { emit(.firstPacket(id, side, from: source)) }
                }
                from.counters.packets &+= 1
                from.counters.bytes &+= UInt64(length)
                from.counters.lastSeenNanoseconds = now
                if let toSink {
                    toSink.deliver(session: id, channel: isRTCP ? .rtcp : .rtp, bytes: raw)
                    from.counters.forwarded &+= 1
                    continue
                }
                let destination: IPv4Endpoint?
                let fd: Int32
                if isRTCP && !to.rtcpMux {
                    destination = to.rtcpDestination
                    fd = to.rtcpFD
                } else {
                    destination = to.rtpDestination
                    fd = to.rtpFD
                }
                guard let destination else { from.counters.drops.noDestination &+= 1; continue }
                if fd == outFD {
                    if !sendBatch.append(bytes, length: length, to: destination) {
                        from.counters.drops.sendFailed &+= 1
                    }
                } else {
                    // RTCP multiplexed on one leg and not on the other: rare, sent alone.
                    var address = destination.sockaddr
                    let rc = withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(fd, bytes, length, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                    if rc < 0 { from.counters.drops.sendFailed &+= 1 } else { from.counters.forwarded &+= 1 }
                }
            }
            let queued = sendBatch.datagramCount
            if queued > 0 {
                let sent = sendBatch.flush(outFD)
                from.counters.forwarded &+= UInt64(sent)
                from.counters.drops.sendFailed &+= UInt64(queued - sent)
            }
            if count < receiveBatch.capacity { return false }
        }
        return true
    }

    /// Media the client sent through the tunnel, for a session whose client leg is a sink.
    /// The tunnel is authenticated, so there is no latching on this side.
    public func receiveFromClient(session id: SessionID, bytes: UnsafeRawBufferPointer) {
        guard let slot = slotByID[id] else { return }
        let now = monotonicNanoseconds()
        sessions.withUnsafeMutableBufferPointer { table in
            var isRTCP = false
            switch RTPPacket.classify(bytes) {
            case .rtp(let header):
                table[slot].client.counters.stream.record(
                    sequence: header.sequence, timestamp: header.timestamp, ssrc: header.ssrc,
                    arrival: UInt32(truncatingIfNeeded: now / nanosecondsPerTick))
            case .rtcp:
                isRTCP = true
                table[slot].client.counters.rtcpPackets &+= 1
            case .malformed(let reason):
                table[slot].client.counters.drops.count(reason)
                return
            }
            table[slot].client.counters.packets &+= 1
            table[slot].client.counters.bytes &+= UInt64(bytes.count)
            table[slot].client.counters.lastSeenNanoseconds = now
            let gateway = table[slot].gateway
            let destination = isRTCP ? gateway.rtcpDestination : gateway.rtpDestination
            let fd = isRTCP && !gateway.rtcpMux ? gateway.rtcpFD : gateway.rtpFD
            guard let destination else { table[slot].client.counters.drops.noDestination &+= 1; return }
            guard bytes.count <= Self.tunnelSlotBytes, let source = bytes.baseAddress else {
                table[slot].client.counters.drops.oversize &+= 1
                return
            }
            if fd != tunnelBatchFD || tunnelBatch.datagramCount == tunnelBatch.capacity {
                flushTunnelBatch(table)
            }
            let copy = tunnelArena + tunnelBatch.datagramCount * Self.tunnelSlotBytes
            copy.copyMemory(from: source, byteCount: bytes.count)
            if tunnelBatch.append(copy, length: bytes.count, to: destination) {
                tunnelBatchFD = fd
                tunnelBatchSlot = slot
            } else {
                table[slot].client.counters.drops.sendFailed &+= 1
            }
        }
    }

    /// Sends the queued tunnel media (end of iteration, another socket, or a full batch).
    private func flushTunnelBatch() {
        guard tunnelBatch.datagramCount > 0 else { return }
        sessions.withUnsafeMutableBufferPointer { flushTunnelBatch($0) }
    }

    private func flushTunnelBatch(_ table: UnsafeMutableBufferPointer<SessionState>) {
        let queued = tunnelBatch.datagramCount
        guard queued > 0 else { return }
        let sent = tunnelBatch.flush(tunnelBatchFD)
        if tunnelBatchSlot >= 0 && tunnelBatchSlot < table.count {
            table[tunnelBatchSlot].client.counters.forwarded &+= UInt64(sent)
            table[tunnelBatchSlot].client.counters.drops.sendFailed &+= UInt64(queued - sent)
        }
        tunnelBatchFD = -1
        tunnelBatchSlot = -1
    }

    // MARK: Control plane

    private func emit(_ event: RelayEvent) {
        if events.push(event) {
            eventWakeup?.signal()
        } else {
            eventsDropped &+= 1
        }
    }

    private func processCommands() {
        while let command = commands.pop() {
            switch command {
            case .create(let setup): create(setup)
            case .updateRemote(let id, let side, let endpoint):
                guard let slot = slotByID[id] else { emit(.unknownSession(id)); continue }
                if side == .gateway { sessions[slot].gateway.announce(endpoint) } else { sessions[slot].client.announce(endpoint) }
            case .setMode(let id, let mode):
                guard let slot = slotByID[id] else { emit(.unknownSession(id)); continue }
                sessions[slot].mode = mode
                sessions[slot].timedOut = false
            case .destroy(let id):
                guard let slot = slotByID[id] else { emit(.unknownSession(id)); continue }
                emit(.destroyed(sessions[slot].stats()))
                destroy(slot: slot)
            case .requestStats(let id):
                guard let slot = slotByID[id] else { emit(.unknownSession(id)); continue }
                emit(.stats(sessions[slot].stats()))
            case .stop:
                for slot in sessions.indices where sessions[slot].active { destroy(slot: slot) }
                stopped = true
                loop.stop()
            }
        }
    }

    private func create(_ setup: SessionSetup) {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = sessions.count
            sessions.append(SessionState())
        }
        var session = SessionState()
        session.id = setup.id
        session.active = true
        session.createdAt = monotonicNanoseconds()
        session.gateway.rtpFD = setup.gatewayRTP
        session.gateway.rtcpFD = setup.gatewayRTCP
        session.gateway.rtcpMux = setup.rtcpMux.gateway
        if let announced = setup.gatewayAnnounced { session.gateway.announce(announced) }
        session.client.rtpFD = setup.clientRTP
        session.client.rtcpFD = setup.clientRTCP
        session.client.rtcpMux = setup.rtcpMux.client
        if let announced = setup.clientAnnounced { session.client.announce(announced) }
        session.sink = setup.clientSink
        let base = UInt64(slot) << 2
        // Edge-triggered: no re-poll of every drained socket at each epoll_wait.
        let events: IOEvents = [.readable, .edgeTriggered]
        // The backlog holds at most one entry per socket: reserve now, not on the hot path.
        backlog.reserveCapacity(4 * (slotByID.count + 1))
        backlogInService.reserveCapacity(4 * (slotByID.count + 1))
        do {
            session.gateway.rtpRegistration = try loop.register(fd: setup.gatewayRTP, events: events, handler: self, tag: base)
            session.gateway.rtcpRegistration = try loop.register(fd: setup.gatewayRTCP, events: events, handler: self, tag: base | 1)
            if setup.clientSink == nil {
                session.client.rtpRegistration = try loop.register(fd: setup.clientRTP, events: events, handler: self, tag: base | 2)
                session.client.rtcpRegistration = try loop.register(fd: setup.clientRTCP, events: events, handler: self, tag: base | 3)
            }
        } catch {
            log.error("session registration failed", ["session": String(setup.id.value), "error": String(describing: error)])
        }
        sessions[slot] = session
        slotByID[setup.id] = slot
    }

    private func destroy(slot: Int) {
        // Queued media must leave before its socket is closed (and its number reused).
        if tunnelBatchSlot == slot { flushTunnelBatch() }
        var session = sessions[slot]
        for registration in [session.gateway.rtpRegistration, session.gateway.rtcpRegistration,
                             session.client.rtpRegistration, session.client.rtcpRegistration] {
            if let registration { loop.unregister(registration) }
        }
        for fd in [session.gateway.rtpFD, session.gateway.rtcpFD, session.client.rtpFD, session.client.rtcpFD] where fd >= 0 {
            close(fd)
        }
        slotByID[session.id] = nil
        session = SessionState()
        sessions[slot] = session
        freeSlots.append(slot)
    }

    // MARK: Idle timeouts and periodic stats

    private func scheduleScan() {
        // A repeating timer: nothing is allocated when it fires.
        // Unowned, not weak: a weak reference gives the worker a side table, and every
        // retain and release of it (one per dispatched event) then takes the slow path.
        // The loop, and so this timer, never outlives the worker.
        loop.scheduleRepeating(everyNanoseconds: configuration.scanIntervalNanoseconds) { [unowned self] in
            guard !self.stopped else { return }
            self.scan(now: monotonicNanoseconds())
        }
    }

    private func scan(now: UInt64) {
        let pushStats = configuration.statsIntervalNanoseconds > 0 && now - lastStatsPush >= configuration.statsIntervalNanoseconds
        if pushStats { lastStatsPush = now }
        for slot in sessions.indices where sessions[slot].active {
            // Two-argument max: the variadic one builds an array.
            let last = max(max(sessions[slot].createdAt, sessions[slot].gateway.counters.lastSeenNanoseconds),
                           sessions[slot].client.counters.lastSeenNanoseconds)
            let limit = sessions[slot].mode == .hold ? configuration.holdTimeoutNanoseconds : configuration.idleTimeoutNanoseconds
            let idle = now &- last
            if idle >= limit {
                if !sessions[slot].timedOut {
                    sessions[slot].timedOut = true
                    emit(.timeout(sessions[slot].id, idleNanoseconds: idle))
                }
            } else {
                sessions[slot].timedOut = false
            }
            if pushStats { emit(.stats(sessions[slot].stats())) }
        }
    }
}
