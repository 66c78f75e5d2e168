// The softphone agent: direct-first registration, tunnel fallback, appliance scan by round-trip time, the call API, audio sources and sinks.
//
// This file names the module; its types live beside it, one concern per file.
