// CPU samples of the traced process tree, included at the end of syscall_probes.bpf.c so they
// share its tgid filter bitmap and ring buffer (one object, one .bss).
//
// `on_cpu_sample` runs on a software cpu-clock perf event, one per CPU, opened by the loader at
// the requested frequency. For a traced thread it copies the user stack by frame pointers
// (bpf_get_stack with BPF_F_USER_STACK: the kernel walks %rbp from the user registers, even when
// the sample interrupted a syscall; stack_capture.bpf.h), on request the kernel stack, and with
// --stack-copy the user registers and the top of the user stack, which user space unwinds by CFI
// where frame pointers are missing. Everything else is left to user space: interning the stacks,
// mappings, symbols, unwinding.

// Copy the kernel stack too (record --kernel-stacks).
const volatile __u32 sample_kernel_stacks = 0;

// Samples lost (ring full) are counted with the other records in `dropped_records`.

struct sample_scratch {
    struct kp_sample_record record;
    __u8 stack[KP_STACK_COPY_BUFFER];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct sample_scratch);
} sample_scratch SEC(".maps");

SEC("perf_event")
int on_cpu_sample(struct bpf_perf_event_data *ctx) {
    struct task_struct *task = bpf_get_current_task_btf();
    __u32 tgid = task->tgid;
    if (tgid == 0 || !is_traced(tgid))
        return 0;
    __u32 zero = 0;
    struct sample_scratch *scratch = bpf_map_lookup_elem(&sample_scratch, &zero);
    if (!scratch)
        return 0;
    struct kp_sample_record *r = &scratch->record;
    r->kind = KP_RECORD_CPU_SAMPLE;
    r->tgid = tgid;
    r->tid = task->pid;
    r->time_ns = bpf_ktime_get_ns();
    __u32 uoff = capture_user_stack(ctx, r->frames);
    long kbytes = 0;
    if (sample_kernel_stacks) {
        kbytes = bpf_get_stack(ctx, (__u8 *)r->frames + uoff, KP_SAMPLE_STACK_BYTES, 0);
        if (kbytes < 0)
            kbytes = 0;
    }
    __u32 koff = (__u32)kbytes & 0x3f8;
    r->user_count = uoff / 8;
    r->kernel_count = koff / 8;
    __u32 copied = 0;
    if (stack_copy_bytes)
        copied = copy_user_stack(task, &r->regs, scratch->stack, stack_copy_bytes);
    if (copied > KP_STACK_COPY_MAX)
        copied = 0; // cannot happen; tells the verifier the bound
    r->stack_bytes = copied;
    __u32 head = offsetof(struct kp_sample_record, frames) + uoff + koff;
    if (head > sizeof(*r))
        return 0; // cannot happen; tells the verifier the bound
    if (copied == 0) {
        if (bpf_ringbuf_output(&events, r, head, wakeup_flag()) != 0)
            __sync_fetch_and_add(&dropped_records, 1);
        return 0;
    }
    // Header, frames and stack bytes in one record of the exact size.
    struct bpf_dynptr out;
    if (bpf_ringbuf_reserve_dynptr(&events, head + copied, 0, &out) != 0) {
        bpf_ringbuf_discard_dynptr(&out, 0);
        __sync_fetch_and_add(&dropped_records, 1);
        return 0;
    }
    if (bpf_dynptr_write(&out, 0, r, head, 0) != 0 || bpf_dynptr_write(&out, head, scratch->stack, copied, 0) != 0) {
        bpf_ringbuf_discard_dynptr(&out, 0);
        __sync_fetch_and_add(&dropped_records, 1);
        return 0;
    }
    bpf_ringbuf_submit_dynptr(&out, wakeup_flag());
    return 0;
}

// The mappings of a traced process change wholesale at execve; user space re-reads them.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) {
    __u32 tgid = p->tgid;
    if (!is_traced(tgid))
        return 0;
    struct kp_exec_record r = {.kind = KP_RECORD_PROCESS_EXEC, .tgid = tgid, .time_ns = bpf_ktime_get_ns()};
    if (bpf_ringbuf_output(&events, &r, sizeof(r), BPF_RB_FORCE_WAKEUP) != 0)
        __sync_fetch_and_add(&dropped_records, 1);
    return 0;
}
