// Loop phases of libuv programs (node) from the binary: one program, attached by the loader
// (kp_probes_attach_loop) as uprobes and uretprobes on libuv's phase functions of one process at a
// time; the attach cookie says which phase begins. Included at the end of syscall_probes.bpf.c.
#include "loop_phase.h"

SEC("uprobe")
int on_loop_phase(struct pt_regs *ctx) {
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tgid = pid_tgid >> 32;
    if (!is_traced(tgid))
        return 0;
    struct kp_loop_record r = {
        .kind = KP_RECORD_LOOP_PHASE,
        .tgid = tgid,
        .tid = (__u32)pid_tgid,
        .phase = (__u32)bpf_get_attach_cookie(ctx),
        .time_ns = bpf_ktime_get_ns(),
    };
    if (bpf_ringbuf_output(&events, &r, sizeof(r), wakeup_flag()) != 0)
        __sync_fetch_and_add(&dropped_records, 1);
    return 0;
}
