// RTP load generator and sink for the relay benchmark.
// One thread, pinned: sends real RTP (12-byte header + 160-byte payload, per-stream
// SSRC, sequence numbers and timestamps) with sendmmsg to one relay port per stream,
// paced to a target rate (or flat out), and counts what the relay forwards to the
// sink socket with recvmmsg. The payload carries the send time (CLOCK_MONOTONIC ns)
// so the sink measures the added latency: p50_us/p99_us up to the kernel's receive stamp
// on the sink socket (SO_TIMESTAMPNS), i.e. without the time this one thread takes to get
// back to reading while it sends (up to a batch of sendmmsg, 100-300 us near its limit);
// read_p50_us/read_p99_us up to the moment it read the packet, for comparison.
//
// Paced, it sleeps while ahead of time and never catches up more than a millisecond of
// lag in one go (see the send loop); --max-burst caps the datagrams per sendmmsg (64).
//
// Each run marks its packets with a random trial number and counts only its own: a relay
// that was overloaded by the previous trial can still be forwarding that trial's queue
// (1000 sessions x a socket buffer each is seconds of traffic), and those packets would
// hide this trial's loss and add their age to its latency. Before sending it also waits
// until the sink has been quiet for 20 ms (at most 5 s), so that the relay starts empty;
// stale= counts the old packets seen, settle_ms= the wait.
//
//   loadgen --ports FILE --src-port G --sink-port K --rate PPS|0 --duration S [--cpu C] [--max-burst N]
// prints one line: sent= received= offered_pps= forwarded_pps= loss= p50_us= p99_us= ...
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PAYLOAD 160
#define PACKET (12 + PAYLOAD)
#define SSRC_BASE 0x5EED0000u
#define TRIAL_AT 20 /* payload: send time at 12, trial number at 20 */
#define HIST_US 20000

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void percentiles(const uint64_t *hist, uint64_t total, uint64_t *p50, uint64_t *p99) {
    uint64_t acc = 0;
    int have50 = 0;
    *p50 = *p99 = 0;
    for (int us = 0; us <= HIST_US && total; us++) {
        acc += hist[us];
        if (!have50 && acc * 2 >= total) { *p50 = (uint64_t)us; have50 = 1; }
        if (acc * 100 >= total * 99) { *p99 = (uint64_t)us; break; }
    }
}

static int udp_socket(uint16_t port, int bufsize) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof bufsize) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsize, sizeof bufsize) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); exit(1); }
    return fd;
}

