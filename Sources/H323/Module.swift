// H.225.0 RAS, TPKT + Q.931 + H.225.0 user-user, H.245: types taken from the ITU modules, encoded through PER. No sockets, no threads.
//
// This file names the module; its types live beside it, one concern per file.
