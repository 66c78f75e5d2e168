// The secret syntax the appliance's subscriber table and the phone's settings share.
import Testing
import Tunnel

@Suite struct SecretTextTests {
    @Test func plainTextOrHexBytes() {
        #expect(SecretText.bytes("alice-secret") == Array("alice-secret".utf8))
        #expect(SecretText.bytes("hex:00ff10Aa") == [0x00, 0xFF, 0x10, 0xAA])
        #expect(SecretText.bytes("hex:") == [])  // valid hex, and too short: the callers refuse it
        #expect(SecretText.bytes("hex:abc") == nil)  // odd number of digits
        #expect(SecretText.bytes("hex:zz") == nil)
        #expect(SecretText.bytes("HEX:00") == Array("HEX:00".utf8))  // the prefix is lowercase: plain text
        #expect(SecretText.minimumBytes == 8)
    }
}
