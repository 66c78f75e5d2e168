// The configuration's view of the network, translated into System's own types.
// Config and System stay independent of each other; this is their only meeting point.
import Config
import System

enum NetworkTranslation {
    static func spec(_ configuration: Configuration) -> NetworkSpec {
        var interfaces: [InterfaceSpec] = []
        for interface in configuration.interfaces {
            interfaces.append(InterfaceSpec(name: interface.name, enabled: interface.enabled, mtu: interface.mtu,
                                            addresses: interface.addresses.compactMap(network)))
            for vlan in interface.vlans {
                interfaces.append(InterfaceSpec(name: vlan.deviceName, enabled: vlan.enabled, mtu: vlan.mtu,
                                                addresses: vlan.addresses.compactMap(network),
                                                vlan: VLANSpec(parent: interface.name, id: vlan.id)))
            }
        }
        let routes = configuration.routes.compactMap { route -> RouteSpec? in
            guard let destination = network(route.destination) else { return nil }
            return RouteSpec(destination: destination, gateway: address(route.nextHop))
        }
        return NetworkSpec(interfaces: interfaces, routes: routes)
    }

    static func network(_ prefix: IPPrefix) -> IPNetwork? {
        IPNetwork(family: prefix.address.isIPv4 ? .v4 : .v6, bytes: prefix.address.bytes, prefixLength: prefix.length)
    }

    static func address(_ address: Config.IPAddress) -> System.IPAddress {
        System.IPAddress(family: address.isIPv4 ? .v4 : .v6, bytes: address.bytes)
    }
}
