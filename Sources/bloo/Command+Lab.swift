// `bloo lab gatekeeper` and `bloo lab gateway`: LAB TOOLS (H.323 gatekeeper and gateway
// stand-ins for tests, demos and a technician's test call). Not part of the appliance's
// service; the logic lives in the Lab module.

import Endpoint
import EndpointIO
import Glibc
import IO
import Lab
import Phone
import Tunnel

enum LabCommand {
    static let usage = """
        bloo lab gatekeeper [--ras ADDR:PORT] [--signalling ADDR:PORT] [--mode direct|routed] [--reject-nat] \
        [--route PREFIX=ADDR:PORT[,...]] [--ttl S] [--id NAME] [--duration S] \
        [--h235-passwords FILE [--h235-window S]]
               bloo lab gateway [--signalling ADDR:PORT] [--media-ip ADDR] [--codecs PCMU,PCMA] \
        [--h245 fast-start|tunnelled|separate] [--tone HZ | --wav FILE] [--record DIR] [--expect-tone HZ] \
        [--dtmf DIGITS] [--dtmf-signal] [--hangup-after MS] [--cause N] [--answer-delay MS] [--early-media HZ] \
        [--gatekeeper ADDR:PORT] [--ras ADDR:PORT] [--alias NAME[,...]] [--call ALIAS] [--call-address ADDR:PORT] \
        [--duration S] [--exit-after-calls N]
               bloo lab client --server ADDR:PORT --alias NAME --secret TEXT [--register A,B] [--call DEST | --no-answer] \
        [--codecs PCMU,PCMA] [--tone HZ] [--expect-tone HZ] [--expect-early-tone HZ] [--dtmf DIGITS] [--hangup-after MS] [--cause N] \
        [--drop-after MS_AFTER_CONNECT] [--duration S] [--exit-after-calls N]
        (lab tools: a gatekeeper, a gateway and a tunnel test client for tests and test calls, not for service)
        """

    static func run(_ words: [String]) throws -> Int32 {
        guard let tool = words.first else { throw UsageError("lab: which tool? gatekeeper or gateway") }
        signal(SIGPIPE, SIG_IGN)
        switch tool {
        case "gatekeeper": return try gatekeeper(Array(words.dropFirst()))
        case "gateway": return try gateway(Array(words.dropFirst()))
        case "client": return try client(Array(words.dropFirst()))
        default: throw UsageError("lab: unknown tool '\(tool)' (gatekeeper or gateway)")
        }
    }

    static func address(_ text: String, _ what: String) throws -> EndpointAddress {
        guard let a = EndpointAddress(parsing: text) else { throw UsageError("lab: --\(what) takes ADDRESS:PORT (IPv4), got '\(text)'") }
        return a
    }

    static func runLoop(_ loop: EventLoop, seconds: Int?, until: (() -> Bool)? = nil) throws {
        let deadline = seconds.map { millisecondsNow() + UInt64($0) * 1000 }
        while true {
            try loop.runOnce(timeoutMilliseconds: 200)
            if let deadline, millisecondsNow() >= deadline { return }
            if let until, until() { return }
        }
    }

