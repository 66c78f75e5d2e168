// Property-based round trips: random values of the top-level H.323 types, generated from the
// schema with a seeded generator, must survive our encode/decode unchanged, and the
// independent oracle (../shared/asn1/per_oracle.py, run at test time) must decode our bytes
// to the same value.
import Foundation
import PER
import H323
import Testing

/// SplitMix64: small, seeded, reproducible.
struct SeededRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

struct RandomValues {
    var random: SeededRandom
    /// Set when the value holds something asn1tools 0.169.0 encodes against X.691/X.690: a
    /// semi-constrained INTEGER (it ignores the lower bound) or an OID whose second arc
    /// under 2 is 40 or more (it splits the first subidentifier as if the arc were < 40), or a
    /// NULL in an open type (extension addition or alternative: it writes no octet).
    var usesOracleDeviation = false
    let schema = H323Schema.schema

    func resolve(_ t: PERType) -> PERType {
        var t = t
        while case .reference(let i) = t { t = schema.types[i] }
        return t
    }

    func isConstructed(_ t: PERType) -> Bool {
        switch resolve(t) {
        case .sequence, .choice, .sequenceOf: return true
        default: return false
        }
    }

    mutating func size(_ s: PERSize, cap: Int, depth: Int) -> Int {
        let upper = min(s.upper ?? (s.lower + cap), s.lower + cap)
        if depth > 8 { return s.lower }
        return s.lower + random.below(upper - s.lower + 1)
    }

    mutating func value(_ type: PERType, depth: Int = 0) -> PERValue {
        switch resolve(type) {
        case .null: return .null
        case .boolean: return .boolean(random.chance(50))
        case .integer(let r):
            if let lo = r.lower, let hi = r.upper {
                if r.extensible, random.chance(10) { return .integer(hi + 1 + random.below(1000)) }
                let span = UInt64(hi - lo) + 1
                return .integer(lo + Int(random.next() % span))
            }
            if let lo = r.lower {
                usesOracleDeviation = true
                return .integer(lo + random.below(1 << 20))
            }
            return .integer(random.below(1 << 31) - (1 << 30))
        case .enumerated(let e): return .enumerated(random.below(e.count))
        case .bitString(let s):
            let n = size(s, cap: 40, depth: depth)
            var bytes = (0..<((n + 7) / 8)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if n % 8 != 0, !bytes.isEmpty { bytes[bytes.count - 1] &= UInt8(0xFF << (8 - n % 8) & 0xFF) }
            return .bitString(PERBitString(bytes: bytes, count: n))
        case .octetString(let s):
            return .octetString((0..<size(s, cap: 24, depth: depth)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        case .openType:
            return .openType((0..<(1 + random.below(12))).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        case .objectIdentifier:
            let first = UInt64(random.below(3))
            var arcs = [first, UInt64(random.below(first == 2 ? 1000 : 40))]
            if first == 2 && arcs[1] >= 40 { usesOracleDeviation = true }
            for _ in 0..<random.below(5) { arcs.append(random.next() % 300_000) }
            return .objectIdentifier(PERObjectIdentifier(arcs))
        case .characterString(let t):
            let chars = t.characters
            var scalars = String.UnicodeScalarView()
            for _ in 0..<size(t.size, cap: 16, depth: depth) {
                if let s = Unicode.Scalar(chars[random.below(chars.count)]) { scalars.append(s) }
            }
            return .string(String(scalars))
        case .generalString:
            var scalars = String.UnicodeScalarView()
            for _ in 0..<random.below(12) { scalars.append(Unicode.Scalar(UInt8(0x20 + random.below(0x5F)))) }
            return .string(String(scalars))
        case .sequence(let t):
            var members = [PERValue?](repeating: nil, count: t.memberCount)
            for (i, m) in t.root.enumerated() where !m.optional || (depth < 8 && random.chance(40)) {
                members[i] = value(m.type, depth: depth + 1)
            }
            // A value of the extended type carries its mandatory additions.
            for (i, m) in (t.additions ?? []).enumerated() where !m.optional || (depth < 6 && random.chance(15)) {
                if case .null = resolve(m.type) { usesOracleDeviation = true }
                members[t.root.count + i] = value(m.type, depth: depth + 1)
            }
            return .sequence(PERSequenceValue(members: members))
        case .choice(let t):
            var candidates = Array(0..<t.alternativeCount)
            if depth > 8 {
                let simple = candidates.filter { !isConstructed(t.alternative(at: $0)?.type ?? .null) }
                if !simple.isEmpty { candidates = simple }
            }
            let index = candidates[random.below(candidates.count)]
            if index >= t.root.count, case .null = resolve(t.alternative(at: index)?.type ?? .boolean) { usesOracleDeviation = true }
            return .choice(index, value(t.alternative(at: index)?.type ?? .null, depth: depth + 1))
        case .sequenceOf(let t):
            return .sequenceOf((0..<size(t.size, cap: 3, depth: depth)).map { _ in value(t.element, depth: depth + 1) })
        case .reference: return .null
        }
    }
}

enum Oracle {
    /// <repo>/../shared/asn1 as CI lays it out (also one more level up for worktrees).
    static var directory: URL? {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var candidates = [repo.appendingPathComponent("../shared/asn1"), repo.appendingPathComponent("../../shared/asn1")]
        if let env = ProcessInfo.processInfo.environment["BLOO_SHARED_ASN1"] { candidates.insert(URL(fileURLWithPath: env), at: 0) }
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("per_oracle.py").path) }
    }

    /// Decodes each (type, bytes) with the oracle's batch mode; returns its JSON values.
    static func decode(_ requests: [(String, [UInt8])]) throws -> [Any] {
        guard let dir = directory else { throw OracleJSONError(description: "PER oracle not found beside the repository") }
        var input = ""
        for (i, (type, bytes)) in requests.enumerated() {
            input += "{\"id\":\(i),\"op\":\"decode\",\"type\":\"\(type)\",\"hex\":\"\(OracleJSON.hex(bytes))\"}\n"
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", dir.appendingPathComponent("per_oracle.py").path, "batch"]
        // Requests from a file and replies read to the end: no pipe can fill up and block.
        let requestsFile = FileManager.default.temporaryDirectory.appendingPathComponent("per-oracle-\(UUID().uuidString).jsonl")
        try Data(input.utf8).write(to: requestsFile)
        defer { try? FileManager.default.removeItem(at: requestsFile) }
        let stdout = Pipe()
        process.standardInput = try FileHandle(forReadingFrom: requestsFile)
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var results = [Any](repeating: NSNull(), count: requests.count)
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed]) as? [String: Any],
                  let id = object["id"] as? Int, id < results.count else { continue }
            results[id] = object["value"] ?? ["error": object["error"] ?? "?"]
        }
        return results
    }

