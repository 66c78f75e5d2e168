#include "AllocCounting.h"
#include <malloc.h>
#include <stddef.h>
#include <errno.h>
#include <unistd.h>

#if defined(__has_feature)
#  if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#    define BLOO_NO_INTERPOSE 1
#  endif
#endif

unsigned long long bloo_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return (unsigned long long)(info.uordblks + info.hblkhd);
}

#ifdef BLOO_NO_INTERPOSE
int bloo_alloc_counting_available(void) { return 0; }
void bloo_alloc_tracking(int enabled) { (void)enabled; }
unsigned long long bloo_alloc_count(void) { return 0; }
long long bloo_alloc_net_bytes(void) { return 0; }
#else
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static __thread int tracking;
static __thread long long net_bytes;
static unsigned long long counted;

#include <execinfo.h>
#include <stdlib.h>
static int want_backtrace = -1;

/* BLOO_ALLOC_BACKTRACE=1 prints where each counted allocation came from. */
static inline void note(void) {
    if (!tracking) return;
    __atomic_fetch_add(&counted, 1, __ATOMIC_RELAXED);
    tracking = 0;
    if (want_backtrace < 0) want_backtrace = getenv("BLOO_ALLOC_BACKTRACE") != NULL;
    if (want_backtrace) {
        void *frames[24];
        int n = backtrace(frames, 24);
        backtrace_symbols_fd(frames, n, 2);
        static const char line[] = "----\n";
        (void)!write(2, line, sizeof line - 1);
    }
    tracking = 1;
}

int bloo_alloc_counting_available(void) { return 1; }
void bloo_alloc_tracking(int enabled) { tracking = enabled; }
unsigned long long bloo_alloc_count(void) { return __atomic_load_n(&counted, __ATOMIC_RELAXED); }
long long bloo_alloc_net_bytes(void) { return net_bytes; }

/* Heap bytes the tracking thread holds: usable size of what it allocated minus what it freed. */
static inline void *held(void *p) {
    if (tracking && p) net_bytes += (long long)malloc_usable_size(p);
    return p;
}
static inline void release(void *p) {
    if (tracking && p) net_bytes -= (long long)malloc_usable_size(p);
}

void *malloc(size_t size) { note(); return held(__libc_malloc(size)); }
void *calloc(size_t count, size_t size) { note(); return held(__libc_calloc(count, size)); }
void *realloc(void *pointer, size_t size) {
    note();
    release(pointer);
    return held(__libc_realloc(pointer, size));
}
void free(void *pointer) { release(pointer); __libc_free(pointer); }
void *memalign(size_t alignment, size_t size) { note(); return held(__libc_memalign(alignment, size)); }
void *aligned_alloc(size_t alignment, size_t size) { note(); return held(__libc_memalign(alignment, size)); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    note();
    void *p = held(__libc_memalign(alignment, size));
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}
#endif
