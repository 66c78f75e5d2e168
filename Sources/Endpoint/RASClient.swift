// The RAS client of one endpoint (H.225.0 clause 7), sans-I/O: the driver feeds it
// received RAS messages, requests from the call layer and the time; it answers with
// messages to send and what happened. It never reads a clock or touches a socket.
//
// Lifecycle: [GRQ ->] full RRQ -> registered -> lightweight RRQ before timeToLive runs
// out -> ... -> URQ. ARQ before every call, DRQ after it. Requests from the gatekeeper
// (URQ, IRQ, BRQ, DRQ) are answered here.
import H323
import PER

public struct RASConfig: Sendable {
    public var gatekeeper: EndpointAddress
    /// The addresses advertised to the gatekeeper (for the mirror: the appliance's public ones).
    public var rasAddress: EndpointAddress
    public var callSignalAddress: EndpointAddress
    public var aliases: [AliasAddress]
    public var gatekeeperIdentifier: String?
    /// Send GRQ first (unicast discovery) instead of registering directly.
    public var discover: Bool
    /// Seconds asked for in RRQ; the gatekeeper's value wins.
    public var timeToLive: Int
    public var endpointType: EndpointType
    /// Tokens added to every request (H.235 credentials the driver computed).
    public var cryptoTokens: [CryptoH323Token]?
    /// How long to wait before trying a full registration again after a failure.
    public var reregisterDelayMs: UInt64

    public init(gatekeeper: EndpointAddress, rasAddress: EndpointAddress, callSignalAddress: EndpointAddress,
                aliases: [AliasAddress], gatekeeperIdentifier: String? = nil, discover: Bool = true,
                timeToLive: Int = 300, endpointType: EndpointType = EndpointIdentity.terminal,
                cryptoTokens: [CryptoH323Token]? = nil, reregisterDelayMs: UInt64 = 10_000) {
        self.gatekeeper = gatekeeper
        self.rasAddress = rasAddress
        self.callSignalAddress = callSignalAddress
        self.aliases = aliases
        self.gatekeeperIdentifier = gatekeeperIdentifier
        self.discover = discover
        self.timeToLive = timeToLive
        self.endpointType = endpointType
        self.cryptoTokens = cryptoTokens
        self.reregisterDelayMs = reregisterDelayMs
    }
}

/// H.225.0 Appendix: recommended timeouts and retry counts per RAS request.
public struct RASRetryPolicy: Sendable, Equatable {
    public var timeoutMs: UInt64
    public var retries: Int
    public init(timeoutMs: UInt64, retries: Int) {
        self.timeoutMs = timeoutMs
        self.retries = retries
    }
    public static let grq = RASRetryPolicy(timeoutMs: 5000, retries: 2)
    public static let rrq = RASRetryPolicy(timeoutMs: 3000, retries: 2)
    public static let urq = RASRetryPolicy(timeoutMs: 3000, retries: 1)
    public static let arq = RASRetryPolicy(timeoutMs: 5000, retries: 2)
    public static let drq = RASRetryPolicy(timeoutMs: 3000, retries: 2)
    public static let brq = RASRetryPolicy(timeoutMs: 3000, retries: 2)
}

/// What the call layer needs to ask admission for one call.
public struct AdmissionParameters: Sendable, Equatable {
    public var callKey: Int
    public var callReferenceValue: Int
    public var conferenceID: [UInt8]
    public var callIdentifier: [UInt8]
    public var destination: [AliasAddress]
    public var destinationAddress: EndpointAddress?
    public var source: [AliasAddress]
    public var answerCall: Bool
    /// Units of 100 bit/s, both directions (1280 = 2 x 64 kbit/s).
    public var bandwidth: Int

    public init(callKey: Int, callReferenceValue: Int, conferenceID: [UInt8], callIdentifier: [UInt8],
                destination: [AliasAddress], destinationAddress: EndpointAddress? = nil, source: [AliasAddress],
                answerCall: Bool, bandwidth: Int = 1280) {
        self.callKey = callKey
        self.callReferenceValue = callReferenceValue
        self.conferenceID = conferenceID
        self.callIdentifier = callIdentifier
        self.destination = destination
        self.destinationAddress = destinationAddress
        self.source = source
        self.answerCall = answerCall
        self.bandwidth = bandwidth
    }
}

