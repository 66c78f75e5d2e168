// Minimal C reference relay for the benchmark: epoll + recvmmsg/sendmmsg, one
// RTP/RTCP port pair per leg and session (RTP relayed), symmetric latching (the
// first source on a leg is learnt; other sources are dropped). Level-triggered
// epoll, one batch per ready socket per wake-up.
//
//   refrelay --base-port P --sessions N --client-port K [--cpu C]
// Session i: gateway leg port P+4i, client leg port P+4i+2 (RTCP +1, unused).
// Gateway -> client packets go to 127.0.0.1:K until the client leg latches.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64

struct leg { int fd; int latched; struct sockaddr_in remote; };
struct session { struct leg leg[2]; };

static int bind_udp(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); exit(1); }
    return fd;
}

int main(int argc, char **argv) {
    int base = 0, sessions = 0, client_port = 0, cpu = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--base-port")) base = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sessions")) sessions = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--client-port")) client_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cpu")) cpu = atoi(argv[i + 1]);
        else { fprintf(stderr, "refrelay: unknown option %s\n", argv[i]); return 2; }
    }
    if (!base || !sessions || !client_port) { fprintf(stderr, "refrelay: missing options\n"); return 2; }
    if (cpu >= 0) {
        cpu_set_t set; CPU_ZERO(&set); CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    struct session *s = calloc(sessions, sizeof *s);
    int ep = epoll_create1(0);
    for (int i = 0; i < sessions; i++) {
        for (int side = 0; side < 2; side++) {
            struct leg *l = &s[i].leg[side];
            l->fd = bind_udp(base + 4 * i + 2 * side);
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(i * 2 + side)};
            epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev);
        }
        // The client leg's address as signalling would announce it.
        s[i].leg[1].remote = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(client_port),
                                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    }
    static uint8_t buf[BATCH][2048];
    static struct mmsghdr rm[BATCH], sm[BATCH];
    static struct iovec riov[BATCH], siov[BATCH];
    static struct sockaddr_in from[BATCH];
    for (int i = 0; i < BATCH; i++) {
        riov[i] = (struct iovec){buf[i], sizeof buf[i]};
        rm[i].msg_hdr.msg_iov = &riov[i]; rm[i].msg_hdr.msg_iovlen = 1;
        rm[i].msg_hdr.msg_name = &from[i];
        sm[i].msg_hdr.msg_iov = &siov[i]; sm[i].msg_hdr.msg_iovlen = 1;
        sm[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    }
    printf("ready\n");
    fflush(stdout);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int e = 0; e < n; e++) {
            uint32_t i = events[e].data.u32 / 2, side = events[e].data.u32 % 2;
            struct leg *in = &s[i].leg[side], *out = &s[i].leg[1 - side];
            for (int k = 0; k < BATCH; k++) rm[k].msg_hdr.msg_namelen = sizeof from[k];
            int got = recvmmsg(in->fd, rm, BATCH, MSG_DONTWAIT, NULL);
            int q = 0;
            for (int k = 0; k < got; k++) {
                if (!in->latched) { in->remote = from[k]; in->latched = 1; }
                else if (in->remote.sin_addr.s_addr != from[k].sin_addr.s_addr || in->remote.sin_port != from[k].sin_port) continue;
                if (side == 0 || out->latched) {
                    siov[q] = (struct iovec){buf[k], rm[k].msg_len};
                    sm[q].msg_hdr.msg_name = &out->remote;
                    q++;
                }
            }
            if (q > 0) sendmmsg(out->fd, sm, (unsigned)q, MSG_DONTWAIT);
        }
    }
}
