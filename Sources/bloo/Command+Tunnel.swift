// `bloo tunnel-serve`: the tunnel terminator on its own, with the lab backend
// (REGISTER accepted, calls to "echo" or "udp:127.x.y.z:port"). For tests, the
// benchmark and field checks of a client until `bloo daemon` carries the terminator.

import IO
import Glibc
import Log
import Proxy
import Tunnel

enum TunnelCommand {
    static let usage = """
        bloo tunnel-serve --subscribers FILE [--tls ADDR:PORT|off] [--tcp ADDR:PORT] \
        [--cert PEM --key PEM] [--workers N] [--cpus 0,1] [--max-connections N] [--rate PER_S] [--burst N] \
        [--capacity CALLS] [--auth-timeout S] [--idle-timeout S] [--grace S] [--media-age-ms MS] \
        [--max-frame BYTES] [--no-probe] [--no-udp-audio] [--udp-fallback-ms MS]
        """

    static func run(_ words: [String]) throws -> Int32 {
        let command = "tunnel-serve"
        let args = try Arguments(words, command: command,
                                 options: ["tls", "tcp", "cert", "key", "subscribers", "workers", "cpus", "max-connections",
                                           "rate", "burst", "capacity", "auth-timeout", "idle-timeout", "grace",
                                           "media-age-ms", "max-frame", "udp-fallback-ms"],
                                 flags: ["no-probe", "no-udp-audio"])
        guard args.positionals.isEmpty else { throw UsageError("\(command): unexpected argument '\(args.positionals[0])'") }
        var config = TerminatorConfig()
        config.tlsListen = try endpoint(args.value("tls") ?? "0.0.0.0:443", "tls", allowOff: true)
        config.tcpListen = try args.value("tcp").flatMap { try endpoint($0, "tcp", allowOff: true) }
        guard config.tlsListen != nil || config.tcpListen != nil else { throw UsageError("\(command): no listener enabled") }
        if config.tlsListen != nil {
            config.certificatePath = try args.required("cert", command: command)
            config.keyPath = try args.required("key", command: command)
        }
        config.workers = try args.integer("workers", command: command, range: 1...256) ?? 1
        if let cpus = args.value("cpus") {
            config.cpus = try cpus.split(separator: ",").map {
                guard let cpu = Int($0), cpu >= 0 else { throw UsageError("\(command): --cpus takes a list such as 0,1") }
                return cpu
            }
        }
        config.maxConnections = try args.integer("max-connections", command: command, range: 1...1_000_000) ?? config.maxConnections
        if let text = args.value("rate") {
            guard let rate = Double(text), rate > 0, rate <= 1_000_000 else {
                throw UsageError("\(command): --rate takes connections per second, e.g. 20 or 0.5")
            }
            config.perSourceRate = rate
        }
        if let burst = try args.integer("burst", command: command, range: 1...1_000_000) { config.perSourceBurst = Double(burst) }
        if let capacity = try args.integer("capacity", command: command, range: 0...10_000_000) { config.capacity = UInt32(capacity) }
        if let seconds = try args.integer("auth-timeout", command: command, range: 1...3600) {
            config.session.authTimeoutNanos = UInt64(seconds) * 1_000_000_000
        }
        if let seconds = try args.integer("idle-timeout", command: command, range: 1...86_400) {
            config.session.idleTimeoutNanos = UInt64(seconds) * 1_000_000_000
        }
        if let seconds = try args.integer("grace", command: command, range: 0...3600) { config.session.graceSeconds = UInt16(seconds) }
        if let ms = try args.integer("media-age-ms", command: command, range: 1...10_000) {
            config.session.maxMediaAgeNanos = UInt64(ms) * 1_000_000
        }
        config.session.maxPayload = try args.integer("max-frame", command: command, range: 256...1_048_576) ?? config.session.maxPayload
        config.probe = !args.has("no-probe")
        config.udp.enabled = !args.has("no-udp-audio")
        if let ms = try args.integer("udp-fallback-ms", command: command, range: 100...60_000) {
            config.udp.fallbackAfterNanos = UInt64(ms) * 1_000_000
        }

        let subscribersPath = try args.required("subscribers", command: command)
        let subscribers: SubscriberTable
        do {
            subscribers = try SubscriberTable(parsing: try CommandSupport.readText(subscribersPath))
        } catch {
            writeLine(STDERR_FILENO, "\(command): \(subscribersPath): \(error)")
            return ExitStatus.failure
        }

        CommandSupport.raiseDescriptorLimit()
        signal(SIGPIPE, SIG_IGN)
        // Block the control signals before any worker exists: they are then taken by sigwait below.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGHUP, SIGTERM, SIGINT] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let terminator: Terminator
        do {
            terminator = try Terminator(config: config, subscribers: subscribers) { LabBackend(worker: $0) }
            try terminator.start()
        } catch {
            writeLine(STDERR_FILENO, "\(command): \(error)")
            return ExitStatus.failure
        }
        writeLine(STDOUT_FILENO, "ready tls=\(terminator.tlsEndpoint.map { "\($0)" } ?? "off") tcp=\(terminator.tcpEndpoint.map { "\($0)" } ?? "off")")
        while true {
            var received: Int32 = 0
            guard sigwait(&signals, &received) == 0 else { continue }
            if received == SIGHUP {
                do { try terminator.reloadCertificate() } catch {
                    Logger(subsystem: "tunnel").error("tunnel-certificate-reload-failed", ["error": "\(error)"])
                }
                continue
            }
            break
        }
        terminator.stop()
        return ExitStatus.success
    }

