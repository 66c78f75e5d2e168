// Direct mode: the phone first registers to the operator's gatekeeper itself,
// with the same RAS client the appliance's mirror uses (Endpoint.RASClient). Any
// RRJ, or no answer within the H.225.0 retries (a firewall), sends it to the
// tunnel instead; the decision is remembered per network (local address and
// default gateway), so the next start on that network goes straight to the tunnel.
import Endpoint
import Glibc
import H323
import IO

/// The outcome of a direct registration attempt, in plain words.
public struct DirectOutcome: Sendable, Equatable {
    public var registered: Bool
    public var reason: String
    public var endpointIdentifier: String?
}

public enum DirectRegistration {
    /// A registration kept alive for direct calls: the RAS socket (connected to the
    /// gatekeeper) and the RAS client that holds the registration.
    struct Live {
        var socket: UDPSocket
        var client: RASClient
        var local: IPv4Endpoint
        var gatekeeper: EndpointAddress
    }

    /// Registers `alias` at `gatekeeper` over UDP and waits for RCF, RRJ or the end of
    /// the RRQ retries (H.225.0: 3 s, 2 retries), then unregisters: a check of the network only.
    public static func attempt(gatekeeper: IPv4Endpoint, alias: String, retry: RASRetryPolicy = .rrq,
                               progress: (String) -> Void = { _ in }) -> DirectOutcome {
        attempt(gatekeeper: gatekeeper, alias: alias, retry: retry, callSignalPort: 1720, keep: false, progress: progress).0
    }

    /// The same, keeping the registration when `keep` (the caller then owns `Live`);
    /// `callSignalPort` is where the phone listens for incoming calls.
    static func attempt(gatekeeper: IPv4Endpoint, alias: String, retry: RASRetryPolicy, callSignalPort: UInt16, keep: Bool,
                        progress: (String) -> Void) -> (DirectOutcome, Live?) {
        guard let socket = try? UDPSocket.open() else { return (DirectOutcome(registered: false, reason: "cannot open a UDP socket"), nil) }
        var kept = false
        defer { if !kept { socket.close() } }
        do { try socket.connect(gatekeeper) } catch {
            return (DirectOutcome(registered: false, reason: "no route to the gatekeeper \(gatekeeper): \(error)"), nil)
        }
        guard let local = try? socket.localEndpoint() else {
            return (DirectOutcome(registered: false, reason: "cannot read the local address"), nil)
        }
        let alias: AliasAddress = alias.allSatisfy({ "+0123456789#*,".contains($0) })
            ? .dialledDigits(alias.filter { $0 != "+" }) : .h323ID(alias)
        let config = RASConfig(gatekeeper: EndpointAddress(ip: gatekeeper.address, port: gatekeeper.port),
                               rasAddress: EndpointAddress(ip: local.address, port: local.port),
                               callSignalAddress: EndpointAddress(ip: local.address, port: callSignalPort),
                               aliases: [alias], discover: false)
        var client = RASClient(config: config)
        progress("registering directly to the gatekeeper \(gatekeeper) from \(local)")
        var actions = client.handle(.start, now: milliseconds())
        var buffer = [UInt8](repeating: 0, count: 4096)
        // RRQ timeout × (retries + 1), and a little more for the last answer.
        let deadline = milliseconds() + retry.timeoutMs * UInt64(retry.retries + 1) + 500
        while true {
            for action in actions {
                switch action {
                case let .send(message, _):
                    if let bytes = try? message.encoded() { _ = bytes.withUnsafeBytes { Glibc.send(socket.fd, $0.baseAddress, $0.count, 0) } }
                case let .registered(identifier, _):
                    let outcome = DirectOutcome(registered: true, reason: "the gatekeeper \(gatekeeper) confirmed the registration (RCF)",
                                                endpointIdentifier: identifier)
                    if keep {
                        kept = true
                        return (outcome, Live(socket: socket, client: client, local: local, gatekeeper: config.gatekeeper))
                    }
                    // Registration proven; leave the gatekeeper clean.
                    for unregister in client.handle(.unregister, now: milliseconds()) {
                        if case let .send(message, _) = unregister, let bytes = try? message.encoded() {
                            _ = bytes.withUnsafeBytes { Glibc.send(socket.fd, $0.baseAddress, $0.count, 0) }
                        }
                    }
                    return (outcome, nil)
                case let .registrationRejected(why):
                    return (DirectOutcome(registered: false, reason: "the gatekeeper \(gatekeeper) rejected the registration (RRJ, \(rejectText(why)))"), nil)
                case let .registrationLost(why):
                    return (DirectOutcome(registered: false, reason: "no RAS answer from \(gatekeeper) within the H.225.0 retries (\(why)); a firewall may be in the way"), nil)
                default:
                    break
                }
            }
            let now = milliseconds()
            guard now < deadline else {
                return (DirectOutcome(registered: false, reason: "no RAS answer from \(gatekeeper) within the H.225.0 retries; a firewall may be in the way"), nil)
            }
            var pfd = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            let wait = min(deadline - now, client.nextDeadline.map { $0 > now ? $0 - now : 0 } ?? 200)
            actions = []
            if poll(&pfd, 1, Int32(min(wait, 1000))) > 0 {
                let count = buffer.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if count > 0, let message = try? RasMessage(decoding: Array(buffer[0..<count])) {
                    actions = client.handle(.received(message, from: config.gatekeeper), now: milliseconds())
                } else if count < 0, errno == ECONNREFUSED {
                    // ICMP port unreachable: keep waiting for the retries, as a firewall would make us.
                    continue
                }
            } else {
                actions = client.handle(.tick, now: milliseconds())
            }
        }
    }

