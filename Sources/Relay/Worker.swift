import Glibc
import IO
import RTP
import Log
import CSystem

private let log = Logger(subsystem: "relay")

/// One leg of a session, as the worker sees it. What every packet reads comes first:
/// with the session header it shares the session's first cache line.
struct LegState {
    var rtpFD: Int32 = -1
    /// Where this leg's RTP leaves from: a second socket on the same port that is in no
    /// epoll set (see `Relay.openPair`), or `rtpFD` itself.
    var rtpSendFD: Int32 = -1
    var rtcpFD: Int32 = -1
    /// Address signalling announced (0: none) and the endpoint to send to before latching.
    var announcedAddress: UInt32 = 0
    var rtpRemote: IPv4Endpoint?
    var rtcpRemote: IPv4Endpoint?
    var announcedRTP: IPv4Endpoint?
    var rtcpMux = false
    var kernelDropsRTP: UInt32 = 0
    var kernelDropsRTCP: UInt32 = 0
    /// What this leg's peer sent toward the other leg.
    var counters = DirectionCounters()
    /// RTCP's own announced endpoint, when signalling gave one apart (nil: the RTP port
    /// + 1). Read only for RTCP: kept out of the lines every RTP packet reads.
    var announcedRTCP: IPv4Endpoint?

    /// The address RTCP may come from.
    var announcedRTCPAddress: UInt32 { announcedRTCP?.address ?? announcedAddress }

    var rtpDestination: IPv4Endpoint? { rtpRemote ?? announcedRTP }
    var rtcpDestination: IPv4Endpoint? {
        if rtcpMux { return rtpDestination }
        if let rtcpRemote { return rtcpRemote }
        if let announcedRTCP, announcedRTCP.port != 0 { return announcedRTCP }
        guard let rtp = announcedRTP, rtp.port < UInt16.max else { return nil }
        return IPv4Endpoint(address: rtp.address, port: rtp.port + 1)
    }

    mutating func announce(_ endpoint: IPv4Endpoint, rtcp: IPv4Endpoint? = nil) {
        // A new address voids the latch: the new peer latches with its first packet.
        if endpoint.address != announcedAddress {
            rtpRemote = nil
            rtcpRemote = nil
        } else if let rtcp, rtcp.address != announcedRTCPAddress {
            rtcpRemote = nil
        }
        announcedAddress = endpoint.address
        announcedRTP = endpoint.port != 0 ? endpoint : nil
        announcedRTCP = rtcp
    }
}

struct SessionState {
    var active = false
    var mode = SessionMode.active
    var timedOut = false
    var id = SessionID(0)
    /// Read for every packet from the gateway: kept in the first cache line.
    var sink: MediaSink?
    var gateway = LegState()
    var client = LegState()
    var createdAt: UInt64 = 0

    func stats() -> SessionStats {
        SessionStats(id: id, fromGateway: gateway.counters, fromClient: client.counters,
                     gatewayRemote: gateway.rtpRemote, clientRemote: client.rtpRemote)
    }
}

/// A data-plane worker: one thread, one epoll set, one session table. Everything here
/// runs on the worker's thread; the control plane reaches it only through `commands`
/// (+ `wakeup`) and reads `events`. Embedded (`init(..., loop:)`, see `LocalRelay`), it
/// shares another component's loop and thread instead, and takes commands directly.
public final class RelayWorker: IOHandler, IOBatchHandler, @unchecked Sendable {
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
    /// The session table: one block reached through a pointer, so the hot path neither
    /// checks uniqueness (copy on write) nor copies a session to read a field.
    /// Slots below `tableCount` are initialized; free ones are listed in `freeSlots`.
    @exclusivity(unchecked) private var table: UnsafeMutablePointer<SessionState>
    private var tableCapacity: Int
    @exclusivity(unchecked) private var tableCount = 0
    private var freeSlots: [Int] = []
    private var slotByID: [SessionID: Int] = [:]
    private let receiveBatch: UDPReceiveBatch
    private let sendBatch: UDPSendBatch
    private let nanosecondsPerTick: UInt64
    private var lastStatsPush: UInt64 = 0
    /// Sockets left with data after their per-wake quota (edge-triggered epoll will not
    /// report them again): served after the next epoll_wait, which then does not block.
    @exclusivity(unchecked) private var backlog: ContiguousArray<UInt64> = []
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
    /// Embedded: events go straight to this closure (same thread) instead of the queue.
    private let eventHandler: ((RelayEvent) -> Void)?
    private let embedded: Bool

