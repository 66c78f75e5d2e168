// I/O drivers: the epoll event loop, timers, UDP batches (recvmmsg/sendmmsg), TCP, TLS through OpenSSL, CPU pinning. No protocol knowledge.
//
// This file names the module; its types live beside it, one concern per file.
