// The media data plane: sessions, port pairs, latching, forwarding, counters, on pinned workers.
//
// This file names the module; its types live beside it, one concern per file.
