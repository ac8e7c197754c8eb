// Swift Concurrency's jobs and tasks, seen from outside the runtime: which job is about to run, which
// task it belongs to, who created the task, and when a task's body completes. Swift has no task
// creation or completion hook on Linux; how each is observed is described in concurrency_hooks.c.
#ifndef ASYNCTRACE_CONCURRENCY_HOOKS_H
#define ASYNCTRACE_CONCURRENCY_HOOKS_H
#include <stdint.h>

/// The async id of Swift task `taskID`: a tag bit keeps task ids apart from AsyncHooks' own ids.
#define ATC_TASK_ID_TAG (1ull << 56)

/// What the Swift side does with each observation (AsyncHooks events). Plain C functions: they run
/// on the hot path of every job.
typedef struct atc_callbacks {
    /// A task seen for the first time: `flags` are its job flags (priority in bits 8-15, child 24,
    /// group child 26, async let 28).
    void (*task_init)(uint64_t asyncID, uint64_t triggerAsyncID, uint32_t flags);
    /// A job that is not a task (an actor's run of its queue, a continuation, an isolated deinit):
    /// `kind` is its job kind. Returns the async id it gets.
    uint64_t (*job_init)(uint32_t kind, uint64_t triggerAsyncID);
    void (*before)(uint64_t asyncID, uint64_t triggerAsyncID);
    void (*after)(uint64_t asyncID);
    /// A non-task job's run ended: after, then destroy.
    void (*after_and_destroy)(uint64_t asyncID);
    /// A task's body completed (its last job is still running).
    void (*task_complete)(uint64_t asyncID);
    /// The async id whose callback runs on this thread (the trigger of work started outside any task).
    uint64_t (*execution_id)(void);
    /// A completing task's name (Swift 6.2+ `Task(name:)`), reported just before `task_complete`; not
    /// called for tasks without a name or on runtimes without `swift_task_getCurrentTaskName`.
    void (*task_name)(uint64_t asyncID, const char *name);
} atc_callbacks;

/// Counters of what could not be observed.
typedef struct atc_statistics {
    uint64_t jobsRun;
    uint64_t tasksSeen;
    uint64_t tasksCompleted;
    /// Tasks whose completion cannot be observed (no free completion wrapper).
    uint64_t tasksUnwrapped;
} atc_statistics;

/// Sets the callbacks and turns observation on (once; later calls only replace the callbacks).
void atc_set_callbacks(const atc_callbacks *callbacks);
/// In-process mode (`AsyncTraceConcurrency.install()`): sets `swift_task_enqueueGlobal_hook`, which sees
/// jobs enqueued on the global executor (not the main executor's or delayed ones). 0 on success, -1
/// when the hook variable cannot be found.
int atc_install_enqueue_hook(void);
/// The runtime's own job-running function was seen passed to dispatch (preload mode).
int atc_is_swift_run_job(void (*work)(void *));
/// Preload mode: a job is being handed to dispatch with the runtime's run function `run`; returns the
/// function to hand to dispatch instead (or `run` when observation is off).
void (*atc_wrap_dispatch(void *job, void (*run)(void *)))(void *);
/// Preload mode: a direct call of the runtime's `swift_job_run` (`real_job_run`, a swiftcall function) that no
/// trampoline of ours is running: brackets the job's run (the async main's first job, run by `main` itself).
void atc_run_job_direct(void *job, void *executor_identity, uintptr_t executor_implementation, void *real_job_run);
/// Sets whether the preload interposers wrap jobs (set once the recorder is running).
void atc_set_preload_active(int active);
int atc_preload_active(void);
atc_statistics atc_get_statistics(void);
/// For tests: the Swift task id of the task running on this thread, 0 outside a task.
uint64_t atc_current_task_id(void);
#endif
