import Foundation
import Glibc
import Testing
@testable import Control

/// The real socket: a server thread and clients in this process (root in CI, so the
/// caller is admin through uid 0; the group rules are covered by the system test).
@Suite(.serialized) struct ControlSocketTests {
    static func withServer(policy: ControlAccessPolicy = ControlAccessPolicy(adminGroups: [], operatorGroups: [getgid()]),
                           _ body: (ControlClient) throws -> Void) throws {
        let path = "/tmp/bloo-control-test-\(getpid())-\(Int.random(in: 0..<1_000_000)).sock"
        let server = try ControlServer(path: path, policy: policy)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            server.serve { request, caller, role in
                switch request {
                case .show(let topic, _, let format) where topic == "whoami":
                    return .ok(format == .kv ? "uid=\(caller.uid)\nrole=\(role.rawValue)\n" : "uid \(caller.uid) \(role.rawValue)\n")
                case .configCommit(let text, _, let user, _):
                    return .ok("committed \(text.utf8.count) bytes by \(user ?? "-")\n")
                default:
                    return .error(.unknown, "no topic '\(request.summary)'")
                }
            }
            done.signal()
        }
        thread.start()
        defer {
            server.stop()
            done.wait()
            server.close()
        }
        try body(ControlClient(socketPath: path, timeoutSeconds: 10))
    }

    @Test func requestAndReply() throws {
        try Self.withServer { client in
            let role = getuid() == 0 ? "admin" : "operator"
            let shown = try client.show("whoami", format: .kv)
            #expect(shown == "uid=\(getuid())\nrole=\(role)\n")
            #expect(throws: ControlClientError.refused(.unknown, "no topic 'show nothing'")) { try client.show("nothing") }
        }
    }

    @Test func malformedAndOversizeRequestsGetErrorsAndTheServerSurvives() throws {
        try Self.withServer { client in
            let bad = try client.exchange(Array("show \u{1}\n".utf8))
            #expect(bad == .error(.malformed, "command line contains control characters or is not UTF-8"))
            let huge = [UInt8](repeating: 0x41, count: ControlLimits.maxRequestBytes + 100_000)
            let reply = try client.exchange(huge)
            guard case .error(let code, _) = reply else { Issue.record("expected an error, got \(reply)"); return }
            #expect(code == .tooLarge)
            let after = try client.show("whoami")
            #expect(after.hasPrefix("uid \(getuid())"))
        }
    }

    @Test func aClientThatNeverStopsSendingIsCutOff() throws {
        try Self.withServer { client in
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = try #require(unixAddress(client.socketPath))
            #expect(withSockaddr(&address) { connect(fd, $0, $1) } == 0)
            setTimeouts(fd, seconds: 1)
            let chunk = [UInt8](repeating: 0x41, count: 65536)
            let start = ControlServer.monotonicMs()
            var sent = 0
            while ControlServer.monotonicMs() - start < 20_000 {
                let count = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { break }
                sent += max(0, count)
            }
            #expect(ControlServer.monotonicMs() - start < 8000)
            #expect(sent > ControlLimits.maxRequestBytes)
            // And the server still answers others.
            let after = try client.show("whoami")
            #expect(after.hasPrefix("uid"))
        }
    }

    @Test func operatorsMayNotChange() throws {
        guard getuid() != 0 else {
            // As root the caller is admin: commits go through to the handler.
            try Self.withServer { client in
                let committed = try client.configCommit("x\n", user: "alice")
                #expect(committed == "committed 2 bytes by alice\n")
            }
            return
        }
        try Self.withServer { client in
            #expect(throws: ControlClientError.self) { try client.configCommit("x\n") }
        }
    }

    @Test func strangersAreRefused() throws {
        try Self.withServer(policy: ControlAccessPolicy(adminGroups: [], operatorGroups: [], rootIsAdmin: false)) { client in
            let reply = try client.send(.show(topic: "whoami", argument: nil, format: .text))
            guard case .error(let code, _) = reply else { Issue.record("expected denied, got \(reply)"); return }
            #expect(code == .denied)
        }
    }

    @Test func aLiveSocketIsNotStolen() throws {
        try Self.withServer { client in
            #expect(throws: ControlServerError.self) {
                _ = try ControlServer(path: client.socketPath, policy: ControlAccessPolicy(adminGroups: [], operatorGroups: []))
            }
        }
    }

    @Test func unreachableDaemonIsNamed() {
        let client = ControlClient(socketPath: "/tmp/bloo-no-such-socket-\(getpid())")
        #expect(throws: ControlClientError.unreachable(path: client.socketPath, reason: "No such file or directory")) {
            try client.show("version")
        }
    }
}
