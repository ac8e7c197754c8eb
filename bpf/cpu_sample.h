// The CPU-sample record of the kernel probes, shared by bpf/cpu_samples_probes.h and the loader
// (Sources/CKernelProbes/include/cpu_sample.h is a symlink to it). Plain fixed-width C types only.
#ifndef ASYNCTRACE_CPU_SAMPLE_H
#define ASYNCTRACE_CPU_SAMPLE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

// Record kinds of this file (the first field, as in syscall_event.h; kinds 16+ are the samples').
#define KP_RECORD_CPU_SAMPLE 16u   // struct kp_sample_record
#define KP_RECORD_PROCESS_EXEC 17u // struct kp_exec_record: the mappings changed wholesale

// Frames per stack: the kernel's default kernel.perf_event_max_stack.
#define KP_SAMPLE_MAX_FRAMES 127u

// The most user stack bytes a sample copies (record --stack-copy), a power of two; the scratch
// buffer has a page more so that page-sized copies need no exact bound for the verifier.
#define KP_STACK_COPY_MAX 16384u
#define KP_STACK_COPY_BUFFER (KP_STACK_COPY_MAX + 8192u)

// The user registers an unwinder starts from.
struct kp_user_regs {
    __u64 ip;
    __u64 sp;
    __u64 bp;
};

// A perf-event (cpu-clock) sample of a traced thread. Variable length: `user_count` user return
// addresses (innermost first), then `kernel_count` kernel ones, then `stack_bytes` bytes of user
// stack from `regs.sp` up (record --stack-copy).
struct kp_sample_record {
    __u32 kind;         // KP_RECORD_CPU_SAMPLE
    __u32 tgid;
    __u32 tid;
    __u16 user_count;
    __u16 kernel_count;
    __u64 time_ns;      // bpf_ktime_get_ns() == CLOCK_MONOTONIC
    struct kp_user_regs regs; // valid when stack_bytes > 0
    __u32 stack_bytes;
    __u32 reserved;
    __u64 frames[2 * KP_SAMPLE_MAX_FRAMES];
};

// A traced process called execve: its old mappings are gone.
struct kp_exec_record {
    __u32 kind;         // KP_RECORD_PROCESS_EXEC
    __u32 tgid;
    __u64 time_ns;
};

#endif
