// One TCP connection of the terminator: socket -> (TLS) -> ServerSession, and back.
// Output is coalesced: sending only marks the connection dirty, and the worker
// flushes every dirty connection once per loop iteration with one write each.

import IO
import Log
import Tunnel

final class TunnelConnection: IOHandler {
    /// Unowned and unchecked: the worker owns its connections and outlives them, and a
    /// checked reference costs a side-table increment on every packet.
    unowned(unsafe) let worker: TerminatorWorker
    let socket: TCPSocket
    let peer: IPv4Endpoint
    let tls: TLSEngine?
    var session: ServerSession
    var registration: Registration?
    var client: TunnelClient?
    /// Bytes the kernel has not taken yet (ciphertext on TLS).
    private var writeBuffer: [UInt8] = []
    private var writeOffset = 0
    private var waitingWritable = false
    var isDirty = false
    private(set) var isClosing = false
    private var sawFirstByte = false
    private var closeTimer: TimerID?
    var finished = false
    private var processingOutputs = false

    init(worker: TerminatorWorker, socket: TCPSocket, peer: IPv4Endpoint, tls: TLSEngine?, session: ServerSession,
         handedOff: Bool = false) {
        self.worker = worker
        self.socket = socket
        self.peer = peer
        self.tls = tls
        self.session = session
        sawFirstByte = tls == nil || handedOff
    }

    // MARK: Sending (from the session's replies and from the backend)

    func sendSignalling(_ message: Message, channel: UInt16) {
        session.send(message, channel: channel, now: worker.now)
        afterSessionActivity()
    }

    func sendMedia(channel: UInt16, kind: MediaKind, packet: UnsafeRawBufferPointer) {
        session.sendMedia(channel: channel, kind: kind, packet: packet, now: worker.now)
        markDirty()
    }

    func markDirty() {
        guard !isDirty, !finished else { return }
        isDirty = true
        worker.dirty.append(self)
    }

    // MARK: Readiness

    func handle(events: IOEvents, tag: UInt64) {
        if events.contains(.writable) { flush() }
        if events.contains(.readable) || events.contains(.hangup) || events.contains(.error) { readAvailable() }
    }

