import IO

/// Symmetric-RTP latching rule for one leg, as a pure decision (sans I/O).
public enum LatchDecision: Equatable, Sendable {
    /// Same source as the latched remote: relay.
    case accept
    /// A permitted source and the first one on this leg: latch, relay, report.
    case latchFirst
    /// A permitted source replacing an earlier one (NAT rebinding, re-INVITE): relay.
    case relatch
    /// Not permitted: drop and count.
    case reject
}

public enum Latching {
    /// - Parameters:
    ///   - source: where the datagram came from.
    ///   - remote: the latched remote, if any.
    ///   - announcedAddress: the IPv4 address signalling announced for this leg (0: none).
    ///   - anyAddress: the configuration allows learning from anyone.
    @inline(__always)
    public static func decide(source: IPv4Endpoint, remote: IPv4Endpoint?, announcedAddress: UInt32,
                              anyAddress: Bool) -> LatchDecision {
        if let remote, remote == source { return .accept }
        let permitted = anyAddress || (announcedAddress != 0 && source.address == announcedAddress)
        guard permitted else { return .reject }
        return remote == nil ? .latchFirst : .relatch
    }
}
