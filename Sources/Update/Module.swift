// Firmware bundles: format, Ed25519 signatures through OpenSSL, slot writing, boot state and counting.
//
// This file names the module; its types live beside it, one concern per file.
