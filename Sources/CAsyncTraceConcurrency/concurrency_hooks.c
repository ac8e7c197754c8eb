// How Swift Concurrency's tasks and jobs are observed on Linux (Swift 5.9-6.3 ABI, 64-bit), with no
// change to the runtime or to the program:
//
// * Job runs. Every job the runtime hands to Dispatch goes through `dispatch_async_f(queue, job,
//   __swift_run_job)` (global and main executors) or `dispatch_after_f` (delayed jobs). In preload mode
//   those calls are interposed (CAsyncTraceConcurrencyPreload) and the run function is replaced by a
//   trampoline that brackets the original with before/after on the thread that runs it. In-process mode
//   (`install()`, e.g. with a static stdlib) uses `swift_task_enqueueGlobal_hook` instead and enqueues on
//   queues made as the runtime makes its own; it sees the global executor's jobs only.
// * Task identity. A job whose kind is 0 is the task itself; `swift_task_getJobTaskId` gives its id.
// * Task creation. There is no creation hook: a task is announced the first time it is enqueued (which,
//   for tasks, child tasks, async let and group tasks, happens inside swift_task_create, on the creator's
//   thread), with the task current at that moment (`swift_task_getCurrent`) as its trigger. The job
//   header's `Reserved` word (initialised to null by the runtime, unused on Linux) marks a task as seen
//   and keeps its trigger.
// * Task completion. A task's root async context (Parent == NULL) resumes, when the body returns, into
//   the runtime's completion function. That pointer is replaced by one of a few swiftasync wrappers that
//   report the completion and tail-call the original; one wrapper per distinct original.
// * A task's last run ends at its completion: the wrapper writes the run's after with the destroy, before the
//   original wakes the tasks awaiting it. Written after the job returned, it was lost when one of those
//   ended the process first (an async main returning right after `await task.value`), and the report read
//   the completed task as still running at exit. What the runtime does after the completion (waking the
//   waiters, freeing the task) is bookkeeping outside the run.
// * Task names (Swift 6.2+). The runtime hands a task's name only to the task itself
//   (`swift_task_getCurrentTaskName`), so it is read in the completion wrapper, inside the task.
#define _GNU_SOURCE
#include "concurrency_hooks.h"
#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// --- the ABI pieces used (include/swift/ABI/Task.h, MetadataValues.h) ---
enum {
    JOB_FLAGS_OFFSET = 32,          // JobFlags: kind bits 0-7, priority 8-15, task kind bits 24-28
    JOB_RESERVED_OFFSET = 48,       // void *Reserved = nullptr
    JOB_SCHEDULER_QUEUE_OFFSET = 24, // SchedulerPrivate[DispatchQueueIndex]
    TASK_RESUME_CONTEXT_OFFSET = 64, // AsyncContext *ResumeContext
    CONTEXT_PARENT_OFFSET = 0,      // AsyncContext *Parent
    CONTEXT_RESUME_PARENT_OFFSET = 8, // TaskContinuationFunction *ResumeParent
};
#define JOB_KIND_TASK 0u

#define SWIFTCALL __attribute__((swiftcall))
#define SWIFTASYNCCALL __attribute__((swiftasynccall))
#define ASYNC_CONTEXT __attribute__((swift_async_context))
#define SWIFT_CONTEXT __attribute__((swift_context))

typedef SWIFTCALL uint64_t (*get_job_task_id_fn)(void *job);
typedef SWIFTCALL void *(*get_current_task_fn)(void);
typedef SWIFTCALL void (*job_run_fn)(void *job, void *executorIdentity, uintptr_t executorImplementation);
typedef SWIFTASYNCCALL void (*resume_fn)(ASYNC_CONTEXT void *context, SWIFT_CONTEXT void *error);

typedef SWIFTCALL const char *(*get_current_task_name_fn)(void);

static get_job_task_id_fn get_job_task_id;
// Swift 6.2+ (NULL before): the running task's name, which the runtime gives only to the task itself.
static get_current_task_name_fn get_current_task_name;
static get_current_task_fn get_current_task;
static job_run_fn swift_job_run_ptr;

