// The injected library (`asynctrace record` puts it in LD_PRELOAD for programs that link
// libswift_Concurrency.so). Dispatch's entry points are interposed: libswift_Concurrency.so calls them
// through its PLT, so these run first and wrap the runtime's job-running function (see
// CAsyncTraceConcurrency/concurrency_hooks.c); every other caller goes straight through.
#define _GNU_SOURCE
#include "concurrency_preload.h"
#include "concurrency_hooks.h"
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef void *dispatch_queue_t;
typedef uint64_t dispatch_time_t;
typedef void (*dispatch_function_t)(void *);

typedef __attribute__((swiftcall)) void (*job_run_fn)(void *job, void *executor_identity, uintptr_t executor_implementation);

static void (*real_async_f)(dispatch_queue_t, void *, dispatch_function_t);
static job_run_fn real_job_run;
static void (*real_after_f)(dispatch_time_t, dispatch_queue_t, void *, dispatch_function_t);
static int loaded;

void dispatch_async_f(dispatch_queue_t queue, void *context, dispatch_function_t work) {
    if (__builtin_expect(!real_async_f, 0)) real_async_f = dlsym(RTLD_NEXT, "dispatch_async_f");
    if (atc_preload_active() && atc_is_swift_run_job(work)) work = atc_wrap_dispatch(context, work);
    real_async_f(queue, context, work);
}

void dispatch_after_f(dispatch_time_t when, dispatch_queue_t queue, void *context, dispatch_function_t work) {
    if (__builtin_expect(!real_after_f, 0)) real_after_f = dlsym(RTLD_NEXT, "dispatch_after_f");
    if (atc_preload_active() && atc_is_swift_run_job(work)) work = atc_wrap_dispatch(context, work);
    real_after_f(when, queue, context, work);
}

/// The async main's first job is run by the program's `main` itself (`swift_job_run` through its PLT, on
/// the main thread), never enqueued: without this, its work before the first `await` was no task run.
__attribute__((swiftcall)) void swift_job_run(void *job, void *executor_identity, uintptr_t executor_implementation) {
    if (__builtin_expect(!real_job_run, 0)) real_job_run = (job_run_fn)dlsym(RTLD_NEXT, "swift_job_run");
    atc_run_job_direct(job, executor_identity, executor_implementation, (void *)real_job_run);
}

/// Takes this library out of LD_PRELOAD, so the programs this one starts (a shell, a tool that is not
/// Swift) do not load the Swift runtime through it.
static void remove_from_preload(void) {
    const char *preload = getenv("LD_PRELOAD");
    Dl_info self;
    if (!preload || !dladdr((void *)remove_from_preload, &self) || !self.dli_fname) return;
    const char *base = strrchr(self.dli_fname, '/');
    base = base ? base + 1 : self.dli_fname;
    size_t n = strlen(preload);
    char *kept = malloc(n + 1);
    if (!kept) return;
    size_t used = 0;
    const char *p = preload;
    while (*p) {
        size_t len = strcspn(p, ": ");
        const char *slash = NULL;
        for (size_t i = 0; i < len; i++) if (p[i] == '/') slash = p + i;
        const char *entryBase = slash ? slash + 1 : p;
        size_t baseLen = len - (size_t)(entryBase - p);
        if (len > 0 && !(baseLen == strlen(base) && memcmp(entryBase, base, baseLen) == 0)) {
            if (used) kept[used++] = ':';
            memcpy(kept + used, p, len);
            used += len;
        }
        p += len;
        if (*p) p++;
    }
    kept[used] = 0;
    if (used) setenv("LD_PRELOAD", kept, 1); else unsetenv("LD_PRELOAD");
    free(kept);
}

__attribute__((constructor)) static void asynctrace_concurrency_preload_init(void) {
    loaded = 1;
    remove_from_preload();
    asynctrace_concurrency_preload_start();
}

int asynctrace_concurrency_preload_loaded(void) { return loaded; }
