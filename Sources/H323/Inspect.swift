// Text helpers for operators and tests: hex in and out, and a readable dump of a decoded
// message (`bloo h323 decode`).
import PER

public enum H323Inspect {
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Hex text (spaces and colons allowed) to octets; nil when it is not hex.
    public static func bytes(hex text: String) -> [UInt8]? {
        var out = [UInt8]()
        var high: UInt8? = nil
        for c in text.utf8 {
            let nibble: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = c - UInt8(ascii: "A") + 10
            case UInt8(ascii: " "), UInt8(ascii: ":"), UInt8(ascii: "\n"), UInt8(ascii: "\t"): continue
            default: return nil
            }
            if let h = high {
                out.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return high == nil ? out : nil
    }

    public static let kinds = ["ras", "uuie", "h245", "q931", "tpkt"]

    /// Decodes `bytes` as a RAS message, an H323-UserInformation, an H.245 message, a Q.931
    /// message or a TPKT stream of Q.931 messages, and describes the result.
    public static func describe(kind: String, _ bytes: [UInt8]) throws -> String {
        switch kind {
        case "ras": return String(describing: try RasMessage(decoding: bytes))
        case "uuie": return String(describing: try H323UserInformation(decoding: bytes))
        case "h245": return String(describing: try MultimediaSystemControlMessage(decoding: bytes))
        case "q931": return try describeQ931(try Q931Message(decoding: bytes))
        case "tpkt":
            var reassembler = TPKTReassembler()
            let packets = try reassembler.append(bytes)
            guard reassembler.pendingCount == 0 else { throw TPKTError.badLength(reassembler.pendingCount) }
            return try packets.map { try describeQ931(try Q931Message(decoding: $0)) }.joined(separator: "\n")
        default: throw H225Error.q931(.badElement("unknown kind \(kind)"))
        }
    }

    static func describeQ931(_ m: Q931Message) throws -> String {
        var lines = ["Q.931 \(m.messageType) callReference=\(m.callReference.value) fromDestination=\(m.callReference.fromDestination)"]
        for e in m.elements where !(e.codeset == 0 && e.identifier == Q931IE.userUser) {
            lines.append("  IE codeset \(e.codeset) 0x\(String(e.identifier, radix: 16)): \(hex(e.contents))")
        }
        if m.element(Q931IE.userUser) != nil {
            lines.append("  user-user: \(try m.userInformation())")
        }
        return lines.joined(separator: "\n")
    }
}
