import IO

/// The standalone relay's line protocol (`bloo relay`, used by system tests and the
/// benchmark): one request per line on stdin, one answer or event per line on stdout.
///
///     create [gateway=IP[:PORT]] [client=IP[:PORT]] [mux=gateway|client|both]
///     remote ID gateway|client IP:PORT [rtcp=IP:PORT]
///     mode ID active|hold
///     stats ID
///     destroy ID
///     quit
public enum ControlRequest: Equatable {
    case create(gateway: IPv4Endpoint?, client: IPv4Endpoint?, muxGateway: Bool, muxClient: Bool)
    case remote(SessionID, Side, IPv4Endpoint, rtcp: IPv4Endpoint?)
    case mode(SessionID, SessionMode)
    case stats(SessionID)
    case destroy(SessionID)
    case quit
}

public enum ControlLines {
    /// Parses one request line; the error text says what is wrong.
    public static func parse(_ line: String) -> Result<ControlRequest, ControlLineError> {
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let verb = words.first else { return .failure(.init("empty request")) }
        let rest = Array(words.dropFirst())
        switch verb {
        case "create":
            var gateway: IPv4Endpoint?, client: IPv4Endpoint?
            var muxGateway = false, muxClient = false
            for word in rest {
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { return .failure(.init("create: expected key=value, got '\(word)'")) }
                switch parts[0] {
                case "gateway", "client":
                    guard let endpoint = endpoint(parts[1]) else {
                        return .failure(.init("create: '\(parts[1])' is not an IPv4 address[:port]"))
                    }
                    if parts[0] == "gateway" { gateway = endpoint } else { client = endpoint }
                case "mux":
                    switch parts[1] {
                    case "gateway": muxGateway = true
                    case "client": muxClient = true
                    case "both": muxGateway = true; muxClient = true
                    default: return .failure(.init("create: mux must be gateway, client or both"))
                    }
                default:
                    return .failure(.init("create: unknown key '\(parts[0])'"))
                }
            }
            return .success(.create(gateway: gateway, client: client, muxGateway: muxGateway, muxClient: muxClient))
        case "remote":
            let usage = ControlLineError("usage: remote ID gateway|client IP:PORT [rtcp=IP:PORT]")
            guard rest.count == 3 || rest.count == 4, let id = sessionID(rest[0]), let side = side(rest[1]),
                  let endpoint = IPv4Endpoint(parsing: rest[2]) else {
                return .failure(usage)
            }
            var rtcp: IPv4Endpoint?
            if rest.count == 4 {
                guard rest[3].hasPrefix("rtcp="), let parsed = IPv4Endpoint(parsing: String(rest[3].dropFirst(5))) else {
                    return .failure(usage)
                }
                rtcp = parsed
            }
            return .success(.remote(id, side, endpoint, rtcp: rtcp))
        case "mode":
            guard rest.count == 2, let id = sessionID(rest[0]) else { return .failure(.init("usage: mode ID active|hold")) }
            switch rest[1] {
            case "active": return .success(.mode(id, .active))
            case "hold": return .success(.mode(id, .hold))
            default: return .failure(.init("usage: mode ID active|hold"))
            }
        case "stats", "destroy":
            guard rest.count == 1, let id = sessionID(rest[0]) else { return .failure(.init("usage: \(verb) ID")) }
            return .success(verb == "stats" ? .stats(id) : .destroy(id))
        case "quit":
            return rest.isEmpty ? .success(.quit) : .failure(.init("usage: quit"))
        default:
            return .failure(.init("unknown request '\(verb)'"))
        }
    }

    private static func endpoint(_ text: String) -> IPv4Endpoint? {
        text.contains(":") ? IPv4Endpoint(parsing: text) : IPv4Endpoint(text, port: 0)
    }

    private static func sessionID(_ text: String) -> SessionID? { UInt64(text).map(SessionID.init) }

    private static func side(_ text: String) -> Side? {
        switch text {
        case "gateway": .gateway
        case "client": .client
        default: nil
        }
    }

    /// One event as a line of key=value fields.
    public static func format(_ event: RelayEvent) -> String {
        switch event {
        case let .firstPacket(id, side, from):
            return "event first-packet id=\(id) side=\(side) from=\(from)"
        case let .timeout(id, idle):
            return "event timeout id=\(id) idle_ms=\(idle / 1_000_000)"
        case .stats(let stats):
            return "event stats " + format(stats)
        case .destroyed(let stats):
            return "event destroyed " + format(stats)
        case .unknownSession(let id):
            return "event unknown-session id=\(id)"
        }
    }

    public static func format(_ stats: SessionStats) -> String {
        let now = monotonicNanoseconds()
        var fields = ["id=\(stats.id)",
                      "gateway_remote=\(stats.gatewayRemote?.description ?? "-")",
                      "client_remote=\(stats.clientRemote?.description ?? "-")"]
        for (prefix, c) in [("g", stats.fromGateway), ("c", stats.fromClient)] {
            fields += ["\(prefix)_packets=\(c.packets)", "\(prefix)_bytes=\(c.bytes)", "\(prefix)_forwarded=\(c.forwarded)",
                       "\(prefix)_rtcp=\(c.rtcpPackets)", "\(prefix)_expected=\(c.stream.expected)",
                       "\(prefix)_lost=\(c.stream.lost)", "\(prefix)_dup=\(c.stream.duplicates)",
                       "\(prefix)_reorder=\(c.stream.reordered)", "\(prefix)_jitter=\(c.stream.jitter)",
                       "\(prefix)_drop_wrong_source=\(c.drops.wrongSource)", "\(prefix)_drop_malformed=\(c.drops.malformed)",
                       "\(prefix)_drop_bad_version=\(c.drops.badVersion)", "\(prefix)_drop_truncated=\(c.drops.truncatedHeader + c.drops.tooShort)",
                       "\(prefix)_drop_no_destination=\(c.drops.noDestination)", "\(prefix)_drop_send=\(c.drops.sendFailed)",
                       "\(prefix)_kernel_drops=\(c.kernelDrops)", "\(prefix)_relatches=\(c.relatches)",
                       "\(prefix)_idle_ms=\(c.lastSeenNanoseconds == 0 ? "-" : String((now &- c.lastSeenNanoseconds) / 1_000_000))"]
        }
        return fields.joined(separator: " ")
    }
}

public struct ControlLineError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
