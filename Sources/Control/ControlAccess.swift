// Who may talk to the daemon, decided from the kernel's word (SO_PEERCRED and
// SO_PEERGROUPS), never from anything the caller writes.
import Glibc

/// What a caller may do.
public enum ControlRole: String, Sendable, Equatable {
    /// May read and change (commit, confirm, rollback, reboot).
    case admin
    /// May only read (show, config get, config validate).
    case `operator`
}

/// The peer of a control connection, as the kernel saw it at connect time.
public struct ControlCaller: Sendable, Equatable {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32
    /// Supplementary groups (SO_PEERGROUPS).
    public let groups: [UInt32]

    public init(pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32]) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// Reads the credentials of the peer connected on `fd`.
    public static func of(socket fd: Int32) -> ControlCaller? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }: not exported by the Glibc module.
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
              length == socklen_t(MemoryLayout.size(ofValue: credentials)) else { return nil }
        var groups = [UInt32](repeating: 0, count: 64)
        var groupBytes = socklen_t(groups.count * MemoryLayout<UInt32>.size)
        var count = 0
        let rc = groups.withUnsafeMutableBytes { getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, $0.baseAddress, &groupBytes) }
        if rc == 0 {
            count = Int(groupBytes) / MemoryLayout<UInt32>.size
        } else if errno == ERANGE, Int(groupBytes) <= 65536 * MemoryLayout<UInt32>.size {
            groups = [UInt32](repeating: 0, count: Int(groupBytes) / MemoryLayout<UInt32>.size)
            if groups.withUnsafeMutableBytes({ getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, $0.baseAddress, &groupBytes) }) == 0 {
                count = Int(groupBytes) / MemoryLayout<UInt32>.size
            }
        }
        return ControlCaller(pid: credentials.0, uid: credentials.1, gid: credentials.2,
                             groups: Array(groups.prefix(min(count, groups.count))))
    }
}

/// Maps callers to roles: root and the admin group change; the operator group reads;
/// everybody else is refused.
public struct ControlAccessPolicy: Sendable, Equatable {
    public var adminGroups: Set<UInt32>
    public var operatorGroups: Set<UInt32>
    /// uid 0 is admin: whoever is root owns the box anyway (the console's recovery path).
    public var rootIsAdmin: Bool

    public init(adminGroups: Set<UInt32>, operatorGroups: Set<UInt32>, rootIsAdmin: Bool = true) {
        self.adminGroups = adminGroups
        self.operatorGroups = operatorGroups
        self.rootIsAdmin = rootIsAdmin
    }

    public func role(for caller: ControlCaller) -> ControlRole? {
        if rootIsAdmin && caller.uid == 0 { return .admin }
        let all = Set(caller.groups).union([caller.gid])
        if !all.isDisjoint(with: adminGroups) { return .admin }
        if !all.isDisjoint(with: operatorGroups) { return .operator }
        return nil
    }

    /// Resolves a group given by name (from /etc/group, read with glibc's fgetgrent:
    /// getgrnam in a static binary may try to dlopen NSS modules and crash) or by number.
    public static func groupID(_ nameOrNumber: String, groupFile: String = "/etc/group") -> UInt32? {
        if let number = UInt32(nameOrNumber) { return number }
        guard let file = fopen(groupFile, "re") else { return nil }
        defer { fclose(file) }
        while let entry = fgetgrent(file) {
            if String(cString: entry.pointee.gr_name) == nameOrNumber { return entry.pointee.gr_gid }
        }
        return nil
    }
}
