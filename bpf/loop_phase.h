// The loop-phase record of the kernel probes (record --node-loop-phases), shared by
// bpf/loop_probes.bpf.h and the loader (Sources/CKernelProbes/include/loop_phase.h is a symlink to
// it). Plain fixed-width C types only.
#ifndef ASYNCTRACE_LOOP_PHASE_H
#define ASYNCTRACE_LOOP_PHASE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

// Record kind of this file (the first field, as in syscall_event.h; 16-18 are the samples').
#define KP_RECORD_LOOP_PHASE 24u // struct kp_loop_record

// The attach cookie of a loop uprobe and the record's `phase`: TraceFormat's TraceLoopPhase value,
// plus this bit when the phase also begins a loop iteration.
#define KP_LOOP_STARTS_ITERATION 0x100u

// A libuv loop thread of a traced process entered a phase (a uprobe or uretprobe on libuv's
// uv__run_timers & co. fired).
struct kp_loop_record {
    __u32 kind;  // KP_RECORD_LOOP_PHASE
    __u32 tgid;
    __u32 tid;
    __u32 phase; // TraceLoopPhase | KP_LOOP_STARTS_ITERATION
    __u64 time_ns;
};

#endif