    private func readAvailable() {
        // Bounded reads per wake-up, so one busy peer cannot starve the others.
        for _ in 0..<8 {
            guard !finished else { return }
            let result = worker.readScratch.withUnsafeMutableBytes { socket.read(into: $0) }
            switch result {
            case .wouldBlock:
                return
            case .endOfStream:
                if !isClosing {
                    session.endOfInput(now: worker.now)
                    if session.state == .closed {
                        afterSessionActivity()  // queues the ERROR and starts the close
                        return
                    }
                }
                lost()
                return
            case .failed:
                lost()
                return
            case let .bytes(count):
                if !isClosing {  // while closing, input is drained and dropped until the peer closes
                    worker.readScratch.withUnsafeBytes { received(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                }
                // Less than a full buffer: the socket is empty now. Level-triggered epoll reports
                // anything that arrives later, so the extra read that would return EAGAIN is saved.
                if count < worker.readScratch.count { return }
            }
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        guard let tls else {
            session.load = worker.shared.load
            session.receive(bytes, now: worker.now)
            afterSessionActivity()
            return
        }
        if !sawFirstByte {
            sawFirstByte = true
            // Not a TLS handshake record (an HTTP request, a plain tunnel client):
            // answer with a readable ERROR frame rather than a TLS alert.
            if bytes.first != 0x16 {
                worker.shared.handshakeFailures.add(1, ordering: .relaxed)
                worker.log.info("tunnel-not-tls", ["peer": "\(peer)"])
                let error = Message.error(code: ErrorCode.unsupportedVersion.rawValue,
                                          text: "this port speaks TLS (ALPN bloo/1)").frame().encoded
                appendRaw(error)
                beginClose()
                return
            }
        }
        tls.feed(bytes)
        let wasHandshaking = tls.status == .handshaking
        tls.advance()
        if case let .failed(reason) = tls.status {
            worker.shared.handshakeFailures.add(1, ordering: .relaxed)
            worker.log.info("tunnel-tls-failed", ["peer": "\(peer)", "reason": reason])
            appendPendingCiphertext()  // the alert
            beginClose()
            return
        }
        if wasHandshaking && tls.status == .established {
            worker.log.debug("tunnel-tls-up", ["peer": "\(peer)", "version": tls.protocolVersion, "cipher": tls.cipherName])
        }
        while tls.status == .established {
            let count = worker.plainScratch.withUnsafeMutableBytes { tls.read(into: $0) }
            guard count > 0 else { break }
            session.load = worker.shared.load
            worker.plainScratch.withUnsafeBytes { session.receive(UnsafeRawBufferPointer(rebasing: $0[0..<count]), now: worker.now) }
            if session.state == .closed || !tls.hasBufferedInput { break }  // saves an SSL_read that finds nothing
        }
        if tls.status == .closed { lost(); return }
        afterSessionActivity()
        if tls.pendingCiphertext > 0 { markDirty() }
    }

    /// Acts on what the session reported, then schedules a flush if it queued output.
    func afterSessionActivity() {
        // The backend may answer from inside this loop (REGISTER -> REGISTERED); its
        // outputs are appended and picked up by the same loop, never re-entered.
        guard !processingOutputs else { return }
        processingOutputs = true
        defer { processingOutputs = false }
        var index = 0
        while index < session.outputs.count {
            let output = session.outputs[index]
            index += 1
            switch output {
            case let .authenticated(alias, token):
                worker.authenticated(self, alias: alias, token: token)
            case let .deferredToGatekeeper(alias, token):
                worker.authenticated(self, alias: alias, token: token, byGatekeeper: true)
            case let .resumed(alias, token):
                session.outputs.removeFirst(index)
                index = 0
                worker.resumed(self, alias: alias, token: token)
                if finished { return }  // handed to the client's worker, which carries on
            case let .signalling(channel, message):
                if let client { worker.clientSignalling(client, channel: channel, message: message) }
            case let .media(channel, kind, packet):
                if let client { worker.backend.clientMedia(client, channel: channel, kind: kind, packet: packet) }
            case let .close(reason):
                worker.sessionClosed(self, reason: reason)
                beginClose()
            }
        }
        session.outputs.removeAll(keepingCapacity: true)
        if !session.outbound.isEmpty { markDirty() }
    }

    // MARK: Writing

    /// Writes what is queued; called once per loop iteration when dirty, and on writability.
    func flush() {
        isDirty = false
        guard !finished else { return }
        if writeOffset < writeBuffer.count && !writePending() { return }
        // Only pull from the queue when the kernel took everything: media then waits in
        // the queue, where it can still be dropped when stale, not behind the TCP window.
        let now = worker.now
        if let tls {
            if tls.status == .established && !session.outbound.isEmpty {
                worker.frameScratch.removeAll(keepingCapacity: true)
                session.outbound.take(now: now, into: &worker.frameScratch, limit: 32 * 1024)
                _ = tls.write(worker.frameScratch)
            }
            sendPendingCiphertext()
            if finished { return }
        } else if !session.outbound.isEmpty {
            session.outbound.take(now: now, into: &writeBuffer, limit: 32 * 1024)
        }
        _ = writePending()
        if !session.outbound.isEmpty && writeOffset >= writeBuffer.count { markDirty() }
    }

    /// Sends the engine's ciphertext straight from the worker's scratch buffer; only what
    /// the kernel does not take now is kept in `writeBuffer` (saves a copy per flush).
    private func sendPendingCiphertext() {
        guard let tls else { return }
        while !isClosing && writeOffset >= writeBuffer.count {
            let count = worker.cipherScratch.withUnsafeMutableBytes { tls.takeCiphertext(into: $0) }
            guard count > 0 else { return }
            let written = worker.cipherScratch.withUnsafeBytes { socket.write(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            if written < 0 {
                lost()
                return
            }
            if written < count {
                worker.cipherScratch.withUnsafeBytes { writeBuffer.append(contentsOf: $0[written..<count]) }
            } else if count < worker.cipherScratch.count {
                return  // the engine had less than the scratch buffer: nothing is left
            }
        }
        appendPendingCiphertext()
    }

    private func appendPendingCiphertext() {
        tls?.takeCiphertext(appendingTo: &writeBuffer)
    }

    private func appendRaw(_ bytes: [UInt8]) {
        writeBuffer.append(contentsOf: bytes)
        markDirty()
    }

    /// Returns true when everything buffered was written.
    private func writePending() -> Bool {
        guard writeOffset < writeBuffer.count else { return true }
        let written = writeBuffer.withUnsafeBytes { socket.write(UnsafeRawBufferPointer(rebasing: $0[writeOffset...])) }
        if written < 0 {
            lost()
            return false
        }
        writeOffset += written
        if writeOffset >= writeBuffer.count {
            writeBuffer.removeAll(keepingCapacity: writeBuffer.capacity <= 16 * 1024)
            writeOffset = 0
            setWritableInterest(false)
            if isClosing { finishWriting() }
            return true
        }
        setWritableInterest(true)
        return false
    }

    private func setWritableInterest(_ wanted: Bool) {
        guard wanted != waitingWritable, let registration else { return }
        waitingWritable = wanted
        try? worker.loop.modify(registration, events: wanted ? [.readable, .writable] : [.readable])
    }

    // MARK: Closing

    /// Sends what is queued (an ERROR, a close_notify), then half-closes and waits
    /// briefly for the peer to close, so the ERROR is read rather than reset away.
    func beginClose() {
        guard !isClosing, !finished else { return }
        isClosing = true
        if let tls, tls.status == .established {
            if !session.outbound.isEmpty {
                worker.frameScratch.removeAll(keepingCapacity: true)
                session.outbound.take(now: worker.now, into: &worker.frameScratch, limit: Int.max)
                _ = tls.write(worker.frameScratch)
            }
            tls.shutdown()
            appendPendingCiphertext()
        } else if tls == nil {
            session.outbound.take(now: worker.now, into: &writeBuffer, limit: Int.max)
        }
        closeTimer = worker.loop.schedule(afterNanoseconds: 2_000_000_000) { [weak self] in self?.finish() }
        if writePending() { finishWriting() }
    }

    private func finishWriting() {
        socket.shutdownWrite()
    }

    /// The peer went away or the connection broke.
    private func lost() {
        guard !finished else { return }
        if !isClosing { worker.sessionLost(self) }
        finish()
    }

    func finish() {
        guard !finished else { return }
        finished = true
        if let client, client.connection === self { client.connection = nil }
        client = nil
        if let closeTimer { worker.loop.cancel(closeTimer) }
        if let registration { worker.loop.unregister(registration) }
        registration = nil
        socket.close()
        worker.connectionFinished(self)
    }

    /// Hands the socket to another worker: unregisters without closing.
    func detachForHandOff() {
        finished = true
        if let registration { worker.loop.unregister(registration) }
        registration = nil
    }

    var pendingOutput: (buffer: [UInt8], offset: Int) { (writeBuffer, writeOffset) }

    func adoptPendingOutput(_ output: (buffer: [UInt8], offset: Int)) {
        writeBuffer = output.buffer
        writeOffset = output.offset
    }
}
