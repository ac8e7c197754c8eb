// The injected library's Swift side: `asynctrace record` preloads it into programs that link
// libswift_Concurrency.so. It is the recording adapter `record` started, so it starts the recorder
// (ASYNCTRACE_OUTPUT, appending to the trace `record` created) and the task observation.
@_spi(Preload) import AsyncTraceConcurrency
import AsyncTraceRecorder
import CAsyncTraceConcurrencyPreload

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("asynctrace_concurrency_preload_start")
func asynctraceConcurrencyPreloadStart() {
    // The benchmark's floor: the observation (interposers, trampolines, execution-state updates) with no
    // recorder listening.
    if let v = getenv("ASYNCTRACE_CONCURRENCY_HOOKS_ONLY"), String(cString: v) == "1" {
        AsyncTraceConcurrency.installForPreload()
        return
    }
    guard TraceRecorder.startFromEnvironment() else { return }
    AsyncTraceConcurrency.installForPreload()
}
