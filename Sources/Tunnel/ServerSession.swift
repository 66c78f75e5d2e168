// The appliance side of one tunnel connection, sans-I/O (docs/tunnel-protocol.md §5).
// The driver feeds received bytes and clock ticks; the session answers what it can
// itself (WELCOME, AUTH_OK, PONG, ERROR), queues frames in `outbound`, and reports
// everything else through `outputs` for the driver to act on and clear.

public struct ServerSessionConfig: Sendable {
    public var versions: ClosedRange<UInt16> = 1...1
    public var capabilities: Capabilities = .all
    public var maxPayload: Int = 16 * 1024
    /// Unauthenticated connections end this long after they were opened, whatever
    /// they send meanwhile (a slow-loris client gains nothing by trickling bytes).
    public var authTimeoutNanos: UInt64 = 10_000_000_000
    /// An authenticated connection that sent nothing (not even PING) for this long is dead.
    public var idleTimeoutNanos: UInt64 = 90_000_000_000
    public var graceSeconds: UInt16 = 20
    public var maxQueuedBytes: Int = 256 * 1024
    public var maxMediaAgeNanos: UInt64 = 60_000_000
    public var serverName = "bloo-proxyserver"

    public init() {}
}

/// Why a session ended.
public enum CloseReason: Equatable, Sendable {
    /// The client said BYE: its registration and calls end now, no resume.
    case bye
    /// The protocol was broken or a limit hit; an ERROR frame with this code was queued.
    case error(ErrorCode)
    /// The peer stopped reading (signalling could not be queued).
    case stalled
}

public enum SessionOutput: Equatable, Sendable {
    case authenticated(alias: String, resumeToken: [UInt8])
    /// The alias is left to the operator's gatekeeper: the client may only send CREDENTIALS,
    /// REGISTER, PING and BYE until the backend answers REGISTERED (then AUTH_OK follows)
    /// or REJECTED (then the session closes with ERROR 200). Not resumable.
    case deferredToGatekeeper(alias: String, resumeToken: [UInt8])
    case resumed(alias: String, resumeToken: [UInt8])
    /// Call control for the control plane (REGISTER, CALL, ANSWER, HANGUP, DTMF, ...).
    case signalling(channel: UInt16, Message)
    case media(channel: UInt16, kind: MediaKind, packet: [UInt8])
    /// Flush what is queued (it may hold an ERROR), then close the connection.
    case close(CloseReason)
}

public struct ServerSession: Sendable {
    public enum State: Equatable, Sendable {
        case awaitingHello
        case awaitingAuth
        /// AUTH_DEFER sent; the gatekeeper's answer to the mirror's RRQ decides.
        case awaitingGatekeeper(alias: String)
        case established(alias: String)
        case closed
    }

    public struct Counters: Sendable, Equatable {
        public var framesReceived: UInt64 = 0
        public var unknownFramesSkipped: UInt64 = 0
        public var pings: UInt64 = 0
    }

    public let config: ServerSessionConfig
    private let crypto: TunnelCrypto
    private let credentials: TunnelCredentials
    public private(set) var state: State = .awaitingHello
    public private(set) var version: UInt16 = 0
    public private(set) var peerCapabilities: Capabilities = []
    public private(set) var resumeToken: [UInt8] = []
    public private(set) var counters = Counters()
    public var outbound: OutboundQueue
    public var outputs: [SessionOutput] = []
    /// The appliance's load, sent in every PONG.
    public var load: (activeCalls: UInt32, capacity: UInt32) = (0, 0)
    private var decoder: FrameDecoder
    private var serverNonce: [UInt8] = []
    private var resumeRefusals = 0
    private let openedAt: UInt64
    private var lastReceived: UInt64

    public init(config: ServerSessionConfig, crypto: TunnelCrypto, credentials: TunnelCredentials, now: UInt64) {
        self.config = config
        self.crypto = crypto
        self.credentials = credentials
        decoder = FrameDecoder(maxPayload: config.maxPayload)
        outbound = OutboundQueue(maxBytes: config.maxQueuedBytes, maxMediaAgeNanos: config.maxMediaAgeNanos)
        openedAt = now
        lastReceived = now
    }

