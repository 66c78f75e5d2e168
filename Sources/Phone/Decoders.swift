// Every parser the phone runs on input it does not control, in one entry point
// for the fuzz target (fuzz/targets/FuzzPhoneMedia): RTP and RTCP from the far
// end, UDP probe answers, the configuration text and appliance addresses.

public enum PhoneDecoders {
    public static func exercise(_ bytes: [UInt8]) {
        _ = RTPHeader.parse(bytes)
        _ = ProbeWire.reply(bytes[...])
        var media = CallMedia(codec: .pcmu, source: SilenceSource(), sink: NullSink(), random: [0, 0, 0, 42, 0, 0, 0, 0, 0, 0])
        media.receiveRTP(bytes, nowNanos: 0)
        media.receiveRTCP(bytes)
        _ = media.stats(received: false)
        _ = media.receiverReport()
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? PhoneConfiguration(parsing: text)
        _ = Appliance(parsing: text)
    }
}
