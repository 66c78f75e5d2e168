// The small C surface that Swift cannot reach through Glibc alone: epoll,
// recvmmsg/sendmmsg, CPU affinity, and non-variadic wrappers for variadic calls
// (prctl, ioctl, fcntl, open).
//
// This public header deliberately does NOT define _GNU_SOURCE: Swift's Glibc
// module is built without it, and a Swift file importing both would meet two
// different definitions of fd_set and the build would fail depending on
// module-cache order. The GNU-only calls are therefore made in CSystem.c,
// which is compiled with _GNU_SOURCE, behind the functions declared here.
#ifndef BLOO_CSYSTEM_H
#define BLOO_CSYSTEM_H

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

/// `struct mmsghdr` (a GNU extension), with the kernel's layout; CSystem.c
/// checks at compile time that it matches glibc's definition.
struct csys_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/// recvmmsg(2) and sendmmsg(2). Return the number of messages or -1 (errno).
int csys_recvmmsg(int fd, struct csys_mmsghdr *messages, unsigned int count, int flags,
                  struct timespec *timeout);
int csys_sendmmsg(int fd, struct csys_mmsghdr *messages, unsigned int count, int flags);

/// Attaches a reuseport steering program to `fd` (bound, SO_REUSEPORT) that hands every
/// datagram for the port to the group's first socket: sockets that join the group later
/// can send from the port without ever receiving. 0 or -1 (errno).
int csys_steer_reuseport_to_first(int fd);

/// prctl(2) is variadic; Swift cannot call it directly.
int csys_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
               unsigned long arg5);

/// ioctl(2) with an integer-pointer argument (FIONREAD, TIOCOUTQ, ...).
int csys_ioctl_int(int fd, unsigned long request, int *value);

/// ioctl(2) with a pointer argument (TIOCGWINSZ, TIOCSCTTY, ...).
int csys_ioctl_ptr(int fd, unsigned long request, void *argument);

/// fcntl(2) with an integer argument (F_GETFL/F_SETFL, F_SETFD, ...).
int csys_fcntl_int(int fd, int command, int argument);

/// open(2) with a mode: the variadic form is unavailable in Swift.
int csys_open(const char *path, int flags, unsigned int mode);

/// The CPU the calling thread runs on (sched_getcpu), or -1.
int csys_current_cpu(void);

/// Pins the calling thread to one CPU. Returns 0 or an errno value.
int csys_pin_current_thread(int cpu);

/// Writes the calling thread's allowed CPUs into `cpus` (at most `capacity`)
/// and returns how many there are, or -errno.
int csys_current_thread_cpus(int *cpus, int capacity);

/// Same for any task id (sched_getaffinity), used to report placement.
int csys_task_cpus(pid_t tid, int *cpus, int capacity);

/// gettid(2).
pid_t csys_gettid(void);

/// Names the calling thread (at most 15 bytes are kept), as shown by ps and top.
int csys_set_thread_name(const char *name);

/// errno as seen by the calling thread (a macro in glibc).
int csys_errno(void);

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

/// Hints the CPU to fetch the cache line at `address` for writing (no fault if invalid).
static inline void csys_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }

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

/// Receive timestamps (benchmarks): turns on SO_TIMESTAMPNS; 0 or -errno.
int csys_enable_receive_timestamps(int fd);
/// recvmsg without blocking; `*stamp` gets the kernel's receive time (CLOCK_REALTIME, ns;
/// 0 when absent), `*from` (`from_length` bytes) the source when non-NULL. Returns the byte count or -errno.
long csys_recv_timestamped(int fd, void *buffer, size_t length, struct sockaddr *from, socklen_t from_length, int64_t *stamp);

#endif
