// Converts between the PER oracle's JSON conventions (../shared/asn1/README.md) and PERValue,
// walking the schema, so that the oracle's values can be compared with ours.
import Foundation
import PER
import H323

struct OracleJSONError: Error, CustomStringConvertible {
    let description: String
}

enum OracleJSON {
    static let schema = H323Schema.schema

    static func resolve(_ type: PERType) -> PERType {
        var t = type
        while case .reference(let i) = t { t = schema.types[i] }
        return t
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func bytes(hex: String) throws -> [UInt8] {
        let clean = hex.filter { !" :\n\t".contains($0) }
        guard clean.count % 2 == 0 else { throw OracleJSONError(description: "odd hex \(hex)") }
        var out = [UInt8]()
        var i = clean.startIndex
        while i < clean.endIndex {
            let j = clean.index(i, offsetBy: 2)
            guard let b = UInt8(clean[i..<j], radix: 16) else { throw OracleJSONError(description: "bad hex \(hex)") }
            out.append(b)
            i = j
        }
        return out
    }

    static func value(_ json: Any, _ type: PERType, path: String = "value") throws -> PERValue {
        func fail(_ what: String) -> OracleJSONError { OracleJSONError(description: "\(path): \(what) in \(json)") }
        switch resolve(type) {
        case .null:
            guard json is NSNull else { throw fail("null expected") }
            return .null
        case .boolean:
            guard let b = json as? Bool else { throw fail("bool expected") }
            return .boolean(b)
        case .integer:
            guard let n = json as? Int else { throw fail("integer expected") }
            return .integer(n)
        case .enumerated(let e):
            guard let s = json as? String, let i = e.index(of: s) else { throw fail("enumeration expected") }
            return .enumerated(i)
        case .bitString:
            if let d = json as? [String: Any], let h = d["hex"] as? String, let n = d["bits"] as? Int {
                return .bitString(PERBitString(bytes: try bytes(hex: h), count: n))
            }
            guard let s = json as? String, let b = PERBitString(bits: s) else { throw fail("bit string expected") }
            return .bitString(b)
        case .octetString:
            guard let s = json as? String else { throw fail("hex expected") }
            return .octetString(try bytes(hex: s))
        case .openType:
            guard let s = json as? String else { throw fail("hex expected") }
            return .openType(try bytes(hex: s))
        case .objectIdentifier:
            guard let s = json as? String, let oid = PERObjectIdentifier(s) else { throw fail("OID expected") }
            return .objectIdentifier(oid)
        case .characterString, .generalString:
            guard let s = json as? String else { throw fail("string expected") }
            return .string(s)
        case .sequence(let t):
            guard let d = json as? [String: Any] else { throw fail("object expected") }
            var members = [PERValue?](repeating: nil, count: t.memberCount)
            for (k, v) in d {
                guard let i = t.index(of: k), let m = t.member(at: i) else { throw fail("no member \(k)") }
                members[i] = try value(v, m.type, path: path + "." + k)
            }
            return .sequence(PERSequenceValue(members: members))
        case .choice(let t):
            guard let d = json as? [String: Any], d.count == 1, let (k, v) = d.first,
                  let i = t.index(of: k), let a = t.alternative(at: i) else { throw fail("choice expected") }
            return .choice(i, try value(v, a.type, path: path + "." + k))
        case .sequenceOf(let t):
            guard let a = json as? [Any] else { throw fail("array expected") }
            return .sequenceOf(try a.enumerated().map { try value($1, t.element, path: "\(path)[\($0)]") })
        case .reference:
            throw fail("unresolved")
        }
    }

    /// Our value in the oracle's JSON form (for messages and for the tshark test).
    static func json(_ value: PERValue, _ type: PERType) -> Any {
        switch (resolve(type), value) {
        case (_, .null): return NSNull()
        case (_, .boolean(let b)): return b
        case (_, .integer(let n)): return n
        case (.enumerated(let e), .enumerated(let i)): return e.name(of: i) ?? "?\(i)"
        case (_, .bitString(let b)): return ["hex": hex(b.bytes), "bits": b.count]
        case (_, .octetString(let b)), (_, .openType(let b)): return hex(b)
        case (_, .objectIdentifier(let o)): return o.description
        case (_, .string(let s)): return s
        case (.sequence(let t), .sequence(let s)):
            var d = [String: Any]()
            for (i, m) in s.members.enumerated() {
                if let m, let member = t.member(at: i) { d[member.name] = json(m, member.type) }
            }
            return d
        case (.choice(let t), .choice(let i, let v)):
            guard let a = t.alternative(at: i) else { return ["_unknown_extension_alternative_": NSNull()] }
            return [a.name: json(v, a.type)]
        case (.sequenceOf(let t), .sequenceOf(let a)): return a.map { json($0, t.element) }
        default: return "?"
        }
    }
}

struct Vector: @unchecked Sendable {
    let name: String
    let type: String
    let json: Any
    let bytes: [UInt8]

    static let all: [Vector] = {
        guard let url = Bundle.module.url(forResource: "vectors", withExtension: "json", subdirectory: "Vectors"),
              let data = try? Data(contentsOf: url),
              let list = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? [[String: Any]]
        else { return [] }
        return list.compactMap { d in
            guard let name = d["name"] as? String, let type = d["type"] as? String, let value = d["value"],
                  let h = d["hex"] as? String, let bytes = try? OracleJSON.bytes(hex: h) else { return nil }
            return Vector(name: name, type: type, json: value, bytes: bytes)
        }
    }()

    static func named(_ name: String) -> Vector? { all.first { $0.name == name } }

    var perType: PERType? {
        let module = type == "MultimediaSystemControlMessage" || type == "OpenLogicalChannel"
            ? "MULTIMEDIA-SYSTEM-CONTROL" : "H323-MESSAGES"
        return H323Schema.type("\(module).\(type)")
    }
}
