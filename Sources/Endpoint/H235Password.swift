// H.235.1 password authentication in the form gatekeepers actually interoperate with
// ("pwdHash", MD5): the endpoint hashes the PER encoding of a ClearToken that holds its
// alias, the password and a timestamp, and sends only the hash, in a cryptoEPPwdHash
// token. Deployed stacks encode the alias and the password as BMPStrings followed by
// one NUL character, with tokenOID 0.0; a gatekeeper recomputes the same bytes from its
// own subscriber table. MD5 itself is supplied by the caller (this module has no crypto
// library): OpenSSL in the appliance, the phone and the lab gatekeeper.
import H323
import PER

public enum H235PasswordHash {
    /// MD5 (RFC 1321), the algorithm OID of the HASHED token.
    public static let md5OID = PERObjectIdentifier([1, 2, 840, 113549, 2, 5])
    static let clearTokenOID = PERObjectIdentifier([0, 0])

    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// H.235 passwords and aliases are BMPStrings: UTF-8 text inside the Basic Multilingual Plane.
        case notBMPText
        case encoding(String)

        public var description: String {
            switch self {
            case .notBMPText: "the alias and the secret must be text in the Basic Multilingual Plane for H.235"
            case .encoding(let why): "H.235 ClearToken encoding: \(why)"
            }
        }
    }

    /// A secret as an H.235 password, when it is valid UTF-8 inside the BMP.
    public static func password(fromSecret secret: [UInt8]) -> String? {
        guard let text = String(validating: secret, as: UTF8.self), isBMP(text) else { return nil }
        return text
    }

    static func isBMP(_ text: String) -> Bool {
        !text.isEmpty && text.unicodeScalars.allSatisfy { $0.value <= 0xFFFF && $0.value != 0 }
    }

    /// The bytes that are hashed: PER of ClearToken{tokenOID 0.0, timeStamp, password, generalID}.
    public static func hashedBytes(alias: String, password: String, timeStamp: Int) throws(Failure) -> [UInt8] {
        guard isBMP(alias), isBMP(password) else { throw .notBMPText }
        guard (1...Int(UInt32.max)).contains(timeStamp) else { throw .encoding("timeStamp \(timeStamp) out of range") }
        let token = ClearToken(tokenOID: clearTokenOID, timeStamp: timeStamp, password: password + "\u{0}",
                               generalID: alias + "\u{0}")
        do { return try token.encoded() } catch { throw .encoding("\(error)") }
    }

    /// The token an endpoint (or the appliance on its behalf) puts in its RAS messages.
    public static func cryptoToken(alias: String, timeStamp: Int, hash: [UInt8]) -> CryptoH323Token {
        .cryptoEPPwdHash(CryptoH323Token.CryptoEPPwdHash(
            alias: .h323ID(alias), timeStamp: timeStamp,
            token: HASHED(algorithmOID: md5OID, paramS: H235Params(), hash: PERBitString(bytes: hash, count: hash.count * 8))))
    }

    /// What a received pwdHash token claims: the alias, its timestamp and the 16-byte MD5.
    public struct Presented: Equatable, Sendable {
        public var alias: String
        public var timeStamp: Int
        public var hash: [UInt8]
    }

    /// The first well-formed MD5 pwdHash token of a message, if any.
    public static func presented(in tokens: [CryptoH323Token]?) -> Presented? {
        for token in tokens ?? [] {
            guard case .cryptoEPPwdHash(let pwd) = token, pwd.token.algorithmOID == md5OID,
                  pwd.token.hash.count == 128, pwd.token.hash.bytes.count == 16 else { continue }
            let alias: String
            switch pwd.alias {
            case .h323ID(let s), .dialledDigits(let s), .urlID(let s), .emailID(let s): alias = s
            default: continue
            }
            return Presented(alias: alias, timeStamp: pwd.timeStamp, hash: pwd.token.hash.bytes)
        }
        return nil
    }
}

/// A gatekeeper's check of pwdHash tokens against its subscriber table (H.235.1): the hash
/// must match, the timestamp must lie within the window around the gatekeeper's clock, and
/// a (alias, timestamp) pair accepted once is never accepted again (replay).
public struct H235PasswordVerifier: Sendable {
    public enum Verdict: Equatable, Sendable {
        case accepted(alias: String)
        /// No token, unknown alias or wrong hash.
        case denied(String)
        /// The timestamp is outside the window (clocks apart, or an old token).
        case wrongTime(String)
        case replay(String)
    }

