#!/usr/bin/env python3
"""Golden vectors for the H.323 codec, encoded by the independent PER oracle.

    python3 Tests/H323Tests/Vectors/make_vectors.py [path/to/shared/asn1]

For every value below, per_oracle.encode(type, value) (asn1tools 0.169.0 with constraint
checks and a decode-back comparison, see ../shared/asn1/README.md) gives the hex. The
result, vectors.json (name, type, value as the oracle's JSON, hex), is committed; the Swift
tests decode each hex and compare with the JSON, and re-encode and compare the bytes.
Samples already in ../shared/asn1/samples are included by reference to their files.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ASN1 = sys.argv[1] if len(sys.argv) > 1 else next(
    p for p in (os.path.join(HERE, '..', '..', '..', '..', 'shared', 'asn1'),
                os.path.join(HERE, '..', '..', '..', '..', '..', 'shared', 'asn1'))
    if os.path.exists(os.path.join(p, 'per_oracle.py')))
sys.path.insert(0, ASN1)
import per_oracle  # noqa: E402

H2250 = '0.0.8.2250.0.7'
H245 = '0.0.8.245.0.15'
VENDOR = {"vendor": {"t35CountryCode": 181, "t35Extension": 0, "manufacturerCode": 21324},
          "productId": "626c6f6f70686f6e65", "versionId": "312e30"}
EPTYPE = {"vendor": VENDOR, "terminal": {}, "mc": False, "undefinedNode": False}
GWTYPE = {"vendor": VENDOR, "gateway": {"protocol": [{"voice": {"supportedPrefixes": [
    {"prefix": {"dialledDigits": "00"}}]}}]}, "mc": False, "undefinedNode": False}


def ip(a, port):
    return {"ipAddress": {"ip": a, "port": port}}


CSA = ip("c0a8010a", 1720)
RAS = ip("c0a8010a", 1719)
GK = ip("0a000001", 1719)
CID = {"guid": "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"}
CONF = "00112233445566778899aabbccddeeff"
ALIAS = [{"h323-ID": "alice"}, {"dialledDigits": "1001"}]
CLEAR = {"tokenOID": "0.0.8.235.0.2.5", "timeStamp": 1700000000, "generalID": "GK1"}
PWDHASH = {"cryptoEPPwdHash": {"alias": {"h323-ID": "alice"}, "timeStamp": 1700000000, "token": {
    "algorithmOID": "1.2.840.113549.2.5", "paramS": {},
    "hash": {"hex": "00112233445566778899aabbccddeeff", "bits": 128}}}}
H460_18 = {"id": {"standard": 18}}
GENERIC = [{"id": {"standard": 19}, "parameters": [
    {"id": {"standard": 1}}, {"id": {"standard": 2}, "content": {"number32": 70000}}]}]
FEATURES = {"replacementFeatureSet": False, "supportedFeatures": [
    H460_18, {"id": {"oid": "1.3.6.1.4.1.17090.0.1"}, "parameters": [
        {"id": {"standard": 1}, "content": {"text": "hello"}}]}]}

OLC_FAST = {"forwardLogicalChannelNumber": 1, "forwardLogicalChannelParameters": {
    "dataType": {"audioData": {"g711Alaw64k": 20}},
    "multiplexParameters": {"h2250LogicalChannelParameters": {
        "sessionID": 1, "mediaControlChannel": {"unicastAddress": {"iPAddress": {
            "network": "c0a8010a", "tsapIdentifier": 5001}}}}}},
    "reverseLogicalChannelParameters": {
        "dataType": {"audioData": {"g711Alaw64k": 20}},
        "multiplexParameters": {"h2250LogicalChannelParameters": {
            "sessionID": 1, "mediaChannel": {"unicastAddress": {"iPAddress": {
                "network": "c0a8010a", "tsapIdentifier": 5000}}},
            "mediaControlChannel": {"unicastAddress": {"iPAddress": {
                "network": "c0a8010a", "tsapIdentifier": 5001}}}}}}}


def enc(type_name, value):
    hexs, problems = per_oracle.encode(type_name, value)
    if problems:
        raise SystemExit('%s: %s' % (type_name, problems))
    return hexs.hex()


fast_start_element = enc('OpenLogicalChannel', OLC_FAST)
msd_bytes = enc('MultimediaSystemControlMessage', {"request": {"masterSlaveDetermination": {
    "terminalType": 50, "statusDeterminationNumber": 12345}}})

ras = {
    'grq': {"gatekeeperRequest": {"requestSeqNum": 1, "protocolIdentifier": H2250, "rasAddress": RAS,
                                  "endpointType": EPTYPE, "endpointAlias": ALIAS,
                                  "featureSet": FEATURES, "genericData": GENERIC}},
    'gcf': {"gatekeeperConfirm": {"requestSeqNum": 1, "protocolIdentifier": H2250,
                                  "gatekeeperIdentifier": "GK1", "rasAddress": GK,
                                  "alternateGatekeeper": [{"rasAddress": ip("0a000002", 1719),
                                                           "needToRegister": True, "priority": 1}]}},
    'grj': {"gatekeeperReject": {"requestSeqNum": 1, "protocolIdentifier": H2250,
                                 "rejectReason": {"terminalExcluded": None}}},
    'rrq': {"registrationRequest": {
        "requestSeqNum": 2, "protocolIdentifier": H2250, "discoveryComplete": True,
        "callSignalAddress": [CSA], "rasAddress": [RAS], "terminalType": EPTYPE,
        "terminalAlias": ALIAS, "gatekeeperIdentifier": "GK1", "endpointVendor": VENDOR,
        "timeToLive": 300, "tokens": [CLEAR], "cryptoTokens": [PWDHASH], "keepAlive": False,
        "willSupplyUUIEs": False, "maintainConnection": True, "multipleCalls": True,
        "featureSet": FEATURES, "genericData": GENERIC, "supportsAssignedGK": False}},
    'rrq-keepalive': {"registrationRequest": {
        "requestSeqNum": 3, "protocolIdentifier": H2250, "discoveryComplete": False,
        "callSignalAddress": [], "rasAddress": [], "terminalType": EPTYPE,
        "gatekeeperIdentifier": "GK1", "endpointVendor": VENDOR, "timeToLive": 300,
        "keepAlive": True, "endpointIdentifier": "EP0001", "willSupplyUUIEs": False,
        "maintainConnection": True}},
    'rcf': {"registrationConfirm": {
        "requestSeqNum": 2, "protocolIdentifier": H2250, "callSignalAddress": [ip("0a000001", 1720)],
        "terminalAlias": ALIAS, "gatekeeperIdentifier": "GK1", "endpointIdentifier": "EP0001",
        "timeToLive": 300, "willRespondToIRR": False, "maintainConnection": True,
        "preGrantedARQ": {"makeCall": True, "useGKCallSignalAddressToMakeCall": True,
                          "answerCall": True, "useGKCallSignalAddressToAnswer": True}}},
    'rrj': {"registrationReject": {"requestSeqNum": 2, "protocolIdentifier": H2250,
                                   "rejectReason": {"duplicateAlias": [{"h323-ID": "alice"}]},
                                   "gatekeeperIdentifier": "GK1"}},
    'urq': {"unregistrationRequest": {"requestSeqNum": 4, "callSignalAddress": [CSA],
                                      "endpointAlias": ALIAS, "endpointIdentifier": "EP0001",
                                      "gatekeeperIdentifier": "GK1", "reason": {"maintenance": None}}},
    'ucf': {"unregistrationConfirm": {"requestSeqNum": 4}},
    'urj': {"unregistrationReject": {"requestSeqNum": 4, "rejectReason": {"notCurrentlyRegistered": None}}},
    'arq': {"admissionRequest": {
        "requestSeqNum": 5, "callType": {"pointToPoint": None}, "callModel": {"direct": None},
        "endpointIdentifier": "EP0001", "destinationInfo": [{"dialledDigits": "0049301234567"}],
        "srcInfo": ALIAS, "srcCallSignalAddress": CSA, "bandWidth": 1280, "callReferenceValue": 42,
        "conferenceID": CONF, "activeMC": False, "answerCall": False, "canMapAlias": True,
        "callIdentifier": CID, "gatekeeperIdentifier": "GK1", "tokens": [CLEAR],
        "cryptoTokens": [PWDHASH], "willSupplyUUIEs": False, "canMapSrcAlias": False}},
    'acf': {"admissionConfirm": {
        "requestSeqNum": 5, "bandWidth": 1280, "callModel": {"gatekeeperRouted": None},
        "destCallSignalAddress": ip("0a000001", 1720), "irrFrequency": 120,
        "willRespondToIRR": False, "uuiesRequested": {
            "setup": False, "callProceeding": False, "connect": True, "alerting": False,
            "information": False, "releaseComplete": True, "facility": False, "progress": False,
            "empty": False, "status": False, "statusInquiry": False, "setupAcknowledge": False,
            "notify": False}}},
    'arj': {"admissionReject": {"requestSeqNum": 5, "rejectReason": {"calledPartyNotRegistered": None}}},
    'brq': {"bandwidthRequest": {"requestSeqNum": 6, "endpointIdentifier": "EP0001", "conferenceID": CONF,
                                 "callReferenceValue": 42, "bandWidth": 640, "callIdentifier": CID,
                                 "answeredCall": False}},
    'bcf': {"bandwidthConfirm": {"requestSeqNum": 6, "bandWidth": 640}},
    'brj': {"bandwidthReject": {"requestSeqNum": 6, "rejectReason": {"insufficientResources": None},
                                "allowedBandWidth": 320}},
    'drq': {"disengageRequest": {"requestSeqNum": 7, "endpointIdentifier": "EP0001", "conferenceID": CONF,
                                 "callReferenceValue": 42, "disengageReason": {"normalDrop": None},
                                 "callIdentifier": CID, "answeredCall": False,
                                 "terminationCause": {"releaseCompleteCauseIE": "8090"}}},
    'dcf': {"disengageConfirm": {"requestSeqNum": 7}},
    'drj': {"disengageReject": {"requestSeqNum": 7, "rejectReason": {"requestToDropOther": None}}},
    'irq': {"infoRequest": {"requestSeqNum": 8, "callReferenceValue": 0, "replyAddress": GK}},
    'irr': {"infoRequestResponse": {
        "requestSeqNum": 8, "endpointType": EPTYPE, "endpointIdentifier": "EP0001", "rasAddress": RAS,
        "callSignalAddress": [CSA], "endpointAlias": ALIAS, "perCallInfo": [{
            "callReferenceValue": 42, "conferenceID": CONF, "originator": True,
            "audio": [{"rtpAddress": {"recvAddress": ip("c0a8010a", 5000), "sendAddress": ip("0a000001", 6000)},
                       "rtcpAddress": {"recvAddress": ip("c0a8010a", 5001), "sendAddress": ip("0a000001", 6001)},
                       "cname": "alice.host", "ssrc": 305419896, "sessionId": 1, "associatedSessionIds": []}],
            "h245": {"recvAddress": ip("c0a8010a", 1730), "sendAddress": ip("0a000001", 1730)},
            "callSignalling": {"recvAddress": CSA, "sendAddress": ip("0a000001", 1720)},
            "callType": {"pointToPoint": None}, "bandWidth": 1280, "callModel": {"direct": None},
            "callIdentifier": CID, "substituteConfIDs": []}],
        "needResponse": True, "unsolicited": False}},
    'iack': {"infoRequestAck": {"requestSeqNum": 8}},
    'inak': {"infoRequestNak": {"requestSeqNum": 8, "nakReason": {"notRegistered": None}}},
    'rip': {"requestInProgress": {"requestSeqNum": 9, "delay": 2000}},
    'nonstandard-message': {"nonStandardMessage": {"requestSeqNum": 10, "nonStandardData": {
        "nonStandardIdentifier": {"h221NonStandard": {"t35CountryCode": 181, "t35Extension": 0,
                                                      "manufacturerCode": 21324}},
        "data": "deadbeef"}}},
}


def uu(body, **extra):
    pdu = {"h323-message-body": body, "h245Tunnelling": extra.pop('tunnelling', False)}
    pdu.update(extra)
    return {"h323-uu-pdu": pdu}


calls = {
    'setup-faststart': uu({"setup": {
        "protocolIdentifier": H2250, "h245Address": ip("c0a8010a", 1730), "sourceAddress": ALIAS,
        "sourceInfo": EPTYPE, "destinationAddress": [{"dialledDigits": "0049301234567"}],
        "destCallSignalAddress": ip("0a000001", 1720), "activeMC": False, "conferenceID": CONF,
        "conferenceGoal": {"create": None}, "callType": {"pointToPoint": None},
        "sourceCallSignalAddress": CSA, "callIdentifier": CID, "fastStart": [fast_start_element],
        "mediaWaitForConnect": False, "canOverlapSend": False, "multipleCalls": False,
        "maintainConnection": False}}, tunnelling=True),
    'callproceeding': uu({"callProceeding": {"protocolIdentifier": H2250, "destinationInfo": GWTYPE,
                                             "callIdentifier": CID, "multipleCalls": False,
                                             "maintainConnection": False}}),
    'alerting': uu({"alerting": {"protocolIdentifier": H2250, "destinationInfo": EPTYPE,
                                 "h245Address": ip("0a000001", 1730), "callIdentifier": CID,
                                 "fastStart": [fast_start_element], "multipleCalls": False,
                                 "maintainConnection": False}}),
    'connect': uu({"connect": {"protocolIdentifier": H2250, "h245Address": ip("0a000001", 1730),
                               "destinationInfo": EPTYPE, "conferenceID": CONF, "callIdentifier": CID,
                               "multipleCalls": False, "maintainConnection": False}}, tunnelling=True),
    'releasecomplete': uu({"releaseComplete": {"protocolIdentifier": H2250,
                                               "reason": {"destinationRejection": None},
                                               "callIdentifier": CID}}),
    'facility-tunnel': uu({"empty": None}, tunnelling=True, **{"h245Control": [msd_bytes]}),
    'facility': uu({"facility": {"protocolIdentifier": H2250, "alternativeAddress": ip("0a000002", 1720),
                                 "reason": {"callForwarded": None}, "callIdentifier": CID,
                                 "multipleCalls": False, "maintainConnection": False}}),
    'progress': uu({"progress": {"protocolIdentifier": H2250, "destinationInfo": GWTYPE,
                                 "callIdentifier": CID, "multipleCalls": False,
                                 "maintainConnection": False}}),
    'information': uu({"information": {"protocolIdentifier": H2250, "callIdentifier": CID}}),
    'notify': uu({"notify": {"protocolIdentifier": H2250, "callIdentifier": CID}}),
    'status': uu({"status": {"protocolIdentifier": H2250, "callIdentifier": CID}}),
    'setup-genericdata': uu({"setup": {
        "protocolIdentifier": H2250, "sourceInfo": EPTYPE, "activeMC": False, "conferenceID": CONF,
        "conferenceGoal": {"create": None}, "callType": {"pointToPoint": None}, "callIdentifier": CID,
        "mediaWaitForConnect": False, "canOverlapSend": False, "multipleCalls": False,
        "maintainConnection": False, "supportedFeatures": FEATURES["supportedFeatures"]}}, genericData=GENERIC),
}

G7231 = {"maxAl-sduAudioFrames": 1, "silenceSuppression": False}
caps = [
    {"receiveAudioCapability": {"g711Alaw64k": 20}},
    {"receiveAudioCapability": {"g711Ulaw64k": 20}},
    {"receiveAudioCapability": {"g729": 2}},
    {"receiveAudioCapability": {"g729AnnexA": 2}},
    {"receiveAudioCapability": {"g7231": G7231}},
    {"receiveAudioCapability": {"gsmFullRate": {"audioUnitSize": 33, "comfortNoise": False, "scrambled": False}}},
    {"receiveUserInputCapability": {"basicString": None}},
    {"receiveUserInputCapability": {"dtmf": None}},
    {"receiveRTPAudioTelephonyEventCapability": {"dynamicRTPPayloadType": 101, "audioTelephoneEvent": "0-16"}},
]
tcs = {"sequenceNumber": 1, "protocolIdentifier": H245,
       "capabilityTable": [{"capabilityTableEntryNumber": i + 1, "capability": c} for i, c in enumerate(caps)],
       "capabilityDescriptors": [{"capabilityDescriptorNumber": 0, "simultaneousCapabilities": [
           [1, 2, 3, 4, 5, 6], [7, 8, 9]]}]}
h2250params = {"sessionID": 1, "mediaGuaranteedDelivery": False,
               "mediaControlChannel": {"unicastAddress": {"iPAddress": {"network": "c0a8010a", "tsapIdentifier": 5001}}},
               "mediaControlGuaranteedDelivery": False, "silenceSuppression": False,
               "dynamicRTPPayloadType": 101}
h245 = {
    'msd': {"request": {"masterSlaveDetermination": {"terminalType": 50, "statusDeterminationNumber": 12345}}},
    'msd-ack': {"response": {"masterSlaveDeterminationAck": {"decision": {"master": None}}}},
    'msd-reject': {"response": {"masterSlaveDeterminationReject": {"cause": {"identicalNumbers": None}}}},
    'msd-release': {"indication": {"masterSlaveDeterminationRelease": {}}},
    'tcs': {"request": {"terminalCapabilitySet": tcs}},
    'tcs-ack': {"response": {"terminalCapabilitySetAck": {"sequenceNumber": 1}}},
    'tcs-reject': {"response": {"terminalCapabilitySetReject": {"sequenceNumber": 1, "cause": {
        "tableEntryCapacityExceeded": {"highestEntryNumberProcessed": 4}}}}},
    'tcs-release': {"indication": {"terminalCapabilitySetRelease": {}}},
    'olc': {"request": {"openLogicalChannel": {"forwardLogicalChannelNumber": 1,
        "forwardLogicalChannelParameters": {"dataType": {"audioData": {"g729AnnexA": 2}},
            "multiplexParameters": {"h2250LogicalChannelParameters": h2250params}}}}},
    'olc-ack': {"response": {"openLogicalChannelAck": {"forwardLogicalChannelNumber": 1,
        "forwardMultiplexAckParameters": {"h2250LogicalChannelAckParameters": {
            "sessionID": 1, "mediaChannel": {"unicastAddress": {"iPAddress": {"network": "0a000001", "tsapIdentifier": 6000}}},
            "mediaControlChannel": {"unicastAddress": {"iPAddress": {"network": "0a000001", "tsapIdentifier": 6001}}},
            "dynamicRTPPayloadType": 101}}}}},
    'olc-reject': {"response": {"openLogicalChannelReject": {"forwardLogicalChannelNumber": 1,
                                                             "cause": {"dataTypeNotSupported": None}}}},
    'olc-confirm': {"indication": {"openLogicalChannelConfirm": {"forwardLogicalChannelNumber": 1}}},
    'clc': {"request": {"closeLogicalChannel": {"forwardLogicalChannelNumber": 1, "source": {"user": None},
                                                "reason": {"unknown": None}}}},
    'clc-ack': {"response": {"closeLogicalChannelAck": {"forwardLogicalChannelNumber": 1}}},
    'rcc': {"request": {"requestChannelClose": {"forwardLogicalChannelNumber": 2,
                                                "reason": {"unknown": None}}}},
    'rtd-request': {"request": {"roundTripDelayRequest": {"sequenceNumber": 7}}},
    'rtd-response': {"response": {"roundTripDelayResponse": {"sequenceNumber": 7}}},
    'uii-alphanumeric': {"indication": {"userInput": {"alphanumeric": "5"}}},
    'uii-signal': {"indication": {"userInput": {"signal": {"signalType": "#", "duration": 200,
        "rtp": {"timestamp": 160000, "logicalChannelNumber": 1}}}}},
    'uii-signalupdate': {"indication": {"userInput": {"signalUpdate": {"duration": 400,
        "rtp": {"logicalChannelNumber": 1}}}}},
    'endsession': {"command": {"endSessionCommand": {"disconnect": None}}},
    'flowcontrol': {"command": {"flowControlCommand": {"scope": {"logicalChannelNumber": 1},
                                                        "restriction": {"maximumBitRate": 640}}}},
    'misc-command': {"command": {"miscellaneousCommand": {"logicalChannelNumber": 1,
                                                          "type": {"videoFastUpdatePicture": None}}}},
    'misc-indication': {"indication": {"miscellaneousIndication": {"logicalChannelNumber": 1,
                                                                   "type": {"logicalChannelActive": None}}}},
    'function-not-understood': {"indication": {"functionNotUnderstood": {"request": {
        "masterSlaveDetermination": {"terminalType": 50, "statusDeterminationNumber": 1}}}}},
}

vectors = []
for group, type_name in ((ras, 'RasMessage'), (calls, 'H323-UserInformation'),
                         (h245, 'MultimediaSystemControlMessage')):
    for name, value in group.items():
        vectors.append({"name": name, "type": type_name, "value": value, "hex": enc(type_name, value)})
vectors.append({"name": "faststart-olc", "type": "OpenLogicalChannel", "value": OLC_FAST,
                "hex": fast_start_element})
# The shared samples (also checked by tshark in ../shared/asn1/check_tshark.sh).
samples = os.path.join(ASN1, 'samples')
for index in (os.path.join(samples, 'index.tsv'), os.path.join(samples, 'extra', 'index.tsv')):
    with open(index) as f:
        next(f)
        for line in f:
            name, type_name, _, hexs = line.rstrip('\n').split('\t')
            path = os.path.join(os.path.dirname(index), name + '.json')
            if not os.path.exists(path):
                continue
            with open(path) as jf:
                value = json.load(jf)
            vectors.append({"name": "sample-" + name, "type": type_name, "value": value,
                            "hex": enc(type_name, value)})
with open(os.path.join(HERE, 'vectors.json'), 'w') as f:
    json.dump(vectors, f, indent=1)
    f.write('\n')
print('wrote %d vectors' % len(vectors))
