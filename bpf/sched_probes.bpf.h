// Scheduler and thread identity (included by syscall_probes.bpf.c).
//
// A traced thread's time off the CPU becomes one record, written when it is switched back in:
// how long it was blocked (switch-out -> wakeup), how long it then waited for a CPU (wakeup or
// preemption -> switch-in), its state at switch-out, and who woke it. Between switch-out and
// switch-in the episode lives in task storage. Untraced threads cost a bitmap test per event.
//
// Rarely (~1 in 100-200 short recordings, 0.18% of the episodes of a fork-heavy program) the
// sched_switch tracepoint's program does not run for a traced thread's switch-in (and mostly not the
// sched_waking one for its wakeup either), although the thread's context-switch counts say it ran. On
// the VM this was measured on, no program here runs while a thread of its init process (PID 1, the
// sandbox's agent) is current, and every miss was a switch away from one (docs/kernel-probes.md). Its
// next switch-out (or its exit, on_process_exit) then finds the episode still open: it is written as
// KP_OFFCPU_SWITCH_IN_NOT_SEEN rather than overwritten, so the loss is counted and the time it hides
// is known to be unknown. A thread asleep when its process began to be traced gets its episode from
// the loader (open_episodes_of_sleepers), so that one is caught the same way.

// 1 + the syscall `task` is in by its saved user registers (0: none: a page fault, an interrupt). Read
// at a sleeping switch-out: names a wait in a syscall the probes do not record (wait4, rt_sigsuspend)
// or one that began before tracing did (an attached server's epoll_wait).
static __always_inline __u32 syscall_slept_in(struct task_struct *task) {
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
    if (!regs || !regs_in_syscall(regs) || regs->orig_ax >= 0xffff)
        return 0;
    return (__u32)regs->orig_ax + 1;
}

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct kp_offcpu_episode);
} offcpu_by_task SEC(".maps");

#define TASK_INTERRUPTIBLE 0x1
#define TASK_UNINTERRUPTIBLE 0x2
#define TASK_REPORT 0x7f

// Whether a wakeup comes from an interrupt (a timer, I/O completion) rather than from the current
// task. The preempt count would say so directly, but it is a per-CPU variable that typed ksyms can
// reach only with CONFIG_KALLSYMS_ALL. Instead, on x86_64:
// - an interrupt of kernel code runs on the CPU's IRQ stack: the probe's own frame then lies
//   outside the current task's stack;
// - an interrupt of user code runs on the task's stack, but a user task can only wake another
//   while in a syscall, and during a syscall its saved registers have orig_ax = the syscall number
//   and ax = -ENOSYS (set at entry, replaced by the return value only at exit).
// Kernel threads (kworker, ksoftirqd) are named as the waker.
#define TASK_STACK_WINDOW (64u << 10) // >= THREAD_SIZE (16 KiB, 32 KiB with KASAN)
#define PF_KTHREAD 0x00200000

// At the switch-out (or exit) of `prev` (current) at `now`, its episode `o` still open: the switch-in
// that should have closed it was not delivered (or skipped by a guard below). Written as what is
// known: the switch-out, the blocked part if its wakeup was seen (exact), and the rest up to now,
// unknown (runnable, then on a CPU from the unseen switch-in).
static __always_inline void emit_switch_in_not_seen(struct task_struct *prev, const struct kp_offcpu_episode *o, __u64 now) {
    __u64 off = o->off_ns < now ? o->off_ns : now;
    struct kp_offcpu_record r = {
        .kind = KP_RECORD_OFFCPU,
        .tgid = prev->tgid,
        .tid = prev->pid,
        .state = KP_OFFCPU_SWITCH_IN_NOT_SEEN,
        .waker_tgid = o->waker_tgid,
        .waker_tid = o->waker_tid,
        .on_ns = now,
    };
    bool sleeping = o->state != KP_OFFCPU_PREEMPTED || o->sleep_state != 0;
    if (sleeping && o->wake_ns >= off && o->wake_ns <= now)
        r.blocked_ns = o->wake_ns - off;
    r.state |= o->syscall << 16; // see kp_offcpu_record (0 unless it left with a sleep state)
    r.runqueue_ns = now - off - r.blocked_ns;
    if (bpf_ringbuf_output(&events, &r, sizeof(r), wakeup_flag()) != 0)
        __sync_fetch_and_add(&dropped_records, 1);
}

