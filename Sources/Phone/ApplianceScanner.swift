// Measures the round trip to each configured appliance: UDP probes first (cheap,
// no connection); an appliance that answers none of them — UDP blocked on the
// way — is measured with PING/PONG over a fresh TCP/TLS connection instead.
// Blocking: a scan takes at most about rounds × probe timeout + the tunnel pings.
import Glibc
import IO
import Tunnel

public struct ScanOptions: Sendable {
    public var rounds = 5
    public var probeTimeoutMs = 250
    public var tunnelTimeoutMs = 2000
    public var useUDP = true
    public init() {}
}

public enum ApplianceScanner {
    public static func scan(_ appliances: [Appliance], tlsContext: TLSContext?, options: ScanOptions = ScanOptions(),
                            progress: (String) -> Void = { _ in }) -> [ApplianceMeasurement] {
        var results = appliances.map { ApplianceMeasurement(appliance: $0, method: .unreachable, samplesMs: []) }
        if options.useUDP { udpProbe(&results, options: options) }
        for index in results.indices {
            if results[index].samplesMs.isEmpty {
                progress("\(results[index].appliance): no UDP probe answer, measuring with tunnel PING")
                results[index] = tunnelPing(results[index].appliance, tlsContext: tlsContext, options: options)
            }
            let m = results[index]
            if let median = m.medianMs {
                progress("\(m.appliance): \(m.method.rawValue) median \(format(median)) ms over \(m.samplesMs.count), load \(m.activeCalls)/\(m.capacity)")
            } else {
                progress("\(m.appliance): unreachable (\(m.failure ?? "no answer"))")
            }
        }
        return results
    }

    static func udpProbe(_ results: inout [ApplianceMeasurement], options: ScanOptions) {
        guard let socket = try? UDPSocket.open() else { return }
        defer { socket.close() }
        var buffer = [UInt8](repeating: 0, count: 256)
        for _ in 0..<options.rounds {
            for m in results {
                // The probe is answered on the appliance's tunnel port, over UDP.
                _ = socket.send(ProbeWire.request(clientMicros: nowMicros()), to: m.appliance.endpoint)
            }
            var answered = Set<Int>()
            let deadline = monotonicNanoseconds() + UInt64(options.probeTimeoutMs) * 1_000_000
            while answered.count < results.count {
                let now = monotonicNanoseconds()
                guard now < deadline else { break }
                var pfd = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, Int32((deadline - now) / 1_000_000) + 1) > 0 else { continue }
                while let (count, source) = buffer.withUnsafeMutableBytes({ socket.receive(into: $0) }) {
                    guard let reply = ProbeWire.reply(buffer[0..<count]),
                          let index = results.firstIndex(where: { $0.appliance.endpoint == source }) else { continue }
                    let rtt = Double(nowMicros() &- reply.clientMicros) / 1000
                    // A late answer from an earlier round still measures a real round trip.
                    guard rtt >= 0, rtt < 10_000 else { continue }
                    results[index].samplesMs.append(rtt)
                    results[index].method = .udpProbe
                    results[index].activeCalls = reply.active
                    results[index].capacity = reply.capacity
                    answered.insert(index)
                }
            }
        }
    }

    /// HELLO, WELCOME, then PING/PONG `rounds` times (PING needs no authentication).
    static func tunnelPing(_ appliance: Appliance, tlsContext: TLSContext?, options: ScanOptions) -> ApplianceMeasurement {
        var m = ApplianceMeasurement(appliance: appliance, method: .unreachable, samplesMs: [])
        let stream: TunnelStream
        do { stream = try TunnelStream(appliance: appliance, tlsContext: tlsContext) } catch {
            m.failure = "\(error)"
            return m
        }
        let deadline = monotonicNanoseconds() + UInt64(options.tunnelTimeoutMs) * 1_000_000
        stream.send(ClientHandshake(alias: "", secret: [], crypto: PhoneCrypto()).hello(client: "bloo-phone-scan"))
        var welcomed = false
        var pingsSent = 0
        var pingOutstanding = false
        while monotonicNanoseconds() < deadline, m.samplesMs.count < options.rounds {
            if welcomed && !pingOutstanding && pingsSent < options.rounds {
                stream.send(.ping(clientTime: nowMicros()))
                pingsSent += 1
                pingOutstanding = true
            }
            stream.pump()
            if case let .closed(reason) = stream.status {
                m.failure = reason
                break
            }
            for frame in stream.takeFrames() {
                guard case let .message(message) = Message.decode(frame) else { continue }
                switch message {
                case .welcome: welcomed = true
                case let .pong(clientTime, _, active, capacity):
                    m.samplesMs.append(Double(nowMicros() &- clientTime) / 1000)
                    m.activeCalls = active
                    m.capacity = capacity
                    m.method = .tunnelPing
                    pingOutstanding = false
                case let .error(code, text):
                    m.failure = "error \(code): \(text)"
                default: break
                }
            }
            var pfd = pollfd(fd: stream.socket.fd, events: Int16(POLLIN) | (stream.wantsWrite ? Int16(POLLOUT) : 0), revents: 0)
            _ = poll(&pfd, 1, 20)
        }
        if m.samplesMs.isEmpty && m.failure == nil { m.failure = "no answer within \(options.tunnelTimeoutMs) ms" }
        return m
    }
}

/// HMAC and randomness for the tunnel handshake, from OpenSSL through IO.
public struct PhoneCrypto: TunnelCrypto {
    public init() {}
    public func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] { TLSCrypto.hmacSHA256(key: key, message: message) }
    public func randomBytes(_ count: Int) -> [UInt8] { TLSCrypto.randomBytes(count) }
}
