#define _GNU_SOURCE
#include "asynchooks_support.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

// Read on every emission by every thread, written almost never: a cache line of their own, so no
// counter another thread writes can share it (false sharing).
__attribute__((aligned(64))) long asynchooks_active_count_v = 0;
__attribute__((aligned(64))) void *asynchooks_fast_path_v = 0;
__attribute__((aligned(64))) unsigned long asynchooks_generation_v = 0;
__attribute__((aligned(64))) static char asynchooks_padding_after[64] __attribute__((used));
__thread void *asynchooks_state_tls = 0;

#define MAX_COPIES 16

/// One copy of AsyncHooks as the registry sees it.
typedef struct asynchooks_copy {
    long *active_count;
    void **fast_path;
    unsigned long *generation;
    void (*clear_thread_state)(void);
    // This copy's own hooks (lock held to change).
    long local_count;
    void *local_fast_path;
    const asynchooks_events *local_events;
} asynchooks_copy;

typedef struct asynchooks_process {
    pthread_mutex_t lock;
    long copy_count;
    asynchooks_copy *copies[MAX_COPIES];
    void *(*thread_state)(void);
    const asynchooks_interner *interner;
    uint64_t next_id_block, next_span_id, next_local_key, next_frame_sequence;
} asynchooks_process;

// This copy's registry: the process's, unless another copy's was found first (see the header). Exported
// under the versioned name; this file refers to it by its own name, so no other object can interpose.
static asynchooks_process own_process = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .next_id_block = 2,
    .next_span_id = 1,
    .next_local_key = 1,
    .next_frame_sequence = 1,
};
extern asynchooks_process asynchooks_process_v1 __attribute__((alias("own_process"), visibility("default")));
static asynchooks_process *process = &own_process;

static void clear_own_thread_state(void) { asynchooks_state_tls = 0; }

static asynchooks_copy own_copy = {
    .active_count = &asynchooks_active_count_v,
    .fast_path = &asynchooks_fast_path_v,
    .generation = &asynchooks_generation_v,
    .clear_thread_state = clear_own_thread_state,
};

static inline asynchooks_process *registry(void) { return __atomic_load_n(&process, __ATOMIC_ACQUIRE); }

/// (Lock held.) Adds this copy (read without the lock at thread exit: atomic stores).
static void add_copy(asynchooks_process *p) {
    __atomic_store_n(&p->copies[p->copy_count], &own_copy, __ATOMIC_RELEASE);
    __atomic_store_n(&p->copy_count, p->copy_count + 1, __ATOMIC_RELEASE);
}

/// (Lock held.) Every copy's view from the registry: the total count, the sole hook's fast path.
static void republish(asynchooks_process *p) {
    long total = 0;
    void *fast = NULL;
    for (long i = 0; i < p->copy_count; i++) {
        total += p->copies[i]->local_count;
        if (p->copies[i]->local_count == 1) fast = p->copies[i]->local_fast_path;
    }
    if (total != 1) fast = NULL;
    for (long i = 0; i < p->copy_count; i++) {
        asynchooks_copy *c = p->copies[i];
        __atomic_store_n(c->fast_path, fast, __ATOMIC_RELEASE);
        __atomic_add_fetch(c->generation, 1, __ATOMIC_RELEASE);
        __atomic_store_n(c->active_count, total, __ATOMIC_RELEASE);
    }
}

// Before other constructors (the injected library's start-up enables the recorder in its own).
__attribute__((constructor(101))) static void asynchooks_join_process(void) {
    asynchooks_process *found = dlsym(RTLD_DEFAULT, "asynchooks_process_v1");
    asynchooks_process *p = found ? found : &own_process;
    pthread_mutex_lock(&p->lock);
    int joined = 0;
    for (long i = 0; i < p->copy_count; i++) if (p->copies[i] == &own_copy) joined = 1;
    if (!joined && p->copy_count < MAX_COPIES) {
        add_copy(p);
        joined = 1;
    }
    if (joined) {
        __atomic_store_n(&process, p, __ATOMIC_RELEASE);
        if (p->copy_count > 1) republish(p);  // take the hooks the other copies enabled already
    }
    pthread_mutex_unlock(&p->lock);
    if (!joined) {  // a full registry (16 copies): this copy stays on its own
        pthread_mutex_lock(&own_process.lock);
        if (own_process.copy_count == 0) add_copy(&own_process);
        pthread_mutex_unlock(&own_process.lock);
    }
}

