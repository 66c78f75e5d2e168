// Transport addresses as the endpoint machines see them: IPv4 + port, converted to and
// from the H.225.0 and H.245 encodings at the edge (both carry the address as 4 octets).
import H323
import PER

public struct EndpointAddress: Hashable, Sendable, CustomStringConvertible {
    public var ip: UInt32
    public var port: UInt16

    public init(ip: UInt32, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// "a.b.c.d:port"
    public init?(parsing text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]), let ip = Self.parseIP(String(parts[0])) else { return nil }
        self.init(ip: ip, port: port)
    }

    public static func parseIP(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard let v = UInt8(octet) else { return nil }
            value = value << 8 | UInt32(v)
        }
        return value
    }

    public var octets: [UInt8] { [UInt8(ip >> 24), UInt8((ip >> 16) & 0xFF), UInt8((ip >> 8) & 0xFF), UInt8(ip & 0xFF)] }
    public var ipText: String { octets.map(String.init).joined(separator: ".") }
    public var description: String { "\(ipText):\(port)" }

    public var transportAddress: TransportAddress { .ipAddress(.init(ip: octets, port: Int(port))) }
    public var h245Address: H245TransportAddress { .unicastAddress(.iPAddress(.init(network: octets, tsapIdentifier: Int(port)))) }

    private init?(octets: [UInt8], port: Int) {
        guard octets.count == 4, port >= 0, port <= 0xFFFF else { return nil }
        self.init(ip: octets.reduce(0) { $0 << 8 | UInt32($1) }, port: UInt16(port))
    }

    public init?(_ address: TransportAddress?) {
        guard case .ipAddress(let a)? = address else { return nil }
        self.init(octets: a.ip, port: a.port)
    }

    public init?(_ address: H245TransportAddress?) {
        guard case .unicastAddress(.iPAddress(let a))? = address else { return nil }
        self.init(octets: a.network, port: a.tsapIdentifier)
    }
}

/// Identity shared by every message this endpoint sends.
public enum EndpointIdentity {
    /// H.225.0 version 4 and H.245 version 7: what the message sets used here need.
    public static let h2250Protocol = PERObjectIdentifier([0, 0, 8, 2250, 0, 4])
    public static let h245Protocol = PERObjectIdentifier([0, 0, 8, 245, 0, 7])
    public static let vendor = VendorIdentifier(
        vendor: H221NonStandard(t35CountryCode: 181, t35Extension: 0, manufacturerCode: 21324),
        productId: Array("bloophone".utf8), versionId: Array("1.0".utf8))
    public static let terminal = EndpointType(vendor: vendor, terminal: TerminalInfo(), mc: false, undefinedNode: false)
    public static let gateway = EndpointType(vendor: vendor, gateway: GatewayInfo(), mc: false, undefinedNode: false)
    public static let gatekeeper = EndpointType(vendor: vendor, gatekeeper: GatekeeperInfo(), mc: false, undefinedNode: false)
}
