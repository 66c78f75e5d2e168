// RTP/RTCP parsing, sequence, loss and jitter statistics (RFC 3550), tone generation and detection. No sockets.
//
// This file names the module; its types live beside it, one concern per file.
