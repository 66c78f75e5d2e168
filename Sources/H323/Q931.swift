// Q.931 as H.225.0 profiles it: the message header (protocol discriminator 8, call
// reference), the message types H.323 uses, and information elements. Every IE is kept
// (unknown ones opaque, with their codeset) so that a relay can forward what it does not
// understand; typed accessors cover the IEs H.323 endpoints act on.

public enum Q931Error: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(String)
    case badProtocolDiscriminator(UInt8)
    case badCallReferenceLength(Int)
    case tooManyElements(Int)
    case tooLarge(Int)
    case badElement(String)

    public var description: String {
        switch self {
        case .truncated(let s): return "Q.931: truncated \(s)"
        case .badProtocolDiscriminator(let p): return "Q.931: protocol discriminator \(p), expected 8"
        case .badCallReferenceLength(let n): return "Q.931: call reference of \(n) octets"
        case .tooManyElements(let n): return "Q.931: more than \(n) information elements"
        case .tooLarge(let n): return "Q.931: message larger than \(n) octets"
        case .badElement(let s): return "Q.931: \(s)"
        }
    }
}

public struct Q931Limits: Sendable, Equatable {
    public var maxElements: Int
    public var maxMessageLength: Int
    public init(maxElements: Int = 64, maxMessageLength: Int = 65531) {
        self.maxElements = maxElements
        self.maxMessageLength = maxMessageLength
    }
}

public enum Q931MessageType: Equatable, Hashable, Sendable {
    case alerting, callProceeding, connect, connectAcknowledge, progress, setup, setupAcknowledge
    case releaseComplete, facility, information, notify, status, statusEnquiry
    case other(UInt8)

    static let codes: [(Q931MessageType, UInt8)] = [
        (.alerting, 0x01), (.callProceeding, 0x02), (.progress, 0x03), (.setup, 0x05), (.connect, 0x07),
        (.setupAcknowledge, 0x0D), (.connectAcknowledge, 0x0F), (.releaseComplete, 0x5A), (.facility, 0x62),
        (.notify, 0x6E), (.statusEnquiry, 0x75), (.information, 0x7B), (.status, 0x7D),
    ]

    public init(code: UInt8) {
        self = Self.codes.first { $0.1 == code }?.0 ?? .other(code)
    }

    public var code: UInt8 {
        if case .other(let c) = self { return c }
        return Self.codes.first { $0.0 == self }?.1 ?? 0
    }
}

/// Q.931 call reference: H.225.0 uses 2 octets; the flag is set by the side that did not
/// originate the call reference. Length 0 is the dummy call reference.
public struct Q931CallReference: Equatable, Hashable, Sendable {
    public var value: UInt16
    public var fromDestination: Bool
    public var length: Int

    public init(value: UInt16, fromDestination: Bool = false, length: Int = 2) {
        self.value = value
        self.fromDestination = fromDestination
        self.length = length
    }
}

/// Information element identifiers (codeset 0) used by H.225.0.
public enum Q931IE {
    public static let bearerCapability: UInt8 = 0x04
    public static let cause: UInt8 = 0x08
    public static let callState: UInt8 = 0x14
    public static let progressIndicator: UInt8 = 0x1E
    public static let notificationIndicator: UInt8 = 0x27
    public static let display: UInt8 = 0x28
    public static let keypad: UInt8 = 0x2C
    public static let signal: UInt8 = 0x34
    public static let connectedNumber: UInt8 = 0x4C
    public static let callingPartyNumber: UInt8 = 0x6C
    public static let calledPartyNumber: UInt8 = 0x70
    public static let userUser: UInt8 = 0x7E
    /// Single-octet "sending complete".
    public static let sendingComplete: UInt8 = 0xA1
}

/// One information element as it was on the wire. A single-octet IE has no contents.
public struct Q931InformationElement: Equatable, Sendable {
    public var codeset: UInt8
    public var identifier: UInt8
    public var contents: [UInt8]
    public init(codeset: UInt8 = 0, identifier: UInt8, contents: [UInt8] = []) {
        self.codeset = codeset
        self.identifier = identifier
        self.contents = contents
    }
    public var isSingleOctet: Bool { identifier & 0x80 != 0 }
}

public struct Q931Message: Equatable, Sendable {
    public var callReference: Q931CallReference
    public var messageType: Q931MessageType
    public var elements: [Q931InformationElement]

    public init(callReference: Q931CallReference, messageType: Q931MessageType, elements: [Q931InformationElement] = []) {
        self.callReference = callReference
        self.messageType = messageType
        self.elements = elements
    }