    static func client(_ words: [String]) throws -> Int32 {
        let command = "lab client"
        let args = try Arguments(words, command: command,
                                 options: ["server", "alias", "secret", "register", "call", "codecs", "tone", "expect-tone", "dtmf", "expect-early-tone",
                                           "hangup-after", "cause", "drop-after", "duration", "exit-after-calls", "calls", "count"],
                                 flags: ["no-answer"])
        guard args.positionals.isEmpty else { throw UsageError("\(command): unexpected argument '\(args.positionals[0])'") }
        var config = LabTunnelClientConfig(server: try address(try args.required("server", command: command), "server"),
                                           alias: try args.required("alias", command: command),
                                           secret: Array(try args.required("secret", command: command).utf8))
        config.register = (args.value("register") ?? "").split(separator: ",").map(String.init)
        config.callTo = args.value("call")
        config.answer = !args.has("no-answer")
        if let codecs = args.value("codecs") {
            config.codecs = try codecs.split(separator: ",").map {
                guard let c = AudioCodec(name: String($0)), let t = Tunnel.Codec(rawValue: c.rawValue) else {
                    throw UsageError("\(command): --codecs takes PCMU,PCMA,G729")
                }
                return t
            }
        }
        if let tone = try args.integer("tone", command: command, range: 50...3900) { config.toneHz = Double(tone) }
        if let hz = try args.integer("expect-tone", command: command, range: 50...3900) { config.expectToneHz = Double(hz) }
        if let hz = try args.integer("expect-early-tone", command: command, range: 50...3900) { config.expectEarlyToneHz = Double(hz) }
        config.sendDTMF = args.value("dtmf") ?? ""
        guard config.sendDTMF.allSatisfy({ DTMF.event($0) != nil }) else { throw UsageError("\(command): --dtmf takes 0-9 * # A-D") }
        if let ms = try args.integer("hangup-after", command: command, range: 0...86_400_000) { config.hangupAfterMs = UInt64(ms) }
        if let cause = try args.integer("cause", command: command, range: 1...127) { config.hangupCause = UInt8(cause) }
        if let ms = try args.integer("drop-after", command: command, range: 1...86_400_000) { config.dropAfterMs = UInt64(ms) }
        config.calls = try args.integer("calls", command: command, range: 1...10_000_000) ?? 1
        let count = try args.integer("count", command: command, range: 1...100_000)
        let exitAfter = try args.integer("exit-after-calls", command: command, range: 1...10_000_000)
        CommandSupport.raiseDescriptorLimit()
        let loop = try EventLoop(maxEvents: 1024)
        var clients: [LabTunnelClient] = []
        // --count N: N clients "<alias>1" ... "<alias>N" sharing the secret (benchmark load).
        for i in 1...(count ?? 1) {
            var c = config
            if count != nil { c.alias = "\(config.alias)\(i)" }
            do {
                let client = try LabTunnelClient(loop: loop, config: c)
                client.quiet = count != nil || config.calls > 1
                clients.append(client)
            } catch {
                writeLine(STDERR_FILENO, "\(command): \(error)")
                return ExitStatus.failure
            }
            if count != nil && i % 200 == 0 { try loop.runOnce(timeoutMilliseconds: 0) }
        }
        let start = millisecondsNow()
        var firstConnect: UInt64?
        try runLoop(loop, seconds: try args.integer("duration", command: command, range: 1...86_400)) {
            if firstConnect == nil, clients.contains(where: { $0.registered }) { firstConnect = millisecondsNow() }
            if clients.allSatisfy({ $0.failed }) { return true }
            if let exitAfter { return clients.reduce(0) { $0 + $1.completedCalls } >= exitAfter }
            return false
        }
        let elapsed = Double(millisecondsNow() - (firstConnect ?? start)) / 1000
        let completed = clients.reduce(0) { $0 + $1.completedCalls }
        writeLine(STDOUT_FILENO, "clients=\(clients.count) registered=\(clients.filter(\.registered).count) " +
                  "calls_completed=\(completed) elapsed_ms=\(Int(elapsed * 1000))")
        return clients.contains(where: { $0.failed }) ? ExitStatus.failure : ExitStatus.success
    }