static atc_callbacks callbacks;
static _Atomic int observing = 0;
static _Atomic int preload_active = 0;

static _Atomic uint64_t stat_jobs, stat_tasks, stat_completed, stat_unwrapped;

static inline uint32_t job_flags(void *job) { return *(uint32_t *)((char *)job + JOB_FLAGS_OFFSET); }
static inline _Atomic uintptr_t *job_reserved(void *job) {
    return (_Atomic uintptr_t *)((char *)job + JOB_RESERVED_OFFSET);
}

static int resolve_runtime(void) {
    if (get_job_task_id && get_current_task && swift_job_run_ptr) return 0;
    get_job_task_id = (get_job_task_id_fn)dlsym(RTLD_DEFAULT, "swift_task_getJobTaskId");
    get_current_task = (get_current_task_fn)dlsym(RTLD_DEFAULT, "swift_task_getCurrent");
    swift_job_run_ptr = (job_run_fn)dlsym(RTLD_DEFAULT, "swift_job_run");
    get_current_task_name = (get_current_task_name_fn)dlsym(RTLD_DEFAULT, "swift_task_getCurrentTaskName");
    return get_job_task_id && get_current_task && swift_job_run_ptr ? 0 : -1;
}

// --- completion wrappers: one per distinct original completion function ---
#define WRAPPERS 6
static _Atomic(resume_fn) originals[WRAPPERS];

/// The task whose run `run_observed` brackets on this thread (0: none), and whether that run was ended
/// at the task's completion (its after written there, not after the job returns).
static __thread uint64_t observed_task;
static __thread int observed_run_ended;
/// Inside a run one of our trampolines brackets (any depth): a swift_job_run the runtime makes there is
/// that run, not one to bracket again (`atc_run_job_direct`).
static __thread int in_observed_run;

static void task_completed(void) {
    void *task = get_current_task();
    if (!task) return;
    atomic_fetch_add_explicit(&stat_completed, 1, memory_order_relaxed);
    uint64_t id = ATC_TASK_ID_TAG | get_job_task_id(task);
    // The name is read here, inside the task: no other place can read it (see the header).
    if (get_current_task_name && callbacks.task_name) {
        const char *name = get_current_task_name();
        if (name && *name) callbacks.task_name(id, name);
    }
    if (observed_task == id && !observed_run_ended) {
        // Its run ends here (see the header): a completion inside another job's run (a task an actor's
        // drain ran inline) or in a run not bracketed leaves the runs as they are.
        observed_run_ended = 1;
        callbacks.after_and_destroy(id);
    } else {
        callbacks.task_complete(id);
    }
}

#define DEFINE_WRAPPER(n)                                                                   \
    static SWIFTASYNCCALL void completion_wrapper_##n(ASYNC_CONTEXT void *context,          \
                                                      SWIFT_CONTEXT void *error) {          \
        task_completed();                                                                   \
        resume_fn original = atomic_load_explicit(&originals[n], memory_order_relaxed);     \
        __attribute__((musttail)) return original(context, error);                         \
    }
DEFINE_WRAPPER(0)
DEFINE_WRAPPER(1)
DEFINE_WRAPPER(2)
DEFINE_WRAPPER(3)
DEFINE_WRAPPER(4)
DEFINE_WRAPPER(5)
static const resume_fn wrappers[WRAPPERS] = {
    completion_wrapper_0, completion_wrapper_1, completion_wrapper_2,
    completion_wrapper_3, completion_wrapper_4, completion_wrapper_5,
};