public enum RASEvent: Sendable {
    /// Begin (or restart) registration.
    case start
    case received(RasMessage, from: EndpointAddress)
    /// Time passed; nothing else happened.
    case tick
    case admit(AdmissionParameters)
    /// The call ended: DRQ with this Q.850 cause.
    case disengage(callKey: Int, cause: UInt8)
    case unregister
}

public enum RASAction: Sendable, Equatable {
    case send(RasMessage, to: EndpointAddress)
    case registered(endpointIdentifier: String, timeToLive: Int?)
    case registrationRejected(RegistrationRejectReason)
    /// The gatekeeper stopped answering or unregistered us; the client retries by itself.
    case registrationLost(reason: String)
    case unregistered
    case admitted(callKey: Int, destination: EndpointAddress?, routed: Bool)
    /// ARJ or no answer: release the call with this Q.850 cause.
    case admissionFailed(callKey: Int, cause: UInt8)
    case disengaged(callKey: Int)
    /// The gatekeeper sent DRQ: release the call (DCF already sent).
    case disengageRequested(callKey: Int)
}

public struct RASClient: Sendable {
    public enum State: Sendable, Equatable {
        case idle, discovering, registering, registered, unregistering, unregistered
        /// Waiting `reregisterDelayMs` before the next attempt.
        case backingOff
    }

    private enum Kind: Sendable, Equatable {
        case grq, fullRRQ, keepAliveRRQ, urq
        case arq(callKey: Int)
        case drq(callKey: Int)
    }

    private struct Pending: Sendable {
        var kind: Kind
        var message: RasMessage
        var attemptsLeft: Int
        var timeoutMs: UInt64
        var deadline: UInt64
    }

    private struct AdmittedCall: Sendable {
        var parameters: AdmissionParameters
        var bandwidth: Int
    }

    public private(set) var config: RASConfig
    public private(set) var state: State = .idle
    public private(set) var endpointIdentifier: String?
    public private(set) var gatekeeperIdentifier: String?
    public private(set) var timeToLive: Int?
    private var gatekeeperRAS: EndpointAddress
    private var nextSeq = 1
    private var pending: [Int: Pending] = [:]
    private var calls: [Int: AdmittedCall] = [:]
    private var keepAliveAt: UInt64?
    private var retryAt: UInt64?

    public init(config: RASConfig) {
        self.config = config
        self.gatekeeperRAS = config.gatekeeper
        self.gatekeeperIdentifier = config.gatekeeperIdentifier
    }

    public var isRegistered: Bool { state == .registered }
    public var activeCalls: Int { calls.count }

    /// The earliest time the driver must feed `.tick`, or nil.
    public var nextDeadline: UInt64? {
        var earliest = pending.values.map(\.deadline).min()
        for t in [keepAliveAt, retryAt] {
            if let t { earliest = min(earliest ?? t, t) }
        }
        return earliest
    }

    public mutating func handle(_ event: RASEvent, now: UInt64) -> [RASAction] {
        var out: [RASAction] = []
        switch event {
        case .start:
            pending = pending.filter { if case .arq = $0.value.kind { return true }; if case .drq = $0.value.kind { return true }; return false }
            beginRegistration(now: now, &out)
        case .received(let message, let from):
            receive(message, from: from, now: now, &out)
        case .tick:
            break
        case .admit(let parameters):
            admit(parameters, now: now, &out)
        case .disengage(let callKey, let cause):
            disengage(callKey: callKey, cause: cause, now: now, &out)
        case .unregister:
            unregister(now: now, &out)
        }
        expireTimers(now: now, &out)
        return out
    }

    // MARK: Registration

