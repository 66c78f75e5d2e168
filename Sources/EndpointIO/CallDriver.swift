// The I/O of one H.323 call (Endpoint's H323Call), the same for the lab gateway, the
// mirror and the phone: the call-signalling and H.245 connections, the call's deadline
// timer, and the actions that only move bytes. Every other action (media, what to tell a
// client or a user, call records) goes to the owner, which knows what the call is for.
import Endpoint
import H323
import IO

public final class CallDriver {
    unowned let loop: EventLoop
    /// Installed by the owner once built: building it needs the owner's RTP address.
    public var call: H323Call?
    public private(set) var signalling: TPKTConnection?
    public private(set) var h245: TPKTConnection?
    private var h245Listener: TCPListener?
    private var timer: TimerID?
    /// Set by `close()`; from then on no event, packet or tick reaches the call.
    public private(set) var isClosed = false
    /// The actions this driver does not perform, in the order the call returned them.
    public var onAction: (CallAction) -> Void = { _ in }

    public init(loop: EventLoop, call: H323Call? = nil) {
        self.loop = loop
        self.call = call
    }

    /// The call's signalling connection: an accepted one that carried the Setup, or the
    /// one `place(to:)` opens.
    public func attachSignalling(_ connection: TPKTConnection) {
        signalling = connection
        connection.onPacket = { [unowned self] _, packet in
            guard let m = try? Q931Message(decoding: packet) else { return }
            self.event(.signalling(m))
        }
        connection.onClose = { [unowned self] _ in self.event(.transportClosed) }
    }

    /// Outgoing: connects to the destination and places the call (the Setup waits in the
    /// connection's queue until the connection completes). False: no destination or no route.
    public func place(to destination: EndpointAddress?) -> Bool {
        guard let destination, let connection = try? TPKTConnection.connect(loop: loop, to: destination) else { return false }
        attachSignalling(connection)
        event(.place)
        return true
    }

    /// Separate H.245 that the far end opens to the address the call advertised; the
    /// listener is closed with the call.
    public func acceptH245(on listener: TCPListener) {
        h245Listener = listener
        listener.onAccept = { [unowned self] socket, from in
            guard self.h245 == nil, let connection = try? TPKTConnection(loop: self.loop, socket: socket, remote: from) else {
                return socket.close()
            }
            self.attachH245(connection)
            self.event(.h245Connected)
        }
    }

    private func attachH245(_ connection: TPKTConnection) {
        h245 = connection
        connection.onPacket = { [unowned self] _, packet in
            guard let m = try? MultimediaSystemControlMessage(decoding: packet) else { return }
            self.event(.h245(m))
        }
        connection.onClose = { [unowned self] _ in self.h245 = nil }
    }

    public func event(_ e: CallEvent) {
        guard !isClosed, var call else { return }
        let actions = call.handle(e, now: millisecondsNow())
        // Stored before acting: an owner may feed the call another event from an action.
        self.call = call
        for action in actions { perform(action) }
        guard !isClosed else { return }
        armTimer()
    }

    private func armTimer() {
        if let timer { loop.cancel(timer) }
        timer = nil
        guard let deadline = call?.nextDeadline else { return }
        let now = millisecondsNow()
        // A millisecond late rather than early, so that the deadline has passed at the tick.
        timer = loop.schedule(afterNanoseconds: ((deadline > now ? deadline - now : 0) + 1) * 1_000_000) { [weak self] in
            self?.timer = nil
            self?.event(.tick)
        }
    }

    private func perform(_ action: CallAction) {
        switch action {
        case .sendSignalling(let m):
            if let bytes = try? m.encoded() { signalling?.send(packet: bytes) }
        case .sendH245(let m):
            if let bytes = try? m.encoded() { h245?.send(packet: bytes) }
        case .connectH245(let address):
            guard let connection = try? TPKTConnection.connect(loop: loop, to: address) else { return }
            attachH245(connection)
            connection.onConnected = { [unowned self] _ in self.event(.h245Connected) }
        default:
            onAction(action)
        }
    }

    /// Ends the call's I/O: the timer, H.245 (and its listener), then the signalling.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        if let timer { loop.cancel(timer) }
        timer = nil
        h245?.close()
        h245Listener?.close()
        signalling?.close()
    }
}

extension TPKTConnection {
    /// An accepted call-signalling connection whose first packet must be a Setup: anything
    /// else closes it. `onSetup` decides about the call (and may adopt the connection).
    public static func awaitingSetup(loop: EventLoop, socket: TCPSocket, from: EndpointAddress,
                                     onSetup: @escaping (Q931Message, TPKTConnection) -> Void) {
        guard let connection = try? TPKTConnection(loop: loop, socket: socket, remote: from) else { return socket.close() }
        var first = true
        connection.onPacket = { connection, packet in
            guard first else { return }
            first = false
            guard let setup = try? Q931Message(decoding: packet), setup.messageType == .setup else { return connection.close() }
            onSetup(setup, connection)
        }
    }
}
