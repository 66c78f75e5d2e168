// The appliances a phone may tunnel through, and how it picks one: the lowest
// median round trip, weighted by the load each reports, with hysteresis so that
// two appliances at nearly the same distance do not make the phone flap.
import IO

public struct Appliance: Hashable, Sendable, CustomStringConvertible {
    public enum Transport: String, Sendable { case tls, tcp }
    public var transport: Transport
    public var endpoint: IPv4Endpoint
    /// The name the TLS certificate must carry (defaults to the address).
    public var serverName: String?

    public init(transport: Transport, endpoint: IPv4Endpoint, serverName: String? = nil) {
        self.transport = transport
        self.endpoint = endpoint
        self.serverName = serverName
    }

    /// `tls:ADDRESS:PORT[/NAME]` or `tcp:ADDRESS:PORT`.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let transport = Transport(rawValue: String(parts[0])) else { return nil }
        var rest = String(parts[1])
        var name: String?
        if let slash = rest.firstIndex(of: "/") {
            name = String(rest[rest.index(after: slash)...])
            rest = String(rest[..<slash])
            guard let name, !name.isEmpty, name.utf8.count <= 253 else { return nil }
        }
        guard let endpoint = IPv4Endpoint(parsing: rest), endpoint.port != 0 else { return nil }
        self.init(transport: transport, endpoint: endpoint, serverName: name)
    }

    public var description: String {
        "\(transport.rawValue):\(endpoint)" + (serverName.map { "/\($0)" } ?? "")
    }
}

/// How an appliance answered the scan.
public struct ApplianceMeasurement: Sendable, Equatable {
    public enum Method: String, Sendable { case udpProbe = "udp probe", tunnelPing = "tunnel ping", unreachable }
    public var appliance: Appliance
    public var method: Method
    /// Round-trip times in milliseconds, one per answered probe.
    public var samplesMs: [Double]
    public var activeCalls: UInt32
    public var capacity: UInt32
    /// Why it is unreachable, in words.
    public var failure: String?

    public init(appliance: Appliance, method: Method, samplesMs: [Double], activeCalls: UInt32 = 0, capacity: UInt32 = 0,
                failure: String? = nil) {
        self.appliance = appliance
        self.method = method
        self.samplesMs = samplesMs
        self.activeCalls = activeCalls
        self.capacity = capacity
        self.failure = failure
    }

    public var medianMs: Double? {
        guard !samplesMs.isEmpty else { return nil }
        let sorted = samplesMs.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Calls in progress over calls it can carry (0...1); 1 when it carries none.
    public var load: Double {
        capacity == 0 ? 1 : min(1, Double(activeCalls) / Double(capacity))
    }

    public var isFull: Bool { capacity == 0 || activeCalls >= capacity }
}

/// Ranks appliances and decides whether to move from the current one.
public struct ApplianceSelector: Sendable {
    /// A fully loaded appliance counts as this many times farther away, plus one.
    public var loadWeight = 1.0
    /// Move only when the best is at least this fraction better than the current...
    public var relativeMargin = 0.2
    /// ...and at least this many milliseconds better (small RTTs are noisy).
    public var absoluteMarginMs = 2.0
    public private(set) var current: Appliance?

    public init(current: Appliance? = nil) { self.current = current }

    /// Median RTT weighted by load; nil for an unreachable or full appliance.
    public func score(_ m: ApplianceMeasurement) -> Double? {
        guard let median = m.medianMs, !m.isFull else { return nil }
        return median * (1 + loadWeight * m.load)
    }

    /// Usable appliances, best first.
    public func ranking(_ measurements: [ApplianceMeasurement]) -> [ApplianceMeasurement] {
        measurements.compactMap { m in score(m).map { (m, $0) } }
            .sorted { $0.1 < $1.1 }
            .map { $0.0 }
    }

    /// The appliance to use after this scan, and the reason in words.
    public mutating func choose(_ measurements: [ApplianceMeasurement]) -> (Appliance, String)? {
        let ranked = ranking(measurements)
        guard let best = ranked.first, let bestScore = score(best) else { return nil }
        let bestText = "\(best.appliance) (median \(format(best.medianMs ?? 0)) ms, load \(Int(best.load * 100))%)"
        if let current, current != best.appliance,
           let mine = measurements.first(where: { $0.appliance == current }), let myScore = score(mine),
           bestScore > myScore * (1 - relativeMargin) || myScore - bestScore < absoluteMarginMs {
            return (current, "staying on \(current) (score \(format(myScore))): \(bestText) is not clearly better")
        }
        let reason = current == best.appliance ? "staying on \(bestText)" : "chose \(bestText), the nearest"
        current = best.appliance
        return (best.appliance, reason)
    }

    /// Forget the current appliance (it failed).
    public mutating func drop(_ appliance: Appliance) {
        if current == appliance { current = nil }
    }
}

func format(_ value: Double, decimals: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = "\(rounded)"
    if decimals == 0, text.hasSuffix(".0") { text.removeLast(2) }
    return text
}
