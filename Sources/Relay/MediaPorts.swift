import Glibc
import IO
import Log

private let log = Logger(subsystem: "relay")

/// The two sockets (and optional send socket) of one RTP/RTCP port pair.
struct MediaPair {
    var rtp: UDPSocket
    var rtpSend: UDPSocket?
    var rtcp: UDPSocket
    var port: UInt16
}

/// Port pairs and their sockets, for `Relay` and `LocalRelay`: allocation from the
/// configured ranges (least recently released first, after a quarantine), and media
/// sockets opened with the configured buffers, the asked marking, no fragmentation.
/// Used from one thread.
struct MediaPorts {
    let configuration: RelayConfiguration
    private var gatewayPorts: PortAllocator
    private var clientPorts: PortAllocator?
    /// Set for good when the kernel refused a separate send socket (logged once).
    private var sendSocketsRefused = false

    init(configuration: RelayConfiguration) throws {
        self.configuration = configuration
        gatewayPorts = try PortAllocator(range: configuration.gatewayPorts, quarantineNanoseconds: configuration.quarantineNanoseconds)
        if configuration.clientAddress.address != configuration.gatewayAddress.address {
            clientPorts = try PortAllocator(range: configuration.clientPorts, quarantineNanoseconds: configuration.quarantineNanoseconds)
        }
    }

    /// The gateway-side range, its pairs free now, and those released but in quarantine.
    var gatewayRange: ClosedRange<UInt16> { gatewayPorts.range }
    var gatewayPairsFree: Int { gatewayPorts.available - gatewayPorts.quarantined(now: monotonicNanoseconds()) }
    var gatewayPairsQuarantined: Int { gatewayPorts.quarantined(now: monotonicNanoseconds()) }

    /// Puts a pair's ports back (into quarantine); the sockets are the worker's to close.
    mutating func release(port: UInt16, client: Bool) {
        let now = monotonicNanoseconds()
        if client, clientPorts != nil { clientPorts!.release(port, now: now) } else { gatewayPorts.release(port, now: now) }
    }

    /// Closes a pair that never reached a worker and puts its ports back.
    mutating func close(_ pair: MediaPair, client: Bool) {
        pair.rtp.close()
        pair.rtpSend?.close()
        pair.rtcp.close()
        release(port: pair.port, client: client)
    }

    /// The next free pair, bound; its sockets marked with `dscp` (nil: unmarked).
    mutating func open(client: Bool, dscp: UInt8?) throws -> MediaPair {
        let address = client ? configuration.clientAddress.address : configuration.gatewayAddress.address
        let useClientRange = client && clientPorts != nil
        var attempts = useClientRange ? clientPorts!.available : gatewayPorts.available
        while attempts > 0 {
            attempts -= 1
            let now = monotonicNanoseconds()
            let allocated = useClientRange ? clientPorts!.allocate(now: now) : gatewayPorts.allocate(now: now)
            guard let port = allocated else { break }
            do {
                let rtp = try openMediaSocket(IPv4Endpoint(address: address, port: port), dscp: dscp)
                do {
                    let rtcp = try openMediaSocket(IPv4Endpoint(address: address, port: port + 1), dscp: dscp)
                    return MediaPair(rtp: rtp, rtpSend: openSendSocket(beside: rtp, IPv4Endpoint(address: address, port: port), dscp: dscp),
                                     rtcp: rtcp, port: port)
                } catch {
                    rtp.close()
                    throw error
                }
            } catch let error as SystemError where error.code == EADDRINUSE || error.code == EACCES {
                // Taken by another program: put it back behind the others and try the next.
                release(port: port, client: client)
            } catch {
                // Anything else (EMFILE, ENOBUFS, EADDRNOTAVAIL...) is not about this port:
                // trying the next one would only hide the real reason behind "exhausted".
                release(port: port, client: client)
                log.warning("media socket failed", ["port": String(port), "error": String(describing: error)])
                throw RelayError.socketFailed(String(describing: error))
            }
        }
        let allocator = useClientRange ? clientPorts! : gatewayPorts
        let error = RelayError.portsExhausted(address: IPv4Endpoint(address: address, port: 0).addressText,
                                              range: allocator.range, inUse: allocator.inUse,
                                              quarantined: allocator.quarantined(now: monotonicNanoseconds()))
        log.warning("ports exhausted", ["error": error.description])
        throw error
    }

    /// A second socket on an RTP port, in no epoll set, that the worker sends from.
    /// Why: freeing a sent datagram wakes every waiter on its socket, and a socket in an
    /// epoll set always has one (epoll's own callback, which then finds nothing to do).
    /// That wake-up was about 5% of the relay's CPU per packet. The receiving socket
    /// stays the only one that gets datagrams (a reuseport steering program). Nil (send
    /// from the receiving socket) when disabled or when the kernel refuses.
    private mutating func openSendSocket(beside receiver: UDPSocket, _ endpoint: IPv4Endpoint, dscp: UInt8?) -> UDPSocket? {
        guard configuration.separateSendSockets && !sendSocketsRefused else { return nil }
        var opened: UDPSocket?
        do {
            try receiver.allowPortSharing()
            let sender = try UDPSocket.open()
            opened = sender
            // It never reads: the smallest receive buffer bounds what could ever queue there.
            try sender.setReceiveBuffer(bytes: 0)
            if let bytes = configuration.sendBufferBytes { try sender.setSendBuffer(bytes: bytes) }
            if let dscp { try sender.setTOS(UDPSocket.tos(dscp: dscp)) }
            try sender.setDontFragment()
            try sender.allowPortSharing()
            try sender.bind(endpoint)
            try receiver.receiveAllOfPort()
            return sender
        } catch {
            opened?.close()
            // Alone again: nobody else may join the receiving socket's port.
            try? receiver.setOption(SOL_SOCKET, SO_REUSEPORT, 0, "SO_REUSEPORT")
            sendSocketsRefused = true
            log.warning("separate send sockets unavailable, sending from the receiving sockets",
                        ["error": String(describing: error)])
            return nil
        }
    }

    private func openMediaSocket(_ endpoint: IPv4Endpoint, dscp: UInt8?) throws -> UDPSocket {
        let socket = try UDPSocket.open()
        do {
            if let bytes = configuration.receiveBufferBytes { try socket.setReceiveBuffer(bytes: bytes) }
            if let bytes = configuration.sendBufferBytes { try socket.setSendBuffer(bytes: bytes) }
            if let dscp { try socket.setTOS(UDPSocket.tos(dscp: dscp)) }
            try socket.setDontFragment()
            try socket.enableDropCounter()
            try socket.bind(endpoint)
        } catch {
            socket.close()
            throw error
        }
        return socket
    }
}