    /// `loop`: an event loop of the caller's to share (embedded; the caller runs it, and
    /// `apply` takes the commands); nil: the worker's own, run by `run()`.
    public init(index: Int, configuration: RelayConfiguration, eventWakeup: Wakeup?,
                loop shared: EventLoop? = nil, eventHandler: ((RelayEvent) -> Void)? = nil) throws {
        self.index = index
        self.configuration = configuration
        self.eventWakeup = eventWakeup
        self.eventHandler = eventHandler
        embedded = shared != nil
        loop = try shared ?? EventLoop()
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
        tableCapacity = 16
        table = .allocate(capacity: tableCapacity)
        loop.setBatchHandler(self)
        try loop.register(fd: wakeup.fd, events: .readable, handler: self, tag: UInt64.max)
        scheduleScan()
    }

    deinit {
        tunnelArena.deallocate()
        table.deinitialize(count: tableCount)
        table.deallocate()
    }

    public var sessionCount: Int { slotByID.count }

    /// Runs the loop until a `.stop` command.
    public func run() {
        let spin = configuration.busyPollNanoseconds
        var lastActivity: UInt64 = 0
        while !stopped {
            var timeout: Int32 = -1
            if spin > 0 && monotonicNanoseconds() &- lastActivity < spin { timeout = 0 }
            do {
                if try loop.runOnce(timeoutMilliseconds: timeout) > 0 && spin > 0 { lastActivity = monotonicNanoseconds() }
            } catch {
                log.error("worker loop failed", ["worker": String(index), "error": String(describing: error)])
                return
            }
        }
    }

    /// One loop iteration (tests drive the worker on their own thread with this).
    public func runOnce(timeoutMilliseconds: Int32) {
        _ = try? loop.runOnce(timeoutMilliseconds: timeoutMilliseconds)
    }

    /// End of each iteration of the loop, whoever runs it (`run`, or the host of an
    /// embedded worker): the tunnel's media goes out, and the backlog is served; the next
    /// iteration does not wait while some is left.
    public func iterationEnded() {
        flushTunnelBatch()
        serviceBacklog()
        if !backlog.isEmpty { loop.skipNextWait() }
    }

    private func serviceBacklog() {
        guard !backlog.isEmpty else { return }
        swap(&backlog, &backlogInService)
        for tag in backlogInService { serve(socket: tag) }
        backlogInService.removeAll(keepingCapacity: true)
    }

    public var isStopped: Bool { stopped }

    // MARK: Readiness

    /// The control plane's wake-up (the only descriptor registered the ordinary way).
    public func handle(events: IOEvents, tag: UInt64) {
        wakeup.drain()
        processCommands()
    }

    /// Every media socket that became readable in this wake-up. The sessions they belong
    /// to are scattered over a table larger than the caches: ask for all of their cache
    /// lines first, so the misses overlap instead of stalling one packet at a time.
    public func handle(ready: UnsafeBufferPointer<ReadyEvent>) {
        let count = tableCount
        for event in ready {
            let slot = Int(truncatingIfNeeded: event.tag >> 2)
            guard slot < count else { continue }
            let session = UnsafeRawPointer(table + slot)
            let fromClient = (event.tag >> 1) & 1 == 1
            let from = session + (fromClient ? clientLegOffset : gatewayLegOffset)
            let to = session + (fromClient ? gatewayLegOffset : clientLegOffset)
            csys_prefetch(session)
            csys_prefetch(from + streamOffset)
            csys_prefetch(to)
        }
        for event in ready { serve(socket: event.tag) }
    }

    private func serve(socket tag: UInt64) {
        let slot = Int(truncatingIfNeeded: tag >> 2)
        let fromClient = (tag >> 1) & 1 == 1
        let rtcpSocket = tag & 1 == 1
        guard slot < tableCount else { return }
        // Through pointers: `table[slot].field` reads copy the whole SessionState
        // (a memmove plus a retain and release of each reference in it) per packet.
        let session = table + slot
        guard session.pointee.active else { return }
        let raw = UnsafeMutableRawPointer(session)
        let gateway = (raw + gatewayLegOffset).assumingMemoryBound(to: LegState.self)
        let client = (raw + clientLegOffset).assumingMemoryBound(to: LegState.self)
        let leftData: Bool
        if fromClient {
            leftData = drain(from: &client.pointee, to: &gateway.pointee, toSink: nil, id: session.pointee.id,
                             side: .client, rtcpSocket: rtcpSocket)
        } else {
            leftData = drain(from: &gateway.pointee, to: &client.pointee, toSink: session.pointee.sink,
                             id: session.pointee.id, side: .gateway, rtcpSocket: rtcpSocket)
        }
        if leftData { backlog.append(tag) }
    }

