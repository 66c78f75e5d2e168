import IO
import Relay

/// `bloo relay`: the media relay alone, driven by request lines on stdin
/// (see Relay/ControlLines.swift); used by the system tests and the benchmark.
enum RelayCommandLine {
    static let usage = """
        bloo relay [--address IP] [--gateway-address IP] [--client-address IP] [--ports LO-HI] \
        [--client-ports LO-HI] [--cpus N,M|none] [--quarantine-ms N] [--idle-timeout-ms N] \
        [--hold-timeout-ms N] [--scan-ms N] [--stats-interval-ms N] [--dscp N|none] [--rcvbuf BYTES] \
        [--sndbuf BYTES] [--batch N] [--busy-poll-us N] [--latch-any] [--no-gso] \
        [--send-sockets]
        """

    static let command = Command(name: "relay", summary: "run the RTP relay alone, controlled by lines on stdin",
                                 usage: usage) { words in
        let arguments = try Arguments(words, command: "relay",
            options: ["address", "gateway-address", "client-address", "ports", "client-ports", "cpus",
                      "quarantine-ms", "idle-timeout-ms", "hold-timeout-ms", "scan-ms", "stats-interval-ms",
                      "dscp", "rcvbuf", "sndbuf", "batch", "busy-poll-us"],
            flags: ["latch-any", "no-gso", "send-sockets"])
        guard arguments.positionals.isEmpty else { throw UsageError("relay: takes no positional arguments") }
        let configuration = try configuration(from: arguments)
        let relay = try StandaloneRelay(configuration: configuration)
        return try relay.run()
    }

    static func configuration(from arguments: Arguments) throws -> RelayConfiguration {
        var configuration = RelayConfiguration()
        func address(_ name: String) throws -> IPv4Endpoint? {
            guard let text = arguments.value(name) else { return nil }
            guard let endpoint = IPv4Endpoint(text, port: 0) else { throw UsageError("relay: --\(name) must be an IPv4 address") }
            return endpoint
        }
        func range(_ name: String) throws -> ClosedRange<UInt16>? {
            guard let text = arguments.value(name) else { return nil }
            let parts = text.split(separator: "-").map { UInt16($0) }
            guard parts.count == 2, let low = parts[0], let high = parts[1], low >= 1024, low < high else {
                throw UsageError("relay: --\(name) must be LOW-HIGH with 1024 <= LOW < HIGH <= 65535")
            }
            return low...high
        }
        func milliseconds(_ name: String) throws -> UInt64? {
            try arguments.integer(name, command: "relay", range: 1...86_400_000).map { UInt64($0) * 1_000_000 }
        }
        if let both = try address("address") { configuration.gatewayAddress = both; configuration.clientAddress = both }
        if let gateway = try address("gateway-address") { configuration.gatewayAddress = gateway }
        if let client = try address("client-address") { configuration.clientAddress = client }
        if let ports = try range("ports") { configuration.gatewayPorts = ports; configuration.clientPorts = ports }
        if let ports = try range("client-ports") { configuration.clientPorts = ports }
        if let cpus = arguments.value("cpus") {
            if cpus == "none" {
                configuration.cpus = [nil]
            } else {
                let list = cpus.split(separator: ",").map { Int($0) }
                guard !list.isEmpty, list.allSatisfy({ $0 != nil && $0! >= 0 && $0! < 1024 }) else {
                    throw UsageError("relay: --cpus must be a comma-separated list of CPU numbers, or none")
                }
                configuration.cpus = list
            }
        }
        if let value = arguments.value("quarantine-ms") {
            guard let ms = UInt64(value), ms <= 86_400_000 else { throw UsageError("relay: --quarantine-ms must be 0...86400000") }
            configuration.quarantineNanoseconds = ms * 1_000_000
        }
        if let ns = try milliseconds("idle-timeout-ms") { configuration.idleTimeoutNanoseconds = ns }
        if let ns = try milliseconds("hold-timeout-ms") { configuration.holdTimeoutNanoseconds = ns }
        if let ns = try milliseconds("scan-ms") { configuration.scanIntervalNanoseconds = ns }
        if let ns = try milliseconds("stats-interval-ms") { configuration.statsIntervalNanoseconds = ns }
        if let dscp = arguments.value("dscp") {
            if dscp == "none" { configuration.dscp = nil } else {
                guard let value = UInt8(dscp), value < 64 else { throw UsageError("relay: --dscp must be 0...63 or none") }
                configuration.dscp = value
            }
        }
        if let bytes = try arguments.integer("rcvbuf", command: "relay", range: 4096...(1 << 30)) { configuration.receiveBufferBytes = bytes }
        if let bytes = try arguments.integer("sndbuf", command: "relay", range: 4096...(1 << 30)) { configuration.sendBufferBytes = bytes }
        if let batch = try arguments.integer("batch", command: "relay", range: 1...1024) { configuration.batchSize = batch }
        if let us = try arguments.integer("busy-poll-us", command: "relay", range: 0...1_000_000) {
            configuration.busyPollNanoseconds = UInt64(us) * 1000
        }
        configuration.latchFromAnyAddress = arguments.has("latch-any")
        configuration.segmentationOffload = !arguments.has("no-gso")
        configuration.separateSendSockets = arguments.has("send-sockets")
        return configuration
    }
}
