// Takes a fixed share of one core away from the relay under test: spins for --busy-us out
// of every --period-us, at a real-time priority above the relay's, until it is killed.
//
// Why: with 100 and 1000 streams one load-generator core cannot offer what a whole relay
// core forwards (the generator does as much kernel work per packet as the relay), so a
// relay's capacity is only measurable on part of a core. Every relay gets the same part,
// so their sustainable rates on it compare their capacity per core.
//
// usage: spinner --cpu N --busy-us B --period-us P [--priority R]
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int main(int argc, char **argv) {
    long cpu = -1, busy_us = 0, period_us = 0, priority = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        long value = strtol(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--cpu")) cpu = value;
        else if (!strcmp(argv[i], "--busy-us")) busy_us = value;
        else if (!strcmp(argv[i], "--period-us")) period_us = value;
        else if (!strcmp(argv[i], "--priority")) priority = value;
        else { fprintf(stderr, "spinner: unknown option %s\n", argv[i]); return 2; }
    }
    if (cpu < 0 || busy_us <= 0 || period_us <= busy_us || period_us > 1000000) {
        fprintf(stderr, "usage: spinner --cpu N --busy-us B --period-us P (0 < B < P <= 1000000)\n");
        return 2;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("spinner: sched_setaffinity"); return 1; }
    // Above the relay's priority, or the relay would simply keep the core.
    struct sched_param param = {.sched_priority = (int)priority};
    if (sched_setscheduler(0, SCHED_FIFO, &param) != 0) { perror("spinner: SCHED_FIFO"); return 1; }
    const int64_t busy = busy_us * 1000, period = period_us * 1000;
    int64_t next = now_ns();
    for (;;) {
        const int64_t start = now_ns();
        while (now_ns() - start < busy) {}
        // Absolute deadlines: a late wake-up shortens the next pause instead of shifting
        // every later period; a wake-up later than a whole period starts afresh.
        next += period;
        const int64_t after = now_ns();
        if (next < after) next = after;
        struct timespec until = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {}
    }
}
