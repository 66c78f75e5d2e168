// Kernel notifications about links, addresses and routes, through a libnl
// notification socket. The owner polls `fd` and calls `drain()` when it is readable.
import CNetlink
import Glibc

public struct NetworkEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case interfaceAdded = "interface-added"
        case interfaceRemoved = "interface-removed"
        case carrierLost = "carrier-lost"
        case carrierRestored = "carrier-restored"
        case adminUp = "admin-up"
        case adminDown = "admin-down"
        case addressAdded = "address-added"
        case addressRemoved = "address-removed"
        case routeAdded = "route-added"
        case routeRemoved = "route-removed"
        /// The kernel dropped notifications (socket buffer full): state must be re-read.
        case overflow
    }

    public let kind: Kind
    /// The interface concerned ("" for overflow or a route without a device).
    public let interface: String
    public let detail: String

    public var description: String {
        kind.rawValue + (interface.isEmpty ? "" : " " + interface) + (detail.isEmpty ? "" : " " + detail)
    }
}

public final class NetworkEventSource {
    private let socket: OpaquePointer
    /// The descriptor to poll for readability.
    public let fd: Int32
    /// Links by index as last seen: name and flags, to turn link messages into changes.
    private var links: [Int32: (name: String, flags: UInt32)] = [:]
    private var pending: [NetworkEvent] = []

    public init() throws(SystemFailure) {
        guard let socket = nl_socket_alloc() else { throw SystemFailure("netlink events: cannot allocate a socket") }
        self.socket = socket
        nl_socket_disable_seq_check(socket)
        var rc = nl_connect(socket, NETLINK_ROUTE)
        guard rc == 0 else {
            nl_socket_free(socket)
            throw SystemFailure("netlink events: connect: \(String(cString: nl_geterror(rc)))")
        }
        for group in [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE] {
            rc = nl_socket_add_membership(socket, Int32(group.rawValue))
            guard rc == 0 else {
                nl_socket_free(socket)
                throw SystemFailure("netlink events: join group \(group.rawValue): \(String(cString: nl_geterror(rc)))")
            }
        }
        _ = nl_socket_set_nonblocking(socket)
        _ = nl_socket_set_buffer_size(socket, 1 << 20, 0)
        fd = nl_socket_get_fd(socket)
        // The snapshot comes from its own socket: this one only carries notifications.
        let snapshot = try InterfaceManager().readLinks()
        for link in snapshot { links[link.index] = (link.name, link.flags) }
    }

    deinit { nl_socket_free(socket) }

    /// Reads every queued notification and returns what changed.
    public func drain() -> [NetworkEvent] {
        let context = Unmanaged.passUnretained(self).toOpaque()
        nl_socket_modify_cb(socket, NL_CB_VALID, NL_CB_CUSTOM, { message, argument in
            guard let message, let argument else { return Int32(NL_OK.rawValue) }
            nl_msg_parse(message, { object, argument in
                guard let object, let argument else { return }
                Unmanaged<NetworkEventSource>.fromOpaque(argument).takeUnretainedValue().record(object)
            }, argument)
            return Int32(NL_OK.rawValue)
        }, context)
        while true {
            let rc = nl_recvmsgs_default(socket)
            if rc >= 0 { continue }
            if rc == -NLE_NOMEM || rc == -NLE_DUMP_INTR {
                pending.append(NetworkEvent(kind: .overflow, interface: "", detail: ""))
                continue
            }
            break  // -NLE_AGAIN: nothing more queued
        }
        defer { pending.removeAll() }
        return pending
    }

    private func name(_ index: Int32) -> String { links[index]?.name ?? "if\(index)" }

    fileprivate func record(_ object: OpaquePointer) {
        let type = String(cString: nl_object_get_type(object))
        let messageType = nl_object_get_msgtype(object)
        switch type {
        case "route/link":
            let index = rtnl_link_get_ifindex(object)
            let name = rtnl_link_get_name(object).map { String(cString: $0) } ?? "if\(index)"
            let flags = rtnl_link_get_flags(object)
            if messageType == Int32(RTM_DELLINK) {
                links[index] = nil
                pending.append(NetworkEvent(kind: .interfaceRemoved, interface: name, detail: ""))
                return
            }
            guard let previous = links[index] else {
                links[index] = (name, flags)
                pending.append(NetworkEvent(kind: .interfaceAdded, interface: name, detail: ""))
                return
            }
            links[index] = (name, flags)
            let up: UInt32 = 0x1, lowerUp: UInt32 = 0x10000
            if previous.flags & up != flags & up {
                pending.append(NetworkEvent(kind: flags & up != 0 ? .adminUp : .adminDown, interface: name, detail: ""))
            }
            if previous.flags & lowerUp != flags & lowerUp {
                pending.append(NetworkEvent(kind: flags & lowerUp != 0 ? .carrierRestored : .carrierLost, interface: name, detail: ""))
            }
        case "route/addr":
            guard let local = rtnl_addr_get_local(object),
                  let network = InterfaceManager.network(local, prefixLength: Int(rtnl_addr_get_prefixlen(object))) else { return }
            let added = messageType == Int32(RTM_NEWADDR)
            pending.append(NetworkEvent(kind: added ? .addressAdded : .addressRemoved,
                                        interface: name(rtnl_addr_get_ifindex(object)), detail: network.description))
        case "route/route":
            guard rtnl_route_get_table(object) == RT_TABLE_MAIN.rawValue else { return }
            let family: IPFamily = rtnl_route_get_family(object) == UInt8(AF_INET6) ? .v6 : .v4
            let destination = rtnl_route_get_dst(object).flatMap {
                InterfaceManager.network($0, prefixLength: Int(nl_addr_get_prefixlen($0)), family: family)
            }
            var device = ""
            if rtnl_route_get_nnexthops(object) > 0, let hop = rtnl_route_nexthop_n(object, 0) {
                device = name(rtnl_route_nh_get_ifindex(hop))
            }
            let text = destination.map { $0.isDefault ? "default" : $0.masked.description } ?? (family == .v4 ? "default" : "default (IPv6)")
            let added = messageType == Int32(RTM_NEWROUTE)
            pending.append(NetworkEvent(kind: added ? .routeAdded : .routeRemoved, interface: device,
                                        detail: text + " proto \(rtnl_route_get_protocol(object))"))
        default:
            return
        }
    }
}