/// Replaces the completion function of `task`'s root context by a wrapper (the task is not running:
/// it is being enqueued, or it is the current task).
static void wrap_completion(void *task) {
    void *context = *(void **)((char *)task + TASK_RESUME_CONTEXT_OFFSET);
    for (int depth = 0; context && depth < 100000; depth++) {
        void *parent = *(void **)((char *)context + CONTEXT_PARENT_OFFSET);
        if (parent) { context = parent; continue; }
        resume_fn *slot = (resume_fn *)((char *)context + CONTEXT_RESUME_PARENT_OFFSET);
        resume_fn original = *slot;
        if (!original) break;
        for (int i = 0; i < WRAPPERS; i++) {
            if (original == wrappers[i]) return;  // wrapped already
        }
        for (int i = 0; i < WRAPPERS; i++) {
            resume_fn seen = atomic_load_explicit(&originals[i], memory_order_acquire);
            if (!seen) {
                resume_fn expected = NULL;
                if (atomic_compare_exchange_strong(&originals[i], &expected, original)) seen = original;
                else seen = expected;
            }
            if (seen == original) {
                *slot = wrappers[i];
                return;
            }
        }
        break;
    }
    atomic_fetch_add_explicit(&stat_unwrapped, 1, memory_order_relaxed);
}

// --- announcing tasks and jobs ---

/// The async id of the running task, announcing it first if it was never seen (a task started on an
/// executor we do not see, such as the main task); the thread's execution id outside any task.
static uint64_t current_trigger(void) {
    void *task = get_current_task();
    // The job goes on after its task's completion ended the run (task_completed): the runtime then releases
    // the actor the task completed on and enqueues that actor's drain, the task's doing, not the top level's.
    if (!task) return observed_task && observed_run_ended ? observed_task : callbacks.execution_id();
    uint64_t id = ATC_TASK_ID_TAG | get_job_task_id(task);
    _Atomic uintptr_t *reserved = job_reserved(task);
    if (atomic_load_explicit(reserved, memory_order_relaxed) == 0) {
        uint64_t trigger = callbacks.execution_id();
        uintptr_t expected = 0;
        if (atomic_compare_exchange_strong(reserved, &expected, (uintptr_t)(trigger << 1) | 1)) {
            atomic_fetch_add_explicit(&stat_tasks, 1, memory_order_relaxed);
            callbacks.task_init(id, trigger, job_flags(task));
            wrap_completion(task);
        }
    }
    // Its run is bracketed on this thread: the execution state names the innermost callback, the task's own
    // or one a library runs inside it (an AsyncResource's scope), as Node's triggerAsyncId does.
    if (observed_task == id) return observed_run_ended ? id : callbacks.execution_id();
    return id;
}

/// A job is being enqueued (on the enqueuer's thread): announce a task seen for the first time, or
/// give a non-task job its id. Nothing is read from the job after it reaches Dispatch but the
/// `Reserved` word written here, before.
static void job_enqueued(void *job) {
    uint32_t flags = job_flags(job);
    _Atomic uintptr_t *reserved = job_reserved(job);
    if ((flags & 0xff) == JOB_KIND_TASK) {
        if (atomic_load_explicit(reserved, memory_order_relaxed) != 0) return;
        uint64_t trigger = current_trigger();
        atomic_store_explicit(reserved, (uintptr_t)(trigger << 1) | 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&stat_tasks, 1, memory_order_relaxed);
        callbacks.task_init(ATC_TASK_ID_TAG | get_job_task_id(job), trigger, flags);
        wrap_completion(job);
    } else {
        // Jobs that are not tasks run once per enqueue (an actor's drain job is re-enqueued).
        uint64_t id = callbacks.job_init(flags & 0xff, current_trigger());
        atomic_store_explicit(reserved, (uintptr_t)(id << 1), memory_order_relaxed);
    }
}

