// LAB TOOL: `bloo lab gatekeeper`, a small H.323 gatekeeper for tests, demos and a
// technician's test call. Not part of the appliance's service. It accepts registrations,
// can refuse endpoints whose RAS source differs from what they advertise (as operator
// gatekeepers do for NATed endpoints), routes ARQs to registered aliases or, by prefix,
// to a static gateway, in direct or gatekeeper-routed mode.
import Endpoint
import EndpointIO
import H323
import IO
import Log

public struct LabGatekeeperConfig: Sendable {
    public enum Mode: String, Sendable { case direct, routed }
    public var identifier = "LabGK"
    public var rasAddress: EndpointAddress
    /// Where routed calls come in (routed mode).
    public var callSignalAddress: EndpointAddress
    public var mode: Mode = .direct
    public var rejectNATed = false
    public var timeToLive = 60
    /// An alias registered again from the same IP address but another port replaces the old
    /// registration instead of being refused as a duplicate: the appliance's mirror gives
    /// each new tunnel a new RAS port, while the old one may still be in its grace period.
    public var aliasesFollowTheirHost = false
    /// Dialled-digit prefixes sent to a static gateway ("" matches everything).
    public var routes: [(prefix: String, gateway: EndpointAddress)] = []

    public init(rasAddress: EndpointAddress, callSignalAddress: EndpointAddress) {
        self.rasAddress = rasAddress
        self.callSignalAddress = callSignalAddress
    }
}

/// The gatekeeper's decisions, sans-I/O.
public struct GatekeeperCore: Sendable {
    public struct Registration: Sendable, Equatable {
        public var endpointIdentifier: String
        public var aliases: [AliasAddress]
        public var rasAddress: EndpointAddress
        public var callSignalAddress: EndpointAddress
        public var expiresAt: UInt64
    }

    public let config: LabGatekeeperConfig
    public private(set) var registrations: [String: Registration] = [:]
    public private(set) var activeCalls: [[UInt8]: String] = [:]
    private var nextEndpoint = 1

    public init(config: LabGatekeeperConfig) { self.config = config }

    private func reply(_ m: RasMessage, _ to: EndpointAddress) -> [(RasMessage, EndpointAddress)] { [(m, to)] }

    public static func aliasText(_ alias: AliasAddress) -> String? { IncomingCallInfo.text([alias]) }

    /// Where an alias is reached: a registered endpoint, else the longest matching prefix route.
    public func route(_ aliases: [AliasAddress]) -> EndpointAddress? {
        let wanted = Set(aliases.compactMap(Self.aliasText))
        for r in registrations.values where r.aliases.contains(where: { Self.aliasText($0).map(wanted.contains) ?? false }) {
            return r.callSignalAddress
        }
        var best: (Int, EndpointAddress)? = nil
        for alias in aliases {
            guard case .dialledDigits(let digits) = alias else { continue }
            for route in config.routes where digits.hasPrefix(route.prefix) {
                if best == nil || route.prefix.count > best!.0 { best = (route.prefix.count, route.gateway) }
            }
        }
        return best?.1
    }

    public mutating func expire(now: UInt64) {
        registrations = registrations.filter { $0.value.expiresAt > now }
    }

