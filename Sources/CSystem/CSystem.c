// The GNU-only calls, compiled with _GNU_SOURCE (see CSystem.h for why the
// public header does not define it).
#define _GNU_SOURCE 1
#include "CSystem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(struct csys_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr size");
_Static_assert(offsetof(struct csys_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len),
               "mmsghdr layout");

// Straight to the kernel: glibc's wrappers are cancellation points, and switching
// asynchronous cancellation on and off around every call costs more than the call's
// own user-space work on the data plane. Nothing here is ever cancelled.
int csys_recvmmsg(int fd, struct csys_mmsghdr *messages, unsigned int count, int flags,
                  struct timespec *timeout) {
    return (int)syscall(SYS_recvmmsg, fd, messages, count, flags, timeout);
}

int csys_sendmmsg(int fd, struct csys_mmsghdr *messages, unsigned int count, int flags) {
    return (int)syscall(SYS_sendmmsg, fd, messages, count, flags);
}

int csys_steer_reuseport_to_first(int fd) {
    // Classic BPF "return 0": every datagram for the port goes to the group's first socket.
    struct sock_filter code[] = {{BPF_RET | BPF_K, 0, 0, 0}};
    struct sock_fprog program = {.len = 1, .filter = code};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program);
}

int csys_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
               unsigned long arg5) {
    return prctl(option, arg2, arg3, arg4, arg5);
}

int csys_ioctl_int(int fd, unsigned long request, int *value) { return ioctl(fd, request, value); }

int csys_ioctl_ptr(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
}

int csys_fcntl_int(int fd, int command, int argument) { return fcntl(fd, command, argument); }

int csys_open(const char *path, int flags, unsigned int mode) {
    return open(path, flags, (mode_t)mode);
}

int csys_current_cpu(void) { return sched_getcpu(); }

int csys_pin_current_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static int list_cpus(const cpu_set_t *set, int *cpus, int capacity) {
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && count < capacity; cpu++) {
        if (CPU_ISSET(cpu, set)) cpus[count++] = cpu;
    }
    return count;
}

int csys_current_thread_cpus(int *cpus, int capacity) {
    cpu_set_t set;
    CPU_ZERO(&set);
    int rc = pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0) return -rc;
    return list_cpus(&set, cpus, capacity);
}

int csys_task_cpus(pid_t tid, int *cpus, int capacity) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(tid, sizeof(set), &set) != 0) return -errno;
    return list_cpus(&set, cpus, capacity);
}

pid_t csys_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int csys_errno(void) { return errno; }

int csys_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }

int csys_enable_receive_timestamps(int fd) {
    int on = 1;
    return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) == 0 ? 0 : -errno;
}

long csys_recv_timestamped(int fd, void *buffer, size_t length, struct sockaddr *from, socklen_t from_length, int64_t *stamp) {
    struct iovec iov = { .iov_base = buffer, .iov_len = length };
    union { char bytes[CMSG_SPACE(sizeof(struct timespec))]; struct cmsghdr align; } control;
    struct msghdr msg = { .msg_name = from, .msg_namelen = from ? from_length : 0, .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control.bytes, .msg_controllen = sizeof control.bytes };
    *stamp = 0;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            __builtin_memcpy(&ts, CMSG_DATA(c), sizeof ts);
            *stamp = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        }
    }
    return n;
}