    public let passwords: [String: String]
    public let windowSeconds: Int
    /// Accepted timestamps per alias, kept for the window (a replay is detected within it;
    /// outside it the time check refuses anyway).
    private var seen: [String: [Int]] = [:]

    public init(passwords: [String: String], windowSeconds: Int = 120) {
        self.passwords = passwords
        self.windowSeconds = windowSeconds
    }

    /// Checks the tokens of a full RRQ whose aliases are `aliases`. `md5` is the digest function.
    public mutating func check(_ tokens: [CryptoH323Token]?, aliases: [String], nowSeconds: Int,
                               md5: ([UInt8]) -> [UInt8]) -> Verdict {
        guard let token = H235PasswordHash.presented(in: tokens) else { return .denied("no H.235 pwdHash (MD5) token") }
        guard aliases.isEmpty || aliases.contains(token.alias) else {
            return .denied("token alias \(token.alias) is not among the registered aliases")
        }
        guard let password = passwords[token.alias] else { return .denied("unknown subscriber \(token.alias)") }
        guard let bytes = try? H235PasswordHash.hashedBytes(alias: token.alias, password: password, timeStamp: token.timeStamp),
              constantTimeEqual(md5(bytes), token.hash) else {
            return .denied("wrong password hash for \(token.alias)")
        }
        let skew = token.timeStamp - nowSeconds
        guard abs(skew) <= windowSeconds else {
            return .wrongTime("timestamp \(token.timeStamp) is \(skew) s from the gatekeeper's clock (window \(windowSeconds) s)")
        }
        var times = seen[token.alias, default: []].filter { abs($0 - nowSeconds) <= windowSeconds }
        guard !times.contains(token.timeStamp) else {
            return .replay("timestamp \(token.timeStamp) of \(token.alias) was already used")
        }
        times.append(token.timeStamp)
        seen[token.alias] = times
        return .accepted(alias: token.alias)
    }

    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}

/// Timestamps for an endpoint's tokens: the wall clock in seconds, but strictly increasing,
/// so that two registrations within one second are not taken for a replay.
public struct H235TimeStamps: Sendable {
    private var last = 0
    public init() {}
    public mutating func next(nowSeconds: Int) -> Int {
        last = max(nowSeconds, last + 1)
        return last
    }
}

extension RegistrationRejectReason {
    /// The CHOICE index, as the tunnel's REJECTED carries it (docs/tunnel-protocol.md §3).
    public var index: UInt16 {
        switch self {
        case .discoveryRequired: 0
        case .invalidRevision: 1
        case .invalidCallSignalAddress: 2
        case .invalidRASAddress: 3
        case .duplicateAlias: 4
        case .invalidTerminalType: 5
        case .undefinedReason: 6
        case .transportNotSupported: 7
        case .transportQOSNotSupported: 8
        case .resourceUnavailable: 9
        case .invalidAlias: 10
        case .securityDenial: 11
        case .fullRegistrationRequired: 12
        case .additiveRegistrationNotSupported: 13
        case .invalidTerminalAliases: 14
        case .genericDataReason: 15
        case .neededFeatureNotSupported: 16
        case .securityError: 17
        case .registerWithAssignedGK: 18
        case .unknownExtension(let i, _): UInt16(clamping: i)
        }
    }

    /// A reason a person can read on the phone's screen.
    public var displayText: String {
        switch self {
        case .securityDenial: "the gatekeeper refused the credentials (securityDenial)"
        case .securityError(let e):
            switch e {
            case .securityWrongSyncTime: "the gatekeeper refused the credentials: clocks too far apart (securityWrongSyncTime)"
            case .securityReplay: "the gatekeeper refused the credentials as a replay (securityReplay)"
            default: "the gatekeeper refused the credentials (securityError \(e))"
            }
        case .duplicateAlias: "the alias is already registered by another endpoint (duplicateAlias)"
        case .invalidRASAddress: "the gatekeeper refused the endpoint's address (invalidRASAddress)"
        case .invalidAlias, .invalidTerminalAliases: "the gatekeeper does not accept this alias (invalidAlias)"
        case .resourceUnavailable: "the gatekeeper is out of resources (resourceUnavailable)"
        default: "the gatekeeper refused the registration (\(self))"
        }
    }
}
