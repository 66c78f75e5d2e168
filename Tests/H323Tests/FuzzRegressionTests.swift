// Inputs found by the fuzz targets (fuzz/targets/Fuzz*): each must decode to a value that
// encodes again and decodes to the same value, or be rejected with an error.
import Foundation
import PER
import H323
import Testing

@Suite struct FuzzRegressionTests {
    static func roundTrip<M: H323Message & Equatable>(_ type: M.Type, _ hex: String) throws {
        let bytes = try OracleJSON.bytes(hex: hex)
        guard let message = try? M(decoding: bytes) else { return }
        let again = try message.encoded()
        let back = try M(decoding: again)
        #expect(back == message, "\(hex) -> \(OracleJSON.hex(again))\n\(message)\n\(back)")
    }

    @Test func rasFinding() throws {
        try Self.roundTrip(RasMessage.self, "2b00000240051406b8001d2c00c0000100020000")
    }

    @Test func userInformationFinding() throws {
        try Self.roundTrip(H323UserInformation.self, "28253c80060008014a000728c0b500534c08626c6f6fa3a424a5a6a780060008914aa2a05ba1a2a3a4a5a6a798a8a9aaabacadaea8a9aaabacadaeaf0580010001afa3a4a5a6a70010a8a9a88101")
    }

    @Test func h245Finding() throws {
        try Self.roundTrip(MultimediaSystemControlMessage.self, "01fb6d810444600063")
    }
}
