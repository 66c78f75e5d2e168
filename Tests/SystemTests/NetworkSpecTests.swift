import Foundation
import Glibc
import Testing
@testable import System

@Suite struct NetworkSpecTests {
    @Test func addressesParseAndPrint() throws {
        let v4 = try #require(IPNetwork("192.0.2.5/24"))
        #expect(v4.family == .v4 && v4.bytes == [192, 0, 2, 5] && v4.prefixLength == 24)
        #expect(v4.description == "192.0.2.5/24")
        #expect(v4.masked.description == "192.0.2.0/24")
        let v6 = try #require(IPNetwork("2001:db8::5/64"))
        #expect(v6.description == "2001:db8::5/64")
        #expect(v6.masked.description == "2001:db8::/64")
        #expect(IPNetwork("fe80::1/64")?.isIPv6LinkLocal == true)
        #expect(IPNetwork("10.0.0.1")?.prefixLength == 32)
        #expect(IPNetwork("0.0.0.0/0")?.isDefault == true)
        #expect(IPNetwork("198.51.100.7/25")?.masked.description == "198.51.100.0/25")
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4/33", "::/129", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/1/2", "x/8", "1.2.3.4/0008"])
    func badAddressesAreRefused(text: String) {
        #expect(IPNetwork(text) == nil)
    }

    @Test func routesNormaliseAndDescribe() throws {
        let route = RouteSpec(destination: try #require(IPNetwork("203.0.113.9/24")), gateway: IPAddress("192.0.2.1"))
        #expect(route.destination.description == "203.0.113.0/24")
        #expect(route.description == "203.0.113.0/24 via 192.0.2.1")
        let defaultRoute = RouteSpec(destination: try #require(IPNetwork("0.0.0.0/0")), gateway: IPAddress("192.0.2.1"))
        #expect(defaultRoute.description == "default via 192.0.2.1")
    }

    @Test func specProblemsAreFoundBeforeTheKernel() throws {
        let spec = NetworkSpec(interfaces: [
            InterfaceSpec(name: "eth0"), InterfaceSpec(name: "eth0"),
            InterfaceSpec(name: "averyveryverylongname0"),
            InterfaceSpec(name: "eth1", mtu: 20),
            InterfaceSpec(name: "eth1.5000", vlan: VLANSpec(parent: "eth1", id: 5000)),
        ], routes: [
            RouteSpec(destination: try #require(IPNetwork("10.0.0.0/8")), gateway: IPAddress("2001:db8::1")),
            RouteSpec(destination: try #require(IPNetwork("10.0.0.0/8"))),
        ])
        let problems = spec.problems()
        #expect(problems.contains("eth0: listed twice"))
        #expect(problems.contains("averyveryverylongname0: not a valid interface name"))
        #expect(problems.contains("eth1: MTU 20 outside 68-65535"))
        #expect(problems.contains("eth1.5000: VLAN id 5000 outside 1-4094"))
        #expect(problems.contains { $0.contains("gateway family differs") })
        #expect(problems.contains { $0.contains("needs a gateway or a device") })
    }
}

@Suite struct PrivilegeTests {
    @Test func serviceAccountsByNumberOrName() throws {
        #expect(try ServiceAccount.resolve("1234") == ServiceAccount(uid: 1234, gid: 1234, name: "1234"))
        #expect(try ServiceAccount.resolve("1234:99") == ServiceAccount(uid: 1234, gid: 99, name: "1234"))
        #expect(throws: SystemFailure.self) { try ServiceAccount.resolve("0") }
        #expect(throws: SystemFailure.self) { try ServiceAccount.resolve("1234:0") }
        #expect(throws: SystemFailure.self) { try ServiceAccount.resolve("1234:x") }
        #expect(throws: SystemFailure.self) { try ServiceAccount.resolve("root") }
        #expect(throws: SystemFailure("service user 'no-such-account-bloo': not in /etc/passwd")) {
            try ServiceAccount.resolve("no-such-account-bloo")
        }
    }

    @Test func passwdFilesAreReadWithoutNSS() throws {
        let path = "/tmp/bloo-passwd-\(getpid())"
        let text = "root:x:0:0:root:/root:/bin/sh\nsvc:x:321:654::/nonexistent:/usr/sbin/nologin\n"
        let file = try #require(fopen(path, "w"))
        fputs(text, file)
        fclose(file)
        defer { unlink(path) }
        #expect(passwdEntry("svc", path: path)! == (321, 654))
        #expect(passwdEntry("nobody-here", path: path) == nil)
    }

    @Test func securebitsLockEverything() {
        // noroot, no_setuid_fixup, keep_caps (locked only), no_cap_ambient_raise: each with its lock.
        // Bits 0-7 of <linux/securebits.h> except 4 (KEEP_CAPS itself: NO_SETUID_FIXUP keeps the sets).
        #expect(Privileges.lockedSecurebits == 0xEF)
    }

    @Test func dropRefusesWithThreads() throws {
        // With a second thread running, dropping must be refused, not half-done.
        guard getuid() == 0 else { return }
        let release = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { started.signal(); release.wait() }
        thread.start()
        started.wait()
        defer { release.signal() }
        #expect(Privileges.threadCount() >= 2)
        #expect(throws: SystemFailure.self) { try Privileges.drop(to: ServiceAccount.resolve("4242"), keeping: []) }
        #expect(getuid() == 0)
    }
}

@Suite struct PlacementTests {
    @Test func cpuListsPrintAsRanges() {
        #expect(Placement.listText([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8")
        #expect(Placement.listText([3]) == "3")
        #expect(Placement.listText([]) == "")
    }

    @Test func threadsAreReadBack() {
        let threads = Placement.threads()
        #expect(threads.contains { $0.tid == getpid() })
        #expect(threads.allSatisfy { !$0.cpus.isEmpty })
    }
}

/// Read-only look at the kernel from the test's own namespace: nothing is changed here;
/// changes are tested in namespaces by Tests/system/test_netlink.py.
@Suite struct InterfaceManagerReadTests {
    @Test func loopbackIsListed() throws {
        let manager = try InterfaceManager()
        let lo = try #require(try manager.interfaces().first { $0.name == "lo" })
        #expect(lo.index == 1)
        #expect(lo.addresses.contains { $0.description == "127.0.0.1/8" } || !lo.adminUp)
        _ = try manager.routes()
    }
}
