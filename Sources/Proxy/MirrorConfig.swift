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
    /// RTP/RTCP pairs: even ports of the range with the odd one above. Each worker relays
    /// its calls' media on its own contiguous block of it (`rtpBlock`).
    public var rtpPorts: ClosedRange<UInt16>
    /// A call's RTP/RTCP pair is not handed to another call before this: the gateway's
    /// late media of the ended call must not reach the next one. Pairs are reused least
    /// recently released first anyway; this bounds how soon.
    public var mediaQuarantineNanoseconds: UInt64 = 10_000_000_000
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

extension MirrorConfig {
    /// Worker `worker`'s block of `rtpPorts`: whole even/odd pairs, the blocks in worker
    /// order, of equal size (a remainder of fewer pairs than workers stays unused). Nil
    /// when there are fewer pairs than workers.
    func rtpBlock(worker: Int, workers: Int) -> ClosedRange<UInt16>? {
        let low = Int(rtpPorts.lowerBound) + Int(rtpPorts.lowerBound % 2)  // first even port
        let pairs = (Int(rtpPorts.upperBound) - low + 1) / 2
        let perWorker = pairs / max(1, workers)
        guard perWorker > 0, worker >= 0, worker < workers else { return nil }
        let start = low + 2 * perWorker * worker
        return UInt16(start)...UInt16(start + 2 * perWorker - 1)
    }
}
