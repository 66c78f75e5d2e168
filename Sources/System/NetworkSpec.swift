// The desired network state, in System's own terms. The daemon translates the
// configuration into these types; System never sees configuration text.
import Glibc

public enum IPFamily: Sendable, Hashable {
    case v4, v6

    public var byteCount: Int { self == .v4 ? 4 : 16 }
    public var addressFamily: Int32 { self == .v4 ? AF_INET : AF_INET6 }
}

/// An IP address with a prefix length: an interface address (192.0.2.5/24) or a
/// route destination (198.51.100.0/24, 0.0.0.0/0).
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let family: IPFamily
    public let bytes: [UInt8]
    public let prefixLength: Int

    public init?(family: IPFamily, bytes: [UInt8], prefixLength: Int) {
        guard bytes.count == family.byteCount, (0...family.byteCount * 8).contains(prefixLength) else { return nil }
        self.family = family
        self.bytes = bytes
        self.prefixLength = prefixLength
    }

    /// Parses `address/prefix`; a bare address means a host (/32 or /128).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let address = IPAddress(String(parts[0])) else { return nil }
        var prefix = address.family.byteCount * 8
        if parts.count == 2 {
            guard (1...3).contains(parts[1].utf8.count), parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let value = Int(parts[1]) else { return nil }
            prefix = value
        }
        self.init(family: address.family, bytes: address.bytes, prefixLength: prefix)
    }

    public var address: IPAddress { IPAddress(family: family, bytes: bytes) }

    /// The network with host bits cleared (route destinations compare this way).
    public var masked: IPNetwork {
        var copy = bytes
        for index in copy.indices {
            let bitsHere = max(0, min(8, prefixLength - index * 8))
            copy[index] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
        }
        return IPNetwork(family: family, bytes: copy, prefixLength: prefixLength)!
    }

    public var isDefault: Bool { prefixLength == 0 }

    /// fe80::/10: the kernel's own, never managed.
    public var isIPv6LinkLocal: Bool { family == .v6 && bytes[0] == 0xFE && (bytes[1] & 0xC0) == 0x80 }

    public var description: String { "\(address)/\(prefixLength)" }
}

public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let family: IPFamily
    public let bytes: [UInt8]

    public init(family: IPFamily, bytes: [UInt8]) {
        self.family = family
        self.bytes = bytes
    }

    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        let isV6 = text.contains(":")
        var buffer = [UInt8](repeating: 0, count: 16)
        let rc = buffer.withUnsafeMutableBytes { inet_pton(isV6 ? AF_INET6 : AF_INET, text, $0.baseAddress) }
        guard rc == 1 else { return nil }
        family = isV6 ? .v6 : .v4
        bytes = Array(buffer.prefix(family.byteCount))
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        let ok = bytes.withUnsafeBytes { inet_ntop(family.addressFamily, $0.baseAddress, &text, 64) } != nil
        guard ok else { return "?" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An 802.1Q sub-interface: created on `parent` with `id`.
public struct VLANSpec: Sendable, Hashable {
    public let parent: String
    public let id: Int
    public init(parent: String, id: Int) {
        self.parent = parent
        self.id = id
    }
}

/// What one interface should look like. Addresses not listed are removed (except
/// IPv6 link-local ones, which belong to the kernel).
public struct InterfaceSpec: Sendable, Hashable {
    public let name: String
    public let enabled: Bool
    public let mtu: Int?
    public let addresses: [IPNetwork]
    /// Set for a VLAN sub-interface, which the manager creates and deletes.
    public let vlan: VLANSpec?

    public init(name: String, enabled: Bool = true, mtu: Int? = nil, addresses: [IPNetwork] = [], vlan: VLANSpec? = nil) {
        self.name = name
        self.enabled = enabled
        self.mtu = mtu
        self.addresses = addresses
        self.vlan = vlan
    }
}

/// A route in the main table. Routes the manager installs carry its own protocol
/// number, so it only ever removes routes it made.
public struct RouteSpec: Sendable, Hashable, CustomStringConvertible {
    public let destination: IPNetwork
    public let gateway: IPAddress?
    public let device: String?
    public let metric: UInt32?

    public init(destination: IPNetwork, gateway: IPAddress? = nil, device: String? = nil, metric: UInt32? = nil) {
        self.destination = destination.masked
        self.gateway = gateway
        self.device = device
        self.metric = metric
    }

    public var description: String {
        var text = destination.isDefault ? "default" : destination.description
        if destination.isDefault && destination.family == .v6 { text += " (IPv6)" }
        if let gateway { text += " via \(gateway)" }
        if let device { text += " dev \(device)" }
        if let metric { text += " metric \(metric)" }
        return text
    }
}

/// The whole desired network state.
public struct NetworkSpec: Sendable, Hashable {
    public var interfaces: [InterfaceSpec]
    public var routes: [RouteSpec]

    public init(interfaces: [InterfaceSpec] = [], routes: [RouteSpec] = []) {
        self.interfaces = interfaces
        self.routes = routes
    }

    /// Problems that make no sense to send to the kernel.
    public func problems() -> [String] {
        var found: [String] = []
        var names: Set<String> = []
        for interface in interfaces {
            if !names.insert(interface.name).inserted { found.append("\(interface.name): listed twice") }
            if interface.name.isEmpty || interface.name.utf8.count > 15 || interface.name.contains("/") {
                found.append("\(interface.name): not a valid interface name")
            }
            if let mtu = interface.mtu, !(68...65535).contains(mtu) { found.append("\(interface.name): MTU \(mtu) outside 68-65535") }
            if let vlan = interface.vlan, !(1...4094).contains(vlan.id) { found.append("\(interface.name): VLAN id \(vlan.id) outside 1-4094") }
        }
        for route in routes {
            if let gateway = route.gateway, gateway.family != route.destination.family {
                found.append("route \(route): gateway family differs from destination")
            }
            if route.gateway == nil && route.device == nil { found.append("route \(route): needs a gateway or a device") }
        }
        return found
    }
}