    static func rejectText(_ reason: RegistrationRejectReason) -> String {
        let text = "\(reason)"
        switch text {
        case "invalidRASAddress": return "invalidRASAddress: the gatekeeper sees another address than the phone's own, a NAT"
        default: return text
        }
    }

    static func milliseconds() -> UInt64 { monotonicNanoseconds() / 1_000_000 }
}

/// The network the phone is on: its local address towards the gatekeeper and the default gateway.
public struct NetworkKey: Hashable, Sendable, CustomStringConvertible {
    public var local: String
    public var gateway: String
    public var description: String { "local \(local), gateway \(gateway)" }

    /// The current network as seen towards `target`.
    public static func current(towards target: IPv4Endpoint) -> NetworkKey {
        var local = "unknown"
        if let socket = try? UDPSocket.open() {
            if (try? socket.connect(target)) != nil, let endpoint = try? socket.localEndpoint() { local = endpoint.addressText }
            socket.close()
        }
        return NetworkKey(local: local, gateway: defaultGateway() ?? "none")
    }

    /// The default route's gateway from /proc/net/route (hex, little-endian).
    static func defaultGateway() -> String? {
        guard let text = try? String(decoding: WAVFile.readFile("/proc/net/route", limit: 1 << 20), as: UTF8.self) else { return nil }
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count > 2, fields[1] == "00000000", let raw = UInt32(fields[2], radix: 16) else { continue }
            if raw == 0 { return "direct" }
            return IPv4Endpoint(address: raw.byteSwapped, port: 0).addressText
        }
        return nil
    }
}

/// Remembered decisions, one line per network: `LOCAL GATEWAY direct|tunnel REASON...`.
public struct NetworkMemory: Sendable {
    public let path: String
    public private(set) var decisions: [NetworkKey: (tunnel: Bool, reason: String)] = [:]

    public init(path: String) {
        self.path = path
        guard let bytes = try? WAVFile.readFile(path, limit: 256 << 10) else { return }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 3).map(String.init)
            guard fields.count >= 3, fields[2] == "direct" || fields[2] == "tunnel" else { continue }
            decisions[NetworkKey(local: fields[0], gateway: fields[1])] = (fields[2] == "tunnel", fields.count > 3 ? fields[3] : "")
        }
    }

    public func decision(for key: NetworkKey) -> (tunnel: Bool, reason: String)? { decisions[key] }

    /// Records and writes the file (atomically: temporary file, then rename).
    public mutating func remember(_ key: NetworkKey, tunnel: Bool, reason: String) {
        decisions[key] = (tunnel, reason.split(separator: "\n").joined(separator: " "))
        let lines = decisions.prefix(256).map { "\($0.key.local) \($0.key.gateway) \($0.value.tunnel ? "tunnel" : "direct") \($0.value.reason)\n" }
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let bytes = Array(lines.joined().utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        rename(temporary, path)
    }
}
