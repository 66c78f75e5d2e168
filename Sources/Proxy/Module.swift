// The appliance service: tunnel terminator, the mirrors (one H.323 endpoint per tunnelled client), relay orchestration, CDRs.
//
// This file names the module; its types live beside it, one concern per file.
