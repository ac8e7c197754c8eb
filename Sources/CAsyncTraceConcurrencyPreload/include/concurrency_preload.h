// The injected library's C side: Dispatch interposers and the constructor that starts recording.
#ifndef ASYNCTRACE_CONCURRENCY_PRELOAD_H
#define ASYNCTRACE_CONCURRENCY_PRELOAD_H
/// Defined in Swift (AsyncTraceConcurrencyPreload): starts the recorder and the task observation.
void asynctrace_concurrency_preload_start(void);
/// For tests: 1 once the constructor ran in this process.
int asynctrace_concurrency_preload_loaded(void);
#endif
