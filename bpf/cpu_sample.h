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
#define KP_RECORD_WAIT_STACK 18u   // struct kp_wait_stack_record

// Frames per stack: the kernel's default kernel.perf_event_max_stack.
#define KP_SAMPLE_MAX_FRAMES 127u
// Words copied from the top of the user stack for a wait stack (kp_wait_stack_record.stack_top).
#define KP_STACK_TOP_WORDS 8u

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

// What a wait stack was taken for (kp_wait_stack_record.cause).
#define KP_WAIT_SYSCALL 0u // the end of a traced syscall that took >= stack_threshold_ns
#define KP_WAIT_OFFCPU 1u  // a thread back on a CPU after >= stack_threshold_ns blocked outside traced syscalls

// The user stack that made a long wait (record --stack-threshold): `user_count` return addresses,
// innermost first, by frame pointers; with --stack-copy also the user registers and `stack_bytes`
// bytes of user stack from `regs.sp` up, right after the record, which user space unwinds by CFI as
// a sample's: a traced syscall's wait takes the copy at its exit, an off-CPU wait inside an untraced
// syscall at that syscall's exit (or the thread's next switch-out); other off-CPU waits (page
// faults) have none (0): their stack is walked at the switch-out.
struct kp_wait_stack_record {
    __u32 kind;         // KP_RECORD_WAIT_STACK
    __u32 tgid;
    __u32 tid;
    __u16 user_count;
    __u16 cause;        // KP_WAIT_SYSCALL or KP_WAIT_OFFCPU
    __u64 time_ns;      // the syscall's exit / the switch-in (also when the record is written later)
    __u64 duration_ns;  // the syscall's duration / the time blocked
    __s32 nr;           // KP_WAIT_SYSCALL: the syscall number; KP_WAIT_OFFCPU: the off-CPU state (enum kp_offcpu_state)
    __s32 fd;           // KP_WAIT_SYSCALL: its fd argument as in kp_syscall_record; else -1
    struct kp_user_regs regs; // valid when stack_bytes > 0
    __u32 stack_bytes;
    __u32 reserved;
    // The first words at the user stack pointer: where a function without a frame pointer (a libc
    // syscall wrapper) keeps its return address, which the frame-pointer walk skips. User space
    // takes the first that lies in executable code as the innermost frame's caller.
    __u64 stack_top[KP_STACK_TOP_WORDS];
    __u64 frames[KP_SAMPLE_MAX_FRAMES];
};

#endif
