// The I/O of one endpoint's RAS client (Endpoint's RASClient), the same for the lab
// gateway, the mirror and the phone: it feeds the client its events, sends the messages
// the client sends, and keeps one timer armed for the client's next deadline. Every
// other action (registered, admitted, lost...) goes to the owner, which knows what the
// registration is for. Reading the RAS socket stays with the owner: each has its own.
import Endpoint
import IO

public final class RASDriver {
    unowned let loop: EventLoop
    public private(set) var client: RASClient
    private let transmit: ([UInt8], EndpointAddress) -> Void
    private var timer: TimerID?
    /// Set by `close()`: from then on no event or tick reaches the client.
    public private(set) var isClosed = false
    /// The actions other than sending, in the order the client returned them.
    public var onAction: (RASAction) -> Void = { _ in }

    /// `send`: puts one encoded RAS message on the wire to the given address.
    public init(loop: EventLoop, client: RASClient, send: @escaping ([UInt8], EndpointAddress) -> Void) {
        self.loop = loop
        self.client = client
        transmit = send
    }

    public var isRegistered: Bool { client.isRegistered }

    /// Runs one event through the client, then arms the timer for its next deadline.
    public func handle(_ event: RASEvent) {
        guard !isClosed else { return }
        for action in client.handle(event, now: millisecondsNow()) {
            if case let .send(message, to) = action {
                if let bytes = try? message.encoded() { transmit(bytes, to) }
            } else {
                onAction(action)
            }
        }
        armTimer()
    }

    /// The owner is done with RAS (whatever the client still had to send or wait for).
    public func close() {
        isClosed = true
        cancelTimer()
    }

    private func cancelTimer() {
        if let timer { loop.cancel(timer) }
        timer = nil
    }

    /// Arms the timer for the client's next deadline (for a client that arrives with
    /// one, such as a registration made before the driver existed).
    public func armTimer() {
        cancelTimer()
        guard !isClosed, let deadline = client.nextDeadline else { return }
        let now = millisecondsNow()
        // A millisecond after the deadline, so that the tick finds it due.
        timer = loop.schedule(afterNanoseconds: ((deadline > now ? deadline - now : 0) + 1) * 1_000_000) { [weak self] in
            self?.timer = nil
            self?.handle(.tick)
        }
    }
}
