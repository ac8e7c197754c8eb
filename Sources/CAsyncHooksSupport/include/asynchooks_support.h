// What every emission site and callback reads, kept in C: a C global or `__thread` variable is
// a plain load, where a Swift global pays a lazy-initialisation check and a pthread key pays a
// call to pthread_getspecific.
#ifndef ASYNCHOOKS_SUPPORT_H
#define ASYNCHOOKS_SUPPORT_H

#include <stdint.h>

/// How many hooks are enabled (0: emission sites do nothing).
extern long asynchooks_active_count_v;
/// The sole enabled hook's fast-path table, or NULL.
extern void *asynchooks_fast_path_v;
/// Bumped whenever the set of enabled hooks changes in any copy of AsyncHooks in the process: a
/// copy's dispatch list is rebuilt when it no longer matches.
extern unsigned long asynchooks_generation_v;
/// This thread's execution state (ExecutionStateData), or NULL before its first use.
extern __thread void *asynchooks_state_tls;

static inline long asynchooks_active_count(void) { return __atomic_load_n(&asynchooks_active_count_v, __ATOMIC_RELAXED); }
static inline void *asynchooks_fast_path(void) { return __atomic_load_n(&asynchooks_fast_path_v, __ATOMIC_ACQUIRE); }
static inline unsigned long asynchooks_generation(void) { return __atomic_load_n(&asynchooks_generation_v, __ATOMIC_ACQUIRE); }
static inline void *asynchooks_state(void) { return asynchooks_state_tls; }
static inline void asynchooks_set_state(void *p) { asynchooks_state_tls = p; }

// --- One process, several copies of AsyncHooks ---
// An application links its own copy of AsyncHooks (through an adapter: AsyncTraceNIO, the tracing
// bridge), and the library `asynctrace record` injects carries another, with the recorder. Each copy's
// emission sites read that copy's globals above (so the hot path stays a plain load), but what they
// mean is process-wide: the copies meet in one registry, the `asynchooks_process_v1` symbol resolved
// with dlsym(RTLD_DEFAULT) when a copy is loaded (the first copy in the global scope wins: the injected
// library, since executables do not export it). Through it:
//   - a hook enabled in any copy receives the events emitted in every copy (each copy's count, fast
//     path and generation are rewritten by whichever copy changes its hooks);
//   - async ids, span ids, AsyncLocal keys and frame sequences come from one set of counters;
//   - one copy makes every thread's execution state, so all copies agree on the current callback;
//   - one copy interns resource type names, so a type id means the same name in every copy.
// Copies pass Swift values through it (the fast-path table, the execution state): the `1` in the
// symbol's name is their layout's version. Bump it when AsyncHookFastPath, ExecutionStateData,
// SavedContext, ContextFrame or asynchooks_events change (AsyncHooksTests pins their sizes).

/// A copy's hooks, as C functions another copy can call (strings as UTF-8 bytes and a length).
typedef struct asynchooks_events {
    void (*init_resource)(uint64_t id, uint32_t type, uint64_t trigger, void *resource);
    void (*before)(uint64_t id);
    void (*after)(uint64_t id);
    void (*destroy)(uint64_t id);
    void (*promise_resolve)(uint64_t id);
    void (*resource_fd)(uint64_t id, int32_t fd);
    void (*resource_attribute)(uint64_t id, uint32_t attribute);
    void (*mark)(const uint8_t *name, long length, uint64_t execution_id);
    void (*span_begin)(uint64_t span, const uint8_t *name, long length, uint64_t execution_id);
    void (*span_end)(uint64_t span);
    void (*span_attribute)(uint64_t span, const uint8_t *key, long key_length, const uint8_t *value, long value_length);
    void (*loop_iteration)(uint64_t iteration);
    void (*phase_enter)(uint8_t phase);
    void (*phase_leave)(uint8_t phase);
    void (*poll_start)(int64_t timeout_ms);
    void (*poll_end)(const int32_t *fds, long count);
    void (*nesting_error)(uint64_t expected, uint64_t actual);
    void (*uncaught_error)(uint64_t id, const uint8_t *message, long length);
} asynchooks_events;

/// The copy that interns resource type names for the process.
typedef struct asynchooks_interner {
    uint32_t (*intern)(const uint8_t *name, long length);
    /// Copies up to `capacity` bytes of the name of `id`; returns its whole length.
    long (*name)(uint32_t id, uint8_t *buffer, long capacity);
    long (*count)(void);
} asynchooks_interner;

/// The registry's lock: held while a copy changes its hooks or rebuilds its dispatch list.
void asynchooks_lock(void);
void asynchooks_unlock(void);
/// (Lock held.) This copy's own hooks changed: `count` of them, `fast_path` the sole one's table
/// (or NULL), `events` delivering to them from other copies. Rewrites every copy's count, fast path
/// and generation.
void asynchooks_publish_local(long count, void *fast_path, const asynchooks_events *events);
/// (Lock held.) The other copies with hooks enabled: how many, and the i-th one's events.
long asynchooks_foreign_count(void);
const asynchooks_events *asynchooks_foreign_events(long i);
/// How many copies of AsyncHooks share this process's registry (1: this one alone).
long asynchooks_copy_count(void);

/// The first of `n` fresh async ids (ids come in blocks; 0 and 1 are reserved).
uint64_t asynchooks_take_ids(uint64_t n);
uint64_t asynchooks_next_span_id(void);
uint64_t asynchooks_next_local_key(void);
uint64_t asynchooks_next_frame_sequence(void);

/// This thread's execution state as the copy that makes them made it, or NULL when that copy is the
/// caller (`own`, installed if no copy was yet).
void *asynchooks_shared_thread_state(void *(*own)(void));
/// At thread exit: forget this thread's state in every copy.
void asynchooks_clear_thread_states(void);
/// The interner of the process (`own`, installed if no copy's was yet).
const asynchooks_interner *asynchooks_shared_interner(const asynchooks_interner *own);

#endif
