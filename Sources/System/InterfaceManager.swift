// Reconciles the kernel's interfaces, addresses and routes with a NetworkSpec through
// libnl-route-3. Only what differs is changed, so applying the same spec twice changes
// nothing (no flapping), and interfaces the spec does not name are never touched.
// A failed change is reported with the interface and the kernel's reason and the
// rest of the spec is still applied.
import CNetlink
import Glibc
import Log

/// A failure of the system layer, as one readable line.
public struct SystemFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What one reconciliation did.
public struct ReconcileReport: Sendable, Equatable {
    /// Changes made, one line each ("eth1: address 192.0.2.5/24 added").
    public var changes: [String] = []
    /// Changes that failed, one line each ("eth1: address 192.0.2.5/24: File exists").
    public var errors: [String] = []
    public init() {}
}

/// An interface as the kernel reports it.
public struct InterfaceStatus: Sendable, Equatable {
    public let index: Int32
    public let name: String
    public let adminUp: Bool
    public let carrier: Bool
    public let mtu: Int
    public let addresses: [IPNetwork]
    public let vlanID: Int?
    public let parent: String?
}

/// A main-table unicast route as the kernel reports it.
public struct RouteStatus: Sendable, Equatable, CustomStringConvertible {
    public let destination: IPNetwork
    public let gateway: IPAddress?
    public let device: String?
    public let metric: UInt32
    public let protocolNumber: UInt8
    /// Installed by this manager (its protocol number).
    public var managed: Bool { protocolNumber == InterfaceManager.routeProtocol }

    public var description: String {
        RouteSpec(destination: destination, gateway: gateway, device: device, metric: metric).description
            + (managed ? " proto bloo" : " proto \(protocolNumber)")
    }
}

private let flagUp: UInt32 = 0x1          // IFF_UP
private let flagLowerUp: UInt32 = 0x10000 // IFF_LOWER_UP: carrier

/// The kernel state the manager needs, read in one go.
struct KernelLink {
    let index: Int32
    let name: String
    let flags: UInt32
    let mtu: Int
    let vlanID: Int?
    let parentIndex: Int32
}

struct KernelRoute {
    let destination: IPNetwork
    let gateway: IPAddress?
    let deviceIndex: Int32
    let metric: UInt32
    let protocolNumber: UInt8
}

/// Not thread-safe: one owner at a time (the daemon keeps it behind a lock).
public final class InterfaceManager {
    /// rtm_protocol of the routes this manager installs: above RTPROT_STATIC (4), so the
    /// kernel does not interpret it, and unused by <linux/rtnetlink.h> and iproute2's
    /// rt_protos (which name 0-18, 42, 99, 186-192). Only routes with it are ever removed.
    public static let routeProtocol: UInt8 = 157
    private let socket: OpaquePointer
    private let kernelErrno: UnsafeMutablePointer<Int32>
    /// VLAN devices created or adopted under a spec; removed when a later spec drops them.
    public private(set) var ownedVLANs: Set<String> = []
    private let log = Logger(subsystem: "netlink")

    public init() throws(SystemFailure) {
        guard let socket = nl_socket_alloc() else { throw SystemFailure("netlink: cannot allocate a socket") }
        let rc = nl_connect(socket, NETLINK_ROUTE)
        guard rc == 0 else {
            nl_socket_free(socket)
            throw SystemFailure("netlink: connect: \(String(cString: nl_geterror(rc)))")
        }
        self.socket = socket
        kernelErrno = .allocate(capacity: 1)
        kernelErrno.pointee = 0
        _ = bloo_nl_capture_errno(socket, kernelErrno)
    }

    deinit {
        nl_socket_free(socket)
        kernelErrno.deallocate()
    }

    // MARK: Reading the kernel

