import Glibc
import IO
import Testing
@testable import Phone

@Suite struct NetworkMemoryTests {
    @Test func remembersPerNetworkAcrossRestarts() throws {
        let path = "/tmp/bloo-phone-state-\(getpid())"
        defer { unlink(path) }
        var memory = NetworkMemory(path: path)
        let home = NetworkKey(local: "192.168.1.20", gateway: "192.168.1.1")
        let hotel = NetworkKey(local: "10.0.5.7", gateway: "10.0.5.1")
        memory.remember(home, tunnel: false, reason: "RCF")
        memory.remember(hotel, tunnel: true, reason: "RRJ invalidRASAddress\nbehind NAT")
        let reloaded = NetworkMemory(path: path)
        #expect(reloaded.decision(for: home)?.tunnel == false)
        #expect(reloaded.decision(for: hotel)?.tunnel == true)
        #expect(reloaded.decision(for: hotel)?.reason == "RRJ invalidRASAddress behind NAT")
        #expect(reloaded.decision(for: NetworkKey(local: "10.0.5.8", gateway: "10.0.5.1")) == nil)
    }

    @Test func hostileStateFileIsIgnoredLineByLine() throws {
        let path = "/tmp/bloo-phone-state-bad-\(getpid())"
        defer { unlink(path) }
        try WAVFile(samples: []).write(to: path)  // binary garbage: a WAV header
        #expect(NetworkMemory(path: path).decisions.isEmpty)
        let fd = open(path, O_WRONLY | O_TRUNC)
        let text = Array("only two\n1.2.3.4 5.6.7.8 maybe x\n1.2.3.4 5.6.7.8 tunnel ok\n".utf8)
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let memory = NetworkMemory(path: path)
        #expect(memory.decisions.count == 1)
        #expect(memory.decision(for: NetworkKey(local: "1.2.3.4", gateway: "5.6.7.8"))?.tunnel == true)
        #expect(NetworkMemory(path: "/nonexistent/dir/state").decisions.isEmpty)
    }

    @Test func currentNetworkHasALocalAddress() {
        let key = NetworkKey.current(towards: .loopback(port: 1719))
        #expect(key.local == "127.0.0.1")
    }

    @Test func silentGatekeeperMeansTunnel() {
        // A UDP port nobody answers on: no RAS answer within the (shortened) retries.
        let outcome = DirectRegistration.attempt(gatekeeper: .loopback(port: 9), alias: "alice",
                                                 retry: .init(timeoutMs: 200, retries: 1))
        #expect(!outcome.registered)
        #expect(outcome.reason.contains("no RAS answer"))
    }
}

/// What the phone's thread saw, in order (touched on that thread only).
private final class Seen: @unchecked Sendable {
    var events: [String] = []
    var otherThread = false
}

@Suite struct ScanOffTheLoopTests {
    /// The scan that picks an appliance runs on its own thread: `register()` returns at
    /// once, the loop keeps serving (here: a `perform` body) while the scan runs, and the
    /// scan's outcome arrives later, on the phone's thread.
    @Test func registerReturnsBeforeTheScanAndTheLoopKeepsServing() throws {
        var configuration = PhoneConfiguration()
        configuration.alias = "alice"
        configuration.secret = Array("alice-secret-1".utf8)
        configuration.appliances = [Appliance(parsing: "tcp:127.0.0.1:9")!]  // discard port: nobody there
        configuration.scan.rounds = 3
        configuration.scan.probeTimeoutMs = 100  // the UDP probes alone take 300 ms
        let phone = try Phone(configuration: configuration)
        let seen = Seen()
        let thread = pthread_self()
        phone.onEvent = { event in
            if pthread_equal(pthread_self(), thread) == 0 { seen.otherThread = true }
            switch event {
            case .progress(let text): seen.events.append("progress: \(text)")
            case .failed(let text): seen.events.append("failed: \(text)")
            default: seen.events.append("other")
            }
        }
        phone.register()
        #expect(seen.events.isEmpty)  // a blocking scan would have reported its failure by now
        phone.perform { _ in seen.events.append("served") }
        phone.run { seen.events.contains { $0.hasPrefix("failed") } }
        let served = seen.events.firstIndex(of: "served")
        let failed = seen.events.firstIndex { $0.hasPrefix("failed") }
        #expect(served != nil && failed != nil && served! < failed!, "\(seen.events)")
        #expect(seen.events.contains { $0.contains("no UDP probe answer") })  // the scan's progress, relayed
        #expect(seen.events.last?.contains("no appliance reachable") == true)
        #expect(!seen.otherThread)
    }
}