    private static func endpoint(_ text: String, _ name: String, allowOff: Bool) throws -> IPv4Endpoint? {
        if allowOff && text == "off" { return nil }
        guard let endpoint = IPv4Endpoint(parsing: text) else {
            throw UsageError("tunnel-serve: --\(name) takes ADDRESS:PORT (IPv4), got '\(text)'")
        }
        return endpoint
    }
}

/// `bloo tunnel-load`: the benchmark's load generator (see bench/tunnel/bench.sh).
enum TunnelLoadCommand {
    static let usage = """
        bloo tunnel-load --connect ADDR:PORT [--ca PEM] [--start N] [--step N] [--max N] \
        [--window S] [--max-loss-ppm PPM] [--server-pid PID]
        """

    static func run(_ words: [String]) throws -> Int32 {
        let command = "tunnel-load"
        let args = try Arguments(words, command: command,
                                 options: ["connect", "ca", "start", "step", "max", "window", "max-loss-ppm", "server-pid"])
        guard let endpoint = IPv4Endpoint(parsing: try args.required("connect", command: command)) else {
            throw UsageError("\(command): --connect takes ADDRESS:PORT")
        }
        var options = TunnelLoad.Options()
        options.endpoint = endpoint
        options.caPath = args.value("ca")
        let start = try args.integer("start", command: command, range: 1...100_000) ?? 100
        let step = try args.integer("step", command: command, range: 1...100_000) ?? 100
        let maximum = try args.integer("max", command: command, range: 1...100_000) ?? 5_000
        let window = Double(try args.integer("window", command: command, range: 1...600) ?? 3)
        let maxLoss = Double(try args.integer("max-loss-ppm", command: command, range: 0...1_000_000) ?? 1_000) / 1e6
        CommandSupport.raiseDescriptorLimit()
        let serverPID = try args.integer("server-pid", command: command, range: 1...Int(Int32.max))
        let load = try TunnelLoad(options: options)
        var target = start
        var best = 0
        var bestP99 = 0.0
        var bestCPU = 0.0
        var bestArrivalP99 = 0.0
        var bestGeneratorCPU = 0.0
        var stopReason = "reached --max"
        while target <= maximum {
            try load.addCalls(target - load.tunnelCount)
            _ = load.run(seconds: 1.5)  // set-up and warm-up, not measured
            let cpuBefore = serverPID.flatMap(cpuSeconds)
            let preemptedBefore = serverPID.flatMap(preemptions)
            let result = load.run(seconds: window)
            let cpuAfter = serverPID.flatMap(cpuSeconds)
            let preemptedAfter = serverPID.flatMap(preemptions)
            // How often other processes took the terminator's CPU from it: the machine's
            // noise, which shows in the latency tail whatever the terminator does.
            var preemptedPerSecond = 0.0
            if let preemptedBefore, let preemptedAfter { preemptedPerSecond = Double(preemptedAfter - preemptedBefore) / window }
            var cpuPercent = 0.0
            if let cpuBefore, let cpuAfter { cpuPercent = (cpuAfter - cpuBefore) / window * 100 }
            // Both directions, one packet per call every 20 ms.
            let expected = Double(target) * 2 * window * 1e9 / Double(options.packetInterval)
            let keptUp = Double(result.sent) >= 0.98 * expected
            let line = "calls=\(result.calls) target=\(target) sent=\(result.sent) expected=\(Int(expected)) received=\(result.received) "
                + "loss_pct=\(format(result.loss * 100, 3)) p50_ms=\(format(result.percentile(0.5), 2)) "
                + "p99_ms=\(format(result.percentile(0.99), 2)) up_p50_ms=\(format(result.percentile(0.5, of: result.upstream), 2)) "
                + "arrival_p50_ms=\(format(result.percentile(0.5, of: result.arrivals), 2)) "
                + "arrival_p99_ms=\(format(result.percentile(0.99, of: result.arrivals), 2)) arrival_samples=\(result.arrivals.count) "
                + "server_cpu_pct=\(format(cpuPercent, 1)) generator_cpu_pct=\(format(result.generatorCPU, 1)) "
                + "server_preempted_per_s=\(format(preemptedPerSecond, 1)) failed_tunnels=\(load.failedTunnels)"
            writeLine(STDOUT_FILENO, line)
            if result.calls != target { stopReason = "only \(result.calls) of \(target) calls came up"; break }
            if result.loss > maxLoss { stopReason = "loss above \(format(maxLoss * 100, 3))%"; break }
            if !keptUp { stopReason = "the generator could not keep up (generator-limited)"; break }
            best = target
            bestP99 = result.percentile(0.99)
            bestArrivalP99 = result.percentile(0.99, of: result.arrivals)
            bestCPU = cpuPercent
            bestGeneratorCPU = result.generatorCPU
            target += step
        }
        let extrapolated = bestCPU > 0 ? Int(Double(best) * 100 / bestCPU) : 0
        writeLine(STDOUT_FILENO, "max_calls=\(best) p99_ms=\(format(bestP99, 2)) arrival_p99_ms=\(format(bestArrivalP99, 2)) "
                  + "server_cpu_pct=\(format(bestCPU, 1)) generator_cpu_pct=\(format(bestGeneratorCPU, 1)) "
                  + "cpu_extrapolated_calls=\(extrapolated) stop=\"\(stopReason)\"")
        return ExitStatus.success
    }

    /// Involuntary context switches of all threads of a process (/proc/PID/task/*/status).
    private static func preemptions(_ pid: Int) -> Int? {
        guard let directory = opendir("/proc/\(pid)/task") else { return nil }
        defer { closedir(directory) }
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.first?.isNumber == true else { continue }
            let fd = open("/proc/\(pid)/task/\(name)/status", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard n > 0 else { continue }
            for line in buffer[0..<n].split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("nonvoluntary_ctxt_switches:".utf8)) {
                let digits = line.drop { !(48...57).contains($0) }
                total += Int(String(decoding: digits, as: UTF8.self)) ?? 0
            }
        }
        return total
    }

    /// User + system CPU seconds of a process, from /proc/PID/stat.
    private static func cpuSeconds(_ pid: Int) -> Double? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let close = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buffer[(close + 2)..<n].split(separator: UInt8(ascii: " "))
        // After "pid (comm) ": field 3 is index 0; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(String(decoding: fields[11], as: UTF8.self)),
              let system = Double(String(decoding: fields[12], as: UTF8.self)) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    private static func format(_ value: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        return "\(rounded)"
    }
}
