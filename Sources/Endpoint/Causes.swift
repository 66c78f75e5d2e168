// Q.850 cause values in both directions: H.225.0 ReleaseCompleteReason and RAS reject
// reasons to a Q.850 cause (H.225.0 Table 5 / common practice), a cause back to a
// ReleaseCompleteReason, and a text a phone can show.
import H323

public enum Q850 {
    public static let unallocatedNumber: UInt8 = 1
    public static let noRouteToDestination: UInt8 = 3
    public static let normalClearing: UInt8 = 16
    public static let userBusy: UInt8 = 17
    public static let noUserResponding: UInt8 = 18
    public static let noAnswer: UInt8 = 19
    public static let callRejected: UInt8 = 21
    public static let destinationOutOfOrder: UInt8 = 27
    public static let invalidNumberFormat: UInt8 = 28
    public static let normalUnspecified: UInt8 = 31
    public static let noCircuitAvailable: UInt8 = 34
    public static let networkOutOfOrder: UInt8 = 38
    public static let temporaryFailure: UInt8 = 41
    public static let resourceUnavailable: UInt8 = 47
    public static let bearerCapabilityNotAuthorized: UInt8 = 57
    public static let bearerCapabilityNotAvailable: UInt8 = 58
    public static let incompatibleDestination: UInt8 = 88
    public static let invalidCallReference: UInt8 = 81
    public static let recoveryOnTimerExpiry: UInt8 = 102
    public static let protocolError: UInt8 = 111
    public static let interworking: UInt8 = 127

    /// H.225.0 Table 5: the cause a ReleaseCompleteReason stands for when no Cause IE came.
    public static func cause(for reason: ReleaseCompleteReason) -> UInt8 {
        switch reason {
        case .noBandwidth: return bearerCapabilityNotAvailable
        case .gatekeeperResources, .gatewayResources: return resourceUnavailable
        case .unreachableDestination: return noRouteToDestination
        case .destinationRejection: return callRejected
        case .invalidRevision: return incompatibleDestination
        case .noPermission: return bearerCapabilityNotAuthorized
        case .unreachableGatekeeper: return networkOutOfOrder
        case .badFormatAddress: return invalidNumberFormat
        case .adaptiveBusy: return temporaryFailure
        case .inConf: return userBusy
        case .calledPartyNotRegistered: return unallocatedNumber
        case .callerNotRegistered: return callRejected
        case .securityDenied: return callRejected
        default: return normalUnspecified
        }
    }

    /// The reason to put beside a Cause IE in ReleaseComplete (H.225.0 Table 6 in reverse).
    public static func reason(for cause: UInt8) -> ReleaseCompleteReason {
        switch cause {
        case unallocatedNumber: return .calledPartyNotRegistered
        case noRouteToDestination: return .unreachableDestination
        case userBusy: return .inConf
        case callRejected: return .destinationRejection
        case networkOutOfOrder: return .unreachableGatekeeper
        case invalidNumberFormat: return .badFormatAddress
        case temporaryFailure: return .adaptiveBusy
        case resourceUnavailable, noCircuitAvailable: return .gatewayResources
        case bearerCapabilityNotAvailable: return .noBandwidth
        case incompatibleDestination: return .invalidRevision
        default: return .undefinedReason
        }
    }

    /// A call the gatekeeper refused: the cause the caller sees.
    public static func cause(for reject: AdmissionRejectReason) -> UInt8 {
        switch reject {
        case .calledPartyNotRegistered, .unallocatedNumber: return unallocatedNumber
        case .noRouteToDestination, .routeCallToSCN: return noRouteToDestination
        case .invalidPermission, .requestDenied, .securityDenial, .callerNotRegistered, .invalidEndpointIdentifier:
            return callRejected
        case .resourceUnavailable, .exceedsCallCapacity: return resourceUnavailable
        case .incompleteAddress, .collectDestination: return invalidNumberFormat
        default: return normalUnspecified
        }
    }

    /// A short reason a phone can display.
    public static func text(_ cause: UInt8) -> String {
        switch cause {
        case unallocatedNumber: return "Number does not exist"
        case noRouteToDestination: return "No route to destination"
        case normalClearing: return "Call ended"
        case userBusy: return "Busy"
        case noUserResponding: return "No answer"
        case noAnswer: return "No answer"
        case callRejected: return "Call rejected"
        case destinationOutOfOrder: return "Destination out of order"
        case invalidNumberFormat: return "Invalid number"
        case normalUnspecified: return "Call ended"
        case noCircuitAvailable: return "No line available"
        case networkOutOfOrder: return "Network out of order"
        case temporaryFailure: return "Temporary failure"
        case resourceUnavailable: return "Network busy"
        case bearerCapabilityNotAvailable, bearerCapabilityNotAuthorized: return "Not enough bandwidth"
        case incompatibleDestination: return "Incompatible destination"
        case invalidCallReference: return "Unknown call"
        case recoveryOnTimerExpiry: return "No response from network"
        case protocolError: return "Protocol error"
        case interworking: return "Network error"
        default: return "Call ended (cause \(cause))"
        }
    }
}
