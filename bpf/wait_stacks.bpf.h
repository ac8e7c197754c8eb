// Wait stacks (record --stack-threshold), included by syscall_probes.bpf.c after stack_capture.bpf.h:
// the user stack that made a long wait, as a KP_RECORD_WAIT_STACK record after the wait's own.
//
// - A traced syscall that took >= stack_threshold_ns: emit_wait_stack at its sys_exit (frame pointers,
//   and with --stack-copy the registers and top of the stack for unwinding by CFI).
// - An off-CPU wait outside traced syscalls: the frame-pointer walk is stashed at each sleeping
//   switch-out (the wait's length is not known yet); at the switch-in, if it was long, the stash
//   becomes the record. The switch-in runs in another task's context, where the waiting thread's
//   stack cannot be copied; so when the thread waited inside an (untraced) syscall and --stack-copy is
//   on, the record is deferred to the first of that syscall's sys_exit or the thread's next
//   switch-out, both in its own context with the same user registers, and gets the copy there.
//   A per-CPU flag (kp_cpu_state.wait_stack_pending: the CPU's current task has one deferred) keeps
//   this to one load for every other syscall exit.

// A wait-stack record and the stack copy that follows it, built per CPU (a perf-event sample may
// interrupt this program on its CPU: it has its own scratch).
struct wait_scratch {
    struct kp_wait_stack_record record;
    __u8 stack[KP_STACK_COPY_BUFFER];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct wait_scratch);
} wait_scratch SEC(".maps");

// This CPU's scratch with a wait-stack record's header filled in (nil: no scratch); the caller adds the
// frames and the stack copy.
static __always_inline struct wait_scratch *wait_record(__u32 tgid, __u32 tid, __u32 cause, __u64 time_ns,
                                                       __u64 duration_ns, __s32 nr, __s32 fd) {
    __u32 zero = 0;
    struct wait_scratch *scratch = bpf_map_lookup_elem(&wait_scratch, &zero);
    if (!scratch)
        return 0;
    struct kp_wait_stack_record *r = &scratch->record;
    r->kind = KP_RECORD_WAIT_STACK;
    r->tgid = tgid;
    r->tid = tid;
    r->cause = cause;
    r->time_ns = time_ns;
    r->duration_ns = duration_ns;
    r->nr = nr;
    r->fd = fd;
    return scratch;
}

// The record in `scratch` and `copied` bytes of stack copy after it, into the ring.
static __always_inline void submit_wait_stack(struct wait_scratch *scratch, __u32 copied) {
    struct kp_wait_stack_record *r = &scratch->record;
    if (copied > KP_STACK_COPY_MAX)
        copied = 0; // cannot happen; tells the verifier the bound
    r->stack_bytes = copied;
    struct bpf_dynptr out;
    if (bpf_ringbuf_reserve_dynptr(&events, sizeof(*r) + copied, 0, &out) != 0) {
        bpf_ringbuf_discard_dynptr(&out, 0);
        __sync_fetch_and_add(&dropped_records, 1);
        return;
    }
    if (bpf_dynptr_write(&out, 0, r, sizeof(*r), 0) != 0 ||
        (copied && bpf_dynptr_write(&out, sizeof(*r), scratch->stack, copied, 0) != 0)) {
        bpf_ringbuf_discard_dynptr(&out, 0);
        __sync_fetch_and_add(&dropped_records, 1);
        return;
    }
    bpf_ringbuf_submit_dynptr(&out, wakeup_flag());
}

// The user stack of a long wait of the current thread, as its own record after the wait's: frame
// pointers, and with --stack-copy the registers and top of the stack for unwinding by CFI.
static __always_inline void emit_wait_stack(void *ctx, __u32 tgid, __u32 tid, __u32 cause, __s32 nr, __s32 fd,
                                            __u64 now, __u64 duration) {
    struct wait_scratch *scratch = wait_record(tgid, tid, cause, now, duration, nr, fd);
    if (!scratch)
        return;
    struct kp_wait_stack_record *r = &scratch->record;
    r->user_count = capture_user_stack(ctx, r->frames) / 8;
    capture_stack_top(r->stack_top);
    __u32 copied = 0;
    if (stack_copy_bytes)
        copied = copy_user_stack(bpf_get_current_task_btf(), &r->regs, scratch->stack, wait_copy_bytes());
    submit_wait_stack(scratch, copied);
}

// One traced thread's user stack from its latest sleeping switch-out outside a traced syscall (the
// frame-pointer walk and the stack top), written at its switch-in if the wait was long. A deferred
// record (see above) also keeps what the record needs from the switch-in, and the user registers it
// slept with: at a later syscall exit, other registers mean another syscall (an exception taken for a
// syscall, see regs_in_syscall, has others at the next syscall's exit).
struct wait_stash {
    __u64 off_ns;     // the switch-out it belongs to
    __u32 bytes;      // of frames
    __u32 deferred;   // 1: a long wait in a syscall, waiting for the copy in the thread's own context
    __s32 nr;         // deferred: the syscall it waited in
    __u32 state;      // deferred: its off-CPU state (as kp_offcpu_record.state)
    __u64 on_ns;      // deferred: its switch-in
    __u64 blocked_ns; // deferred: the time it was blocked
    __u64 user_ip;    // deferred: its user registers
    __u64 user_sp;
    __u64 stack_top[KP_STACK_TOP_WORDS];
    __u64 frames[KP_SAMPLE_MAX_FRAMES];
};

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct wait_stash);
} wait_stash_by_task SEC(".maps");

