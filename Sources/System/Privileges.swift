// Least privilege. The daemon starts as root, opens what needs root, then becomes the
// service user for good, keeping only the capabilities its configuration needs.
// Capabilities are per thread on Linux: this must run while the process has exactly
// one thread, and `dropPrivileges` refuses otherwise.
import CCap
import CSystem
import Glibc
import Log

/// The capabilities the daemon may keep, and why (docs/architecture.md repeats this).
public enum Capability: String, Sendable, CaseIterable, Comparable {
    /// Netlink changes at run time: a commit or SIGHUP may change addresses, MTU,
    /// VLANs and routes, and events are re-reconciled, long after start-up.
    case netAdmin = "cap_net_admin"
    /// Listeners below 1024 (TLS on 443, H.323 on 1719/1720 are above) that a commit may
    /// re-bind at run time, so the bind happens after the drop, not only at start.
    case netBindService = "cap_net_bind_service"
    /// Real-time scheduling (SCHED_FIFO) of the media workers, only when configured.
    case sysNice = "cap_sys_nice"

    public var value: cap_value_t {
        switch self {
        case .netAdmin: cap_value_t(CAP_NET_ADMIN)
        case .netBindService: cap_value_t(CAP_NET_BIND_SERVICE)
        case .sysNice: cap_value_t(CAP_SYS_NICE)
        }
    }

    public static func < (lhs: Capability, rhs: Capability) -> Bool { lhs.value < rhs.value }
}

/// The account the daemon runs as after start-up.
public struct ServiceAccount: Sendable, Equatable {
    public let uid: UInt32
    public let gid: UInt32
    public let name: String

    /// `name` is looked up in /etc/passwd (glibc's files backend); `1000` or `1000:1000`
    /// are taken as numbers. Root is refused: the point is not to be root.
    public static func resolve(_ text: String) throws(SystemFailure) -> ServiceAccount {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count <= 2, let uid = UInt32(parts[0]) {
            let gid = parts.count == 2 ? UInt32(parts[1]) : uid
            guard let gid else { throw SystemFailure("service user '\(text)': bad group number") }
            guard uid != 0 && gid != 0 else { throw SystemFailure("service user '\(text)': must not be root") }
            return ServiceAccount(uid: uid, gid: gid, name: String(uid))
        }
        guard let entry = passwdEntry(text) else {
            throw SystemFailure("service user '\(text)': not in /etc/passwd")
        }
        let account = ServiceAccount(uid: entry.uid, gid: entry.gid, name: text)
        guard account.uid != 0 && account.gid != 0 else { throw SystemFailure("service user '\(text)': must not be root") }
        return account
    }
}

/// Reads /etc/passwd with glibc's own parser (fgetpwent). Not getpwnam: in a static
/// binary, an nsswitch.conf naming other sources (systemd, sss) makes glibc try to
/// dlopen them, which crashes; the appliance has only the file anyway.
func passwdEntry(_ name: String, path: String = "/etc/passwd") -> (uid: UInt32, gid: UInt32)? {
    guard let file = fopen(path, "re") else { return nil }
    defer { fclose(file) }
    while let entry = fgetpwent(file) {
        if String(cString: entry.pointee.pw_name) == name { return (entry.pointee.pw_uid, entry.pointee.pw_gid) }
    }
    return nil
}

/// What `dropPrivileges` left in place, read back from the kernel.
public struct PrivilegeReport: Sendable, Equatable {
    public let uid: UInt32
    public let gid: UInt32
    public let kept: [Capability]
    public let noNewPrivileges: Bool
    public let securebits: UInt32
}

public enum Privileges {
    // <linux/prctl.h>; not exported by the Glibc module.
    static let prSetNoNewPrivs: Int32 = 38
    static let prGetNoNewPrivs: Int32 = 39
    private static let log = Logger(subsystem: "privileges")

    /// Locks every securebit that matters: no root magic, no setuid fix-up (so the
    /// chosen capabilities survive setuid without PR_SET_KEEPCAPS), no ambient raise.
    static let lockedSecurebits: UInt32 = {
        let bits: [Int32] = [SECURE_NOROOT, SECURE_NOROOT_LOCKED, SECURE_NO_SETUID_FIXUP,
                             SECURE_NO_SETUID_FIXUP_LOCKED, SECURE_KEEP_CAPS_LOCKED,
                             SECURE_NO_CAP_AMBIENT_RAISE, SECURE_NO_CAP_AMBIENT_RAISE_LOCKED]
        return bits.reduce(UInt32(0)) { $0 | (UInt32(1) << UInt32($1)) }
    }()

