// LAB TOOL: `bloo lab gatekeeper`, a small H.323 gatekeeper for tests, demos and a
// technician's test call. Not part of the appliance's service. It accepts registrations,
// can refuse endpoints whose RAS source differs from what they advertise (as operator
// gatekeepers do for NATed endpoints), routes ARQs to registered aliases or, by prefix,
// to a static gateway, in direct or gatekeeper-routed mode.
import Endpoint
import Glibc
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
    /// When set, a full RRQ must carry an H.235 password token (MD5 pwdHash) that matches
    /// this table (alias -> password); otherwise RRJ securityDenial.
    public var h235Passwords: [String: String]?
    /// How far a token's timestamp may be from the gatekeeper's clock.
    public var h235WindowSeconds = 120

    public init(rasAddress: EndpointAddress, callSignalAddress: EndpointAddress) {
        self.rasAddress = rasAddress
        self.callSignalAddress = callSignalAddress
    }

    /// The password table's text form: `alias password` per line, `#` comments.
    public static func parsePasswords(_ text: String) throws(LabConfigError) -> [String: String] {
        var table: [String: String] = [:]
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count == 2 else { throw LabConfigError("line \(number + 1): expected 'alias password'") }
            guard H235PasswordHash.password(fromSecret: Array(fields[1].utf8)) != nil,
                  H235PasswordHash.password(fromSecret: Array(fields[0].utf8)) != nil else {
                throw LabConfigError("line \(number + 1): alias and password must be BMP text")
            }
            guard table[String(fields[0])] == nil else { throw LabConfigError("line \(number + 1): duplicate alias \(fields[0])") }
            table[String(fields[0])] = String(fields[1])
        }
        return table
    }
}

