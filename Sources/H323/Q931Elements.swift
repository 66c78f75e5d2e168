// Typed views of the Q.931 information elements H.225.0 uses (Q.931 4.5, Q.850).
// Each parses from and serialises to the IE contents (without identifier and length).

/// Bearer capability (Q.931 4.5.5), e.g. speech at 64 kbit/s, G.711 µ-law: 80 90 a2.
public struct Q931BearerCapability: Equatable, Sendable {
    public var codingStandard: UInt8          // 0 = ITU-T
    public var transferCapability: UInt8      // 0 speech, 8 unrestricted digital, 16 3.1 kHz audio
    public var transferMode: UInt8            // 0 circuit, 2 packet
    public var transferRate: UInt8            // 16 = 64 kbit/s, 24 = multirate
    public var rateMultiplier: UInt8?
    public var layer1Protocol: UInt8?         // 2 = G.711 µ-law, 3 = A-law, 5 = H.221/H.242

    public init(codingStandard: UInt8 = 0, transferCapability: UInt8 = 0, transferMode: UInt8 = 0,
                transferRate: UInt8 = 16, rateMultiplier: UInt8? = nil, layer1Protocol: UInt8? = nil) {
        self.codingStandard = codingStandard
        self.transferCapability = transferCapability
        self.transferMode = transferMode
        self.transferRate = transferRate
        self.rateMultiplier = rateMultiplier
        self.layer1Protocol = layer1Protocol
    }

    public init(contents c: [UInt8]) throws(Q931Error) {
        guard c.count >= 2 else { throw .badElement("bearer capability of \(c.count) octets") }
        codingStandard = (c[0] >> 5) & 0x03
        transferCapability = c[0] & 0x1F
        transferMode = (c[1] >> 5) & 0x03
        transferRate = c[1] & 0x1F
        var i = 2
        if transferRate == 0x18 {
            guard c.count > i else { throw .badElement("bearer capability without rate multiplier") }
            rateMultiplier = c[i] & 0x7F
            i += 1
        }
        if c.count > i, (c[i] >> 5) & 0x03 == 1 { layer1Protocol = c[i] & 0x1F }
    }

    public var contents: [UInt8] {
        var c: [UInt8] = [0x80 | (codingStandard & 0x03) << 5 | (transferCapability & 0x1F),
                          0x80 | (transferMode & 0x03) << 5 | (transferRate & 0x1F)]
        if transferRate == 0x18 { c.append(0x80 | ((rateMultiplier ?? 1) & 0x7F)) }
        if let layer1Protocol { c.append(0x80 | 0x20 | (layer1Protocol & 0x1F)) }
        return c
    }
}

/// Q.850 location of a cause or progress indicator.
public enum Q931Location: UInt8, Sendable {
    case user = 0, privateLocal = 1, publicLocal = 2, transit = 3, publicRemote = 4, privateRemote = 5
    case international = 7, beyondInterworking = 10
}

/// Cause (Q.931 4.5.12, values from Q.850).
public struct Q931Cause: Equatable, Sendable {
    public var codingStandard: UInt8
    public var location: UInt8
    public var recommendation: UInt8?
    public var value: UInt8
    public var diagnostics: [UInt8]

    public static let unallocatedNumber: UInt8 = 1
    public static let noRouteToDestination: UInt8 = 3
    public static let normalCallClearing: UInt8 = 16
    public static let userBusy: UInt8 = 17
    public static let noUserResponding: UInt8 = 18
    public static let noAnswer: UInt8 = 19
    public static let callRejected: UInt8 = 21
    public static let numberChanged: UInt8 = 22
    public static let destinationOutOfOrder: UInt8 = 27
    public static let invalidNumberFormat: UInt8 = 28
    public static let normalUnspecified: UInt8 = 31
    public static let noCircuitAvailable: UInt8 = 34
    public static let networkOutOfOrder: UInt8 = 38
    public static let temporaryFailure: UInt8 = 41
    public static let resourceUnavailable: UInt8 = 47
    public static let bearerCapabilityNotAvailable: UInt8 = 58
    public static let incompatibleDestination: UInt8 = 88
    public static let recoveryOnTimerExpiry: UInt8 = 102
    public static let protocolError: UInt8 = 111
    public static let interworking: UInt8 = 127

