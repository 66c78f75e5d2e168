// `bloo mirror-serve`: the tunnel terminator with the mirror backend (each tunnelled client
// becomes an H.323 endpoint towards the operator's gatekeeper), until `bloo daemon`
// carries it; and `bloo cdr`: the last call detail records.

import Endpoint
import Glibc
import IO
import Log
import Proxy
import Tunnel

enum MirrorCommand {
    static let usage = """
        bloo mirror-serve --subscribers FILE --gatekeeper ADDR:PORT --public-ip ADDR [--bind-ip ADDR] \
        [--tls ADDR:PORT|off] [--tcp ADDR:PORT] [--cert PEM --key PEM] [--workers N] [--grace S] \
        [--ras-ports A-B] [--signalling-ports A-B] [--rtp-ports A-B] [--ttl S] [--cdr FILE] \
        [--h245 fast-start|tunnelled|separate] [--no-discovery] [--rate PER_S] [--burst N] [--max-connections N] \
        [--gatekeeper-auth]
        """
    static let cdrUsage = "bloo cdr --file FILE [--last N]"

    static func endpoint(_ text: String, _ name: String) throws -> IPv4Endpoint? {
        if text == "off" { return nil }
        guard let e = IPv4Endpoint(parsing: text) else { throw UsageError("mirror-serve: --\(name) takes ADDRESS:PORT, got '\(text)'") }
        return e
    }

    static func range(_ text: String?, _ name: String, _ fallback: ClosedRange<UInt16>) throws -> ClosedRange<UInt16> {
        guard let text else { return fallback }
        let parts = text.split(separator: "-")
        guard parts.count == 2, let a = UInt16(parts[0]), let b = UInt16(parts[1]), a > 0, a <= b else {
            throw UsageError("mirror-serve: --\(name) takes FIRST-LAST, got '\(text)'")
        }
        return a...b
    }

    static func run(_ words: [String]) throws -> Int32 {
        let command = "mirror-serve"
        let args = try Arguments(words, command: command,
                                 options: ["tls", "tcp", "cert", "key", "subscribers", "workers", "grace", "gatekeeper", "public-ip",
                                           "bind-ip", "ras-ports", "signalling-ports", "rtp-ports", "ttl", "cdr", "h245", "rate", "burst",
                                           "max-connections"],
                                 flags: ["no-discovery", "gatekeeper-auth"])
        guard args.positionals.isEmpty else { throw UsageError("\(command): unexpected argument '\(args.positionals[0])'") }
        var config = TerminatorConfig()
        config.tlsListen = try endpoint(args.value("tls") ?? "off", "tls")
        config.tcpListen = try args.value("tcp").flatMap { try endpoint($0, "tcp") }
        guard config.tlsListen != nil || config.tcpListen != nil else { throw UsageError("\(command): no listener enabled") }
        if config.tlsListen != nil {
            config.certificatePath = try args.required("cert", command: command)
            config.keyPath = try args.required("key", command: command)
        }
        config.workers = try args.integer("workers", command: command, range: 1...256) ?? 1
        if let seconds = try args.integer("grace", command: command, range: 0...3600) { config.session.graceSeconds = UInt16(seconds) }
        config.probe = false
        if let rate = try args.integer("rate", command: command, range: 1...1_000_000) { config.perSourceRate = Double(rate) }
        if let burst = try args.integer("burst", command: command, range: 1...1_000_000) { config.perSourceBurst = Double(burst) }
        config.maxConnections = try args.integer("max-connections", command: command, range: 1...1_000_000) ?? config.maxConnections
        // Aliases not in --subscribers: the operator's gatekeeper checks the client's H.235 token.
        config.gatekeeperVerification = args.has("gatekeeper-auth")

        guard let gk = EndpointAddress(parsing: try args.required("gatekeeper", command: command)) else {
            throw UsageError("\(command): --gatekeeper takes ADDRESS:PORT")
        }
        guard let publicIP = EndpointAddress.parseIP(try args.required("public-ip", command: command)), publicIP != 0 else {
            throw UsageError("\(command): --public-ip takes the IPv4 address the operator reaches")
        }
        let bindIP = try args.value("bind-ip").map {
            guard let ip = EndpointAddress.parseIP($0) else { throw UsageError("\(command): --bind-ip takes an IPv4 address") }
            return ip
        }
        var mirror = MirrorConfig(gatekeeper: gk, publicIP: publicIP, bindIP: bindIP,
                                  rasPorts: try range(args.value("ras-ports"), "ras-ports", 30000...39999),
                                  signallingPorts: try range(args.value("signalling-ports"), "signalling-ports", 40000...49999),
                                  rtpPorts: try range(args.value("rtp-ports"), "rtp-ports", 50000...59999))
        mirror.timeToLive = try args.integer("ttl", command: command, range: 10...86_400) ?? 300
        mirror.discover = !args.has("no-discovery")
        switch args.value("h245") ?? "fast-start" {
        case "fast-start": break
        case "tunnelled": mirror.options.fastStart = false
        case "separate": mirror.options.fastStart = false; mirror.options.tunnelling = false
        default: throw UsageError("\(command): --h245 is fast-start, tunnelled or separate")
        }
        let cdr: CDRWriter?
        do { cdr = try args.value("cdr").map { try CDRWriter(path: $0) } } catch {
            writeLine(STDERR_FILENO, "\(command): \(error)")
            return ExitStatus.failure
        }
        let subscribersPath = try args.required("subscribers", command: command)
        let subscribers: SubscriberTable
        do {
            subscribers = try SubscriberTable(parsing: try CommandSupport.readText(subscribersPath))
        } catch {
            writeLine(STDERR_FILENO, "\(command): \(subscribersPath): \(error)")
            return ExitStatus.failure
        }
        signal(SIGPIPE, SIG_IGN)
        CommandSupport.raiseDescriptorLimit()
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGTERM, SIGINT] { sigaddset(&signals, s) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let frozen = mirror
        let terminator: Terminator
        do {
            terminator = try Terminator(config: config, subscribers: subscribers) { MirrorBackend(worker: $0, config: frozen, cdr: cdr) }
            try terminator.start()
        } catch {
            writeLine(STDERR_FILENO, "\(command): \(error)")
            return ExitStatus.failure
        }
        writeLine(STDOUT_FILENO, "ready tls=\(terminator.tlsEndpoint.map { "\($0)" } ?? "off") tcp=\(terminator.tcpEndpoint.map { "\($0)" } ?? "off")")
        var received: Int32 = 0
        while sigwait(&signals, &received) != 0 {}
        terminator.stop()
        return ExitStatus.success
    }

    static func cdr(_ words: [String]) throws -> Int32 {
        let args = try Arguments(words, command: "cdr", options: ["file", "last"])
        let path = try args.required("file", command: "cdr")
        let count = try args.integer("last", command: "cdr", range: 1...1_000_000) ?? 20
        do {
            for line in try CDRWriter.tail(path: path, count: count) { writeLine(STDOUT_FILENO, line) }
        } catch {
            writeLine(STDERR_FILENO, "cdr: \(error)")
            return ExitStatus.failure
        }
        return ExitStatus.success
    }
}