#define ENOSYS 38
#define NR_execve 59
#define NR_execveat 322

// Whether a task's saved user registers are a syscall's (x86_64: entry sets ax to -ENOSYS and
// orig_ax to the number; an exception stores its error code in orig_ax, an interrupt a negative
// vector). Exact for syscalls; an exception taken with ax == -ENOSYS would pass too.
static __always_inline bool regs_in_syscall(const struct pt_regs *regs) {
    return (long)regs->orig_ax >= 0 && (long)regs->ax == -ENOSYS;
}

// Whether the copy of long off-CPU waits can be deferred to the thread's own context at all.
static __always_inline bool defers_offcpu_copies(void) { return stack_threshold_ns && stack_copy_bytes; }

// A stash as a wait-stack record: its frames and stack top, and with `with_copy` (the current task's
// own context, still in the syscall it waited in) the registers and top of the stack.
static __always_inline void emit_stash(struct wait_stash *w, __u32 tgid, __u32 tid, __u32 state, __u64 on_ns,
                                       __u64 blocked_ns, bool with_copy) {
    struct wait_scratch *scratch = wait_record(tgid, tid, KP_WAIT_OFFCPU, on_ns, blocked_ns, state, -1);
    if (!scratch)
        return;
    struct kp_wait_stack_record *r = &scratch->record;
    __u32 bytes = w->bytes & 0x3f8;
    r->user_count = bytes / 8;
    __builtin_memcpy(r->stack_top, w->stack_top, sizeof(r->stack_top));
    if (bytes > sizeof(r->frames) || bpf_probe_read_kernel(r->frames, bytes, w->frames) != 0)
        r->user_count = 0;
    __u32 copied = 0;
    if (with_copy)
        copied = copy_user_stack(bpf_get_current_task_btf(), &r->regs, scratch->stack, wait_copy_bytes());
    submit_wait_stack(scratch, copied);
}

// At the switch-in of `task` (not the current task) after a long off-CPU wait outside traced
// syscalls: its stash as a record now, or, inside a syscall, marked to be written with a copy of the
// stack in its own context (take_deferred_wait_stack). `cpu` is the CPU it is switched in on.
static __always_inline void emit_offcpu_stack(struct task_struct *task, __u32 cpu, __u64 off_ns,
                                              const struct kp_offcpu_record *off) {
    struct wait_stash *w = bpf_task_storage_get(&wait_stash_by_task, task, 0, 0);
    if (!w || w->off_ns != off_ns || w->bytes == 0)
        return; // it slept inside a traced syscall (whose exit takes the stack), or nothing was walked
    w->off_ns = 0;
    if (defers_offcpu_copies() && cpu < KP_MAX_CPUS) {
        struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
        long nr = regs ? (long)regs->orig_ax : -1;
        // execve's exit has the new program's registers and stack.
        if (regs && regs_in_syscall(regs) && nr != NR_execve && nr != NR_execveat) {
            w->deferred = 1;
            w->nr = nr;
            w->state = off->state;
            w->on_ns = off->on_ns;
            w->blocked_ns = off->blocked_ns;
            w->user_ip = regs->ip;
            w->user_sp = regs->sp;
            cpu_states[cpu].wait_stack_pending = 1;
            return;
        }
    }
    emit_stash(w, off->tgid, off->tid, off->state, off->on_ns, off->blocked_ns, false);
}

// The current task's deferred wait stack, in its own context (its sys_exit or its next switch-out):
// with the copy if it is still in the syscall it waited in, else with the walk alone (a thread
// exiting inside it has no user memory left to copy).
static __always_inline void emit_deferred_wait_stack(struct task_struct *task) {
    struct wait_stash *w = bpf_task_storage_get(&wait_stash_by_task, task, 0, 0);
    if (!w || !w->deferred)
        return;
    w->deferred = 0;
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
    bool same_syscall = regs && (long)regs->orig_ax == w->nr && regs->ip == w->user_ip && regs->sp == w->user_sp;
    emit_stash(w, task->tgid, task->pid, w->state, w->on_ns, w->blocked_ns, same_syscall);
}

// At a sys_exit: the current task's deferred wait stack if this CPU says it has one. Otherwise one
// load (the flag is set only where copies are deferred: no settings need to be read first).
static __always_inline void take_deferred_wait_stack(void) {
    __u32 cpu = bpf_get_smp_processor_id();
    if (cpu >= KP_MAX_CPUS || !cpu_states[cpu].wait_stack_pending)
        return;
    cpu_states[cpu].wait_stack_pending = 0;
    emit_deferred_wait_stack(bpf_get_current_task_btf());
}
