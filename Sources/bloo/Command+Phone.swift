// `bloo phone`: the command-line softphone. Technicians and tests place real
// calls with it. All logic lives in the Phone module; this file parses flags,
// prints events as they happen and the call summary at the end.

import Glibc
import IO
import Phone
import RTP
import Tunnel

enum PhoneCommand {
    static let usage = """
        bloo phone scan | register | call NUMBER | listen \
        [--config FILE] [--alias A --secret S] [--ca PEM] [--appliances tls:ADDR:PORT/NAME,tcp:ADDR:PORT] \
        [--play FILE.wav | --tone HZ] [--record OUT.wav] [--duration S] [--dtmf DIGITS] [--expect-tone HZ] \
        [--rounds N] [--no-udp-probe] [--gatekeeper ADDR[:PORT] [--state FILE]]
        """

    static func run(_ words: [String]) throws -> Int32 {
        let command = "phone"
        let args = try Arguments(words, command: command,
                                 options: ["config", "alias", "secret", "ca", "appliances", "play", "tone", "record",
                                           "duration", "dtmf", "expect-tone", "rounds", "gatekeeper", "state"],
                                 flags: ["no-udp-probe", "gatekeeper-auth"])
        guard let verb = args.positionals.first else { throw UsageError("phone: say scan, register, call NUMBER or listen") }
        var configuration = PhoneConfiguration()
        if let path = args.value("config") {
            do {
                configuration = try PhoneConfiguration(parsing: try String(decoding: CommandSupport.readFile(path, limit: 1 << 20), as: UTF8.self))
            } catch {
                writeLine(STDERR_FILENO, "phone: \(path): \(error)")
                return ExitStatus.failure
            }
        }
        if let alias = args.value("alias") { configuration.alias = alias }
        if let secret = args.value("secret") { configuration.secret = Array(secret.utf8) }
        if let ca = args.value("ca") { configuration.caPath = ca }
        if let list = args.value("appliances") {
            configuration.appliances = try list.split(separator: ",").map {
                guard let appliance = Appliance(parsing: String($0)) else {
                    throw UsageError("phone: --appliances takes tls:ADDRESS:PORT[/NAME] or tcp:ADDRESS:PORT, got '\($0)'")
                }
                return appliance
            }
        }
        if let gatekeeper = args.value("gatekeeper") {
            guard let endpoint = IPv4Endpoint(parsing: gatekeeper.contains(":") ? gatekeeper : gatekeeper + ":1719") else {
                throw UsageError("phone: --gatekeeper takes ADDRESS[:PORT]")
            }
            configuration.gatekeeper = endpoint
        }
        if let state = args.value("state") { configuration.statePath = state }
        if let rounds = try args.integer("rounds", command: command, range: 1...50) { configuration.scan.rounds = rounds }
        if args.has("no-udp-probe") { configuration.scan.useUDP = false }
        if args.has("gatekeeper-auth") { configuration.gatekeeperVerification = true }
        let duration = try args.integer("duration", command: command, range: 0...86_400)
        if args.value("play") != nil && args.value("tone") != nil { throw UsageError("phone: --play and --tone exclude each other") }
        let tone = try args.integer("tone", command: command, range: 50...3900)
        let expectTone = try args.integer("expect-tone", command: command, range: 50...3900)

        signal(SIGPIPE, SIG_IGN)
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGINT, SIGTERM] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let interrupted = {
            var pending = sigset_t()
            sigpending(&pending)
            return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1
        }

        let phone: Phone
        do { phone = try Phone(configuration: configuration) } catch {
            writeLine(STDERR_FILENO, "phone: \(error)")
            return ExitStatus.failure
        }
        var failure: String?
        var ended = false
        var finishedSink: (any AudioSink)?
        var everRegistered = false
        phone.onEvent = { event in
            switch event {
            case let .progress(text): say(text)
            case let .applianceChosen(appliance, reason): say("appliance \(appliance): \(reason)")
            case let .registered(aliases, path):
                everRegistered = true
                say("registered \(aliases.joined(separator: ",")) (\(path))")
            case let .registrationRejected(reason):
                say("registration rejected: \(reason)")
                failure = reason
            case let .incoming(id, from, to): say("incoming \(id) from \(from) to \(to)")
            case let .ringing(id): say("ringing (\(id))")
            case let .connected(id, codec): say("connected (\(id)), codec \(codecName(codec))")
            case let .dtmf(_, digit): say("dtmf received \(digit)")
            case let .quality(_, q):
                say("quality: received \(q.received.packets) packets, loss \(pct(q.received.lossPercent)), jitter \(ms(q.received.jitterMs)), rtt \(ms(q.rttMs)), MOS \(fmt(q.mos, 2))")
            case let .ended(id, reason, summary):
                say("call ended (\(id)): \(reason)")
                if let summary { printSummary(summary) }
                ended = true
            case let .tunnelLost(reason): say("tunnel lost: \(reason)")
            case let .failed(reason):
                say("failed: \(reason)")
                failure = reason
            }
        }
        phone.onCallFinished = { id, sink in
            finishedSink = sink
            if let expectTone, let detector = (sink as? ToneDetectingSink)?.detector {
                say("tone \(expectTone) Hz: present in \(Int(detector.presence * 100))% of \(detector.blocks) received frames (\(id))")
            }
        }