/// Brackets one run of `job` by `run`. The task may be freed by the time `run` returns: everything
/// needed afterwards is read before.
static void run_observed(void *job, void (*run)(void *job)) {
    uint32_t flags = job_flags(job);
    uintptr_t reserved = atomic_load_explicit(job_reserved(job), memory_order_relaxed);
    atomic_fetch_add_explicit(&stat_jobs, 1, memory_order_relaxed);
    if ((flags & 0xff) == JOB_KIND_TASK) {
        uint64_t id = ATC_TASK_ID_TAG | get_job_task_id(job);
        uint64_t trigger = (reserved & 1) ? (uint64_t)(reserved >> 1) : 0;
        uint64_t outer_task = observed_task;
        int outer_ended = observed_run_ended;
        observed_task = id;
        observed_run_ended = 0;
        callbacks.before(id, trigger);
        in_observed_run++;
        run(job);
        in_observed_run--;
        if (!observed_run_ended) callbacks.after(id);
        observed_task = outer_task;
        observed_run_ended = outer_ended;
    } else if (reserved != 0) {
        uint64_t id = (uint64_t)(reserved >> 1);
        callbacks.before(id, 0);
        in_observed_run++;
        run(job);
        in_observed_run--;
        callbacks.after_and_destroy(id);
    } else {
        in_observed_run++;
        run(job);  // enqueued before observation began
        in_observed_run--;
    }
}

// --- preload mode: jobs run by a direct call of swift_job_run (the preload's interposer calls this) ---

static __thread job_run_fn direct_run;
static __thread void *direct_identity;
static __thread uintptr_t direct_implementation;
static void run_direct(void *job) { direct_run(job, direct_identity, direct_implementation); }

void atc_run_job_direct(void *job, void *executor_identity, uintptr_t executor_implementation, void *real_job_run) {
    job_run_fn real = (job_run_fn)real_job_run;
    if (!job || in_observed_run || !atomic_load_explicit(&preload_active, memory_order_relaxed)) {
        real(job, executor_identity, executor_implementation);
        return;
    }
    // The async main's first job (`main` runs it itself, on the main thread) and jobs of executors whose
    // enqueues Dispatch never saw: announced here as at an enqueue, then bracketed like any other run.
    job_run_fn saved_run = direct_run;
    void *saved_identity = direct_identity;
    uintptr_t saved_implementation = direct_implementation;
    direct_run = real;
    direct_identity = executor_identity;
    direct_implementation = executor_implementation;
    job_enqueued(job);
    run_observed(job, run_direct);
    direct_run = saved_run;
    direct_identity = saved_identity;
    direct_implementation = saved_implementation;
}

// --- preload mode: the dispatch interposers call these ---

static _Atomic(void (*)(void *)) learned_run_job;
static uintptr_t runtime_text_begin, runtime_text_end;

static void run_with_learned(void *job) { atomic_load_explicit(&learned_run_job, memory_order_relaxed)(job); }
static void dispatch_trampoline(void *job) { run_observed(job, run_with_learned); }

int atc_is_swift_run_job(void (*work)(void *)) {
    void (*known)(void *) = atomic_load_explicit(&learned_run_job, memory_order_relaxed);
    if (known) return work == known;
    if (runtime_text_end == 0) return 0;
    uintptr_t w = (uintptr_t)work;
    if (w < runtime_text_begin || w >= runtime_text_end) return 0;
    // The runtime hands Dispatch one function per job: __swift_run_job.
    void (*expected)(void *) = NULL;
    atomic_compare_exchange_strong(&learned_run_job, &expected, work);
    return atomic_load_explicit(&learned_run_job, memory_order_relaxed) == work;
}

void (*atc_wrap_dispatch(void *job, void (*run)(void *)))(void *) {
    if (!atomic_load_explicit(&preload_active, memory_order_relaxed) || !job) return run;
    job_enqueued(job);
    return dispatch_trampoline;
}