static __always_inline bool woken_by_interrupt(struct task_struct *cur) {
    if (cur->pid == 0)
        return true; // the idle task wakes nobody itself
    volatile __u64 marker = 0;
    __u64 sp = (__u64)&marker;
    __u64 stack = (__u64)cur->stack;
    if (sp < stack || sp - stack >= TASK_STACK_WINDOW)
        return true;
    if (cur->flags & PF_KTHREAD)
        return false;
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(cur);
    if (!regs)
        return false;
    return !regs_in_syscall(regs);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
             unsigned int prev_state) {
    __u32 cpu = bpf_get_smp_processor_id();
    if (cpu < KP_MAX_CPUS) {
        cpu_states[cpu].current_tgid = next->tgid; // for cpu_runs_untraced()
        // prev (still the current task) leaves with a deferred wait stack its syscall's exit has not
        // taken: taken now, in its own context, before it can walk a new stash.
        if (cpu_states[cpu].wait_stack_pending) {
            cpu_states[cpu].wait_stack_pending = 0;
            emit_deferred_wait_stack(prev);
        }
    }
    bool prev_traced = is_traced(prev->tgid), next_traced = is_traced(next->tgid);
    if (!prev_traced && !next_traced)
        return 0;
    __u64 now = bpf_ktime_get_ns();
    if (prev_traced && prev->pid != 0) {
        struct kp_offcpu_episode *o = bpf_task_storage_get(&offcpu_by_task, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
        if (o) {
            if (o->off_ns != 0 && !o->assumed)
                emit_switch_in_not_seen(prev, o, now);
            __u32 st = prev_state & TASK_REPORT;
            __u32 sleep = (st & TASK_INTERRUPTIBLE)     ? KP_OFFCPU_SLEEPING
                          : (st & TASK_UNINTERRUPTIBLE) ? KP_OFFCPU_UNINTERRUPTIBLE
                                                        : KP_OFFCPU_OTHER;
            // Preempted with a sleep state set (between set_current_state and schedule, e.g. at
            // futex_wait's unlock): still runnable, but if its wakeup comes before it runs again, the
            // time until then was the wait it was entering.
            o->state = (preempt || st == 0) ? KP_OFFCPU_PREEMPTED : sleep;
            o->sleep_state = (preempt && st != 0) ? sleep : 0;
            o->syscall = st != 0 ? syscall_slept_in(prev) : 0;
            o->off_ns = now;
            o->wake_ns = 0;
            o->waker_tgid = 0;
            o->waker_tid = 0;
            o->assumed = 0;
            if (stack_threshold_ns && o->state != KP_OFFCPU_PREEMPTED) {
                struct inflight *s = bpf_task_storage_get(&inflight_by_task, prev, 0, 0);
                if (!s || !s->active) {
                    struct wait_stash *w =
                        bpf_task_storage_get(&wait_stash_by_task, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
                    if (w) {
                        w->off_ns = now;
                        w->deferred = 0;
                        w->bytes = capture_user_stack(ctx, w->frames); // prev is the current task
                        capture_stack_top(w->stack_top);
                    }
                }
            }
        } else {
            __sync_fetch_and_add(&dropped_records, 1);
        }
    }
    if (next_traced) {
        struct kp_offcpu_episode *o = bpf_task_storage_get(&offcpu_by_task, next, 0, 0);
        if (!o) {
            // Switched out before it was traced and not woken since: runnable since tracing began (a
            // new thread has its episode from sched_wakeup_new, a woken one from sched_waking).
            __u64 since = tracing_since_ns;
            if (since == 0 || since > now || next->pid == 0)
                return 0;
            struct kp_offcpu_record first = {
                .kind = KP_RECORD_OFFCPU,
                .tgid = next->tgid,
                .tid = next->pid,
                .state = KP_OFFCPU_PREEMPTED,
                .on_ns = now,
                .runqueue_ns = now - since,
            };
            // The episode is closed: later switch-ins find off_ns 0 until a switch-out opens one.
            bpf_task_storage_get(&offcpu_by_task, next, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
            if (bpf_ringbuf_output(&events, &first, sizeof(first), wakeup_flag()) != 0)
                __sync_fetch_and_add(&dropped_records, 1);
            return 0;
        }
        if (o->off_ns == 0 || o->off_ns > now)
            return 0; // no episode open
        struct kp_offcpu_record r = {
            .kind = KP_RECORD_OFFCPU,
            .tgid = next->tgid,
            .tid = next->pid,
            .state = o->state,
            .waker_tgid = o->waker_tgid,
            .waker_tid = o->waker_tid,
            .on_ns = now,
        };
        __u64 runnable_since = o->off_ns;
        if (o->state == KP_OFFCPU_PREEMPTED && o->sleep_state && o->wake_ns >= o->off_ns && o->wake_ns <= now)
            r.state = o->sleep_state; // woken while preempted on its way to sleep: blocked until then
        if (r.state != KP_OFFCPU_PREEMPTED) {
            // A wakeup not seen (it came before tracing began) counts the whole episode as blocked.
            runnable_since = (o->wake_ns >= o->off_ns && o->wake_ns <= now) ? o->wake_ns : now;
            r.blocked_ns = runnable_since - o->off_ns;
            r.state |= o->syscall << 16; // see kp_offcpu_record
        }
        r.runqueue_ns = now - runnable_since;
        if (stack_threshold_ns && r.state != KP_OFFCPU_PREEMPTED && r.blocked_ns >= stack_threshold_ns)
            emit_offcpu_stack(next, cpu, o->off_ns, &r);
        o->off_ns = 0;
        if (bpf_ringbuf_output(&events, &r, sizeof(r), wakeup_flag()) != 0)
            __sync_fetch_and_add(&dropped_records, 1);
    }
    return 0;
}

// sched_waking rather than sched_wakeup: it runs in the waker's context (try_to_wake_up), while
// sched_wakeup may run later on the target CPU (a queued remote wakeup), where the current task is
// not the waker.
SEC("tp_btf/sched_waking")
int BPF_PROG(on_sched_waking, struct task_struct *p) {
    if (!is_traced(p->tgid))
        return 0;
    struct kp_offcpu_episode *o = bpf_task_storage_get(&offcpu_by_task, p, 0, 0);
    __u64 now = bpf_ktime_get_ns();
    if (!o) {
        // Asleep since before it was traced (an attached process's thread, the held child): blocked
        // since tracing began. (A task woken before it slept never switched out: its switch-out
        // overwrites this episode.)
        __u64 since = tracing_since_ns;
        if (since == 0 || since > now)
            return 0;
        o = bpf_task_storage_get(&offcpu_by_task, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
        if (!o)
            return 0;
        o->state = KP_OFFCPU_SLEEPING;
        o->sleep_state = 0;
        o->syscall = syscall_slept_in(p); // asleep in the kernel: its saved registers hold still
        o->off_ns = since;
        o->wake_ns = 0;
        o->assumed = 1;
    }
    if (o->off_ns == 0 || o->wake_ns != 0)
        return 0; // not switched out, or already woken (a second waker changes nothing)
    o->wake_ns = now;
    struct task_struct *cur = bpf_get_current_task_btf();
    if (!woken_by_interrupt(cur)) {
        o->waker_tgid = cur->tgid;
        o->waker_tid = cur->pid;
    }
    return 0;
}

// A new thread's first wait for a CPU: runnable since it was woken by its creator.
SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(on_sched_wakeup_new, struct task_struct *p) {
    if (!is_traced(p->tgid))
        return 0;
    struct kp_offcpu_episode *o = bpf_task_storage_get(&offcpu_by_task, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!o)
        return 0;
    __u64 now = bpf_ktime_get_ns();
    struct task_struct *cur = bpf_get_current_task_btf();
    o->state = KP_OFFCPU_PREEMPTED; // never ran: all of the wait is run-queue wait
    o->sleep_state = 0;
    o->off_ns = now;
    o->wake_ns = now;
    o->waker_tgid = cur->tgid;
    o->waker_tid = cur->pid;
    o->assumed = 0;
    return 0;
}

static __always_inline void emit_thread(__u32 kind, __u32 tgid, __u32 tid, const char *comm, bool user_comm) {
    struct kp_thread_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) {
        __sync_fetch_and_add(&dropped_records, 1);
        return;
    }
    r->kind = kind;
    r->tgid = tgid;
    r->tid = tid;
    r->reserved = 0;
    r->time_ns = bpf_ktime_get_ns();
    __builtin_memset(r->comm, 0, sizeof(r->comm));
    bpf_probe_read_kernel_str(r->comm, sizeof(r->comm), comm);
    bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP); // rare: wake at once
}

// A thread was renamed (prctl(PR_SET_NAME), pthread_setname_np, writing /proc/.../comm, exec).
SEC("tp_btf/task_rename")
int BPF_PROG(on_task_rename, struct task_struct *task, const char *comm) {
    if (!is_traced(task->tgid))
        return 0;
    emit_thread(KP_RECORD_THREAD_NAME, task->tgid, task->pid, comm, false);
    return 0;
}
