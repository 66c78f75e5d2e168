// System calls that bloo init needs and glibc does not wrap. This header includes
// nothing on purpose: a header that pulls in system headers with other feature macros
// clashes with COpenSSL's view of them in the same Swift module (fd_set).
#ifndef BLOO_CBOOT_H
#define BLOO_CBOOT_H

/// finit_module(2) with no parameters. Returns 0 or -1 with errno set.
int cboot_finit_module(int fd);

/// Syncs and restarts the machine at once (reboot(2) with RB_AUTOBOOT).
int cboot_reboot(void);

#endif
