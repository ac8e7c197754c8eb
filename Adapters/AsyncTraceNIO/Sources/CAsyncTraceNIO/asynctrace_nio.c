#include "asynctrace_nio.h"
#include <stddef.h>

static __thread void *open_read_scope = NULL;
static __thread int poll_open = 0;
static __thread uint64_t iterations = 0;

void *atn_open_read_scope(void) { return open_read_scope; }
void atn_set_open_read_scope(void *trace) { open_read_scope = trace; }
int atn_poll_open(void) { return poll_open; }
void atn_set_poll_open(int open) { poll_open = open; }
uint64_t atn_next_iteration(void) { return ++iterations; }
