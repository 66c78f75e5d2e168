// The client-to-appliance tunnel wire protocol: frames, messages, versioning, and the sans-I/O session state machines. No sockets, no H.323.
//
// This file names the module; its types live beside it, one concern per file.