    public init(value: UInt8, location: Q931Location = .user, codingStandard: UInt8 = 0,
                recommendation: UInt8? = nil, diagnostics: [UInt8] = []) {
        self.codingStandard = codingStandard
        self.location = location.rawValue
        self.recommendation = recommendation
        self.value = value
        self.diagnostics = diagnostics
    }

    public init(contents c: [UInt8]) throws(Q931Error) {
        guard c.count >= 2 else { throw .badElement("cause of \(c.count) octets") }
        codingStandard = (c[0] >> 5) & 0x03
        location = c[0] & 0x0F
        var i = 1
        if c[0] & 0x80 == 0 {
            recommendation = c[1] & 0x7F
            i = 2
        }
        guard c.count > i else { throw .badElement("cause without a value") }
        value = c[i] & 0x7F
        diagnostics = Array(c[(i + 1)...])
    }

    public var contents: [UInt8] {
        var c: [UInt8] = []
        let first = (codingStandard & 0x03) << 5 | (location & 0x0F)
        if let recommendation {
            c += [first, 0x80 | (recommendation & 0x7F)]
        } else {
            c.append(0x80 | first)
        }
        c.append(0x80 | (value & 0x7F))
        return c + diagnostics
    }
}

/// Progress indicator (Q.931 4.5.23): 1 = not end-to-end ISDN, 8 = in-band information.
public struct Q931ProgressIndicator: Equatable, Sendable {
    public var codingStandard: UInt8
    public var location: UInt8
    public var description: UInt8
    public init(description: UInt8, location: Q931Location = .user, codingStandard: UInt8 = 0) {
        self.codingStandard = codingStandard
        self.location = location.rawValue
        self.description = description
    }
    public init(contents c: [UInt8]) throws(Q931Error) {
        guard c.count >= 2 else { throw .badElement("progress indicator of \(c.count) octets") }
        codingStandard = (c[0] >> 5) & 0x03
        location = c[0] & 0x0F
        description = c[1] & 0x7F
    }
    public var contents: [UInt8] {
        [0x80 | (codingStandard & 0x03) << 5 | (location & 0x0F), 0x80 | (description & 0x7F)]
    }
}

/// Calling/called/connected party number (Q.931 4.5.8/4.5.10, H.225.0 7.2.2).
public struct Q931PartyNumber: Equatable, Sendable {
    public var typeOfNumber: UInt8        // 0 unknown, 1 international, 2 national, 4 subscriber
    public var numberingPlan: UInt8       // 0 unknown, 1 E.164, 9 private
    /// Octet 3a (calling and connected numbers only): 0 allowed, 1 restricted, 2 not available.
    public var presentation: UInt8?
    /// 0 user-provided not screened, 1 passed, 2 failed, 3 network provided.
    public var screening: UInt8?
    public var digits: String

    public init(digits: String, typeOfNumber: UInt8 = 0, numberingPlan: UInt8 = 1,
                presentation: UInt8? = nil, screening: UInt8? = nil) {
        self.typeOfNumber = typeOfNumber
        self.numberingPlan = numberingPlan
        self.presentation = presentation
        self.screening = screening
        self.digits = digits
    }

    public init(contents c: [UInt8]) throws(Q931Error) {
        guard c.count >= 1 else { throw .badElement("empty party number") }
        typeOfNumber = (c[0] >> 4) & 0x07
        numberingPlan = c[0] & 0x0F
        var i = 1
        if c[0] & 0x80 == 0 {
            guard c.count >= 2 else { throw .badElement("party number without octet 3a") }
            presentation = (c[1] >> 5) & 0x03
            screening = c[1] & 0x03
            i = 2
        }
        var scalars = String.UnicodeScalarView()
        for octet in c[i...] {
            guard octet < 0x80 else { throw .badElement("party number digit 0x\(String(octet, radix: 16))") }
            scalars.append(Unicode.Scalar(octet))
        }
        digits = String(scalars)
    }