int main(int argc, char **argv) {
    const char *ports_file = NULL;
    int src_port = 0, sink_port = 0, cpu = -1, max_burst = BATCH;
    double rate = 0, duration = 1.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ports")) ports_file = argv[i + 1];
        else if (!strcmp(argv[i], "--src-port")) src_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sink-port")) sink_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration")) duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--cpu")) cpu = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-burst")) max_burst = atoi(argv[i + 1]);
        else { fprintf(stderr, "loadgen: unknown option %s\n", argv[i]); return 2; }
    }
    if (max_burst < 1 || max_burst > BATCH) { fprintf(stderr, "loadgen: --max-burst takes 1-%d\n", BATCH); return 2; }
    if (!ports_file || !sink_port) { fprintf(stderr, "loadgen: --ports and --sink-port are required\n"); return 2; }
    if (cpu >= 0) {
        cpu_set_t set; CPU_ZERO(&set); CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
    }
    FILE *f = fopen(ports_file, "r");
    if (!f) { perror(ports_file); return 1; }
    int capacity = 1024, streams = 0;
    struct sockaddr_in *dst = malloc(sizeof *dst * capacity);
    int port;
    while (fscanf(f, "%d", &port) == 1) {
        if (streams == capacity) { capacity *= 2; dst = realloc(dst, sizeof *dst * capacity); }
        dst[streams++] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    }
    fclose(f);
    if (streams == 0) { fprintf(stderr, "loadgen: no ports\n"); return 2; }
    uint16_t *seq = calloc(streams, sizeof *seq);
    uint32_t *ts = calloc(streams, sizeof *ts);
    uint64_t *got = calloc(streams, sizeof *got);

    int tx = udp_socket(src_port, 8 << 20);
    int rx = udp_socket(sink_port, 64 << 20);
    int one = 1;
    setsockopt(rx, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    // Kernel stamps are CLOCK_REALTIME, send times CLOCK_MONOTONIC: the offset between
    // the two clocks, taken once (it does not move within a trial).
    int64_t realtime_offset = (int64_t)(realtime_ns() - now_ns());

    // The trial number sits at the same place in every packet: written once here.
    uint32_t trial;
    if (getrandom(&trial, sizeof trial, 0) != sizeof trial) trial = (uint32_t)(now_ns() ^ (uint64_t)getpid() << 16);
    static uint8_t out[BATCH][PACKET], in[BATCH][2048];
    static struct mmsghdr smsg[BATCH], rmsg[BATCH];
    static struct iovec siov[BATCH], riov[BATCH];
    static char rctl[BATCH][64];
    for (int i = 0; i < BATCH; i++) {
        memcpy(out[i] + TRIAL_AT, &trial, 4);
        siov[i] = (struct iovec){out[i], PACKET};
        smsg[i].msg_hdr.msg_iov = &siov[i]; smsg[i].msg_hdr.msg_iovlen = 1;
        smsg[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
        riov[i] = (struct iovec){in[i], sizeof in[i]};
        rmsg[i].msg_hdr.msg_iov = &riov[i]; rmsg[i].msg_hdr.msg_iovlen = 1;
    }
    static uint64_t hist[HIST_US + 1], arrival_hist[HIST_US + 1];
    uint64_t sent = 0, received = 0, bad = 0, sink_drops = 0, stamped = 0, skipped = 0, stale = 0;

    // Settle: whatever still arrives is an earlier trial's, queued in the relay.
    uint64_t settle_start = now_ns();
    for (;;) {
        struct pollfd quiet = {.fd = rx, .events = POLLIN};
        if (poll(&quiet, 1, 20) <= 0 || now_ns() - settle_start > 5000000000ull) break;
        int n;
        while ((n = recvmmsg(rx, rmsg, BATCH, MSG_DONTWAIT, NULL)) > 0) stale += (uint64_t)n;
    }
    uint64_t settle_ms = (now_ns() - settle_start) / 1000000;
    int64_t debt_limit = rate > 0 && rate / 1000 > BATCH ? (int64_t)(rate / 1000) : BATCH;
    int next = 0, gso = getenv("LOADGEN_NO_GSO") == NULL;
    uint64_t start = now_ns();
    uint64_t stop_send = start + (uint64_t)(duration * 1e9);
    uint64_t stop_all = stop_send + 200000000ull; // drain what is still in flight
    uint64_t send_end = stop_send;
    for (;;) {
        uint64_t now = now_ns();
        if (now >= stop_all) break;
        if (now < stop_send) {
            int64_t due = rate > 0 ? (int64_t)((double)(now - start) * rate / 1e9) - (int64_t)(sent + skipped) : BATCH;
            // Behind by more than a millisecond (the generator was preempted or throttled):
            // forget the debt rather than send it as one burst, which would measure the
            // relay's queue behind that burst instead of its added latency.
            if (due > debt_limit) { skipped += (uint64_t)(due - max_burst); due = max_burst; }
            if (due > max_burst) due = max_burst;
            if (due > 0) {
                for (int i = 0; i < due; i++) {
                    int s = next; next = next + 1 == streams ? 0 : next + 1;
                    uint8_t *p = out[i];
                    uint32_t ssrc = SSRC_BASE + (uint32_t)s;
                    p[0] = 0x80; p[1] = 0;
                    p[2] = seq[s] >> 8; p[3] = seq[s] & 0xff;
                    p[4] = ts[s] >> 24; p[5] = ts[s] >> 16; p[6] = ts[s] >> 8; p[7] = ts[s];
                    p[8] = ssrc >> 24; p[9] = ssrc >> 16; p[10] = ssrc >> 8; p[11] = ssrc;
                    seq[s]++; ts[s] += PAYLOAD;
                    memcpy(p + 12, &now, 8);
                    smsg[i].msg_hdr.msg_name = &dst[s];
                }
                int n;
                if (streams == 1 && due > 1 && gso) {
                    // One stream: the whole burst as one UDP GSO send (cheaper for the
                    // generator, identical datagrams on the wire for the relay).
                    char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
                    struct msghdr m = {.msg_name = &dst[0], .msg_namelen = sizeof dst[0], .msg_iov = siov,
                                       .msg_iovlen = (size_t)due, .msg_control = control, .msg_controllen = sizeof control};
                    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                    c->cmsg_level = SOL_UDP; c->cmsg_type = UDP_SEGMENT; c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                    uint16_t segment = PACKET;
                    memcpy(CMSG_DATA(c), &segment, sizeof segment);
                    n = sendmsg(tx, &m, 0) > 0 ? (int)due : -1;
                    if (n < 0 && errno != EAGAIN && errno != ENOBUFS) { gso = 0; n = sendmmsg(tx, smsg, (unsigned)due, 0); }
                } else {
                    n = sendmmsg(tx, smsg, (unsigned)due, 0);
                }
                if (n > 0) sent += (uint64_t)n;
                // Packets the kernel refused were built with sequence numbers: count them as sent
                // (the relay never saw them, but the receiver sees the gap, as a phone would).
                if (n < due) sent += (uint64_t)(due - (n > 0 ? n : 0));
            }
        } else if (send_end == stop_send) {
            send_end = now;
        }
        for (int round = 0; round < 4; round++) {
            for (int i = 0; i < BATCH; i++) {
                rmsg[i].msg_hdr.msg_control = rctl[i];
                rmsg[i].msg_hdr.msg_controllen = sizeof rctl[i];
            }
            int n = recvmmsg(rx, rmsg, BATCH, MSG_DONTWAIT, NULL);
            if (n <= 0) break;
            uint64_t t = now_ns();
            for (int i = 0; i < n; i++) {
                uint8_t *p = in[i];
                if (rmsg[i].msg_len != PACKET || (p[0] >> 6) != 2) { bad++; continue; }
                uint32_t ssrc = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
                uint32_t s = ssrc - SSRC_BASE;
                if (s >= (uint32_t)streams) { bad++; continue; }
                uint32_t from_trial; memcpy(&from_trial, p + TRIAL_AT, 4);
                if (from_trial != trial) { stale++; continue; }
                got[s]++;
                received++;
                uint64_t sent_at; memcpy(&sent_at, p + 12, 8);
                uint64_t us = t > sent_at ? (t - sent_at) / 1000 : 0;
                hist[us > HIST_US ? HIST_US : us]++;
                struct msghdr *h = &rmsg[i].msg_hdr;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
                    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                        struct timespec at; memcpy(&at, CMSG_DATA(c), sizeof at);
                        int64_t arrival = (int64_t)((uint64_t)at.tv_sec * 1000000000ull + (uint64_t)at.tv_nsec) - realtime_offset;
                        uint64_t a = arrival > (int64_t)sent_at ? ((uint64_t)arrival - sent_at) / 1000 : 0;
                        arrival_hist[a > HIST_US ? HIST_US : a]++;
                        stamped++;
                    }
            }
            struct msghdr *last = &rmsg[n - 1].msg_hdr;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(last); c; c = CMSG_NXTHDR(last, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                    uint32_t d; memcpy(&d, CMSG_DATA(c), 4); sink_drops = d;
                }
            if (n < BATCH) break;
        }
        // Paced and ahead of time: wait for the sink or the next send, whichever comes
        // first, instead of spinning. A spinning SCHED_FIFO thread is throttled by the
        // kernel for 50 ms of every second, and its catch-up after that was the p99.
        if (rate > 0) {
            uint64_t t = now_ns();
            uint64_t next = t < stop_send ? start + (uint64_t)((double)(sent + skipped + 1) * 1e9 / rate) : stop_all;
            if (next > t + 20000) {
                uint64_t wait = next - t;
                struct timespec timeout = {.tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull)};
                struct pollfd p = {.fd = rx, .events = POLLIN};
                ppoll(&p, 1, &timeout, NULL);
            }
        }
    }
    double seconds = (double)(send_end - start) / 1e9;
    uint64_t read50, read99, p50, p99;
    percentiles(hist, received, &read50, &read99);
    if (stamped) percentiles(arrival_hist, stamped, &p50, &p99);
    else { p50 = read50; p99 = read99; }  // no kernel stamps: the read latency stands in
    uint64_t silent = 0;
    for (int s = 0; s < streams; s++) if (got[s] == 0) silent++;
    double loss = sent ? (double)(sent > received ? sent - received : 0) / (double)sent : 0;
    printf("streams=%d sent=%llu received=%llu offered_pps=%.0f forwarded_pps=%.0f loss=%.6f p50_us=%llu p99_us=%llu "
           "read_p50_us=%llu read_p99_us=%llu silent_streams=%llu bad=%llu sink_drops=%llu skipped=%llu "
           "stale=%llu settle_ms=%llu\n",
           streams, (unsigned long long)sent, (unsigned long long)received, sent / seconds, received / seconds, loss,
           (unsigned long long)p50, (unsigned long long)p99, (unsigned long long)read50, (unsigned long long)read99,
           (unsigned long long)silent, (unsigned long long)bad, (unsigned long long)sink_drops,
           (unsigned long long)skipped, (unsigned long long)stale, (unsigned long long)settle_ms);
    return 0;
}
