// H.323 endpoint state machines (RAS client, Q.931 calls, H.245, DTMF), sans-I/O, shared by the appliance's mirrors, the phone and the lab tools.
//
// This file names the module; its types live beside it, one concern per file.