public struct LabConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The gatekeeper's decisions, sans-I/O. Registrations are indexed by endpoint
/// identifier, RAS address and alias, so that every RAS message costs the same
/// whether 10 or 10,000 endpoints are registered.
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
    private var byRAS: [EndpointAddress: String] = [:]
    private var byAlias: [String: String] = [:]
    public private(set) var activeCalls: [[UInt8]: String] = [:]
    private var nextEndpoint = 1
    private var nextSweep: UInt64 = 0
    private var h235: H235PasswordVerifier?
    /// The last RRQ whose token was accepted, per RAS source: its retransmission (same
    /// sequence number and token, the RCF was lost) is answered again, not taken for a replay.
    private var acceptedRRQ: [EndpointAddress: (seq: Int, token: H235PasswordHash.Presented)] = [:]
    /// Why the last RRJ for security reasons was sent (for the log).
    public private(set) var lastSecurityRefusal: String?

    public init(config: LabGatekeeperConfig) {
        self.config = config
        if let passwords = config.h235Passwords {
            h235 = H235PasswordVerifier(passwords: passwords, windowSeconds: config.h235WindowSeconds)
        }
    }

    private func reply(_ m: RasMessage, _ to: EndpointAddress) -> [(RasMessage, EndpointAddress)] { [(m, to)] }

    public static func aliasText(_ alias: AliasAddress) -> String? { IncomingCallInfo.text([alias]) }

    /// Where an alias is reached: a registered endpoint, else the longest matching prefix route.
    public func route(_ aliases: [AliasAddress]) -> EndpointAddress? {
        for alias in aliases {
            if let text = Self.aliasText(alias), let id = byAlias[text], let r = registrations[id] { return r.callSignalAddress }
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

    /// Drops expired registrations; the full sweep runs at most once a second.
    public mutating func expire(now: UInt64) {
        guard now >= nextSweep else { return }
        nextSweep = now + 1000
        for (id, r) in registrations where r.expiresAt <= now { remove(id) }
    }

    private mutating func remove(_ id: String) {
        guard let old = registrations.removeValue(forKey: id) else { return }
        if byRAS[old.rasAddress] == id { byRAS[old.rasAddress] = nil }
        for alias in old.aliases { if let text = Self.aliasText(alias), byAlias[text] == id { byAlias[text] = nil } }
    }

    private mutating func insert(_ r: Registration) {
        remove(r.endpointIdentifier)
        registrations[r.endpointIdentifier] = r
        byRAS[r.rasAddress] = r.endpointIdentifier
        for alias in r.aliases { if let text = Self.aliasText(alias) { byAlias[text] = r.endpointIdentifier } }
    }

    private func live(_ id: String, now: UInt64) -> Registration? {
        guard let r = registrations[id], r.expiresAt > now else { return nil }
        return r
    }

    public mutating func handle(_ message: RasMessage, from: EndpointAddress, now: UInt64,
                                wallClockSeconds: Int = 0) -> [(RasMessage, EndpointAddress)] {
        expire(now: now)
        let h2250 = EndpointIdentity.h2250Protocol
        switch message {
        case .gatekeeperRequest(let grq):
            return reply(.gatekeeperConfirm(GatekeeperConfirm(requestSeqNum: grq.requestSeqNum, protocolIdentifier: h2250,
                gatekeeperIdentifier: config.identifier, rasAddress: config.rasAddress.transportAddress)), EndpointAddress(grq.rasAddress) ?? from)
        case .registrationRequest(let rrq):
            func reject(_ reason: RegistrationRejectReason) -> [(RasMessage, EndpointAddress)] {
                reply(.registrationReject(RegistrationReject(requestSeqNum: rrq.requestSeqNum, protocolIdentifier: h2250,
                    rejectReason: reason, gatekeeperIdentifier: config.identifier)), from)
            }
            lastSecurityRefusal = nil
            if rrq.keepAlive == true {
                guard let id = rrq.endpointIdentifier, var r = live(id, now: now) else { return reject(.fullRegistrationRequired) }
                r.expiresAt = now + UInt64(config.timeToLive) * 1000
                registrations[id] = r
                return reply(.registrationConfirm(RegistrationConfirm(requestSeqNum: rrq.requestSeqNum, protocolIdentifier: h2250,
                    callSignalAddress: [], gatekeeperIdentifier: config.identifier, endpointIdentifier: id,
                    timeToLive: config.timeToLive)), from)
            }
            let advertised = rrq.rasAddress.lazy.compactMap { EndpointAddress($0) }.first
            guard let ras = advertised, let csa = rrq.callSignalAddress.lazy.compactMap({ EndpointAddress($0) }).first else {
                return reject(.invalidCallSignalAddress)
            }
            if config.rejectNATed && ras != from { return reject(.invalidRASAddress) }
            let aliases = rrq.terminalAlias ?? []
            let names = aliases.compactMap(Self.aliasText)
            let presented = H235PasswordHash.presented(in: rrq.cryptoTokens)
            // Only while that registration lives: after URQ the same bytes are a replay.
            let retransmission = presented != nil && byRAS[from] != nil
                && acceptedRRQ[from].map { $0.seq == rrq.requestSeqNum && $0.token == presented } == true
            if var verifier = h235, !retransmission {
                let verdict = verifier.check(rrq.cryptoTokens, aliases: names, nowSeconds: wallClockSeconds, md5: TLSCrypto.md5)
                h235 = verifier
                switch verdict {
                case .accepted:
                    if let presented { acceptedRRQ[from] = (rrq.requestSeqNum, presented) }
                case .denied(let why):
                    lastSecurityRefusal = why
                    return reject(.securityDenial)
                case .wrongTime(let why):
                    lastSecurityRefusal = why
                    return reject(.securityError(.securityWrongSyncTime))
                case .replay(let why):
                    lastSecurityRefusal = why
                    return reject(.securityError(.securityReplay))
                }
            }
            for name in names {
                if let id = byAlias[name], let clash = live(id, now: now), clash.rasAddress != ras {
                    if config.aliasesFollowTheirHost && clash.rasAddress.ip == ras.ip {
                        remove(id)  // the same host from a new port: the new registration wins
                        continue
                    }
                    return reject(.duplicateAlias(clash.aliases))
                }
            }
            // The same endpoint registering again keeps its identifier.
            let id = byRAS[ras] ?? {
                defer { nextEndpoint += 1 }
                return "EP\(nextEndpoint)"
            }()
            insert(Registration(endpointIdentifier: id, aliases: aliases, rasAddress: ras, callSignalAddress: csa,
                                expiresAt: now + UInt64(config.timeToLive) * 1000))
            return reply(.registrationConfirm(RegistrationConfirm(requestSeqNum: rrq.requestSeqNum, protocolIdentifier: h2250,
                callSignalAddress: [config.callSignalAddress.transportAddress], terminalAlias: aliases,
                gatekeeperIdentifier: config.identifier, endpointIdentifier: id, timeToLive: config.timeToLive)), ras)
        case .unregistrationRequest(let urq):
            if let id = urq.endpointIdentifier { remove(id) }
            return reply(.unregistrationConfirm(UnregistrationConfirm(requestSeqNum: urq.requestSeqNum)), from)
        case .admissionRequest(let arq):
            guard let caller = live(arq.endpointIdentifier, now: now) else {
                return reply(.admissionReject(AdmissionReject(requestSeqNum: arq.requestSeqNum, rejectReason: .callerNotRegistered)), from)
            }
            let destination: EndpointAddress?
            if arq.answerCall {
                destination = caller.callSignalAddress
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
                                                        "reject_nat": "\(config.rejectNATed)",
                                                        "h235": config.h235Passwords.map { "\($0.count) subscribers" } ?? "off"])
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
        var fullRRQ = false
        if case .registrationRequest(let rrq) = message, rrq.keepAlive != true { fullRRQ = true }
        for (reply, to) in core.handle(message, from: from, now: millisecondsNow(), wallClockSeconds: Int(time(nil))) {
            if let encoded = try? reply.encoded() { ras.send(encoded, to: to) }
            switch reply {
            case .registrationConfirm(let rcf) where fullRRQ:
                log.info("registered", ["endpoint": rcf.endpointIdentifier, "from": "\(from)",
                                        "aliases": (rcf.terminalAlias ?? []).compactMap(GatekeeperCore.aliasText).joined(separator: ","),
                                        "h235": core.config.h235Passwords == nil ? "off" : "verified"])
            case .registrationReject(let rrj):
                log.info("registration rejected", ["from": "\(from)", "reason": "\(rrj.rejectReason)",
                                                   "h235": core.lastSecurityRefusal ?? "-"])
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