    static func gatekeeper(_ words: [String]) throws -> Int32 {
        let command = "lab gatekeeper"
        let args = try Arguments(words, command: command, options: ["ras", "signalling", "mode", "route", "ttl", "id", "duration",
                                                                    "h235-passwords", "h235-window"],
                                 flags: ["reject-nat"])
        guard args.positionals.isEmpty else { throw UsageError("\(command): unexpected argument '\(args.positionals[0])'") }
        var config = LabGatekeeperConfig(rasAddress: try address(args.value("ras") ?? "0.0.0.0:1719", "ras"),
                                         callSignalAddress: try address(args.value("signalling") ?? "0.0.0.0:1721", "signalling"))
        if let mode = args.value("mode") {
            guard let m = LabGatekeeperConfig.Mode(rawValue: mode) else { throw UsageError("\(command): --mode is direct or routed") }
            config.mode = m
        }
        config.rejectNATed = args.has("reject-nat")
        config.timeToLive = try args.integer("ttl", command: command, range: 5...86_400) ?? 60
        if let id = args.value("id") { config.identifier = id }
        if let path = args.value("h235-passwords") {
            // Full RRQs must carry a matching H.235 password token (MD5 pwdHash); RRJ securityDenial otherwise.
            do { config.h235Passwords = try LabGatekeeperConfig.parsePasswords(try CommandSupport.readText(path)) } catch {
                writeLine(STDERR_FILENO, "\(command): \(path): \(error)")
                return ExitStatus.usage
            }
        }
        config.h235WindowSeconds = try args.integer("h235-window", command: command, range: 1...86_400) ?? 120
        for item in (args.value("route") ?? "").split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].allSatisfy({ $0.isNumber || $0 == "*" || $0 == "#" }) else {
                throw UsageError("\(command): --route takes PREFIX=ADDR:PORT, got '\(item)'")
            }
            config.routes.append((String(parts[0]), try address(String(parts[1]), "route")))
        }
        let loop = try EventLoop()
        let gk: LabGatekeeper
        do { gk = try LabGatekeeper(loop: loop, config: config) } catch {
            writeLine(STDERR_FILENO, "\(command): \(error)")
            return ExitStatus.failure
        }
        writeLine(STDOUT_FILENO, "ready lab-gatekeeper ras=\(config.rasAddress)")
        try runLoop(loop, seconds: try args.integer("duration", command: command, range: 1...86_400))
        _ = gk
        return ExitStatus.success
    }

    static func gateway(_ words: [String]) throws -> Int32 {
        let command = "lab gateway"
        let args = try Arguments(words, command: command,
                                 options: ["signalling", "media-ip", "codecs", "h245", "tone", "wav", "record", "expect-tone", "dtmf",
                                           "hangup-after", "cause", "answer-delay", "early-media", "gatekeeper", "ras", "alias", "call",
                                           "call-address", "duration", "exit-after-calls"],
                                 flags: ["dtmf-signal"])
        guard args.positionals.isEmpty else { throw UsageError("\(command): unexpected argument '\(args.positionals[0])'") }
        let signalling = try address(args.value("signalling") ?? "0.0.0.0:1720", "signalling")
        let mediaText = args.value("media-ip") ?? signalling.ipText
        guard let mediaIP = EndpointAddress.parseIP(mediaText), mediaIP != 0 else {
            throw UsageError("\(command): --media-ip takes the IPv4 address peers send RTP to")
        }
        var config = LabGatewayConfig(callSignalAddress: signalling, mediaIP: mediaIP)
        if let codecs = args.value("codecs") {
            config.codecs = try codecs.split(separator: ",").map {
                guard let c = AudioCodec(name: String($0)), c != .g729 else { throw UsageError("\(command): --codecs takes PCMU,PCMA") }
                return c
            }
        }
        switch args.value("h245") ?? "fast-start" {
        case "fast-start": config.options.fastStart = true
        case "tunnelled": config.options.fastStart = false
        case "separate":
            config.options.fastStart = false
            config.options.tunnelling = false
            config.separateH245 = true
        default: throw UsageError("\(command): --h245 is fast-start, tunnelled or separate")
        }
        config.options.dtmfAsSignal = args.has("dtmf-signal")
        if let tone = try args.integer("tone", command: command, range: 50...3900) { config.toneHz = Double(tone) }
        if let path = args.value("wav") { config.wav = try WAVFile(path: path) }
        config.recordDirectory = args.value("record")
        if let hz = try args.integer("expect-tone", command: command, range: 50...3900) { config.expectToneHz = Double(hz) }
        config.sendDTMF = args.value("dtmf") ?? ""
        guard config.sendDTMF.allSatisfy({ DTMF.event($0) != nil }) else { throw UsageError("\(command): --dtmf takes 0-9 * # A-D") }
        if let ms = try args.integer("hangup-after", command: command, range: 1...86_400_000) { config.hangupAfterMs = UInt64(ms) }
        if let cause = try args.integer("cause", command: command, range: 1...127) { config.hangupCause = UInt8(cause) }
        if let ms = try args.integer("answer-delay", command: command, range: 0...600_000) { config.answerDelayMs = UInt64(ms) }
        if let hz = try args.integer("early-media", command: command, range: 50...3900) {
            guard config.options.fastStart else { throw UsageError("\(command): --early-media needs --h245 fast-start") }
            config.earlyMediaHz = Double(hz)
        }
        if let gk = args.value("gatekeeper") { config.gatekeeper = try address(gk, "gatekeeper") }
        if let ras = args.value("ras") { config.rasAddress = try address(ras, "ras") }
        if let aliases = args.value("alias") {
            config.aliases = aliases.split(separator: ",").map { a in
                a.allSatisfy({ $0.isNumber }) ? .dialledDigits(String(a)) : .h323ID(String(a))
            }
        }
        config.callTo = args.value("call")
        if let a = args.value("call-address") { config.callToAddress = try address(a, "call-address") }
        let exitAfter = try args.integer("exit-after-calls", command: command, range: 1...10_000_000)
        let loop = try EventLoop()
        let gw: LabGateway
        do { gw = try LabGateway(loop: loop, config: config) } catch {
            writeLine(STDERR_FILENO, "\(command): \(error)")
            return ExitStatus.failure
        }
        writeLine(STDOUT_FILENO, "ready lab-gateway signalling=\(signalling)")
        try runLoop(loop, seconds: try args.integer("duration", command: command, range: 1...86_400)) {
            exitAfter.map { gw.completedCalls >= $0 } ?? false
        }
        return ExitStatus.success
    }
}