    public var contents: [UInt8] {
        var c: [UInt8] = []
        let first = (typeOfNumber & 0x07) << 4 | (numberingPlan & 0x0F)
        if presentation != nil || screening != nil {
            c += [first, 0x80 | ((presentation ?? 0) & 0x03) << 5 | ((screening ?? 0) & 0x03)]
        } else {
            c.append(0x80 | first)
        }
        return c + digits.unicodeScalars.compactMap { $0.isASCII ? UInt8($0.value) : nil }
    }
}

extension Q931Message {
    private func ia5(_ id: UInt8) -> String? {
        guard let e = element(id) else { return nil }
        return String(decoding: e.contents.filter { $0 < 0x80 }, as: UTF8.self)
    }

    private static func ia5Contents(_ s: String?) -> [UInt8]? {
        s.map { $0.unicodeScalars.compactMap { $0.isASCII ? UInt8($0.value) : nil } }
    }

    public func bearerCapability() throws(Q931Error) -> Q931BearerCapability? {
        guard let e = element(Q931IE.bearerCapability) else { return nil }
        return try Q931BearerCapability(contents: e.contents)
    }
    public mutating func setBearerCapability(_ v: Q931BearerCapability?) { setElement(Q931IE.bearerCapability, v?.contents) }

    public func cause() throws(Q931Error) -> Q931Cause? {
        guard let e = element(Q931IE.cause) else { return nil }
        return try Q931Cause(contents: e.contents)
    }
    public mutating func setCause(_ v: Q931Cause?) { setElement(Q931IE.cause, v?.contents) }

    public func progressIndicator() throws(Q931Error) -> Q931ProgressIndicator? {
        guard let e = element(Q931IE.progressIndicator) else { return nil }
        return try Q931ProgressIndicator(contents: e.contents)
    }
    public mutating func setProgressIndicator(_ v: Q931ProgressIndicator?) { setElement(Q931IE.progressIndicator, v?.contents) }

    /// Call state value (Q.931 4.5.7), e.g. 10 = active.
    public var callState: UInt8? {
        get { element(Q931IE.callState)?.contents.first.map { $0 & 0x3F } }
        set { setElement(Q931IE.callState, newValue.map { [$0 & 0x3F] }) }
    }

    /// Signal value (Q.931 4.5.28), e.g. 1 = ring back tone on.
    public var signal: UInt8? {
        get { element(Q931IE.signal)?.contents.first }
        set { setElement(Q931IE.signal, newValue.map { [$0] }) }
    }

    public var display: String? {
        get { ia5(Q931IE.display) }
        set { setElement(Q931IE.display, Self.ia5Contents(newValue)) }
    }

    public var keypad: String? {
        get { ia5(Q931IE.keypad) }
        set { setElement(Q931IE.keypad, Self.ia5Contents(newValue)) }
    }

    public func callingPartyNumber() throws(Q931Error) -> Q931PartyNumber? {
        guard let e = element(Q931IE.callingPartyNumber) else { return nil }
        return try Q931PartyNumber(contents: e.contents)
    }
    public mutating func setCallingPartyNumber(_ v: Q931PartyNumber?) { setElement(Q931IE.callingPartyNumber, v?.contents) }

    public func calledPartyNumber() throws(Q931Error) -> Q931PartyNumber? {
        guard let e = element(Q931IE.calledPartyNumber) else { return nil }
        return try Q931PartyNumber(contents: e.contents)
    }
    public mutating func setCalledPartyNumber(_ v: Q931PartyNumber?) {
        // Called party number has no octet 3a.
        var number = v
        number?.presentation = nil
        number?.screening = nil
        setElement(Q931IE.calledPartyNumber, number?.contents)
    }

    public func connectedNumber() throws(Q931Error) -> Q931PartyNumber? {
        guard let e = element(Q931IE.connectedNumber) else { return nil }
        return try Q931PartyNumber(contents: e.contents)
    }
    public mutating func setConnectedNumber(_ v: Q931PartyNumber?) { setElement(Q931IE.connectedNumber, v?.contents) }
}
