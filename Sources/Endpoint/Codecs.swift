// The audio codecs an endpoint can offer. The appliance never transcodes: it offers the
// client's list to the operator side and hands back whatever the operator picked.
import H323

public enum AudioCodec: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case pcmu = 0
    case pcma = 8
    case g729 = 18

    /// Frames per packet as H.245 counts them: ms for G.711, 10 ms frames for G.729.
    public static let packetTimeMs = 20

    public var capability: AudioCapability {
        switch self {
        case .pcmu: return .g711Ulaw64k(Self.packetTimeMs)
        case .pcma: return .g711Alaw64k(Self.packetTimeMs)
        case .g729: return .g729(Self.packetTimeMs / 10)
        }
    }

    public init?(_ capability: AudioCapability) {
        switch capability {
        case .g711Ulaw64k: self = .pcmu
        case .g711Alaw64k: self = .pcma
        case .g729, .g729AnnexA: self = .g729
        default: return nil
        }
    }

    public init?(_ dataType: DataType) {
        guard case .audioData(let capability) = dataType else { return nil }
        self.init(capability)
    }

    public var description: String {
        switch self {
        case .pcmu: return "PCMU"
        case .pcma: return "PCMA"
        case .g729: return "G729"
        }
    }

    public init?(name: String) {
        switch name.uppercased() {
        case "PCMU", "G711U", "ULAW": self = .pcmu
        case "PCMA", "G711A", "ALAW": self = .pcma
        case "G729": self = .g729
        default: return nil
        }
    }
}

/// DTMF digits as the tunnel and H.245 UserInputIndication carry them.
public enum DTMF {
    public static let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#", "A", "B", "C", "D"]

    /// The RFC 4733 event number of a digit character (0-9 = 0-9, * = 10, # = 11, A-D = 12-15).
    public static func event(_ c: Character) -> UInt8? {
        guard let i = digits.firstIndex(of: Character(c.uppercased())) else { return nil }
        return UInt8(i)
    }

    public static func character(_ event: UInt8) -> Character? {
        Int(event) < digits.count ? digits[Int(event)] : nil
    }

    /// The tunnel's DTMF byte: the digit's ASCII code (docs/tunnel-protocol.md §3), not
    /// its RFC 4733 event number. Lower-case a-d are sent upper-case.
    public static func tunnelByte(_ c: Character) -> UInt8? {
        guard event(c) != nil, let ascii = Character(c.uppercased()).asciiValue else { return nil }
        return ascii
    }

    /// The digit a tunnel DTMF byte carries, or nil when it is not one of 0-9 * # A-D.
    public static func character(tunnelByte byte: UInt8) -> Character? {
        let c = Character(Unicode.Scalar(byte))
        return digits.contains(c) ? c : nil
    }
}