    /// Threads in this process, from /proc/self/task.
    public static func threadCount() -> Int {
        guard let directory = opendir("/proc/self/task") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != 0x2E { count += 1 }  // skip "." and ".."
        }
        return count
    }

    /// Becomes `account` for good with exactly `keep` in the permitted and effective sets.
    public static func drop(to account: ServiceAccount, keeping keep: Set<Capability>) throws(SystemFailure) -> PrivilegeReport {
        guard getuid() == 0 else { throw SystemFailure("privileges: must start as root to drop privileges (uid \(getuid()))") }
        let threads = threadCount()
        guard threads == 1 else {
            throw SystemFailure("privileges: \(threads) threads already run; capabilities are per thread, drop before starting any")
        }
        let kept = keep.sorted()
        // 1. Bounding set: everything not kept, so no exec can ever regain it.
        let last = cap_max_bits()
        for value in 0..<last where !kept.contains(where: { $0.value == value }) {
            if cap_get_bound(value) > 0 && cap_drop_bound(value) != 0 {
                throw SystemFailure("privileges: drop capability \(value) from the bounding set: \(String(cString: strerror(errno)))")
            }
        }
        // 2. Securebits, while CAP_SETPCAP is still ours.
        guard cap_set_secbits(lockedSecurebits) == 0 else {
            throw SystemFailure("privileges: lock securebits: \(String(cString: strerror(errno)))")
        }
        // 3. Identity: no supplementary groups, then gid, then uid (all three ids each).
        guard setgroups(0, nil) == 0 else { throw SystemFailure("privileges: setgroups: \(String(cString: strerror(errno)))") }
        // As root, setgid/setuid set the real, effective and saved ids alike.
        guard setgid(account.gid) == 0 else {
            throw SystemFailure("privileges: setgid \(account.gid): \(String(cString: strerror(errno)))")
        }
        guard setuid(account.uid) == 0 else {
            throw SystemFailure("privileges: setuid \(account.uid): \(String(cString: strerror(errno)))")
        }
        // 4. Capability sets: exactly `keep` permitted and effective, nothing inheritable or ambient.
        guard let caps = cap_init() else { throw SystemFailure("privileges: cap_init failed") }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        var values = kept.map(\.value)
        if !values.isEmpty {
            guard cap_set_flag(caps, CAP_PERMITTED, Int32(values.count), &values, CAP_SET) == 0,
                  cap_set_flag(caps, CAP_EFFECTIVE, Int32(values.count), &values, CAP_SET) == 0 else {
                throw SystemFailure("privileges: cap_set_flag failed")
            }
        }
        guard cap_set_proc(caps) == 0 else { throw SystemFailure("privileges: cap_set_proc: \(String(cString: strerror(errno)))") }
        guard cap_reset_ambient() == 0 else { throw SystemFailure("privileges: clear ambient set: \(String(cString: strerror(errno)))") }
        // 5. No exec may ever gain anything (setuid binaries, file capabilities).
        guard csys_prctl(prSetNoNewPrivs, 1, 0, 0, 0) == 0 else {
            throw SystemFailure("privileges: no_new_privs: \(String(cString: strerror(errno)))")
        }
        // 6. Prove it: root must be out of reach.
        guard setuid(0) != 0 else { throw SystemFailure("privileges: setuid(0) still succeeds after the drop") }
        let report = PrivilegeReport(uid: getuid(), gid: getgid(), kept: kept,
                                     noNewPrivileges: csys_prctl(prGetNoNewPrivs, 0, 0, 0, 0) == 1,
                                     securebits: UInt32(bitPattern: Int32(cap_get_secbits())))
        log.notice("privileges dropped", ["user": account.name, "uid": String(report.uid), "gid": String(report.gid),
                                          "capabilities": kept.isEmpty ? "none" : kept.map(\.rawValue).joined(separator: ",")])
        return report
    }

    /// The calling thread's effective capabilities, as text (`cap_net_admin=ep`).
    public static func currentText() -> String {
        guard let caps = cap_get_proc() else { return "?" }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        guard let text = cap_to_text(caps, nil) else { return "?" }
        defer { cap_free(text) }
        let result = String(cString: text)
        return result.isEmpty ? "none" : result
    }
}
