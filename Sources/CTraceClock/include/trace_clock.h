// Timestamps for the recorder's hot path. rdtsc (~20 ns here) instead of clock_gettime (~35 ns);
// each chunk stores two (ticks, CLOCK_MONOTONIC) pairs and the reader maps ticks onto ns.
#ifndef TRACE_CLOCK_H
#define TRACE_CLOCK_H
#include <stdint.h>
#include <time.h>

static inline uint64_t trace_clock_ticks(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
#endif
}

static inline uint64_t trace_clock_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t trace_clock_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/// A (ticks, monotonic ns) pair read as close together as possible: the pair with the
/// smallest tick gap of three tries wins.
static inline void trace_clock_pair(uint64_t *ticks, uint64_t *ns) {
    uint64_t best_gap = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = trace_clock_ticks();
        uint64_t n = trace_clock_monotonic_ns();
        uint64_t t1 = trace_clock_ticks();
        if (t1 - t0 < best_gap) {
            best_gap = t1 - t0;
            *ticks = t0 + (t1 - t0) / 2;
            *ns = n;
        }
    }
}
#endif