    private mutating func beginRegistration(now: UInt64, _ out: inout [RASAction]) {
        retryAt = nil
        keepAliveAt = nil
        if config.discover && gatekeeperIdentifier == nil {
            state = .discovering
            let grq = GatekeeperRequest(
                requestSeqNum: 0, protocolIdentifier: EndpointIdentity.h2250Protocol,
                rasAddress: config.rasAddress.transportAddress, endpointType: config.endpointType,
                gatekeeperIdentifier: config.gatekeeperIdentifier, endpointAlias: config.aliases)
            request(.grq, now: now, policy: .grq, &out) { seq in
                var m = grq
                m.requestSeqNum = seq
                return .gatekeeperRequest(m)
            }
        } else {
            sendFullRRQ(now: now, &out)
        }
    }

    private mutating func sendFullRRQ(now: UInt64, _ out: inout [RASAction]) {
        state = .registering
        let config = self.config
        let gkid = gatekeeperIdentifier
        request(.fullRRQ, now: now, policy: .rrq, &out) { seq in
            .registrationRequest(RegistrationRequest(
                requestSeqNum: seq, protocolIdentifier: EndpointIdentity.h2250Protocol, discoveryComplete: config.discover,
                callSignalAddress: [config.callSignalAddress.transportAddress], rasAddress: [config.rasAddress.transportAddress],
                terminalType: config.endpointType, terminalAlias: config.aliases, gatekeeperIdentifier: gkid,
                endpointVendor: EndpointIdentity.vendor, timeToLive: config.timeToLive,
                cryptoTokens: config.cryptoTokens, keepAlive: false, willSupplyUUIEs: false))
        }
    }

    private mutating func sendKeepAlive(now: UInt64, _ out: inout [RASAction]) {
        guard let endpointIdentifier else { return sendFullRRQ(now: now, &out) }
        let config = self.config
        let gkid = gatekeeperIdentifier
        let ttl = timeToLive
        request(.keepAliveRRQ, now: now, policy: .rrq, &out) { seq in
            // H.225.0 7.9.1: a lightweight RRQ carries only what identifies the registration.
            .registrationRequest(RegistrationRequest(
                requestSeqNum: seq, protocolIdentifier: EndpointIdentity.h2250Protocol, discoveryComplete: false,
                callSignalAddress: [], rasAddress: [], terminalType: config.endpointType, gatekeeperIdentifier: gkid,
                endpointVendor: EndpointIdentity.vendor, timeToLive: ttl, cryptoTokens: config.cryptoTokens,
                keepAlive: true, endpointIdentifier: endpointIdentifier, willSupplyUUIEs: false))
        }
    }

    private mutating func unregister(now: UInt64, _ out: inout [RASAction]) {
        keepAliveAt = nil
        retryAt = nil
        guard state == .registered, let endpointIdentifier else {
            pending.removeAll()
            state = .unregistered
            out.append(.unregistered)
            return
        }
        state = .unregistering
        pending = pending.filter { if case .drq = $0.value.kind { return true }; return false }
        let config = self.config
        let gkid = gatekeeperIdentifier
        request(.urq, now: now, policy: .urq, &out) { seq in
            .unregistrationRequest(UnregistrationRequest(
                requestSeqNum: seq, callSignalAddress: [config.callSignalAddress.transportAddress],
                endpointAlias: config.aliases, endpointIdentifier: endpointIdentifier, gatekeeperIdentifier: gkid,
                cryptoTokens: config.cryptoTokens))
        }
    }

    private mutating func lost(_ reason: String, now: UInt64, _ out: inout [RASAction]) {
        endpointIdentifier = nil
        keepAliveAt = nil
        state = .backingOff
        retryAt = now &+ config.reregisterDelayMs
        out.append(.registrationLost(reason: reason))
    }

    // MARK: Admission

