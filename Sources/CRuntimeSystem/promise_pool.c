// See promise_pool.h.
#include "promise_pool.h"
#include <pthread.h>
#include <stdlib.h>

// The Swift runtime's entries (libswiftCore, C calling convention).
extern void *swift_initStackObject(const void *metadata, void *object);
extern size_t swift_unownedRetainCount(void *object);

/// At most this many pooled promises per thread, alive or freed (freed ones keep ~26 KB). A program
/// holding more at once (Promise.all of 100,000) gets ordinary objects beyond them: those would
/// only pass through the pool to free().
#define POOL_CAPACITY 256

struct promise_pool {
    int count;
    /// Pooled promises made on this thread and not given back yet (approximate when one is freed
    /// on another thread: it then counts against this thread's budget for good).
    int outstanding;
    /// A freed promise the pool had no room for: free()d at the next call, once the Swift runtime
    /// has finished deallocating it (its deinit calls rt_promise_pool_give before that).
    void *deferred;
    void *slots[POOL_CAPACITY];
};

static __thread struct promise_pool *pool_tls;
static pthread_key_t pool_key;
static pthread_once_t pool_key_once = PTHREAD_ONCE_INIT;

/// Whether nothing refers to a pooled object that is being deinitialised as `unowned`: its unowned
/// count is then the runtime's own (1) plus the one `swift_initStackObject` added. An unowned
/// reference to a dead object must still find it dead, so memory with one is never reused or
/// freed (Swift would keep it too). No unowned reference can be made after deinit began (there is
/// no strong one left to make it from), so checking once, here, is enough.
static int unreferenced(void *object) { return swift_unownedRetainCount(object) == 2; }

static void release_deferred(struct promise_pool *p) {
    void *d = p->deferred;
    p->deferred = NULL;
    free(d);
}

static void pool_destroy(void *raw) {
    struct promise_pool *p = raw;
    pool_tls = NULL;
    release_deferred(p);
    for (int i = 0; i < p->count; i++) free(p->slots[i]);
    free(p);
}

static void make_key(void) { pthread_key_create(&pool_key, pool_destroy); }

static struct promise_pool *current_pool(void) {
    struct promise_pool *p = pool_tls;
    if (p) return p;
    pthread_once(&pool_key_once, make_key);
    p = calloc(1, sizeof *p);
    if (!p) abort();
    pthread_setspecific(pool_key, p); // frees the pool's memory at thread exit
    pool_tls = p;
    return p;
}

void *rt_promise_pool_take(const void *metadata, size_t size) {
    struct promise_pool *p = pool_tls;
    if (!p) p = current_pool();
    void *memory;
    if (p->count > 0) {
        memory = p->slots[--p->count];
    } else if (p->outstanding < POOL_CAPACITY) {
        memory = malloc(size);
        if (!memory) abort();
    } else {
        return NULL;
    }
    p->outstanding++;
    return swift_initStackObject(metadata, memory);
}

void rt_promise_pool_give(void *object) {
    struct promise_pool *p = current_pool();
    if (p->outstanding > 0) p->outstanding--;
    if (!unreferenced(object)) return; // kept allocated for good
    if (p->deferred) release_deferred(p);
    if (p->count < POOL_CAPACITY) p->slots[p->count++] = object;
    else p->deferred = object;
}

int rt_promise_pool_count(void) { return pool_tls ? pool_tls->count : 0; }
