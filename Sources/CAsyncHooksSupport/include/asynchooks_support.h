// What every emission site and callback reads, kept in C: a C global or `__thread` variable is
// a plain load, where a Swift global pays a lazy-initialisation check and a pthread key pays a
// call to pthread_getspecific.
#ifndef ASYNCHOOKS_SUPPORT_H
#define ASYNCHOOKS_SUPPORT_H

/// How many hooks are enabled (0: emission sites do nothing).
extern long asynchooks_active_count_v;
/// The sole enabled hook's fast-path table, or NULL.
extern void *asynchooks_fast_path_v;
/// This thread's execution state (ExecutionStateData), or NULL before its first use.
extern __thread void *asynchooks_state_tls;

static inline long asynchooks_active_count(void) { return __atomic_load_n(&asynchooks_active_count_v, __ATOMIC_RELAXED); }
static inline void asynchooks_set_active_count(long n) { __atomic_store_n(&asynchooks_active_count_v, n, __ATOMIC_RELEASE); }
static inline void *asynchooks_fast_path(void) { return __atomic_load_n(&asynchooks_fast_path_v, __ATOMIC_ACQUIRE); }
static inline void asynchooks_set_fast_path(void *p) { __atomic_store_n(&asynchooks_fast_path_v, p, __ATOMIC_RELEASE); }
static inline void *asynchooks_state(void) { return asynchooks_state_tls; }
static inline void asynchooks_set_state(void *p) { asynchooks_state_tls = p; }

#endif
