// The control-socket request/response protocol between the daemon and 'bloo cli' or scripts: message encoding only.
//
// This file names the module; its types live beside it, one concern per file.