    // SessionState and LegState are plain structs of stored properties: these offsets always
    // exist. Instance constants: a static would be a lazily initialized global, checked on
    // every access.
    private let gatewayLegOffset = MemoryLayout<SessionState>.offset(of: \SessionState.gateway) ?? 0
    private let clientLegOffset = MemoryLayout<SessionState>.offset(of: \SessionState.client) ?? 0
    private let streamOffset = MemoryLayout<LegState>.offset(of: \LegState.counters.stream) ?? 0

    /// Drains one socket with recvmmsg and forwards each batch with one sendmmsg.
    /// At most `batchesPerWake` batches, so a flooded socket cannot starve the others or
    /// the control plane; returns true when it stopped with data still queued (the socket
    /// then goes to the backlog, since edge-triggered epoll will not report it again).
    @inline(__always)
    private func drain(from: inout LegState, to: inout LegState, toSink: MediaSink?, id: SessionID,
                       side: Side, rtcpSocket: Bool) -> Bool {
        let inFD = rtcpSocket ? from.rtcpFD : from.rtpFD
        // The socket most of this batch leaves through.
        let outFD = rtcpSocket && !to.rtcpMux ? to.rtcpFD : to.rtpSendFD
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
                                               announcedAddress: rtcpSocket ? from.announcedRTCPAddress : from.announcedAddress,
                                               anyAddress: anyAddress)
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
                    fd = to.rtpSendFD
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
        let session = table + slot
        var isRTCP = false
        switch RTPPacket.classify(bytes) {
        case .rtp(let header):
            session.pointee.client.counters.stream.record(
                sequence: header.sequence, timestamp: header.timestamp, ssrc: header.ssrc,
                arrival: UInt32(truncatingIfNeeded: now / nanosecondsPerTick))
        case .rtcp:
            isRTCP = true
            session.pointee.client.counters.rtcpPackets &+= 1
        case .malformed(let reason):
            session.pointee.client.counters.drops.count(reason)
            return
        }
        session.pointee.client.counters.packets &+= 1
        session.pointee.client.counters.bytes &+= UInt64(bytes.count)
        session.pointee.client.counters.lastSeenNanoseconds = now
        let destination = isRTCP ? session.pointee.gateway.rtcpDestination : session.pointee.gateway.rtpDestination
        let fd = isRTCP && !session.pointee.gateway.rtcpMux ? session.pointee.gateway.rtcpFD : session.pointee.gateway.rtpSendFD
        guard let destination else { session.pointee.client.counters.drops.noDestination &+= 1; return }
        guard bytes.count <= Self.tunnelSlotBytes, let source = bytes.baseAddress else {
            session.pointee.client.counters.drops.oversize &+= 1
            return
        }
        if fd != tunnelBatchFD || tunnelBatch.datagramCount == tunnelBatch.capacity {
            flushTunnelBatch()
        }
        let copy = tunnelArena + tunnelBatch.datagramCount * Self.tunnelSlotBytes
        copy.copyMemory(from: source, byteCount: bytes.count)
        if tunnelBatch.append(copy, length: bytes.count, to: destination) {
            tunnelBatchFD = fd
            tunnelBatchSlot = slot
        } else {
            session.pointee.client.counters.drops.sendFailed &+= 1
        }
    }

    /// Sends the queued tunnel media (end of iteration, another socket, or a full batch).
    private func flushTunnelBatch() {
        let queued = tunnelBatch.datagramCount
        guard queued > 0 else { return }
        let sent = tunnelBatch.flush(tunnelBatchFD)
        if tunnelBatchSlot >= 0 && tunnelBatchSlot < tableCount {
            table[tunnelBatchSlot].client.counters.forwarded &+= UInt64(sent)
            table[tunnelBatchSlot].client.counters.drops.sendFailed &+= UInt64(queued - sent)
        }
        tunnelBatchFD = -1
        tunnelBatchSlot = -1
    }

    // MARK: Control plane

    private func emit(_ event: RelayEvent) {
        if let eventHandler {
            eventHandler(event)
        } else if events.push(event) {
            eventWakeup?.signal()
        } else {
            eventsDropped &+= 1
        }
    }

    private func processCommands() {
        while let command = commands.pop() { apply(command) }
    }

    /// Carries out one command now. Only on the worker's thread: from the command queue,
    /// or directly by the component an embedded worker shares its loop with.
    public func apply(_ command: RelayCommand) {
        switch command {
        case .create(let setup): create(setup)
        case .updateRemote(let id, let side, let endpoint, let rtcp):
            guard let slot = slotByID[id] else { return emit(.unknownSession(id)) }
            if side == .gateway { table[slot].gateway.announce(endpoint, rtcp: rtcp) } else { table[slot].client.announce(endpoint, rtcp: rtcp) }
        case .setMode(let id, let mode):
            guard let slot = slotByID[id] else { return emit(.unknownSession(id)) }
            table[slot].mode = mode
            table[slot].timedOut = false
        case .destroy(let id):
            guard let slot = slotByID[id] else { return emit(.unknownSession(id)) }
            emit(.destroyed(table[slot].stats()))
            destroy(slot: slot)
        case .requestStats(let id):
            guard let slot = slotByID[id] else { return emit(.unknownSession(id)) }
            emit(.stats(table[slot].stats()))
        case .stop:
            for slot in 0..<tableCount where table[slot].active { destroy(slot: slot) }
            // An embedded worker's loop is its host's: the host stops it.
            guard !embedded else { return }
            stopped = true
            loop.stop()
        }
    }

    /// A session's counters now (worker's thread only); nil for an unknown session.
    public func stats(of id: SessionID) -> SessionStats? {
        slotByID[id].map { table[$0].stats() }
    }

    private func create(_ setup: SessionSetup) {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            if tableCount == tableCapacity { growTable() }
            slot = tableCount
            (table + slot).initialize(to: SessionState())
            tableCount += 1
        }
        var session = SessionState()
        session.id = setup.id
        session.active = true
        session.createdAt = monotonicNanoseconds()
        session.gateway.rtpFD = setup.gatewayRTP
        session.gateway.rtpSendFD = setup.gatewayRTPSend >= 0 ? setup.gatewayRTPSend : setup.gatewayRTP
        session.gateway.rtcpFD = setup.gatewayRTCP
        session.gateway.rtcpMux = setup.rtcpMux.gateway
        if let announced = setup.gatewayAnnounced { session.gateway.announce(announced) }
        session.client.rtpFD = setup.clientRTP
        session.client.rtpSendFD = setup.clientRTPSend >= 0 ? setup.clientRTPSend : setup.clientRTP
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
            try loop.registerBatched(fd: setup.gatewayRTP, events: events, tag: base)
            try loop.registerBatched(fd: setup.gatewayRTCP, events: events, tag: base | 1)
            if setup.clientSink == nil {
                try loop.registerBatched(fd: setup.clientRTP, events: events, tag: base | 2)
                try loop.registerBatched(fd: setup.clientRTCP, events: events, tag: base | 3)
            }
        } catch {
            log.error("session registration failed", ["session": String(setup.id.value), "error": String(describing: error)])
        }
        table[slot] = session
        slotByID[setup.id] = slot
    }

    private func destroy(slot: Int) {
        // Queued media must leave before its socket is closed (and its number reused).
        if tunnelBatchSlot == slot { flushTunnelBatch() }
        var session = table[slot]
        for fd in [session.gateway.rtpFD, session.gateway.rtcpFD, session.client.rtpFD, session.client.rtcpFD] where fd >= 0 {
            loop.unregisterBatched(fd: fd)
            close(fd)
        }
        for leg in [session.gateway, session.client] where leg.rtpSendFD >= 0 && leg.rtpSendFD != leg.rtpFD {
            close(leg.rtpSendFD)
        }
        slotByID[session.id] = nil
        session = SessionState()
        table[slot] = session
        freeSlots.append(slot)
    }

    private func growTable() {
        let capacity = tableCapacity * 2
        let grown = UnsafeMutablePointer<SessionState>.allocate(capacity: capacity)
        grown.moveInitialize(from: table, count: tableCount)
        table.deallocate()
        table = grown
        tableCapacity = capacity
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
        for slot in 0..<tableCount where table[slot].active {
            // Two-argument max: the variadic one builds an array.
            let last = max(max(table[slot].createdAt, table[slot].gateway.counters.lastSeenNanoseconds),
                           table[slot].client.counters.lastSeenNanoseconds)
            let limit = table[slot].mode == .hold ? configuration.holdTimeoutNanoseconds : configuration.idleTimeoutNanoseconds
            let idle = now &- last
            if idle >= limit {
                if !table[slot].timedOut {
                    table[slot].timedOut = true
                    emit(.timeout(table[slot].id, idleNanoseconds: idle))
                }
            } else {
                table[slot].timedOut = false
            }
            if pushStats { emit(.stats(table[slot].stats())) }
        }
    }
}