/// The executable segment of libswift_Concurrency.so (where __swift_run_job lives).
static int find_text_segment(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    if (info->dlpi_addr != (ElfW(Addr))(uintptr_t)data) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            runtime_text_begin = info->dlpi_addr + ph->p_vaddr;
            runtime_text_end = runtime_text_begin + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

static void find_runtime_text(void) {
    void *symbol = dlsym(RTLD_DEFAULT, "swift_task_getCurrent");
    Dl_info info;
    if (!symbol || !dladdr(symbol, &info) || !info.dli_fbase) return;
    dl_iterate_phdr(find_text_segment, info.dli_fbase);
}

void atc_set_preload_active(int active) {
    if (active) find_runtime_text();
    atomic_store(&preload_active, active);
}
int atc_preload_active(void) { return atomic_load(&preload_active); }

// --- in-process mode: swift_task_enqueueGlobal_hook ---

typedef void *dispatch_queue_t;
typedef SWIFTCALL void (*enqueue_original_fn)(void *job);
typedef SWIFTCALL void (*enqueue_hook_fn)(void *job, enqueue_original_fn original);

static void (*d_async_f)(dispatch_queue_t, void *, void (*)(void *));
static void *(*d_attr_qos)(void *attr, int qos, int relative);
static dispatch_queue_t (*d_queue_create)(const char *, void *attr);
static void (*d_set_width)(dispatch_queue_t, long);
static void *d_attr_concurrent;
static _Atomic(dispatch_queue_t) queues[0x22];

static dispatch_queue_t queue_for(uint32_t priority) {
    if (priority > 0x21) priority = 0;
    dispatch_queue_t q = atomic_load_explicit(&queues[priority], memory_order_acquire);
    if (q) return q;
    // As the runtime makes its own on Linux: concurrent, at the priority's QoS, one thread per CPU.
    void *attr = d_attr_qos(d_attr_concurrent, (int)priority, 0);
    dispatch_queue_t created = d_queue_create("asynctrace observed global concurrent queue", attr);
    d_set_width(created, -3);
    dispatch_queue_t expected = NULL;
    if (!atomic_compare_exchange_strong(&queues[priority], &expected, created)) return expected;  // leaks one queue
    return created;
}

static void run_via_job_run(void *job) { swift_job_run_ptr(job, NULL, 0); }
static void hook_trampoline(void *job) { run_observed(job, run_via_job_run); }

static SWIFTCALL void enqueue_global_hook(void *job, enqueue_original_fn original) {
    if (!atomic_load_explicit(&observing, memory_order_relaxed)) { original(job); return; }
    job_enqueued(job);
    *(void **)((char *)job + JOB_SCHEDULER_QUEUE_OFFSET) = (void *)1;  // DISPATCH_QUEUE_GLOBAL_EXECUTOR
    d_async_f(queue_for((job_flags(job) >> 8) & 0xff), job, hook_trampoline);
}

int atc_install_enqueue_hook(void) {
    if (resolve_runtime() != 0) return -1;
    enqueue_hook_fn *hook = (enqueue_hook_fn *)dlsym(RTLD_DEFAULT, "swift_task_enqueueGlobal_hook");
    d_async_f = dlsym(RTLD_DEFAULT, "dispatch_async_f");
    d_attr_qos = dlsym(RTLD_DEFAULT, "dispatch_queue_attr_make_with_qos_class");
    d_queue_create = dlsym(RTLD_DEFAULT, "dispatch_queue_create");
    d_set_width = dlsym(RTLD_DEFAULT, "dispatch_queue_set_width");
    d_attr_concurrent = dlsym(RTLD_DEFAULT, "_dispatch_queue_attr_concurrent");
    if (!hook || !d_async_f || !d_attr_qos || !d_queue_create || !d_set_width || !d_attr_concurrent) return -1;
    *hook = enqueue_global_hook;
    return 0;
}

void atc_set_callbacks(const atc_callbacks *cb) {
    resolve_runtime();
    callbacks = *cb;
    atomic_store(&observing, 1);
}

atc_statistics atc_get_statistics(void) {
    atc_statistics s = {
        atomic_load(&stat_jobs), atomic_load(&stat_tasks), atomic_load(&stat_completed), atomic_load(&stat_unwrapped),
    };
    return s;
}

uint64_t atc_current_task_id(void) {
    if (resolve_runtime() != 0) return 0;
    void *task = get_current_task();
    return task ? get_job_task_id(task) : 0;
}