    func readLinks() throws(SystemFailure) -> [KernelLink] {
        var cache: OpaquePointer?
        let rc = rtnl_link_alloc_cache(socket, AF_UNSPEC, &cache)
        guard rc == 0, let cache else { throw SystemFailure("netlink: reading links: \(String(cString: nl_geterror(rc)))") }
        defer { nl_cache_free(cache) }
        var links: [KernelLink] = []
        var object = nl_cache_get_first(cache)
        while let link = object {
            let isVLAN = rtnl_link_is_vlan(link) != 0
            links.append(KernelLink(index: rtnl_link_get_ifindex(link),
                                    name: rtnl_link_get_name(link).map { String(cString: $0) } ?? "",
                                    flags: rtnl_link_get_flags(link),
                                    mtu: Int(rtnl_link_get_mtu(link)),
                                    vlanID: isVLAN ? Int(rtnl_link_vlan_get_id(link)) : nil,
                                    parentIndex: rtnl_link_get_link(link)))
            object = nl_cache_get_next(link)
        }
        return links
    }

    func readAddresses() throws(SystemFailure) -> [(index: Int32, network: IPNetwork)] {
        var cache: OpaquePointer?
        let rc = rtnl_addr_alloc_cache(socket, &cache)
        guard rc == 0, let cache else { throw SystemFailure("netlink: reading addresses: \(String(cString: nl_geterror(rc)))") }
        defer { nl_cache_free(cache) }
        var addresses: [(index: Int32, network: IPNetwork)] = []
        var object = nl_cache_get_first(cache)
        while let address = object {
            if let local = rtnl_addr_get_local(address),
               let network = Self.network(local, prefixLength: Int(rtnl_addr_get_prefixlen(address))) {
                addresses.append((rtnl_addr_get_ifindex(address), network))
            }
            object = nl_cache_get_next(address)
        }
        return addresses
    }

    func readRoutes() throws(SystemFailure) -> [KernelRoute] {
        var cache: OpaquePointer?
        let rc = rtnl_route_alloc_cache(socket, AF_UNSPEC, 0, &cache)
        guard rc == 0, let cache else { throw SystemFailure("netlink: reading routes: \(String(cString: nl_geterror(rc)))") }
        defer { nl_cache_free(cache) }
        var routes: [KernelRoute] = []
        var object = nl_cache_get_first(cache)
        while let route = object {
            defer { object = nl_cache_get_next(route) }
            guard rtnl_route_get_table(route) == RT_TABLE_MAIN.rawValue, rtnl_route_get_type(route) == UInt8(RTN_UNICAST)
            else { continue }
            let family: IPFamily = rtnl_route_get_family(route) == UInt8(AF_INET6) ? .v6 : .v4
            guard let destination = rtnl_route_get_dst(route).flatMap({ Self.network($0, prefixLength: Int(nl_addr_get_prefixlen($0)), family: family) })
                    ?? IPNetwork(family: family, bytes: [UInt8](repeating: 0, count: family.byteCount), prefixLength: 0)
            else { continue }
            var gateway: IPAddress?
            var deviceIndex: Int32 = 0
            if rtnl_route_get_nnexthops(route) > 0, let hop = rtnl_route_nexthop_n(route, 0) {
                gateway = rtnl_route_nh_get_gateway(hop).flatMap { Self.network($0, prefixLength: 0)?.address }
                deviceIndex = rtnl_route_nh_get_ifindex(hop)
            }
            routes.append(KernelRoute(destination: destination.masked, gateway: gateway, deviceIndex: deviceIndex,
                                      metric: rtnl_route_get_priority(route), protocolNumber: rtnl_route_get_protocol(route)))
        }
        return routes
    }

