import H323

/// `bloo h323`: the H.323 wire layer from the command line (inspecting captures, and the
/// tshark system test, which checks our own encodings).
enum H323Command {
    static let usage = "bloo h323 samples | bloo h323 decode <\(H323Inspect.kinds.joined(separator: "|"))> <hex> | bloo h323 bench [--seconds N]"

    static func run(_ words: [String]) throws -> Int32 {
        let arguments = try Arguments(words, command: "h323", options: ["seconds"])
        let positionals = arguments.positionals
        switch positionals.first {
        case "samples":
            guard positionals.count == 1 else { throw UsageError("h323 samples: takes no arguments") }
            for sample in try H323Examples.wireSamples() {
                writeLine(1, "\(sample.name)\t\(sample.transport)\t\(H323Inspect.hex(sample.bytes))")
            }
            return ExitStatus.success
        case "decode":
            guard positionals.count == 3, H323Inspect.kinds.contains(positionals[1]) else { throw UsageError("usage: \(usage)") }
            guard let bytes = H323Inspect.bytes(hex: positionals[2]) else { throw UsageError("h323 decode: not hex") }
            writeLine(1, try H323Inspect.describe(kind: positionals[1], bytes))
            return ExitStatus.success
        case "bench":
            guard positionals.count == 1 else { throw UsageError("usage: \(usage)") }
            let text = arguments.values["seconds"] ?? "3"
            guard let seconds = Double(text), seconds > 0, seconds <= 600 else { throw UsageError("h323 bench: --seconds takes 0..600") }
            let results = try H323Benchmark.run(seconds: seconds)
            for r in results {
                writeLine(1, "per \(r.name) (\(r.octets) octets): \(r.roundTrips) decode+encode round trips in "
                    + "\(String(r.seconds).prefix(6)) s wall, \(String(r.cpuSeconds).prefix(6)) s CPU: "
                    + "\(r.perSecond)/s wall, \(r.perCPUSecond)/s per CPU-second")
            }
            // Per CPU-second of the measuring thread, pinned to one core: on the shared build
            // machine the wall-clock rate says more about the neighbours than about the codec.
            let rate = { (name: String) in results.first { $0.name == name }?.perCPUSecond ?? 0 }
            writeLine(1, "bench=per rrq_roundtrips_per_s=\(rate("rrq")) setup_roundtrips_per_s=\(rate("setup"))")
            return ExitStatus.success
        default:
            throw UsageError("usage: \(usage)")
        }
    }
}