    public init(decoding bytes: [UInt8], limits: Q931Limits = Q931Limits()) throws(Q931Error) {
        guard bytes.count <= limits.maxMessageLength else { throw .tooLarge(limits.maxMessageLength) }
        guard bytes.count >= 2 else { throw .truncated("header") }
        guard bytes[0] == 0x08 else { throw .badProtocolDiscriminator(bytes[0]) }
        let crLength = Int(bytes[1] & 0x0F)
        guard bytes[1] & 0xF0 == 0, crLength <= 2 else { throw .badCallReferenceLength(crLength) }
        guard bytes.count >= 2 + crLength + 1 else { throw .truncated("call reference") }
        var value: UInt16 = 0
        var flag = false
        if crLength > 0 {
            flag = bytes[2] & 0x80 != 0
            value = UInt16(bytes[2] & 0x7F)
            if crLength == 2 { value = value << 8 | UInt16(bytes[3]) }
        }
        callReference = Q931CallReference(value: value, fromDestination: flag, length: crLength)
        var i = 2 + crLength
        messageType = Q931MessageType(code: bytes[i] & 0x7F)
        i += 1
        var elements: [Q931InformationElement] = []
        var lockedCodeset: UInt8 = 0
        var nextCodeset: UInt8? = nil
        while i < bytes.count {
            let id = bytes[i]
            i += 1
            let codeset = nextCodeset ?? lockedCodeset
            nextCodeset = nil
            if id & 0x80 != 0 {
                if id & 0xF0 == 0x90 {
                    // Shift: bit 4 set = non-locking (next IE only).
                    let target = id & 0x07
                    if id & 0x08 != 0 { nextCodeset = target } else { lockedCodeset = target }
                    continue
                }
                guard elements.count < limits.maxElements else { throw .tooManyElements(limits.maxElements) }
                elements.append(Q931InformationElement(codeset: codeset, identifier: id))
                continue
            }
            // H.225.0 7.2.2: the User-user IE has a two-octet length.
            let wide = id == Q931IE.userUser && codeset == 0
            guard i + (wide ? 2 : 1) <= bytes.count else { throw .truncated("length of IE 0x\(String(id, radix: 16))") }
            let length = wide ? Int(bytes[i]) << 8 | Int(bytes[i + 1]) : Int(bytes[i])
            i += wide ? 2 : 1
            guard length <= bytes.count - i else { throw .truncated("IE 0x\(String(id, radix: 16))") }
            guard elements.count < limits.maxElements else { throw .tooManyElements(limits.maxElements) }
            elements.append(Q931InformationElement(codeset: codeset, identifier: id, contents: Array(bytes[i..<(i + length)])))
            i += length
        }
        self.elements = elements
    }

    public func encoded() throws(Q931Error) -> [UInt8] {
        var out: [UInt8] = [0x08, UInt8(callReference.length)]
        switch callReference.length {
        case 0: break
        case 1: out.append((callReference.fromDestination ? 0x80 : 0) | UInt8(callReference.value & 0x7F))
        case 2:
            out.append((callReference.fromDestination ? 0x80 : 0) | UInt8((callReference.value >> 8) & 0x7F))
            out.append(UInt8(callReference.value & 0xFF))
        default: throw .badCallReferenceLength(callReference.length)
        }
        out.append(messageType.code & 0x7F)
        for element in elements {
            guard element.codeset <= 7 else { throw .badElement("codeset \(element.codeset)") }
            if element.codeset != 0 { out.append(0x98 | element.codeset) }
            out.append(element.identifier)
            if element.isSingleOctet { continue }
            if element.identifier == Q931IE.userUser && element.codeset == 0 {
                guard element.contents.count <= 0xFFFF else { throw .badElement("user-user IE too long") }
                out.append(UInt8(element.contents.count >> 8))
                out.append(UInt8(element.contents.count & 0xFF))
            } else {
                guard element.contents.count <= 0xFF else { throw .badElement("IE 0x\(String(element.identifier, radix: 16)) too long") }
                out.append(UInt8(element.contents.count))
            }
            out.append(contentsOf: element.contents)
        }
        return out
    }

    /// The first codeset-0 element with this identifier.
    public func element(_ identifier: UInt8) -> Q931InformationElement? {
        elements.first { $0.codeset == 0 && $0.identifier == identifier }
    }

    /// Replaces (or adds, in ascending identifier order as Q.931 4.5.1 asks) a codeset-0 element.
    public mutating func setElement(_ identifier: UInt8, _ contents: [UInt8]?) {
        elements.removeAll { $0.codeset == 0 && $0.identifier == identifier }
        guard let contents else { return }
        let element = Q931InformationElement(identifier: identifier, contents: contents)
        let position = elements.firstIndex { $0.codeset != 0 || ($0.identifier & 0x80 == 0 && $0.identifier > identifier) } ?? elements.count
        elements.insert(element, at: position)
    }
}