    /// The kernel's interfaces with their addresses, for `show interfaces`.
    public func interfaces() throws(SystemFailure) -> [InterfaceStatus] {
        let links = try readLinks()
        let addresses = try readAddresses()
        let names = Dictionary(links.map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first })
        return links.map { link in
            InterfaceStatus(index: link.index, name: link.name, adminUp: link.flags & flagUp != 0,
                            carrier: link.flags & flagLowerUp != 0, mtu: link.mtu,
                            addresses: addresses.filter { $0.index == link.index }.map(\.network),
                            vlanID: link.vlanID, parent: link.vlanID != nil ? names[link.parentIndex] : nil)
        }
    }

    /// The main routing table, for `show routes`.
    public func routes() throws(SystemFailure) -> [RouteStatus] {
        let names = Dictionary(try readLinks().map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first })
        return try readRoutes().map {
            RouteStatus(destination: $0.destination, gateway: $0.gateway, device: names[$0.deviceIndex],
                        metric: $0.metric, protocolNumber: $0.protocolNumber)
        }
    }

    // MARK: Reconciling

    /// Brings the kernel to `spec`, changing only what differs.
    public func reconcile(_ spec: NetworkSpec) -> ReconcileReport {
        var report = ReconcileReport()
        for problem in spec.problems() { report.errors.append(problem) }
        let specs = spec.interfaces.filter { candidate in !report.errors.contains { $0.hasPrefix(candidate.name + ":") } }
        do {
            var links = try readLinks()
            let wantedVLANs = Set(specs.filter { $0.vlan != nil }.map(\.name))

            // VLANs that a previous spec owned and this one dropped.
            for name in ownedVLANs.subtracting(wantedVLANs).sorted() {
                if let link = links.first(where: { $0.name == name }), link.vlanID != nil {
                    if let error = deleteLink(link) {
                        report.errors.append("\(name): delete: \(error)")
                        continue
                    }
                    report.changes.append("\(name): VLAN removed")
                }
                ownedVLANs.remove(name)
            }

            // VLANs to create; an existing device of that name must be the same VLAN.
            var created = false
            for interface in specs {
                guard let vlan = interface.vlan else { continue }
                guard let parent = links.first(where: { $0.name == vlan.parent }) else {
                    report.errors.append("\(interface.name): parent \(vlan.parent) does not exist")
                    continue
                }
                if let existing = links.first(where: { $0.name == interface.name }) {
                    if existing.vlanID == vlan.id && existing.parentIndex == parent.index {
                        ownedVLANs.insert(interface.name)
                    } else {
                        report.errors.append("\(interface.name): exists but is not VLAN \(vlan.id) on \(vlan.parent)")
                    }
                    continue
                }
                if let error = createVLAN(interface.name, parentIndex: parent.index, id: vlan.id) {
                    report.errors.append("\(interface.name): create VLAN \(vlan.id) on \(vlan.parent): \(error)")
                    continue
                }
                ownedVLANs.insert(interface.name)
                created = true
                report.changes.append("\(interface.name): VLAN \(vlan.id) on \(vlan.parent) created")
            }
            if created { links = try readLinks() }

            // Parents before their VLANs: a VLAN's MTU may not exceed its parent's.
            let addresses = try readAddresses()
            let ordered = specs.filter { $0.vlan == nil } + specs.filter { $0.vlan != nil }
            for interface in ordered {
                guard let link = links.first(where: { $0.name == interface.name }) else {
                    if interface.vlan == nil { report.errors.append("\(interface.name): no such interface") }
                    continue
                }
                apply(interface, to: link, current: addresses.filter { $0.index == link.index }.map(\.network), &report)
            }

            // Routes: after addresses and admin state, which they depend on.
            let routes = try readRoutes()
            links = try readLinks()
            applyRoutes(spec.routes, kernel: routes, links: links, &report)
        } catch {
            report.errors.append(error.message)
        }
        for change in report.changes { log.notice("changed", ["change": change]) }
        for error in report.errors { log.error("change failed", ["error": error]) }
        return report
    }

    private func apply(_ interface: InterfaceSpec, to link: KernelLink, current: [IPNetwork], _ report: inout ReconcileReport) {
        let name = interface.name
        if let mtu = interface.mtu, mtu != link.mtu {
            let error = changeLink(link) { rtnl_link_set_mtu($0, UInt32(mtu)) }
            if let error {
                report.errors.append("\(name): MTU \(mtu): \(error)")
            } else {
                report.changes.append("\(name): MTU \(link.mtu) -> \(mtu)")
            }
        }
        let isUp = link.flags & flagUp != 0
        if interface.enabled != isUp {
            let error = changeLink(link) { change in
                if interface.enabled { rtnl_link_set_flags(change, flagUp) } else { rtnl_link_unset_flags(change, flagUp) }
            }
            if let error {
                report.errors.append("\(name): set \(interface.enabled ? "up" : "down"): \(error)")
            } else {
                report.changes.append("\(name): \(interface.enabled ? "up" : "down")")
            }
        }
        let managed = current.filter { !$0.isIPv6LinkLocal }
        for address in managed where !interface.addresses.contains(address) {
            if let error = changeAddress(address, index: link.index, add: false) {
                report.errors.append("\(name): remove address \(address): \(error)")
            } else {
                report.changes.append("\(name): address \(address) removed")
            }
        }
        for address in interface.addresses where !managed.contains(address) {
            if let error = changeAddress(address, index: link.index, add: true) {
                report.errors.append("\(name): address \(address): \(error)")
            } else {
                report.changes.append("\(name): address \(address) added")
            }
        }
    }

    private func applyRoutes(_ wanted: [RouteSpec], kernel: [KernelRoute], links: [KernelLink], _ report: inout ReconcileReport) {
        let indexByName = Dictionary(links.map { ($0.name, $0.index) }, uniquingKeysWith: { first, _ in first })
        func matches(_ spec: RouteSpec, _ route: KernelRoute) -> Bool {
            route.destination == spec.destination && route.gateway == spec.gateway
                && (spec.device == nil || indexByName[spec.device!] == route.deviceIndex)
                && route.metric == (spec.metric ?? Self.defaultMetric(spec.destination.family))
        }
        let ours = kernel.filter { $0.protocolNumber == Self.routeProtocol }
        for route in ours where !wanted.contains(where: { matches($0, route) }) {
            let label = RouteSpec(destination: route.destination, gateway: route.gateway, metric: route.metric).description
            if let error = changeRoute(destination: route.destination, gateway: route.gateway,
                                       deviceIndex: route.deviceIndex, metric: route.metric, add: false) {
                report.errors.append("route \(label): remove: \(error)")
            } else {
                report.changes.append("route \(label) removed")
            }
        }
        for spec in wanted where !ours.contains(where: { matches(spec, $0) }) {
            var deviceIndex: Int32 = 0
            if let device = spec.device {
                guard let index = indexByName[device] else {
                    report.errors.append("\(device): route \(spec): no such interface")
                    continue
                }
                deviceIndex = index
            }
            if let error = changeRoute(destination: spec.destination, gateway: spec.gateway, deviceIndex: deviceIndex,
                                       metric: spec.metric ?? 0, add: true) {
                report.errors.append("\(spec.device.map { $0 + ": " } ?? "")route \(spec): \(error)")
            } else {
                report.changes.append("route \(spec) added")
            }
        }
    }

    /// The metric the kernel gives a route added without one (IP6_RT_PRIO_USER for IPv6).
    static func defaultMetric(_ family: IPFamily) -> UInt32 { family == .v6 ? 1024 : 0 }

    // MARK: Kernel requests (each returns nil or the kernel's reason)

    private func outcome(_ rc: Int32) -> String? {
        defer { kernelErrno.pointee = 0 }
        if rc >= 0 { return nil }
        if kernelErrno.pointee != 0 { return String(cString: strerror(kernelErrno.pointee)) }
        return String(cString: nl_geterror(rc))
    }

    private func changeLink(_ link: KernelLink, _ edit: (OpaquePointer) -> Void) -> String? {
        guard let original = rtnl_link_alloc(), let change = rtnl_link_alloc() else { return "out of memory" }
        defer { rtnl_link_put(original); rtnl_link_put(change) }
        rtnl_link_set_ifindex(original, link.index)
        rtnl_link_set_name(original, link.name)
        edit(change)
        kernelErrno.pointee = 0
        return outcome(rtnl_link_change(socket, original, change, 0))
    }

    private func createVLAN(_ name: String, parentIndex: Int32, id: Int) -> String? {
        guard let link = rtnl_link_vlan_alloc() else { return "out of memory" }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        rtnl_link_set_link(link, parentIndex)
        _ = rtnl_link_vlan_set_id(link, UInt16(id))
        kernelErrno.pointee = 0
        return outcome(rtnl_link_add(socket, link, NLM_F_CREATE | NLM_F_EXCL))
    }

    private func deleteLink(_ link: KernelLink) -> String? {
        guard let object = rtnl_link_alloc() else { return "out of memory" }
        defer { rtnl_link_put(object) }
        rtnl_link_set_ifindex(object, link.index)
        kernelErrno.pointee = 0
        return outcome(rtnl_link_delete(socket, object))
    }

    private func changeAddress(_ network: IPNetwork, index: Int32, add: Bool) -> String? {
        guard let address = rtnl_addr_alloc() else { return "out of memory" }
        defer { rtnl_addr_put(address) }
        guard let local = Self.nlAddress(network.bytes, family: network.family, prefixLength: network.prefixLength) else {
            return "out of memory"
        }
        defer { nl_addr_put(local) }
        rtnl_addr_set_ifindex(address, index)
        _ = rtnl_addr_set_local(address, local)
        rtnl_addr_set_prefixlen(address, Int32(network.prefixLength))
        kernelErrno.pointee = 0
        return outcome(add ? rtnl_addr_add(socket, address, NLM_F_CREATE | NLM_F_EXCL) : rtnl_addr_delete(socket, address, 0))
    }

    private func changeRoute(destination: IPNetwork, gateway: IPAddress?, deviceIndex: Int32, metric: UInt32, add: Bool) -> String? {
        guard let route = rtnl_route_alloc() else { return "out of memory" }
        defer { rtnl_route_put(route) }
        guard let dst = Self.nlAddress(destination.bytes, family: destination.family, prefixLength: destination.prefixLength) else {
            return "out of memory"
        }
        defer { nl_addr_put(dst) }
        _ = rtnl_route_set_family(route, UInt8(destination.family.addressFamily))
        rtnl_route_set_table(route, RT_TABLE_MAIN.rawValue)
        rtnl_route_set_protocol(route, Self.routeProtocol)
        _ = rtnl_route_set_dst(route, dst)
        rtnl_route_set_priority(route, metric)
        if gateway != nil || deviceIndex != 0 {
            guard let hop = rtnl_route_nh_alloc() else { return "out of memory" }
            if let gateway, let address = Self.nlAddress(gateway.bytes, family: gateway.family, prefixLength: gateway.family.byteCount * 8) {
                rtnl_route_nh_set_gateway(hop, address)
                nl_addr_put(address)
            }
            if deviceIndex != 0 { rtnl_route_nh_set_ifindex(hop, deviceIndex) }
            rtnl_route_add_nexthop(route, hop)  // the route owns the hop from here
        }
        kernelErrno.pointee = 0
        return outcome(add ? rtnl_route_add(socket, route, NLM_F_CREATE | NLM_F_EXCL) : rtnl_route_delete(socket, route, 0))
    }

    // MARK: Address conversion

    static func nlAddress(_ bytes: [UInt8], family: IPFamily, prefixLength: Int) -> OpaquePointer? {
        let address = bytes.withUnsafeBytes { nl_addr_build(family.addressFamily, $0.baseAddress, $0.count) }
        if let address { nl_addr_set_prefixlen(address, Int32(prefixLength)) }
        return address
    }

    static func network(_ address: OpaquePointer, prefixLength: Int, family expected: IPFamily? = nil) -> IPNetwork? {
        let family: IPFamily
        switch nl_addr_get_family(address) {
        case AF_INET: family = .v4
        case AF_INET6: family = .v6
        default: return nil
        }
        if let expected, expected != family { return nil }
        let length = Int(nl_addr_get_len(address))
        guard let raw = nl_addr_get_binary_addr(address) else { return nil }
        var bytes = [UInt8](repeating: 0, count: family.byteCount)
        let copied = min(length, family.byteCount)
        let source = raw.assumingMemoryBound(to: UInt8.self)
        for index in 0..<copied { bytes[index] = source[index] }
        return IPNetwork(family: family, bytes: bytes, prefixLength: min(prefixLength, family.byteCount * 8))
    }
}
