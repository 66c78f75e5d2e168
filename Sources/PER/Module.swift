// ASN.1 aligned PER (X.691): bit reader/writer and the generic, schema-driven encoding rules. Knows nothing of H.323.
//
// This file names the module; its types live beside it, one concern per file.