/// A copy used before its constructor ran (or on its own) is the only member of its own registry.
static asynchooks_process *joined_registry(void) {
    asynchooks_process *p = registry();
    if (p == &own_process && p->copy_count == 0) add_copy(p);
    return p;
}

void asynchooks_lock(void) { pthread_mutex_lock(&registry()->lock); }
void asynchooks_unlock(void) { pthread_mutex_unlock(&registry()->lock); }

void asynchooks_publish_local(long count, void *fast_path, const asynchooks_events *events) {
    asynchooks_process *p = joined_registry();
    own_copy.local_count = count;
    own_copy.local_fast_path = fast_path;
    own_copy.local_events = events;
    republish(p);
}

long asynchooks_foreign_count(void) {
    asynchooks_process *p = registry();
    long n = 0;
    for (long i = 0; i < p->copy_count; i++) {
        asynchooks_copy *c = p->copies[i];
        if (c != &own_copy && c->local_count > 0 && c->local_events) n++;
    }
    return n;
}

const asynchooks_events *asynchooks_foreign_events(long index) {
    asynchooks_process *p = registry();
    long n = 0;
    for (long i = 0; i < p->copy_count; i++) {
        asynchooks_copy *c = p->copies[i];
        if (c != &own_copy && c->local_count > 0 && c->local_events) {
            if (n == index) return c->local_events;
            n++;
        }
    }
    return NULL;
}

long asynchooks_copy_count(void) {
    asynchooks_process *p = registry();
    pthread_mutex_lock(&p->lock);
    long n = p->copy_count;
    pthread_mutex_unlock(&p->lock);
    return n;
}

uint64_t asynchooks_take_ids(uint64_t n) { return __atomic_fetch_add(&registry()->next_id_block, n, __ATOMIC_RELAXED); }
uint64_t asynchooks_next_span_id(void) { return __atomic_fetch_add(&registry()->next_span_id, 1, __ATOMIC_RELAXED); }
uint64_t asynchooks_next_local_key(void) { return __atomic_fetch_add(&registry()->next_local_key, 1, __ATOMIC_RELAXED); }
uint64_t asynchooks_next_frame_sequence(void) { return __atomic_fetch_add(&registry()->next_frame_sequence, 1, __ATOMIC_RELAXED); }

void *asynchooks_shared_thread_state(void *(*own)(void)) {
    asynchooks_process *p = registry();
    void *(*expected)(void) = NULL;
    __atomic_compare_exchange_n(&p->thread_state, &expected, own, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    void *(*maker)(void) = __atomic_load_n(&p->thread_state, __ATOMIC_ACQUIRE);
    return maker == own ? NULL : maker();
}

void asynchooks_clear_thread_states(void) {
    asynchooks_process *p = registry();
    long n = __atomic_load_n(&p->copy_count, __ATOMIC_ACQUIRE);
    for (long i = 0; i < n && i < MAX_COPIES; i++) {
        asynchooks_copy *c = __atomic_load_n(&p->copies[i], __ATOMIC_ACQUIRE);
        if (c) c->clear_thread_state();
    }
    asynchooks_state_tls = 0;
}

const asynchooks_interner *asynchooks_shared_interner(const asynchooks_interner *own) {
    asynchooks_process *p = registry();
    const asynchooks_interner *expected = NULL;
    __atomic_compare_exchange_n(&p->interner, &expected, own, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return __atomic_load_n(&p->interner, __ATOMIC_ACQUIRE);
}
