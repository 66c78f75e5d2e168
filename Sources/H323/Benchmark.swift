// Round-trip throughput of the PER codec on the two messages the appliance handles most:
// an RRQ (registration and keep-alive) and a Setup carrying fastStart. Run by
// `bloo h323 bench` (bench/per/bench.sh), single-threaded.
import Glibc
import PER

public enum H323Benchmark {
    public struct Result: Sendable {
        public let name: String
        public let roundTrips: Int
        public let seconds: Double
        public var perSecond: Int { seconds > 0 ? Int(Double(roundTrips) / seconds) : 0 }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Decode the bytes into the typed message and encode it again, for about `seconds`.
    /// The result is checked on every round trip, so no work can be optimised away.
    static func measure<M: H323Message & Equatable>(_ name: String, _ message: M, seconds: Double) throws -> Result {
        let bytes = try message.encoded()
        var count = 0
        let start = now()
        var elapsed = 0.0
        repeat {
            for _ in 0..<256 {
                let decoded = try M(decoding: bytes)
                let again = try decoded.encoded()
                guard again.count == bytes.count else { throw PERError.invalid("\(name): round trip changed the length") }
            }
            count += 256
            elapsed = now() - start
        } while elapsed < seconds
        guard try M(decoding: bytes).encoded() == bytes else { throw PERError.invalid("\(name): round trip changed the bytes") }
        return Result(name: name, roundTrips: count, seconds: elapsed)
    }

    public static func run(seconds: Double) throws -> [Result] {
        [try measure("rrq", H323Examples.registrationRequest(), seconds: seconds),
         try measure("setup", try H323Examples.setupWithFastStart(), seconds: seconds)]
    }
}
