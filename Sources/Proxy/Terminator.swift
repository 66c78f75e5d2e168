// The tunnel terminator: TLS and plain TCP listeners spread over pinned data-plane
// workers. Listening sockets are opened here, on the calling thread, before any
// worker starts (so a privileged port can be bound before privileges are dropped).

import IO
import Glibc
import Log
import Synchronization
import Tunnel

public final class Terminator: Sendable {
    public let shared: TerminatorShared
    private let backendFactory: @Sendable (TerminatorWorker) -> TunnelBackend
    private let control = WorkerControl()
    private let threads = Mutex<[WorkerThread]>([])
    private let mailboxes = Mutex<[WorkerMailbox]>([])
    private let bound = Mutex<(tls: IPv4Endpoint?, tcp: IPv4Endpoint?)>((nil, nil))
    private let log = Logger(subsystem: "tunnel")

    public init(config: TerminatorConfig, subscribers: SubscriberTable,
                backend: @escaping @Sendable (TerminatorWorker) -> TunnelBackend) throws {
        var tls: TLSContext?
        if config.tlsListen != nil {
            tls = try TLSContext.server(certificatePath: config.certificatePath, keyPath: config.keyPath)
        }
        shared = TerminatorShared(config: config, subscribers: subscribers, tls: tls)
        backendFactory = backend
    }

    /// The TLS listener's address once started (the real port when 0 was asked).
    public var tlsEndpoint: IPv4Endpoint? { bound.withLock { $0.tls } }
    public var tcpEndpoint: IPv4Endpoint? { bound.withLock { $0.tcp } }

    /// Binds every listener and starts the workers.
    public func start() throws {
        let config = shared.config
        let workers = max(1, config.workers)
        let reuse = workers > 1
        var perWorker = [WorkerSockets](repeating: WorkerSockets(), count: workers)
        var opened: [Int32] = []
        do {
            var tlsEndpoint = config.tlsListen
            var tcpEndpoint = config.tcpListen
            for index in 0..<workers {
                // Port 0 means "any free port": the first worker's port is then reused by the others.
                if let endpoint = tlsEndpoint {
                    let socket = try TCPSocket.listening(on: endpoint, reusePort: reuse)
                    opened.append(socket.fd)
                    perWorker[index].tls = socket
                    tlsEndpoint = try socket.localEndpoint()
                }
                if let endpoint = tcpEndpoint {
                    let socket = try TCPSocket.listening(on: endpoint, reusePort: reuse)
                    opened.append(socket.fd)
                    perWorker[index].tcp = socket
                    tcpEndpoint = try socket.localEndpoint()
                }
                if config.probe {
                    for endpoint in [tlsEndpoint, tcpEndpoint].compactMap({ $0 }) {
                        do {
                            let probe = try UDPSocket.bound(to: endpoint, reusePort: reuse)
                            opened.append(probe.fd)
                            perWorker[index].probes.append(probe)
                        } catch {
                            log.warning("tunnel-probe-unavailable", ["endpoint": "\(endpoint)", "error": "\(error)"])
                        }
                    }
                }
            }
            bound.withLock { $0 = (tlsEndpoint, tcpEndpoint) }
        } catch {
            for fd in opened { TCPSocket(fd: fd).close() }
            throw error
        }

        let boxes = try (0..<workers).map { _ in try WorkerMailbox() }
        mailboxes.withLock { $0 = boxes }
        let shared = self.shared
        let factory = backendFactory
        let control = self.control
        for index in 0..<workers {
            let sockets = perWorker[index]
            let cpu = index < config.cpus.count ? config.cpus[index] : nil
            let thread = try WorkerThread.start(name: "tunnel-\(index)", cpu: cpu) {
                runWorker(index: index, shared: shared, sockets: sockets, mailboxes: boxes, control: control, factory: factory)
            }
            threads.withLock { $0.append(thread) }
        }
        while control.started.load(ordering: .acquiring) < workers { usleepShort() }
        log.info("tunnel-listening", ["tls": tlsEndpoint.map { "\($0)" } ?? "off", "tcp": tcpEndpoint.map { "\($0)" } ?? "off",
                                      "workers": "\(workers)"])
    }

    /// Loads the certificate and key again. New connections use them; established
    /// connections keep the context they were accepted with. On error nothing changes.
    public func reloadCertificate() throws {
        let config = shared.config
        let context = try TLSContext.server(certificatePath: config.certificatePath, keyPath: config.keyPath)
        shared.tls.withLock { $0 = context }
        log.info("tunnel-certificate-reloaded", ["certificate": config.certificatePath])
    }

    /// Sends BYE to every connection and stops the workers.
    public func stop() {
        control.stopping.store(true, ordering: .relaxed)
        for box in mailboxes.withLock({ $0 }) { box.wakeup.signal() }
        let all = threads.withLock { threads -> [WorkerThread] in
            defer { threads.removeAll() }
            return threads
        }
        for thread in all { thread.join() }
    }
}

private func runWorker(index: Int, shared: TerminatorShared, sockets: WorkerSockets, mailboxes: [WorkerMailbox],
                       control: WorkerControl, factory: @Sendable (TerminatorWorker) -> TunnelBackend) {
    let worker: TerminatorWorker
    do {
        worker = try TerminatorWorker(index: index, shared: shared, sockets: sockets, mailboxes: mailboxes, control: control)
    } catch {
        Logger(subsystem: "tunnel").error("tunnel-worker-failed", ["worker": "\(index)", "error": "\(error)"])
        control.started.add(1, ordering: .releasing)
        return
    }
    worker.backend = factory(worker)
    control.started.add(1, ordering: .releasing)
    worker.run()
}

private func usleepShort() {
    var request = timespec(tv_sec: 0, tv_nsec: 1_000_000)
    _ = nanosleep(&request, nil)
}

/// Start and stop signals shared by the terminator and its worker threads.
final class WorkerControl: Sendable {
    let stopping = Atomic<Bool>(false)
    let started = Atomic<Int>(0)
}
