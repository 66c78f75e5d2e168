#define _GNU_SOURCE 1
#include <sys/syscall.h>
#include <sys/reboot.h>
#include <unistd.h>
#include "CBoot.h"

int cboot_finit_module(int fd) {
    return (int)syscall(SYS_finit_module, fd, "", 0);
}

int cboot_reboot(void) {
    sync();
    return reboot(RB_AUTOBOOT);
}
