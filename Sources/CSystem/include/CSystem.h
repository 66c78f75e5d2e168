// The small C surface that Swift cannot reach through Glibc alone:
// _GNU_SOURCE declarations (epoll, recvmmsg/sendmmsg, CPU affinity) and
// non-variadic wrappers for variadic calls (prctl, ioctl, fcntl).
#ifndef BLOO_CSYSTEM_H
#define BLOO_CSYSTEM_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <unistd.h>

/// prctl(2) is variadic; Swift cannot call it directly.
static inline int csys_prctl(int option, unsigned long arg2, unsigned long arg3,
                             unsigned long arg4, unsigned long arg5) {
    return prctl(option, arg2, arg3, arg4, arg5);
}

/// ioctl(2) with an integer-pointer argument (FIONREAD, TIOCOUTQ, ...).
static inline int csys_ioctl_int(int fd, unsigned long request, int *value) {
    return ioctl(fd, request, value);
}

/// ioctl(2) with a pointer argument (TIOCGWINSZ, TIOCSCTTY, ...).
static inline int csys_ioctl_ptr(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
}

/// fcntl(2) with an integer argument (F_GETFL/F_SETFL, F_SETFD, ...).
static inline int csys_fcntl_int(int fd, int command, int argument) {
    return fcntl(fd, command, argument);
}

/// open(2) with a mode: the variadic form is unavailable in Swift.
static inline int csys_open(const char *path, int flags, mode_t mode) {
    return open(path, flags, mode);
}

/// The CPU the calling thread runs on (sched_getcpu is a GNU extension).
static inline int csys_current_cpu(void) { return sched_getcpu(); }

/// Pins the calling thread to one CPU. Returns 0 or an errno value.
static inline int csys_pin_current_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/// Writes the calling thread's allowed CPUs into `cpus` (at most `capacity`)
/// and returns how many there are, or -errno.
static inline int csys_current_thread_cpus(int *cpus, int capacity) {
    cpu_set_t set;
    CPU_ZERO(&set);
    int rc = pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0) return -rc;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && count < capacity; cpu++) {
        if (CPU_ISSET(cpu, &set)) cpus[count++] = cpu;
    }
    return count;
}

/// Same as above for any thread id (sched_getaffinity), used to report placement.
static inline int csys_task_cpus(pid_t tid, int *cpus, int capacity) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(tid, sizeof(set), &set) != 0) return -errno;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && count < capacity; cpu++) {
        if (CPU_ISSET(cpu, &set)) cpus[count++] = cpu;
    }
    return count;
}

/// gettid(2), without relying on a glibc version that declares it.
static inline pid_t csys_gettid(void) { return (pid_t)syscall(SYS_gettid); }

/// errno as seen by the calling thread (a macro in glibc).
static inline int csys_errno(void) { return errno; }


/* ---- IO: UDP batches, control messages, clocks (used by the IO module) ---- */

/* Numeric values from <netinet/in.h>/<netinet/udp.h>, which clash with Glibc's module here. */
#define CSYS_UDP_SEGMENT 103
#define CSYS_SOL_UDP 17
#define CSYS_IPPROTO_IP 0
#define CSYS_IP_TOS 1
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif

static const int csys_udp_segment = CSYS_UDP_SEGMENT;
static const int csys_so_rxq_ovfl = SO_RXQ_OVFL;

/// Space a control buffer needs for one control message of `length` data bytes.
static inline size_t csys_cmsg_space(size_t length) { return CMSG_SPACE(length); }

/// Scans the control messages of `msg` for SO_RXQ_OVFL (returns the kernel's
/// cumulative drop counter in *drops) and IP_TOS (returns the TOS byte in *tos).
/// Each output is left untouched when its message is absent.
static inline void csys_scan_cmsgs(const struct msghdr *msg, unsigned int *drops, int *tos) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL &&
            c->cmsg_len >= CMSG_LEN(sizeof(unsigned int))) {
            unsigned int v; __builtin_memcpy(&v, CMSG_DATA(c), sizeof v); *drops = v;
        } else if (c->cmsg_level == CSYS_IPPROTO_IP && c->cmsg_type == CSYS_IP_TOS &&
                   c->cmsg_len >= CMSG_LEN(1)) {
            *tos = *(unsigned char *)CMSG_DATA(c);
        }
    }
}

/// Writes a single UDP_SEGMENT (GSO size) control message into `buffer`
/// (at least csys_cmsg_space(sizeof(uint16_t)) bytes) and returns its length.
static inline size_t csys_put_gso_cmsg(void *buffer, unsigned short segment) {
    struct cmsghdr *c = (struct cmsghdr *)buffer;
    c->cmsg_level = CSYS_SOL_UDP;
    c->cmsg_type = CSYS_UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(unsigned short));
    __builtin_memcpy(CMSG_DATA(c), &segment, sizeof segment);
    return CMSG_SPACE(sizeof(unsigned short));
}

/// The build identity, set by the Makefile through -Xcc -D flags.
const char *bloo_build_version(void);
const char *bloo_build_revision(void);
const char *bloo_build_date(void);

#endif
