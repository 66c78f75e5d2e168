// H.225.0 call signalling: a Q.931 message whose User-user IE (protocol discriminator 5)
// carries an H323-UserInformation, and the H.245 messages tunnelled or fast-started in it.
import PER

public enum H225Error: Error, Equatable, Sendable, CustomStringConvertible {
    case q931(Q931Error)
    case per(PERError)
    case tpkt(TPKTError)
    case noUserUser
    case badUserUserProtocol(UInt8)

    public var description: String {
        switch self {
        case .q931(let e): return e.description
        case .per(let e): return e.description
        case .tpkt(let e): return e.description
        case .noUserUser: return "H.225.0: no User-user information element"
        case .badUserUserProtocol(let p): return "H.225.0: User-user protocol discriminator \(p), expected 5"
        }
    }
}

extension Q931Message {
    /// User-user protocol discriminator for X.208/X.209 coded user information.
    public static let h225ProtocolDiscriminator: UInt8 = 5

    /// The H323-UserInformation in the User-user IE.
    public func userInformation(limits: PERLimits = .default) throws(H225Error) -> H323UserInformation {
        guard let e = element(Q931IE.userUser), let discriminator = e.contents.first else { throw .noUserUser }
        guard discriminator == Self.h225ProtocolDiscriminator else { throw .badUserUserProtocol(discriminator) }
        do {
            return try H323UserInformation(decoding: Array(e.contents.dropFirst()), limits: limits)
        } catch {
            throw .per(error)
        }
    }

    public mutating func setUserInformation(_ info: H323UserInformation) throws(H225Error) {
        do {
            setElement(Q931IE.userUser, [Self.h225ProtocolDiscriminator] + (try info.encoded()))
        } catch {
            throw .per(error)
        }
    }

    /// A complete H.225.0 message for a TCP stream: TPKT(Q.931).
    public func framed() throws(H225Error) -> [UInt8] {
        do {
            return try TPKT.frame(try encoded())
        } catch let error as Q931Error {
            throw .q931(error)
        } catch let error as TPKTError {
            throw .tpkt(error)
        } catch {
            throw .q931(.badElement("\(error)"))
        }
    }
}

extension H323UserInformation {
    /// The H.245 messages tunnelled in h245Control.
    public func tunnelledH245(limits: PERLimits = .default) throws(PERError) -> [MultimediaSystemControlMessage] {
        var out: [MultimediaSystemControlMessage] = []
        for element in h323UuPdu.h245Control ?? [] {
            out.append(try MultimediaSystemControlMessage(decoding: element, limits: limits))
        }
        return out
    }
}

extension SetupUUIE {
    /// The fastStart proposals: each element is an encoded OpenLogicalChannel.
    public func fastStartChannels(limits: PERLimits = .default) throws(PERError) -> [OpenLogicalChannel] {
        var out: [OpenLogicalChannel] = []
        for element in fastStart ?? [] { out.append(try OpenLogicalChannel(decoding: element, limits: limits)) }
        return out
    }
}
