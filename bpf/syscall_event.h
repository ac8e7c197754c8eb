// The records the kernel probes put into the ring buffer. One definition, included by
// bpf/syscall_probes.bpf.c (after vmlinux.h) and by the loader (CKernelProbes), so both sides
// always agree on the layout. Plain fixed-width C types only.
#ifndef ASYNCTRACE_SYSCALL_EVENT_H
#define ASYNCTRACE_SYSCALL_EVENT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

// Largest tgid the filter bitmap can hold (the kernel's PID_MAX_LIMIT on 64-bit).
#define KP_MAX_PID (4u * 1024u * 1024u)
// Per-CPU wakeup counters; CPUs beyond this share slots (only batching gets less exact).
#define KP_MAX_CPUS 256u
// How many `data` words of the events an epoll wait returned are copied.
#define KP_EPOLL_MAX_DATA 16u

// The first field of every record.
enum kp_record_kind {
    KP_RECORD_SYSCALL = 1,      // struct kp_syscall_record
    KP_RECORD_EPOLL_WAIT = 2,   // struct kp_epoll_record
    KP_RECORD_PROCESS_FORK = 3, // struct kp_process_record
    KP_RECORD_PROCESS_EXIT = 4, // struct kp_process_record
};

// A completed syscall of a traced process.
struct kp_syscall_record {
    __u32 kind;      // KP_RECORD_SYSCALL or KP_RECORD_EPOLL_WAIT
    __u32 tgid;      // process id
    __u32 tid;       // thread id
    __u32 nr;        // x86_64 syscall number
    __s32 fd;        // first argument (the epoll fd for waits; -1 where there is none)
    __u32 reserved;
    __u64 size;      // bytes requested (sum of the iovecs for vectored calls), message count for
                     // recvmmsg/sendmmsg, maxevents for epoll waits, 0 otherwise
    __s64 ret;       // return value: bytes, fd, ready count, or -errno
    __u64 enter_ns;  // bpf_ktime_get_ns() == CLOCK_MONOTONIC
    __u64 exit_ns;
};

// A completed epoll_wait / epoll_pwait / epoll_pwait2.
struct kp_epoll_record {
    struct kp_syscall_record sys;
    __s32 timeout_ms;    // -1: no timeout
    __u32 max_events;
    __u32 data_count;    // min(ret, KP_EPOLL_MAX_DATA) when ret > 0 and the events were readable
    __u32 reserved;
    __u64 data[KP_EPOLL_MAX_DATA]; // epoll_event.data of the returned events, in order
};

// A traced process forked a new process, or a traced process exited (its last thread).
struct kp_process_record {
    __u32 kind;       // KP_RECORD_PROCESS_FORK or KP_RECORD_PROCESS_EXIT
    __u32 tgid;       // the forking parent, or the exiting process
    __u32 tid;        // the thread that forked / exited
    __u32 child_tgid; // fork: the new process; exit: 0
    __s32 exit_code;  // exit: exit status 0...255, or -signal if killed by a signal; fork: 0
    __u32 reserved;
    __u64 time_ns;
};

#endif