    public var isAuthenticated: Bool {
        if case .established = state { return true }
        return false
    }

    /// When the driver must call `tick` at the latest.
    public var nextDeadline: UInt64 {
        switch state {
        case .awaitingHello, .awaitingAuth, .awaitingGatekeeper: openedAt &+ config.authTimeoutNanos
        case .established: lastReceived &+ config.idleTimeoutNanos
        case .closed: UInt64.max
        }
    }

    // MARK: Input

    /// Bytes received from the peer (after TLS).
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: UInt64) {
        guard state != .closed else { return }
        lastReceived = now
        decoder.feed(bytes)
        while state != .closed, let result = decoder.nextView(ServerSession.decodeView) {
            switch result {
            case let .failure(error):
                switch error {
                case let .unsupportedFramingVersion(byte):
                    fail(.unsupportedVersion, "not a bloo/1 frame (first byte 0x\(String(byte, radix: 16)))", now)
                case let .oversize(announced, limit):
                    fail(.frameTooLarge, "frame of \(announced) bytes exceeds \(limit)", now)
                }
            case let .success(.media(channel, kind, packet)):
                counters.framesReceived += 1
                if channel != 0, isAuthenticated {
                    outputs.append(.media(channel: channel, kind: kind, packet: packet))
                } else {  // the refusals are `handle`'s
                    handle(Frame(type: MessageType.media.rawValue, channel: channel, payload: [kind.rawValue] + packet), now: now)
                }
            case let .success(.frame(frame)):
                counters.framesReceived += 1
                handle(frame, now: now)
            }
        }
    }

    /// A received frame: MEDIA, the hot path, with its packet copied once out of the
    /// decoder's buffer; anything else as a whole frame for `handle`.
    private enum Received {
        case media(channel: UInt16, kind: MediaKind, packet: [UInt8])
        case frame(Frame)
    }

    private static func decodeView(type: UInt8, channel: UInt16, payload: UnsafeRawBufferPointer) -> Received {
        if type == MessageType.media.rawValue, let first = payload.first, let kind = MediaKind(rawValue: first) {
            return .media(channel: channel, kind: kind, packet: Array(UnsafeRawBufferPointer(rebasing: payload[1...])))
        }
        return .frame(Frame(type: type, channel: channel, payload: Array(payload)))
    }

    public mutating func receive(_ bytes: [UInt8], now: UInt64) {
        bytes.withUnsafeBytes { receive($0, now: now) }
    }

    /// The peer closed its sending side. A frame cut short is reported to it (it may
    /// still read) before the connection ends; otherwise there is nothing to say.
    public mutating func endOfInput(now: UInt64) {
        guard state != .closed else { return }
        if decoder.bufferedCount > 0 {
            fail(.malformedFrame, "stream ended inside a frame (\(decoder.bufferedCount) bytes)", now)
        }
    }

    /// Clock tick: enforces the authentication and idle deadlines, expires stale media.
    public mutating func tick(now: UInt64) {
        guard state != .closed else { return }
        outbound.expire(now: now)
        guard now >= nextDeadline else { return }
        if isAuthenticated {
            fail(.idleTimeout, "nothing received for \(config.idleTimeoutNanos / 1_000_000_000) s", now)
        } else {
            fail(.authenticationTimeout, "not authenticated within \(config.authTimeoutNanos / 1_000_000_000) s", now)
        }
    }

    // MARK: Output from the appliance

    /// Queues signalling for the client. Returns false (and closes) when the client stopped reading.
    @discardableResult
    public mutating func send(_ message: Message, channel: UInt16 = 0, now: UInt64) -> Bool {
        guard state != .closed else { return false }
        if case let .awaitingGatekeeper(alias) = state {
            // The gatekeeper's verdict on the client's H.235 token completes (or ends) the authentication.
            switch message {
            case .registered:
                state = .established(alias: alias)
                serverNonce = []
                let proof = [UInt8](repeating: 0, count: TunnelSizes.mac)  // the appliance holds no secret to prove
                _ = outbound.pushSignalling(Message.authOK(serverProof: proof, resumeToken: resumeToken, graceSeconds: 0,
                                                           resumed: false).frame(), now: now)
            case let .rejected(_, text):
                _ = outbound.pushSignalling(message.frame(channel: channel), now: now)
                fail(.authenticationFailed, "authentication failed: \(text)", now)
                return false
            case .pong, .error, .bye:
                break
            default:
                return false  // nothing else reaches a client that is not authenticated yet
            }
        }
        guard outbound.pushSignalling(message.frame(channel: channel), now: now) else {
            state = .closed
            outputs.append(.close(.stalled))
            return false
        }
        return true
    }

    /// Queues a media packet for the client; it is dropped if not written in time.
    public mutating func sendMedia(channel: UInt16, kind: MediaKind, packet: UnsafeRawBufferPointer, now: UInt64) {
        guard isAuthenticated else { return }
        outbound.pushMedia(channel: channel, kind: kind, packet: packet, now: now)
    }

    public mutating func sendMedia(channel: UInt16, kind: MediaKind, packet: [UInt8], now: UInt64) {
        packet.withUnsafeBytes { sendMedia(channel: channel, kind: kind, packet: $0, now: now) }
    }

    /// Ends the session from the appliance side with BYE (shutdown) or ERROR.
    public mutating func close(_ code: ErrorCode?, _ text: String, now: UInt64) {
        guard state != .closed else { return }
        if let code { fail(code, text, now) } else {
            send(.bye, now: now)
            state = .closed
            outputs.append(.close(.bye))
        }
    }

    // MARK: Frame handling

    private mutating func handle(_ frame: Frame, now: UInt64) {
        let decoded = Message.decode(frame)
        let message: Message
        switch decoded {
        case let .unknownType(type):
            guard isAuthenticated else {
                fail(.unexpectedMessage, "unknown frame type 0x\(String(type, radix: 16)) before authentication", now)
                return
            }
            counters.unknownFramesSkipped += 1  // from a newer peer: skipped, not fatal
            return
        case let .malformed(type):
            fail(.malformedFrame, "malformed \(type) frame", now)
            return
        case let .message(decodedMessage):
            message = decodedMessage
        }

        switch (state, message) {
        case let (.awaitingHello, .hello(minVersion, maxVersion, capabilities, _)):
            let low = max(minVersion, config.versions.lowerBound)
            let high = min(maxVersion, config.versions.upperBound)
            guard low <= high else {
                fail(.unsupportedVersion, "versions \(minVersion)-\(maxVersion) not supported, appliance speaks \(config.versions.lowerBound)-\(config.versions.upperBound)", now)
                return
            }
            version = high
            peerCapabilities = capabilities.intersection(config.capabilities)
            serverNonce = crypto.randomBytes(TunnelSizes.nonce)
            state = .awaitingAuth
            send(.welcome(version: version, capabilities: peerCapabilities,
                          maxPayload: UInt32(config.maxPayload), nonce: serverNonce), now: now)

        case let (.awaitingAuth, .auth(alias, _, _)) where credentials.secret(forAlias: alias) == nil
                                                         && credentials.verifiedByGatekeeper(alias: alias):
            // The appliance cannot check this MAC: the client's H.235 token, checked by the
            // operator's gatekeeper in the mirror's RRQ, decides instead.
            resumeToken = crypto.randomBytes(TunnelSizes.resumeToken)
            send(.authDefer(method: .h235PasswordMD5), now: now)
            state = .awaitingGatekeeper(alias: alias)
            outputs.append(.deferredToGatekeeper(alias: alias, resumeToken: resumeToken))

        case let (.awaitingAuth, .auth(alias, clientNonce, mac)):
            guard let secret = credentials.secret(forAlias: alias),
                  TunnelAuth.constantTimeEqual(mac, TunnelAuth.clientMAC(crypto, secret: secret, serverNonce: serverNonce,
                                                                         clientNonce: clientNonce, alias: alias)) else {
                fail(.authenticationFailed, "authentication failed", now)
                return
            }
            resumeToken = crypto.randomBytes(TunnelSizes.resumeToken)
            establish(alias: alias, secret: secret, clientNonce: clientNonce, resumed: false, now: now)
            outputs.append(.authenticated(alias: alias, resumeToken: resumeToken))

        case let (.awaitingAuth, .resume(alias, token, clientNonce, mac)):
            guard let secret = credentials.secret(forAlias: alias),
                  TunnelAuth.constantTimeEqual(mac, TunnelAuth.resumeMAC(crypto, secret: secret, serverNonce: serverNonce,
                                                                         clientNonce: clientNonce, token: token, alias: alias)) else {
                fail(.authenticationFailed, "authentication failed", now)
                return
            }
            guard credentials.canResume(alias: alias, token: token) else {
                // Not fatal: the grace period may have ended; the client can still AUTH afresh.
                resumeRefusals += 1
                if resumeRefusals > 1 { fail(.resumeRefused, "resume refused", now); return }
                send(.error(code: ErrorCode.resumeRefused.rawValue, text: "no session to resume"), now: now)
                return
            }
            resumeToken = token
            establish(alias: alias, secret: secret, clientNonce: clientNonce, resumed: true, now: now)
            outputs.append(.resumed(alias: alias, resumeToken: token))

        case (.awaitingGatekeeper, .credentials), (.awaitingGatekeeper, .register):
            guard frame.channel == 0 else { fail(.unexpectedMessage, "\(message.type) on channel \(frame.channel)", now); return }
            outputs.append(.signalling(channel: 0, message))

        case let (.awaitingAuth, .ping(clientTime)), let (.awaitingGatekeeper, .ping(clientTime)),
             let (.established, .ping(clientTime)):
            counters.pings += 1
            send(.pong(clientTime: clientTime, serverTime: now / 1_000, activeCalls: load.activeCalls,
                       capacity: load.capacity), now: now)

        case (_, .bye):
            state = .closed
            outputs.append(.close(.bye))

        case (.established, .pong), (.established, .error):
            break  // informational from the client

        case let (.established, .media(kind, packet)):
            guard frame.channel != 0 else { fail(.unknownChannel, "media on channel 0", now); return }
            outputs.append(.media(channel: frame.channel, kind: kind, packet: packet))

        case (.established, .register), (.established, .unregister), (.established, .call),
             (.established, .progress), (.established, .ringing), (.established, .answer),
             (.established, .hangup), (.established, .dtmf), (.established, .udpPath),
             (.established, .credentials):
            outputs.append(.signalling(channel: frame.channel, message))

        default:
            fail(.unexpectedMessage, "\(message.type) not expected \(stateName)", now)
        }
    }

    private mutating func establish(alias: String, secret: [UInt8], clientNonce: [UInt8], resumed: Bool, now: UInt64) {
        let proof = TunnelAuth.serverProof(crypto, secret: secret, serverNonce: serverNonce, clientNonce: clientNonce)
        state = .established(alias: alias)
        serverNonce = []
        send(.authOK(serverProof: proof, resumeToken: resumeToken, graceSeconds: config.graceSeconds, resumed: resumed), now: now)
    }

    private var stateName: String {
        switch state {
        case .awaitingHello: "before HELLO"
        case .awaitingAuth: "before authentication"
        case .awaitingGatekeeper: "while the gatekeeper checks the credentials"
        case .established: "after authentication"
        case .closed: "after close"
        }
    }

    private mutating func fail(_ code: ErrorCode, _ text: String, _ now: UInt64) {
        guard state != .closed else { return }
        // The ERROR must reach the peer even when media fills the queue.
        _ = outbound.pushSignalling(Message.error(code: code.rawValue, text: text).frame(), now: now)
        state = .closed
        outputs.append(.close(.error(code)))
    }
}
