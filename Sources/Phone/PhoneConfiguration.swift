// What a phone needs to know: who it is, the CA that vouches for the appliances,
// and the appliances themselves. Read from a small text file, one setting a line:
//
//   alias   alice
//   secret  alice-secret-1          (or hex:616c...)
//   ca      /etc/bloo/ca.pem
//   appliance tls:192.0.2.10:443/proxy.example.net
//   appliance tcp:192.0.2.11:8443
//
// `#` starts a comment. Unknown keys are errors: a typo must not go unnoticed.
import Endpoint
import IO
import Tunnel

public struct PhoneConfiguration: Sendable {
    public var alias = ""
    public var secret: [UInt8] = []
    public var caPath: String?
    public var appliances: [Appliance] = []
    public var scan = ScanOptions()
    /// Codecs offered, preferred first.
    public var codecs: [Codec] = [.pcma, .pcmu]
    /// PING period: measures the round trip and keeps NAT bindings and the appliance's idle timer alive.
    public var pingIntervalSeconds = 5.0
    /// How often a call reports its quality.
    public var qualityIntervalSeconds = 5.0
    /// How long to try resuming a broken tunnel on the same appliance before failing over.
    public var resumeWindowSeconds = 8.0
    /// Consecutive refused reconnections that mean the appliance is gone (fail over at once).
    public var refusalsBeforeFailover = 3
    public var clientName = "bloo-phone"
    /// The operator's gatekeeper (RAS, UDP): when set, the phone tries direct registration first.
    public var gatekeeper: IPv4Endpoint?
    /// Where the per-network decision (direct or tunnel) is remembered.
    public var statePath: String?
    /// RRQ timeout and retries (H.225.0 defaults: 3 s, 2 retries).
    public var rasRetry = RASRetryPolicy.rrq
    /// A direct call whose audio has not arrived this long after connecting falls back to the tunnel.
    public var directMediaTimeoutSeconds = 4.0
    /// Move a tunnelled call's audio to UDP when the appliance offers it and UDP gets through.
    public var udpAudio = true
    /// The UDP upgrade's timings (fallback after silence, probes).
    public var udpUpgrade = UDPUpgradeConfig()
    /// Accept an appliance that leaves the check of this subscriber's secret to the
    /// operator's gatekeeper (AUTH_DEFER): the phone then sends an H.235 password token,
    /// and REGISTERED, not the appliance's proof, shows the credentials were good.
    public var gatekeeperVerification = false

    public init() {}

    public init(parsing text: String) throws {
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let key = fields.first else { continue }
            func fail(_ why: String) -> PhoneError { .configuration("line \(number + 1): \(why)") }
            guard fields.count == 2 else { throw fail("expected '\(key) VALUE'") }
            let value = fields[1]
            switch key {
            case "alias":
                guard !value.isEmpty, value.utf8.count <= 255 else { throw fail("alias must be 1-255 bytes") }
                alias = value
            case "secret":
                guard let bytes = Self.secretBytes(value) else { throw fail("secret must be at least 8 bytes (hex: for binary)") }
                secret = bytes
            case "ca":
                caPath = value
            case "gatekeeper":
                guard let endpoint = IPv4Endpoint(parsing: value.contains(":") ? value : value + ":1719") else {
                    throw fail("gatekeeper must be ADDRESS[:PORT], got '\(value)'")
                }
                gatekeeper = endpoint
            case "state":
                statePath = value
            case "gatekeeper-auth":
                guard value == "yes" || value == "no" else { throw fail("gatekeeper-auth is yes or no") }
                gatekeeperVerification = value == "yes"
            case "appliance":
                guard let appliance = Appliance(parsing: value) else {
                    throw fail("appliance must look like tls:ADDRESS:PORT[/NAME] or tcp:ADDRESS:PORT, got '\(value)'")
                }
                guard appliances.count < 64 else { throw fail("more than 64 appliances") }
                appliances.append(appliance)
            default:
                throw fail("unknown setting '\(key)'")
            }
        }
    }

    /// Checks the configuration is complete enough to open a tunnel.
    public func validate() throws {
        guard !alias.isEmpty else { throw PhoneError.configuration("no alias") }
        guard secret.count >= 8 else { throw PhoneError.configuration("no secret (at least 8 bytes)") }
        guard !appliances.isEmpty || gatekeeper != nil else { throw PhoneError.configuration("no appliance") }
        if caPath == nil, let tls = appliances.first(where: { $0.transport == .tls }) {
            throw PhoneError.configuration("\(tls) uses TLS: give the CA file that signed its certificate")
        }
    }

    /// The secret's bytes (`hex:` for any bytes, as in the appliance's subscriber table);
    /// nil when invalid or shorter than 8 bytes.
    static func secretBytes(_ text: String) -> [UInt8]? {
        SecretText.bytes(text).flatMap { $0.count >= SecretText.minimumBytes ? $0 : nil }
    }
}
