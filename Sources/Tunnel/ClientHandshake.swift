// The client side of HELLO/WELCOME/AUTH (or RESUME)/AUTH_OK, sans-I/O. Used by the
// phone, the tests and the benchmark load generator.

public struct ClientHandshake: Sendable {
    public enum Step: Equatable, Sendable {
        /// Send this frame next.
        case send(Frame)
        /// Authenticated; `resumeToken` lets a later connection continue this session.
        case established(version: UInt16, resumeToken: [UInt8], graceSeconds: UInt16, resumed: Bool)
        /// AUTH_DEFER: send CREDENTIALS (computed by the caller, who has the H.235 code)
        /// and REGISTER; AUTH_OK follows REGISTERED... or REJECTED ends it.
        case deferred(CredentialMethod)
        case failed(String)
    }

    public let alias: String
    private let secret: [UInt8]
    private let crypto: TunnelCrypto
    public let capabilities: Capabilities
    /// Set to resume an earlier session instead of authenticating afresh.
    public var resumeToken: [UInt8]?
    private var clientNonce: [UInt8] = []
    private var serverNonce: [UInt8] = []
    private var version: UInt16 = 0
    /// Whether this subscriber's credentials may be checked by the operator's gatekeeper
    /// instead of the appliance. Such an appliance cannot prove that it knows the secret,
    /// so a client accepts it only when configured to.
    public var acceptsGatekeeperVerification = false
    public private(set) var deferred = false

    public init(alias: String, secret: [UInt8], crypto: TunnelCrypto, capabilities: Capabilities = .all,
                resumeToken: [UInt8]? = nil) {
        self.alias = alias
        self.secret = secret
        self.crypto = crypto
        self.capabilities = capabilities
        self.resumeToken = resumeToken
    }

    public func hello(client: String = "bloo-phone") -> Frame {
        Message.hello(minVersion: 1, maxVersion: 1, capabilities: capabilities, client: client).frame()
    }

    /// Feeds one server message of the handshake.
    public mutating func handle(_ message: Message) -> Step {
        switch message {
        case let .welcome(version, _, _, nonce):
            self.version = version
            serverNonce = nonce
            clientNonce = crypto.randomBytes(TunnelSizes.nonce)
            if let token = resumeToken {
                let mac = TunnelAuth.resumeMAC(crypto, secret: secret, serverNonce: nonce, clientNonce: clientNonce,
                                               token: token, alias: alias)
                return .send(Message.resume(alias: alias, token: token, clientNonce: clientNonce, mac: mac).frame())
            }
            return .send(authFrame())
        case let .authDefer(method):
            guard acceptsGatekeeperVerification else {
                return .failed("the appliance does not know this subscriber's secret and defers to the gatekeeper, which this client does not accept")
            }
            deferred = true
            return .deferred(method)
        case let .authOK(_, token, grace, resumed) where deferred:
            // The gatekeeper accepted the H.235 token (REGISTERED follows); there is no proof to check.
            return .established(version: version, resumeToken: token, graceSeconds: grace, resumed: resumed)
        case let .rejected(_, text) where deferred:
            return .failed("the operator's gatekeeper refused the credentials: \(text)")
        case let .authOK(proof, token, grace, resumed):
            let expected = TunnelAuth.serverProof(crypto, secret: secret, serverNonce: serverNonce, clientNonce: clientNonce)
            guard TunnelAuth.constantTimeEqual(proof, expected) else {
                return .failed("the appliance does not know this subscriber's secret")
            }
            return .established(version: version, resumeToken: token, graceSeconds: grace, resumed: resumed)
        case let .error(code, text) where code == ErrorCode.resumeRefused.rawValue && resumeToken != nil:
            _ = text
            resumeToken = nil
            clientNonce = crypto.randomBytes(TunnelSizes.nonce)
            return .send(authFrame())
        case let .error(code, text):
            return .failed("error \(code): \(text)")
        default:
            return .failed("unexpected \(message.type) during the handshake")
        }
    }

    private func authFrame() -> Frame {
        let mac = TunnelAuth.clientMAC(crypto, secret: secret, serverNonce: serverNonce, clientNonce: clientNonce, alias: alias)
        return Message.auth(alias: alias, clientNonce: clientNonce, mac: mac).frame()
    }
}