    private mutating func admit(_ p: AdmissionParameters, now: UInt64, _ out: inout [RASAction]) {
        guard state == .registered, let endpointIdentifier else {
            out.append(.admissionFailed(callKey: p.callKey, cause: Q850.temporaryFailure))
            return
        }
        let config = self.config
        let gkid = gatekeeperIdentifier
        request(.arq(callKey: p.callKey), now: now, policy: .arq, &out) { seq in
            .admissionRequest(AdmissionRequest(
                requestSeqNum: seq, callType: .pointToPoint, callModel: .direct, endpointIdentifier: endpointIdentifier,
                destinationInfo: p.destination.isEmpty ? nil : p.destination,
                destCallSignalAddress: p.destinationAddress?.transportAddress,
                srcInfo: p.source, srcCallSignalAddress: p.answerCall ? nil : config.callSignalAddress.transportAddress,
                bandWidth: p.bandwidth, callReferenceValue: p.callReferenceValue, conferenceID: p.conferenceID,
                activeMC: false, answerCall: p.answerCall, canMapAlias: true,
                callIdentifier: CallIdentifier(guid: p.callIdentifier), gatekeeperIdentifier: gkid,
                cryptoTokens: config.cryptoTokens, willSupplyUUIEs: false))
        }
        calls[p.callKey] = AdmittedCall(parameters: p, bandwidth: p.bandwidth)
    }

    private mutating func disengage(callKey: Int, cause: UInt8, now: UInt64, _ out: inout [RASAction]) {
        // A call still waiting for ACF is simply forgotten: nothing was admitted.
        for (seq, p) in pending where p.kind == .arq(callKey: callKey) { pending[seq] = nil }
        guard let call = calls.removeValue(forKey: callKey), state == .registered || state == .unregistering,
              let endpointIdentifier else {
            out.append(.disengaged(callKey: callKey))
            return
        }
        let p = call.parameters
        let gkid = gatekeeperIdentifier
        let tokens = config.cryptoTokens
        let reason: DisengageReason = cause == Q850.normalClearing ? .normalDrop : .forcedDrop
        request(.drq(callKey: callKey), now: now, policy: .drq, &out) { seq in
            .disengageRequest(DisengageRequest(
                requestSeqNum: seq, endpointIdentifier: endpointIdentifier, conferenceID: p.conferenceID,
                callReferenceValue: p.callReferenceValue, disengageReason: reason,
                callIdentifier: CallIdentifier(guid: p.callIdentifier), gatekeeperIdentifier: gkid,
                cryptoTokens: tokens, answeredCall: p.answerCall,
                terminationCause: .releaseCompleteCauseIE(Q931Cause(value: cause).contents)))
        }
    }

    // MARK: Messages from the gatekeeper

