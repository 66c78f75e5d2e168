// The ITU-T G.107 E-model, in the simplified form that G.107 Annex and
// ITU-T G.113 Appendix I make usual for VoIP monitoring: default values for
// everything but delay, codec and packet loss. It gives the estimated MOS
// that `bloo phone` prints at the end of a call.

public enum EModel {
    /// Equipment impairment (Ie) and packet-loss robustness (Bpl) per codec,
    /// from ITU-T G.113 Appendix I.
    public struct CodecImpairment: Sendable, Equatable {
        public let ie: Double
        public let bpl: Double

        public static let g711 = CodecImpairment(ie: 0, bpl: 25.1)  // with packet-loss concealment
        public static let g729a = CodecImpairment(ie: 11, bpl: 19)
        public static let g7231 = CodecImpairment(ie: 15, bpl: 16.1)
        public static let gsmFullRate = CodecImpairment(ie: 20, bpl: 10)  // Bpl not tabulated: conservative
    }

    /// G.107's default basic signal-to-noise ratio minus simultaneous impairments.
    static let defaultR0MinusIs = 93.2

    /// The transmission rating R (0...100).
    /// - Parameters:
    ///   - oneWayDelayMs: mouth-to-ear delay (half the round trip plus jitter buffers).
    ///   - lossPercent: packet loss, 0...100.
    ///   - burstRatio: 1 for random loss.
    public static func rating(codec: CodecImpairment, oneWayDelayMs: Double, lossPercent: Double,
                              burstRatio: Double = 1) -> Double {
        let delay = max(0, oneWayDelayMs)
        let delayImpairment = 0.024 * delay + (delay > 177.3 ? 0.11 * (delay - 177.3) : 0)
        let loss = min(max(lossPercent, 0), 100)
        let effectiveEquipment = codec.ie + (95 - codec.ie) * loss / (loss / max(burstRatio, 1) + codec.bpl)
        return min(max(defaultR0MinusIs - delayImpairment - effectiveEquipment, 0), 100)
    }

    /// G.107 Annex B: R to the estimated mean opinion score (1...4.5).
    public static func mos(rating r: Double) -> Double {
        if r <= 0 { return 1 }
        if r >= 100 { return 4.5 }
        return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6
    }

    public static func mos(codec: CodecImpairment, oneWayDelayMs: Double, lossPercent: Double) -> Double {
        mos(rating: rating(codec: codec, oneWayDelayMs: oneWayDelayMs, lossPercent: lossPercent))
    }
}