    static func canonical(_ json: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: ["v": json], options: [.sortedKeys, .fragmentsAllowed]) else { return "?" }
        return String(decoding: data, as: UTF8.self)
    }
}

@Suite struct RandomRoundTripTests {
    static let types: [(module: String, name: String)] = [
        ("H323-MESSAGES", "RasMessage"), ("H323-MESSAGES", "H323-UserInformation"),
        ("MULTIMEDIA-SYSTEM-CONTROL", "MultimediaSystemControlMessage"),
    ]

    @Test func randomValuesRoundTripThroughOurCodecAndTypes() throws {
        var generator = RandomValues(random: SeededRandom(state: 20261128))
        var checked = 0
        for (module, name) in Self.types {
            let type = try #require(H323Schema.type("\(module).\(name)"))
            for _ in 0..<400 {
                let value = generator.value(type)
                let bytes = try H323Schema.codec.encode(value, as: type)
                let back = try H323Schema.codec.decode(type, from: bytes)
                #expect(back == value)
                #expect(try H323Schema.codec.encode(back, as: type) == bytes)
                // The typed structures carry every field.
                let typedBytes: [UInt8]
                switch name {
                case "RasMessage": typedBytes = try RasMessage(perValue: back).encoded()
                case "H323-UserInformation": typedBytes = try H323UserInformation(perValue: back).encoded()
                default: typedBytes = try MultimediaSystemControlMessage(perValue: back).encoded()
                }
                #expect(typedBytes == bytes)
                checked += 1
            }
        }
        #expect(checked == 1200)
    }

    @Test func oracleDecodesOurRandomEncodingsToTheSameValues() throws {
        var generator = RandomValues(random: SeededRandom(state: 0xB100))
        var requests: [(String, [UInt8])] = []
        var expected: [String] = []
        for (module, name) in Self.types {
            let type = try #require(H323Schema.type("\(module).\(name)"))
            var kept = 0
            while kept < 150 {
                generator.usesOracleDeviation = false
                let value = generator.value(type)
                if generator.usesOracleDeviation { continue }
                kept += 1
                requests.append((name, try H323Schema.codec.encode(value, as: type)))
                expected.append(Oracle.canonical(OracleJSON.json(value, type)))
            }
        }
        let decoded = try Oracle.decode(requests)
        var mismatches = 0
        for (i, json) in decoded.enumerated() where Oracle.canonical(json) != expected[i] {
            mismatches += 1
            if let dump = ProcessInfo.processInfo.environment["BLOO_ORACLE_MISMATCHES"],
               let handle = FileHandle(forWritingAtPath: dump) {
                handle.seekToEndOfFile()
                handle.write(Data("{\"type\":\"\(requests[i].0)\",\"hex\":\"\(OracleJSON.hex(requests[i].1))\",\"ours\":\(expected[i])}\n".utf8))
                handle.closeFile()
            }
            if mismatches <= 3 {
                Issue.record("oracle disagrees on \(requests[i].0) \(OracleJSON.hex(requests[i].1)):\n ours   \(expected[i])\n oracle \(Oracle.canonical(json))")
            }
        }
        #expect(mismatches == 0)
        #expect(decoded.count == 450)
    }
}