        switch verb {
        case "scan":
            guard args.positionals.count == 1 else { throw UsageError("phone scan: takes no argument") }
            let results = phone.scan()
            var selector = ApplianceSelector()
            let ranking = selector.ranking(results)
            for (rank, m) in ranking.enumerated() {
                say("rank \(rank + 1): \(m.appliance) median \(fmt(m.medianMs ?? 0, 2)) ms (\(m.method.rawValue)), load \(m.activeCalls)/\(m.capacity)")
            }
            guard let (best, reason) = selector.choose(results) else {
                say("no appliance reachable")
                return ExitStatus.failure
            }
            say("best \(best): \(reason)")
            return ExitStatus.success

        case "register", "listen":
            guard args.positionals.count == 1 else { throw UsageError("phone \(verb): takes no argument") }
            var deadline: UInt64?
            if verb == "listen" {
                let prepared = try makeAudio(args, tone: tone, expectTone: expectTone)
                phone.onEvent = { [previous = phone.onEvent] event in
                    previous(event)
                    if case let .incoming(id, _, _) = event {
                        say("answering \(id)")
                        phone.answer(id, source: prepared.source, sink: prepared.sink)
                    }
                }
            }
            phone.register()
            // The duration counts from the end of the (blocking) direct attempt.
            deadline = duration.map { monotonicNanoseconds() + UInt64($0) * 1_000_000_000 }
            phone.run { interrupted() || failure != nil || deadline.map { monotonicNanoseconds() >= $0 } ?? false }
            phone.shutdown()
            if !everRegistered { say("never registered") }
            return failure == nil && everRegistered ? ExitStatus.success : ExitStatus.failure

        case "call":
            guard args.positionals.count == 2 else { throw UsageError("phone call: needs exactly one NUMBER") }
            let number = args.positionals[1]
            let audio = try makeAudio(args, tone: tone, expectTone: expectTone)
            phone.register()
            phone.run { interrupted() || failure != nil || phone.isRegistered }
            if phone.directRegistered {
                phone.openTunnel(because: "direct calls are not in this version yet: placing the call through the tunnel")
                phone.run { interrupted() || failure != nil || phone.isRegistered }
            }
            guard failure == nil, phone.isRegistered, let id = phone.call(number, source: audio.source, sink: audio.sink) else {
                phone.shutdown()
                return ExitStatus.failure
            }
            var connectedAt: UInt64?
            var dtmfSent = false
            phone.run {
                if connectedAt == nil, phone.quality(of: id) != nil { connectedAt = monotonicNanoseconds() }
                if let connectedAt, !dtmfSent, let digits = args.value("dtmf") {
                    phone.sendDTMF(digits, on: id)
                    dtmfSent = true
                    _ = connectedAt
                }
                if let connectedAt, let duration, monotonicNanoseconds() >= connectedAt + UInt64(duration) * 1_000_000_000 {
                    return true
                }
                return ended || interrupted() || failure != nil && !phone.activeCalls.contains(id)
            }
            if !ended { phone.hangup(id) }
            phone.shutdown()
            if expectTone != nil, !(finishedSink is ToneDetectingSink) { return ExitStatus.failure }
            return connectedAt != nil ? ExitStatus.success : ExitStatus.failure

        default:
            throw UsageError("phone: unknown verb '\(verb)' (scan, register, call NUMBER, listen)")
        }
    }

    struct PreparedAudio {
        var source: any AudioSource
        var sink: any AudioSink
    }

    static func makeAudio(_ args: Arguments, tone: Int?, expectTone: Int?) throws -> PreparedAudio {
        var source: any AudioSource = SilenceSource()
        if let tone { source = ToneSource(frequency: Double(tone)) }
        if let path = args.value("play") {
            do { source = WAVSource(wav: try WAVFile(path: path)) } catch {
                throw UsageError("phone: --play \(path): \(error)")
            }
        }
        var sink: any AudioSink = NullSink()
        if let path = args.value("record") { sink = WAVRecorder(path: path) }
        if let expectTone { sink = ToneDetectingSink(frequency: Double(expectTone), forwardingTo: sink) }
        return PreparedAudio(source: source, sink: sink)
    }

    static func printSummary(_ q: CallQuality) {
        say("summary: duration \(fmt(q.durationSeconds, 1)) s")
        say("summary: codec \(codecName(q.codec))")
        say("summary: path \(q.path.rawValue)")
        say("summary: sent packets \(q.sent.packets), loss \(q.sent.jitterMs == nil ? "n/a" : pct(q.sent.lossPercent)), jitter \(ms(q.sent.jitterMs))")
        say("summary: received packets \(q.received.packets), lost \(q.received.lost), loss \(pct(q.received.lossPercent)), jitter \(ms(q.received.jitterMs))")
        say("summary: rtt \(ms(q.rttMs))")
        say("summary: estimated MOS \(fmt(q.mos, 2)) (ITU-T G.107 E-model)")
    }

    static func codecName(_ codec: Codec) -> String {
        switch codec {
        case .pcma: "PCMA (G.711 A-law)"
        case .pcmu: "PCMU (G.711 µ-law)"
        case .g729: "G.729"
        }
    }

    static func say(_ text: String) { writeLine(STDOUT_FILENO, text) }
    static func pct(_ value: Double) -> String { "\(fmt(value, 1))%" }
    static func ms(_ value: Double?) -> String { value.map { "\(fmt($0, 1)) ms" } ?? "n/a" }
    static func fmt(_ value: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        return "\((value * scale).rounded() / scale)"
    }
}
