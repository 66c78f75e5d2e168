import Glibc
import IO
import Log

private let log = Logger(subsystem: "relay")

/// `bloo relay`: a relay driven by the line protocol of `ControlLines` on a pair of
/// descriptors (stdin/stdout), for system tests and the benchmark.
public final class StandaloneRelay {
    private let relay: Relay
    private let input: Int32
    private let output: Int32
    private let loop: EventLoop
    private var pending: [UInt8] = []
    private var finished = false

    public init(configuration: RelayConfiguration, input: Int32 = 0, output: Int32 = 1) throws {
        relay = try Relay(configuration: configuration)
        self.input = input
        self.output = output
        loop = try EventLoop()
    }

    /// Serves until `quit` or end of input; returns the exit status.
    public func run() throws -> Int32 {
        try relay.start()
        try loop.register(fd: input, events: .readable, handler: ClosureHandler { [unowned self] _ in self.readInput() })
        try loop.register(fd: relay.eventWakeup.fd, events: .readable, handler: ClosureHandler { [unowned self] _ in
            self.relay.pollEvents { self.write(ControlLines.format($0)) }
        })
        write("ready workers=\(relay.workers.count)")
        while !finished { try loop.runOnce() }
        relay.shutdown()
        relay.pollEvents { self.write(ControlLines.format($0)) }
        return 0
    }

    private func readInput() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
        if n <= 0 {
            if n < 0 && (csys_errno_value() == EAGAIN || csys_errno_value() == EINTR) { return }
            finished = true
            return
        }
        pending += chunk[0..<n]
        while let newline = pending.firstIndex(of: 10) {
            let line = String(decoding: pending[..<newline], as: UTF8.self)
            pending.removeSubrange(...newline)
            if pending.count > 65536 { pending.removeAll() }
            handle(line)
        }
        if pending.count > 65536 { write("error request line too long"); pending.removeAll() }
    }

    private func handle(_ line: String) {
        let trimmed = line.trimmingSpaces
        if trimmed.isEmpty || trimmed.hasPrefix("#") { return }
        switch ControlLines.parse(trimmed) {
        case .failure(let error):
            write("error \(error.message)")
        case .success(let request):
            do {
                switch request {
                case let .create(gateway, client, muxGateway, muxClient):
                    let info = try relay.createSession(gatewayAnnounced: gateway, client: .udp(announced: client),
                                                       rtcpMux: (muxGateway, muxClient))
                    write("ok id=\(info.id) worker=\(info.worker) gateway_port=\(info.gatewayPort) client_port=\(info.clientPort ?? 0)")
                case let .remote(id, side, endpoint, rtcp):
                    try relay.updateRemote(id, side: side, to: endpoint, rtcp: rtcp)
                    write("ok")
                case let .mode(id, mode):
                    try relay.setMode(id, mode)
                    write("ok")
                case .stats(let id):
                    try relay.requestStats(id)
                    write("ok")
                case .destroy(let id):
                    try relay.destroy(id)
                    write("ok")
                case .quit:
                    write("ok")
                    finished = true
                }
            } catch {
                write("error \(error)")
            }
        }
    }

    private func write(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(output, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 {
                if n < 0 && csys_errno_value() == EINTR { continue }
                return
            }
            offset += n
        }
        bytes.removeAll()
    }
}

private extension String {
    var trimmingSpaces: String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\r" { scalars.removeLast() }
        return String(scalars)
    }
}

@inline(__always) private func csys_errno_value() -> Int32 { errno }
