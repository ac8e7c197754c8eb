// CPU samples of the traced process tree, included at the end of syscall_probes.bpf.c so they
// share its tgid filter bitmap and ring buffer (one object, one .bss).
//
// `on_cpu_sample` runs on a software cpu-clock perf event, one per CPU, opened by the loader at
// the requested frequency. For a traced thread it copies the user stack by frame pointers
// (bpf_get_stack with BPF_F_USER_STACK: the kernel walks %rbp from the user registers, even when
// the sample interrupted a syscall) and, on request, the kernel stack. Everything else is left to
// user space: interning the stacks, mappings, symbols.
#include "cpu_sample.h"

// Copy the kernel stack too (record --kernel-stacks).
const volatile __u32 sample_kernel_stacks = 0;

// Samples lost (ring full) are counted with the other records in `dropped_records`.

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kp_sample_record);
} sample_scratch SEC(".maps");

#define KP_SAMPLE_STACK_BYTES (KP_SAMPLE_MAX_FRAMES * 8)

SEC("perf_event")
int on_cpu_sample(struct bpf_perf_event_data *ctx) {
    struct task_struct *task = bpf_get_current_task_btf();
    __u32 tgid = task->tgid;
    if (tgid == 0 || !is_traced(tgid))
        return 0;
    __u32 zero = 0;
    struct kp_sample_record *r = bpf_map_lookup_elem(&sample_scratch, &zero);
    if (!r)
        return 0;
    r->kind = KP_RECORD_CPU_SAMPLE;
    r->tgid = tgid;
    r->tid = task->pid;
    r->time_ns = bpf_ktime_get_ns();
    long ubytes = bpf_get_stack(ctx, r->frames, KP_SAMPLE_STACK_BYTES, BPF_F_USER_STACK);
    if (ubytes < 0)
        ubytes = 0;
    __u32 uoff = (__u32)ubytes & 0x3f8; // < KP_SAMPLE_STACK_BYTES, a whole number of frames
    long kbytes = 0;
    if (sample_kernel_stacks) {
        kbytes = bpf_get_stack(ctx, (__u8 *)r->frames + uoff, KP_SAMPLE_STACK_BYTES, 0);
        if (kbytes < 0)
            kbytes = 0;
    }
    __u32 koff = (__u32)kbytes & 0x3f8;
    r->user_count = uoff / 8;
    r->kernel_count = koff / 8;
    __u64 size = offsetof(struct kp_sample_record, frames) + uoff + koff;
    if (size > sizeof(*r))
        return 0; // cannot happen; tells the verifier the bound
    if (bpf_ringbuf_output(&events, r, size, wakeup_flag()) != 0)
        __sync_fetch_and_add(&dropped_records, 1);
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