    private mutating func receive(_ message: RasMessage, from: EndpointAddress, now: UInt64, _ out: inout [RASAction]) {
        switch message {
        case .gatekeeperConfirm(let gcf):
            guard let p = take(gcf.requestSeqNum, .grq) else { return }
            _ = p
            gatekeeperIdentifier = gcf.gatekeeperIdentifier ?? gatekeeperIdentifier
            if let ras = EndpointAddress(gcf.rasAddress) { gatekeeperRAS = ras }
            sendFullRRQ(now: now, &out)
        case .gatekeeperReject(let grj):
            guard take(grj.requestSeqNum, .grq) != nil else { return }
            lost("GRJ \(grj.rejectReason)", now: now, &out)
        case .registrationConfirm(let rcf):
            guard let p = take(rcf.requestSeqNum, .fullRRQ) ?? take(rcf.requestSeqNum, .keepAliveRRQ) else { return }
            let first = p.kind == .fullRRQ
            endpointIdentifier = rcf.endpointIdentifier.isEmpty ? endpointIdentifier : rcf.endpointIdentifier
            gatekeeperIdentifier = rcf.gatekeeperIdentifier ?? gatekeeperIdentifier
            timeToLive = rcf.timeToLive ?? (first ? nil : timeToLive)
            state = .registered
            scheduleKeepAlive(now: now)
            if first { out.append(.registered(endpointIdentifier: rcf.endpointIdentifier, timeToLive: timeToLive)) }
        case .registrationReject(let rrj):
            guard let p = take(rrj.requestSeqNum, .fullRRQ) ?? take(rrj.requestSeqNum, .keepAliveRRQ) else { return }
            if p.kind == .keepAliveRRQ {
                // H.225.0 7.9.1: the gatekeeper forgot us; register in full at once.
                endpointIdentifier = nil
                sendFullRRQ(now: now, &out)
                return
            }
            if rrj.rejectReason == .discoveryRequired && config.discover {
                gatekeeperIdentifier = nil
                beginRegistration(now: now, &out)
                return
            }
            state = .backingOff
            retryAt = now &+ config.reregisterDelayMs
            out.append(.registrationRejected(rrj.rejectReason))
        case .unregistrationConfirm(let ucf):
            guard take(ucf.requestSeqNum, .urq) != nil else { return }
            finishUnregistration(&out)
        case .unregistrationReject(let urj):
            // Either way we are gone from our side.
            guard take(urj.requestSeqNum, .urq) != nil else { return }
            finishUnregistration(&out)
        case .unregistrationRequest(let urq):
            out.append(.send(.unregistrationConfirm(UnregistrationConfirm(requestSeqNum: urq.requestSeqNum)), to: replyAddress(from)))
            guard state == .registered || state == .registering else { return }
            lost("unregistered by the gatekeeper (\(urq.reason.map { "\($0)" } ?? "no reason"))", now: now, &out)
            // Re-register at once (the gatekeeper may have restarted or asked for it).
            sendFullRRQ(now: now, &out)
        case .admissionConfirm(let acf):
            guard let p = pending[acf.requestSeqNum], case .arq(let key) = p.kind else { return }
            pending[acf.requestSeqNum] = nil
            calls[key]?.bandwidth = acf.bandWidth
            out.append(.admitted(callKey: key, destination: EndpointAddress(acf.destCallSignalAddress),
                                 routed: acf.callModel == .gatekeeperRouted))
        case .admissionReject(let arj):
            guard let p = pending[arj.requestSeqNum], case .arq(let key) = p.kind else { return }
            pending[arj.requestSeqNum] = nil
            calls[key] = nil
            out.append(.admissionFailed(callKey: key, cause: Q850.cause(for: arj.rejectReason)))
        case .disengageConfirm(let dcf):
            guard let p = pending[dcf.requestSeqNum], case .drq(let key) = p.kind else { return }
            pending[dcf.requestSeqNum] = nil
            out.append(.disengaged(callKey: key))
        case .disengageReject(let drj):
            guard let p = pending[drj.requestSeqNum], case .drq(let key) = p.kind else { return }
            pending[drj.requestSeqNum] = nil
            out.append(.disengaged(callKey: key))
        case .disengageRequest(let drq):
            out.append(.send(.disengageConfirm(DisengageConfirm(requestSeqNum: drq.requestSeqNum)), to: replyAddress(from)))
            if let key = callKey(callIdentifier: drq.callIdentifier?.guid, crv: drq.callReferenceValue) {
                calls[key] = nil
                out.append(.disengageRequested(callKey: key))
            }
        case .bandwidthRequest(let brq):
            // A gatekeeper-initiated change: accept it (G.711 needs no more than it had).
            if let key = callKey(callIdentifier: brq.callIdentifier?.guid, crv: brq.callReferenceValue) {
                calls[key]?.bandwidth = brq.bandWidth
            }
            out.append(.send(.bandwidthConfirm(BandwidthConfirm(requestSeqNum: brq.requestSeqNum, bandWidth: brq.bandWidth)),
                             to: replyAddress(from)))
        case .infoRequest(let irq):
            out.append(.send(.infoRequestResponse(infoRequestResponse(irq)), to: EndpointAddress(irq.replyAddress) ?? replyAddress(from)))
        case .requestInProgress(let rip):
            // H.225.0 7.18: the answer will take longer; wait that long for this request.
            if var p = pending[rip.requestSeqNum] {
                p.deadline = now &+ UInt64(max(0, rip.delay))
                pending[rip.requestSeqNum] = p
            }
        default:
            break
        }
    }

    private func replyAddress(_ from: EndpointAddress) -> EndpointAddress { from }

    private func callKey(callIdentifier: [UInt8]?, crv: Int) -> Int? {
        if let callIdentifier, let hit = calls.first(where: { $0.value.parameters.callIdentifier == callIdentifier }) {
            return hit.key
        }
        return calls.first { $0.value.parameters.callReferenceValue == crv }?.key
    }