    public mutating func handle(_ message: RasMessage, from: EndpointAddress, now: UInt64) -> [(RasMessage, EndpointAddress)] {
        expire(now: now)
        let h2250 = EndpointIdentity.h2250Protocol
        switch message {
        case .gatekeeperRequest(let grq):
            return reply(.gatekeeperConfirm(GatekeeperConfirm(requestSeqNum: grq.requestSeqNum, protocolIdentifier: h2250,
                gatekeeperIdentifier: config.identifier, rasAddress: config.rasAddress.transportAddress)), EndpointAddress(grq.rasAddress) ?? from)
        case .registrationRequest(let rrq):
            if rrq.keepAlive == true {
                guard let id = rrq.endpointIdentifier, var r = registrations[id] else {
                    return reply(.registrationReject(RegistrationReject(requestSeqNum: rrq.requestSeqNum, protocolIdentifier: h2250,
                        rejectReason: .fullRegistrationRequired, gatekeeperIdentifier: config.identifier)), from)
                }
                r.expiresAt = now + UInt64(config.timeToLive) * 1000
                registrations[id] = r
                return reply(.registrationConfirm(RegistrationConfirm(requestSeqNum: rrq.requestSeqNum, protocolIdentifier: h2250,
                    callSignalAddress: [], gatekeeperIdentifier: config.identifier, endpointIdentifier: id,
                    timeToLive: config.timeToLive)), from)
            }
            let advertised = rrq.rasAddress.lazy.compactMap { EndpointAddress($0) }.first
            guard let ras = advertised, let csa = rrq.callSignalAddress.lazy.compactMap({ EndpointAddress($0) }).first else {
                return reply(.registrationReject(RegistrationReject(requestSeqNum: rrq.requestSeqNum, protocolIdentifier: h2250,
                    rejectReason: .invalidCallSignalAddress, gatekeeperIdentifier: config.identifier)), from)
            }
            if config.rejectNATed && ras != from {
                return reply(.registrationReject(RegistrationReject(requestSeqNum: rrq.requestSeqNum, protocolIdentifier: h2250,
                    rejectReason: .invalidRASAddress, gatekeeperIdentifier: config.identifier)), from)
            }
            let aliases = rrq.terminalAlias ?? []
            let names = Set(aliases.compactMap(Self.aliasText))
            let clashes = registrations.values.filter { r in r.rasAddress != ras && r.aliases.contains { Self.aliasText($0).map(names.contains) ?? false } }
            if config.aliasesFollowTheirHost {
                for old in clashes where old.rasAddress.ip == ras.ip { registrations[old.endpointIdentifier] = nil }
            }
            if let clash = clashes.first(where: { registrations[$0.endpointIdentifier] != nil }) {
                return reply(.registrationReject(RegistrationReject(requestSeqNum: rrq.requestSeqNum, protocolIdentifier: h2250,
                    rejectReason: .duplicateAlias(clash.aliases), gatekeeperIdentifier: config.identifier)), from)
            }
            // The same endpoint registering again keeps its identifier.
            let id = registrations.values.first { $0.rasAddress == ras }?.endpointIdentifier ?? {
                defer { nextEndpoint += 1 }
                return "EP\(nextEndpoint)"
            }()
            registrations[id] = Registration(endpointIdentifier: id, aliases: aliases, rasAddress: ras, callSignalAddress: csa,
                                             expiresAt: now + UInt64(config.timeToLive) * 1000)
            return reply(.registrationConfirm(RegistrationConfirm(requestSeqNum: rrq.requestSeqNum, protocolIdentifier: h2250,
                callSignalAddress: [config.callSignalAddress.transportAddress], terminalAlias: aliases,
                gatekeeperIdentifier: config.identifier, endpointIdentifier: id, timeToLive: config.timeToLive)), ras)
        case .unregistrationRequest(let urq):
            if let id = urq.endpointIdentifier { registrations[id] = nil }
            return reply(.unregistrationConfirm(UnregistrationConfirm(requestSeqNum: urq.requestSeqNum)), from)
        case .admissionRequest(let arq):
            guard registrations[arq.endpointIdentifier] != nil else {
                return reply(.admissionReject(AdmissionReject(requestSeqNum: arq.requestSeqNum, rejectReason: .callerNotRegistered)), from)
            }
            let destination: EndpointAddress?
            if arq.answerCall {
                destination = registrations[arq.endpointIdentifier]?.callSignalAddress
            } else {
                destination = route(arq.destinationInfo ?? []) ?? EndpointAddress(arq.destCallSignalAddress)
            }
            guard let destination else {
                return reply(.admissionReject(AdmissionReject(requestSeqNum: arq.requestSeqNum, rejectReason: .calledPartyNotRegistered)), from)
            }
            if let guid = arq.callIdentifier?.guid { activeCalls[guid] = arq.endpointIdentifier }
            let routed = config.mode == .routed && !arq.answerCall
            return reply(.admissionConfirm(AdmissionConfirm(requestSeqNum: arq.requestSeqNum, bandWidth: arq.bandWidth,
                callModel: config.mode == .routed ? .gatekeeperRouted : .direct,
                destCallSignalAddress: routed ? config.callSignalAddress.transportAddress : destination.transportAddress)), from)
        case .disengageRequest(let drq):
            if let guid = drq.callIdentifier?.guid { activeCalls[guid] = nil }
            return reply(.disengageConfirm(DisengageConfirm(requestSeqNum: drq.requestSeqNum)), from)
        case .bandwidthRequest(let brq):
            return reply(.bandwidthConfirm(BandwidthConfirm(requestSeqNum: brq.requestSeqNum, bandWidth: brq.bandWidth)), from)
        default:
            return []
        }
    }
}

