// Memory for the runtime's promises, reused per thread (AsyncTraceRuntime/Promise.swift).
//
// A promise is a Swift object. One made here is initialised with swift_initStackObject — the Swift
// runtime's entry for objects whose memory the caller owns (the compiler's stack promotion): its last
// release runs deinit as for any object, but does not free the memory. The promise's deinit gives the
// memory back here as its last action, and the next promise made on this thread reuses it: no
// malloc/free and no Swift allocator calls for the ~100-byte object every `await Promise.resolve(x)`
// makes (about 130 of an await's ~500 instructions).
#ifndef PROMISE_POOL_H
#define PROMISE_POOL_H
#include <stddef.h>

/// Memory of `size` bytes holding an initialised object header for class `metadata` (strong count
/// 1): a freed promise's if this thread has one, else fresh memory; NULL when this thread has as
/// many pooled promises alive as the pool holds (the caller makes an ordinary object). `size` is
/// the same on every call.
void *rt_promise_pool_take(const void *metadata, size_t size);

/// Called by a pooled promise's deinit, last: the memory is reused once the Swift runtime is done
/// with the object (it only releases the extra unowned count `swift_initStackObject` set), by a
/// later take. An object something still references as `unowned` keeps its memory for good, as
/// Swift would keep it.
void rt_promise_pool_give(void *object);

/// Freed promises this thread keeps (for tests).
int rt_promise_pool_count(void);
#endif
