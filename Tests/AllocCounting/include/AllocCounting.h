// Counts heap allocations made by the calling thread while tracking is on, by
// interposing malloc and friends in the test executable (forwarding to glibc's
// __libc_* entry points). Not compiled in under ThreadSanitizer, which owns malloc.
#ifndef BLOO_ALLOC_COUNTING_H
#define BLOO_ALLOC_COUNTING_H

/// 1 when the interposer is compiled in (0 under sanitizers).
int bloo_alloc_counting_available(void);
/// Turns counting on/off for the calling thread.
void bloo_alloc_tracking(int enabled);
/// Allocations counted so far (all threads that enabled tracking).
unsigned long long bloo_alloc_count(void);
/// Net heap bytes (usable sizes) allocated minus freed by the calling thread while it tracked.
long long bloo_alloc_net_bytes(void);
/// Heap bytes in use (glibc mallinfo2: arena + mmapped).
unsigned long long bloo_heap_in_use(void);

#endif
