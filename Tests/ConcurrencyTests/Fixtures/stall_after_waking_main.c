// Preloaded beside asynctrace's library by LastRunTests: a pool thread that has just handed the main queue
// a job (a completing task wakes the async main task that awaits it this way) stalls 200 ms after the hand-over,
// as a thread preempted there would, so the main task ends the process before that thread leaves the task's run.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef void (*work_fn)(void *);

void dispatch_async_f(void *queue, void *context, work_fn work) {
    static void (*next)(void *, void *, work_fn);
    static void *main_queue;
    if (!next) next = (void (*)(void *, void *, work_fn))dlsym(RTLD_NEXT, "dispatch_async_f");
    if (!main_queue) main_queue = dlsym(RTLD_DEFAULT, "_dispatch_main_q");
    next(queue, context, work);
    if (queue == main_queue && getpid() != (pid_t)syscall(SYS_gettid)) usleep(200000);
}
