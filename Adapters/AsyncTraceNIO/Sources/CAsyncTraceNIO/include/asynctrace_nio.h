// Per-thread state of the NIO adapter, in C `__thread` variables (one load each; Swift has no cheap
// thread-locals): the channel whose read scope is open on this thread, and the loop's poll bookkeeping.
#ifndef ASYNCTRACE_NIO_H
#define ASYNCTRACE_NIO_H
#include <stdint.h>

/// The channel (an unretained ChannelTrace) whose read scope is open on this thread, or NULL.
void *atn_open_read_scope(void);
void atn_set_open_read_scope(void *trace);

/// 1 while the loop on this thread is (as far as the adapter knows) waiting for events.
int atn_poll_open(void);
void atn_set_poll_open(int open);

/// This thread's loop iterations so far (the metrics delegate counts them).
uint64_t atn_next_iteration(void);

#endif
