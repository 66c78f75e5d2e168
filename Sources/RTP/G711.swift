// G.711 companding (ITU-T G.711), µ-law and A-law, both directions.
// The appliance never transcodes; these exist for the phone's audio sources
// and sinks and for the tone checks of the lab tools and tests.

public enum G711 {
    /// The two G.711 variants, named by their RTP static payload types.
    public enum Law: Sendable, Equatable {
        /// PCMU, RTP payload type 0.
        case muLaw
        /// PCMA, RTP payload type 8.
        case aLaw

        public var payloadType: UInt8 { self == .muLaw ? 0 : 8 }
    }

    private static let muLawBias: Int32 = 0x84
    private static let muLawClip: Int32 = 32635

    /// Encodes one 16-bit linear sample to µ-law.
    public static func muLaw(fromLinear sample: Int16) -> UInt8 {
        var value = Int32(sample)
        let sign: Int32 = value < 0 ? 0x80 : 0
        if value < 0 { value = -value }
        value = min(value, muLawClip) + muLawBias
        var exponent: Int32 = 7
        var mask: Int32 = 0x4000
        while exponent > 0 && value & mask == 0 {
            exponent -= 1
            mask >>= 1
        }
        let mantissa = (value >> (exponent + 3)) & 0x0f
        return UInt8(truncatingIfNeeded: ~(sign | (exponent << 4) | mantissa))
    }

    /// Decodes one µ-law byte to a 16-bit linear sample.
    public static func linear(fromMuLaw byte: UInt8) -> Int16 {
        let value = Int32(~byte & 0xff)
        let sign = value & 0x80
        let exponent = (value >> 4) & 0x07
        let mantissa = value & 0x0f
        let magnitude = (((mantissa << 3) + muLawBias) << exponent) - muLawBias
        return Int16(sign != 0 ? -magnitude : magnitude)
    }

    /// Encodes one 16-bit linear sample to A-law.
    public static func aLaw(fromLinear sample: Int16) -> UInt8 {
        var value = Int32(sample) >> 3  // A-law works on 13-bit magnitudes
        let sign: Int32
        if value >= 0 {
            sign = 0xd5
        } else {
            sign = 0x55
            value = -value - 1
        }
        let segmentEnds: [Int32] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff]
        var segment: Int32 = 8
        for (index, end) in segmentEnds.enumerated() where value <= end {
            segment = Int32(index)
            break
        }
        if segment >= 8 { return UInt8(truncatingIfNeeded: 0x7f ^ sign) }
        var encoded = segment << 4
        encoded |= segment < 2 ? (value >> 1) & 0x0f : (value >> segment) & 0x0f
        return UInt8(truncatingIfNeeded: encoded ^ sign)
    }

    /// Decodes one A-law byte to a 16-bit linear sample.
    public static func linear(fromALaw byte: UInt8) -> Int16 {
        let value = Int32(byte ^ 0x55)
        var magnitude = (value & 0x0f) << 4
        let segment = (value & 0x70) >> 4
        switch segment {
        case 0: magnitude += 8
        case 1: magnitude += 0x108
        default: magnitude = (magnitude + 0x108) << (segment - 1)
        }
        return Int16(value & 0x80 != 0 ? magnitude : -magnitude)
    }

    public static func encode(_ samples: [Int16], law: Law) -> [UInt8] {
        switch law {
        case .muLaw: samples.map(muLaw(fromLinear:))
        case .aLaw: samples.map(aLaw(fromLinear:))
        }
    }

    public static func decode(_ bytes: some Sequence<UInt8>, law: Law) -> [Int16] {
        switch law {
        case .muLaw: bytes.map(linear(fromMuLaw:))
        case .aLaw: bytes.map(linear(fromALaw:))
        }
    }
}
