// Configuration of the mirror: where the operator's gatekeeper is, which public address
// the appliance shows, and the port pools each client's public face is taken from.
import Endpoint

public struct MirrorConfig: Sendable {
    public var gatekeeper: EndpointAddress
    /// The address the operator reaches the appliance on (advertised in RAS, Q.931, H.245).
    public var publicIP: UInt32
    /// The address sockets bind to (0 = any); differs from publicIP behind a static NAT.
    public var bindIP: UInt32
    public var rasPorts: ClosedRange<UInt16>
    public var signallingPorts: ClosedRange<UInt16>
    /// RTP/RTCP pairs: even ports of the range with the odd one above.
    public var rtpPorts: ClosedRange<UInt16>
    public var timeToLive = 300
    public var options = CallOptions()
    /// Separate H.245 connections listen on the call's signalling port pool's address, port 0.
    public var cdrPath: String?
    public var discover = true

    public init(gatekeeper: EndpointAddress, publicIP: UInt32, bindIP: UInt32? = nil,
                rasPorts: ClosedRange<UInt16> = 30000...39999, signallingPorts: ClosedRange<UInt16> = 40000...49999,
                rtpPorts: ClosedRange<UInt16> = 50000...59999) {
        self.gatekeeper = gatekeeper
        self.publicIP = publicIP
        self.bindIP = bindIP ?? publicIP
        self.rasPorts = rasPorts
        self.signallingPorts = signallingPorts
        self.rtpPorts = rtpPorts
    }
}

/// The ports of one pool that belong to one worker (worker i of n takes every n-th), so
/// that workers never contend for a port.
struct PortPool {
    private var free: [UInt16]

    init(range: ClosedRange<UInt16>, worker: Int, workers: Int, step: Int = 1) {
        var ports: [UInt16] = []
        var slot = 0
        var port = Int(range.lowerBound)
        if step == 2 && port % 2 == 1 { port += 1 }
        while port + (step - 1) <= Int(range.upperBound) {
            if slot % max(1, workers) == worker { ports.append(UInt16(port)) }
            slot += 1
            port += step
        }
        free = ports.reversed()
    }

    var available: Int { free.count }

    mutating func take() -> UInt16? { free.popLast() }

    mutating func give(_ port: UInt16) { free.append(port) }

    /// A port another program holds: tried again only after every other free port.
    mutating func setAside(_ port: UInt16) { free.insert(port, at: 0) }
}
