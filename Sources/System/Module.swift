// The box itself: interfaces through netlink (libnl-3), capabilities (libcap), privileges, worker placement.
//
// This file names the module; its types live beside it, one concern per file.