    private func infoRequestResponse(_ irq: InfoRequest) -> InfoRequestResponse {
        var perCall: [InfoRequestResponse.PerCallInfoElement] = []
        for call in calls.values.sorted(by: { $0.parameters.callKey < $1.parameters.callKey }) {
            let p = call.parameters
            if irq.callReferenceValue != 0 && p.callReferenceValue != irq.callReferenceValue { continue }
            perCall.append(InfoRequestResponse.PerCallInfoElement(
                callReferenceValue: p.callReferenceValue, conferenceID: p.conferenceID, originator: !p.answerCall,
                h245: TransportChannelInfo(), callSignalling: TransportChannelInfo(sendAddress: config.callSignalAddress.transportAddress),
                callType: .pointToPoint, bandWidth: call.bandwidth, callModel: .direct,
                callIdentifier: CallIdentifier(guid: p.callIdentifier)))
        }
        return InfoRequestResponse(
            requestSeqNum: irq.requestSeqNum, endpointType: config.endpointType,
            endpointIdentifier: endpointIdentifier ?? "", rasAddress: config.rasAddress.transportAddress,
            callSignalAddress: [config.callSignalAddress.transportAddress], endpointAlias: config.aliases,
            perCallInfo: perCall.isEmpty ? nil : perCall, cryptoTokens: config.cryptoTokens)
    }

    private mutating func finishUnregistration(_ out: inout [RASAction]) {
        state = .unregistered
        endpointIdentifier = nil
        keepAliveAt = nil
        out.append(.unregistered)
    }

    private mutating func scheduleKeepAlive(now: UInt64) {
        guard let ttl = timeToLive, ttl > 0 else {
            keepAliveAt = nil
            return
        }
        // Leave room for every retry of the keep-alive before the registration expires.
        let ttlMs = UInt64(ttl) * 1000
        let margin = RASRetryPolicy.rrq.timeoutMs * UInt64(RASRetryPolicy.rrq.retries + 1) + 1000
        keepAliveAt = now &+ (ttlMs > margin * 2 ? ttlMs - margin : ttlMs / 2)
    }

    // MARK: Transactions

    private mutating func allocateSeq() -> Int {
        // 1...65535; 0 is avoided so that a zeroed message never matches.
        repeat {
            let seq = nextSeq
            nextSeq = nextSeq >= 65535 ? 1 : nextSeq + 1
            if pending[seq] == nil { return seq }
        } while true
    }

    private mutating func request(_ kind: Kind, now: UInt64, policy: RASRetryPolicy, _ out: inout [RASAction],
                                  _ build: (Int) -> RasMessage) {
        let seq = allocateSeq()
        let message = build(seq)
        pending[seq] = Pending(kind: kind, message: message, attemptsLeft: policy.retries,
                               timeoutMs: policy.timeoutMs, deadline: now &+ policy.timeoutMs)
        out.append(.send(message, to: gatekeeperRAS))
    }

    private mutating func take(_ seq: Int, _ kind: Kind) -> Pending? {
        guard let p = pending[seq], p.kind == kind else { return nil }
        pending[seq] = nil
        return p
    }

    private mutating func expireTimers(now: UInt64, _ out: inout [RASAction]) {
        for seq in pending.keys.sorted() {
            guard var p = pending[seq], p.deadline <= now else { continue }
            if p.attemptsLeft > 0 {
                p.attemptsLeft -= 1
                p.deadline = now &+ p.timeoutMs
                pending[seq] = p
                out.append(.send(p.message, to: gatekeeperRAS))  // same sequence number: a retransmission
                continue
            }
            pending[seq] = nil
            switch p.kind {
            case .grq, .fullRRQ, .keepAliveRRQ:
                lost("gatekeeper \(gatekeeperRAS) did not answer", now: now, &out)
            case .urq:
                finishUnregistration(&out)
            case .arq(let key):
                calls[key] = nil
                out.append(.admissionFailed(callKey: key, cause: Q850.noRouteToDestination))
            case .drq(let key):
                out.append(.disengaged(callKey: key))
            }
        }
        if let t = keepAliveAt, t <= now, state == .registered {
            keepAliveAt = nil
            sendKeepAlive(now: now, &out)
        }
        if let t = retryAt, t <= now, state == .backingOff {
            retryAt = nil
            beginRegistration(now: now, &out)
        }
    }
}
