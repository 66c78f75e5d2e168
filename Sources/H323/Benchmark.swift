// Round-trip throughput of the PER codec on the two messages the appliance handles most:
// an RRQ (registration and keep-alive) and a Setup carrying fastStart. Run by
// `bloo h323 bench` (bench/per/bench.sh), single-threaded.
import Glibc
import PER

public enum H323Benchmark {
    /// The shared oracle samples (../shared/asn1/samples/index.tsv, encoded by asn1tools and
    /// checked by tshark): `rrq` (RasMessage, 109 octets) and `setup` (H323-UserInformation,
    /// 146 octets, one fastStart OpenLogicalChannel).
    public static let oracleRRQ = "0ec00001060008914a0007800100c0a8010a06b80100c0a8010a06b722c0b500534c097065722d6f7261636c6502302e31000240040061006c00690063006501804334040047004b003160b500534c097065722d6f7261636c6502302e31348b0000000340012b010001000100"
    public static let oracleSetup = "20b8060008914a00070140040061006c00690063006522c0b500534c097065722d6f7261636c6502302e3100010180433500c0a8011406b80000112233445566778899aabbccddeeff00dd1d8000000700c0a8010a06b81100a0a1a2a3a4a5a6a7a8a9aaabacadaeaf1c011a0000000c6013801215000100c0a80114138800c0a8010a138900010001000100010010800100"

    public struct Result: Sendable {
        public let name: String
        public let octets: Int
        public let roundTrips: Int
        /// Wall-clock time, and CPU time of the measuring thread (the figure that does not
        /// depend on what else the machine runs).
        public let seconds: Double
        public let cpuSeconds: Double
        public var perSecond: Int { seconds > 0 ? Int(Double(roundTrips) / seconds) : 0 }
        public var perCPUSecond: Int { cpuSeconds > 0 ? Int(Double(roundTrips) / cpuSeconds) : 0 }
    }

    static func clock(_ id: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func bytes(hex: String) -> [UInt8] {
        var out = [UInt8]()
        var high: UInt8?
        for c in hex.utf8 {
            let v: UInt8 = c <= UInt8(ascii: "9") ? c - UInt8(ascii: "0") : c - UInt8(ascii: "a") + 10
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return out
    }

    /// Decode `bytes` and encode the value again, for about `seconds`; every round trip
    /// must give the same bytes back, so no work can be optimised away.
    static func measure(_ name: String, _ bytes: [UInt8], seconds: Double,
                        _ roundTrip: ([UInt8]) throws(PERError) -> [UInt8]) throws -> Result {
        guard try roundTrip(bytes) == bytes else { throw PERError.invalid("\(name): round trip changed the bytes") }
        var count = 0
        let start = clock(CLOCK_MONOTONIC)
        let cpuStart = clock(CLOCK_THREAD_CPUTIME_ID)
        var elapsed = 0.0
        repeat {
            for _ in 0..<256 {
                guard try roundTrip(bytes) == bytes else { throw PERError.invalid("\(name): round trip changed the bytes") }
            }
            count += 256
            elapsed = clock(CLOCK_MONOTONIC) - start
        } while elapsed < seconds
        return Result(name: name, octets: bytes.count, roundTrips: count, seconds: elapsed,
                      cpuSeconds: clock(CLOCK_THREAD_CPUTIME_ID) - cpuStart)
    }

    /// `rrq` and `setup` through the typed API (bytes -> typed message -> bytes), then the
    /// RRQ with tokens and an H.235 password hash, then both samples through the generic
    /// PERValue path for comparison in the same run.
    public static func run(seconds: Double) throws -> [Result] {
        let rrq = bytes(hex: oracleRRQ)
        let setup = bytes(hex: oracleSetup)
        let tokens = try H323Examples.registrationRequest().encoded()
        return [
            try measure("rrq", rrq, seconds: seconds) { (b: [UInt8]) throws(PERError) in try RasMessage(decoding: b).encoded() },
            try measure("setup", setup, seconds: seconds) { (b: [UInt8]) throws(PERError) in try H323UserInformation(decoding: b).encoded() },
            try measure("rrq-tokens", tokens, seconds: seconds) { (b: [UInt8]) throws(PERError) in try RasMessage(decoding: b).encoded() },
            try measure("rrq-generic", rrq, seconds: seconds / 2) { (b: [UInt8]) throws(PERError) in try RasMessage(decodingGeneric: b).encodedGeneric() },
            try measure("setup-generic", setup, seconds: seconds / 2) { (b: [UInt8]) throws(PERError) in try H323UserInformation(decodingGeneric: b).encodedGeneric() },
        ]
    }
}