/// The gatekeeper on an event loop: RAS over UDP and, in routed mode, a call-signalling
/// relay that forwards each call's TPKT packets to the endpoint the Setup names.
public final class LabGatekeeper {
    let loop: EventLoop
    var core: GatekeeperCore
    let ras: UDPPort
    var listener: TCPListener?
    let log = Logger(subsystem: "lab-gatekeeper")
    var legs: [ObjectIdentifier: TPKTConnection] = [:]

    public init(loop: EventLoop, config: LabGatekeeperConfig) throws {
        self.loop = loop
        core = GatekeeperCore(config: config)
        ras = try UDPPort(loop: loop, address: config.rasAddress)
        ras.onDatagram = { [unowned self] bytes, from in self.datagram(Array(bytes), from: from) }
        if config.mode == .routed {
            let l = try TCPListener(loop: loop, address: config.callSignalAddress)
            l.onAccept = { [unowned self] socket, from in self.accept(socket, from: from) }
            listener = l
        }
        log.notice("lab gatekeeper started (LAB TOOL)", ["ras": "\(ras.address)", "mode": config.mode.rawValue,
                                                        "reject_nat": "\(config.rejectNATed)"])
    }

    /// Closes its sockets and every relayed call leg (the daemon's lab service restarts it).
    public func close() {
        let all = Array(legs.values)
        legs = [:]
        for leg in all { leg.close() }
        listener?.close()
        listener = nil
        ras.close()
    }

    func datagram(_ bytes: [UInt8], from: EndpointAddress) {
        guard let message = try? RasMessage(decoding: bytes) else {
            log.warning("undecodable RAS", ["from": "\(from)", "bytes": "\(bytes.count)"])
            return
        }
        let before = core.registrations
        for (reply, to) in core.handle(message, from: from, now: millisecondsNow()) {
            if let encoded = try? reply.encoded() { ras.send(encoded, to: to) }
            switch reply {
            case .registrationConfirm(let rcf) where before[rcf.endpointIdentifier] == nil:
                log.info("registered", ["endpoint": rcf.endpointIdentifier, "from": "\(from)",
                                        "aliases": (rcf.terminalAlias ?? []).compactMap(GatekeeperCore.aliasText).joined(separator: ",")])
            case .registrationReject(let rrj): log.info("registration rejected", ["from": "\(from)", "reason": "\(rrj.rejectReason)"])
            case .unregistrationConfirm: log.info("unregistered", ["from": "\(from)"])
            case .admissionConfirm(let acf): log.info("admitted", ["to": EndpointAddress(acf.destCallSignalAddress)?.description ?? "?"])
            case .admissionReject(let arj): log.info("admission rejected", ["reason": "\(arj.rejectReason)"])
            case .disengageConfirm: log.info("disengaged", [:])
            default: break
            }
        }
    }

    // MARK: Routed mode: relay call signalling

    func accept(_ socket: TCPSocket, from: EndpointAddress) {
        guard let caller = try? TPKTConnection(loop: loop, socket: socket, remote: from) else { return socket.close() }
        var callee: TPKTConnection?
        caller.onPacket = { [unowned self] conn, packet in
            if let callee {
                callee.send(packet: packet)  // queued by the connection while it connects
                return
            }
            guard let setup = try? Q931Message(decoding: packet), setup.messageType == .setup,
                  let info = try? H323Call.describe(setup: setup) else { return conn.close() }
            var aliases = info.destination
            if let number = info.calledNumber { aliases.append(.dialledDigits(number)) }
            guard let target = core.route(aliases), let leg = try? TPKTConnection.connect(loop: loop, to: target) else {
                conn.send(packet: (try? H323Call.rejectSetup(setup, cause: Q850.unallocatedNumber).encoded()) ?? [])
                return conn.close()
            }
            log.info("routed call", ["from": "\(from)", "to": "\(target)"])
            callee = leg
            leg.send(packet: packet)
            leg.onPacket = { _, p in caller.send(packet: p) }
            leg.onClose = { [weak caller] _ in caller?.close() }
            self.legs[ObjectIdentifier(leg)] = leg
        }
        caller.onClose = { [unowned self] conn in
            if let callee {
                callee.close()
                self.legs[ObjectIdentifier(callee)] = nil
            }
            self.legs[ObjectIdentifier(conn)] = nil
        }
        legs[ObjectIdentifier(caller)] = caller
    }
}
