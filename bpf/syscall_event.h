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
// The probes' state per CPU (in their .bss, so the generated skeleton names it too): one cache line,
// written only on its own CPU, and aligned to one: every context switch writes it, so a line shared by two CPUs
// would move between them at every switch (the .bss before it is 8 + 512 KiB long).
struct kp_cpu_state {
    __u64 records_since_wakeup; // records since the last forced wakeup (CPUs beyond KP_MAX_CPUS share one)
    __u32 current_tgid;         // the process the scheduler probe last switched in here; 0: not known
    __u32 wait_stack_pending;   // 1: the task switched in here has a deferred wait stack (wait_stacks.bpf.h)
    __u64 pad[6];
} __attribute__((aligned(64)));

// How many `data` words of the events an epoll wait returned are copied.
#define KP_EPOLL_MAX_DATA 16u

// The first field of every record.
enum kp_record_kind {
    KP_RECORD_SYSCALL = 1,      // struct kp_syscall_record
    KP_RECORD_EPOLL_WAIT = 2,   // struct kp_epoll_record
    KP_RECORD_PROCESS_FORK = 3, // struct kp_process_record
    KP_RECORD_PROCESS_EXIT = 4, // struct kp_process_record
    KP_RECORD_OFFCPU = 5,       // struct kp_offcpu_record
    KP_RECORD_THREAD_NAME = 6,  // struct kp_thread_record
    KP_RECORD_THREAD_EXIT = 7,  // struct kp_thread_record (name empty)
    KP_RECORD_FD_SYSCALL = 8,   // struct kp_fd_record
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

// A traced thread is back on a CPU after an off-CPU episode (one record per episode, written at
// switch-in). It left the CPU at on_ns - blocked_ns - runqueue_ns.
enum kp_offcpu_state {
    KP_OFFCPU_PREEMPTED = 0,       // still runnable at switch-out: all of it is run-queue wait
    KP_OFFCPU_SLEEPING = 1,        // TASK_INTERRUPTIBLE
    KP_OFFCPU_UNINTERRUPTIBLE = 2, // TASK_UNINTERRUPTIBLE (disk I/O, kernel locks)
    KP_OFFCPU_OTHER = 3,
    // An episode whose switch-in the sched_switch tracepoint never delivered (see sched_probes.bpf.h),
    // written at the thread's next switch-out or its exit: on_ns is that time (the latest its episode can have ended), blocked_ns the blocked part if its wakeup was seen (exact;
    // else 0), runqueue_ns the rest, unknown: runnable, then on a CPU from the unseen switch-in. The
    // syscall bits as below when it went to sleep; the state it slept in is not kept.
    KP_OFFCPU_SWITCH_IN_NOT_SEEN = 4,
};

// One traced thread's open off-CPU episode: the value of the probes' task storage `offcpu_by_task`, kept
// between its switch-out and switch-in (sched_probes.bpf.h). The loader writes one for a thread found asleep
// when its process begins to be traced, so that its wait is known even if the probes miss its wakeup.
struct kp_offcpu_episode {
    __u64 off_ns;      // switch-out; 0: none open
    __u64 wake_ns;     // its wakeup (0: not seen yet)
    __u32 state;       // enum kp_offcpu_state
    __u32 waker_tgid;
    __u32 waker_tid;
    __u32 sleep_state; // preempted on its way to sleep: the state it was entering, else 0
    __u32 syscall;     // 1 + the syscall it went to sleep in (its saved registers), 0: none
    __u32 assumed;     // opened by the wakeup of a thread not seen switching out since tracing began:
                       // it may never have left the CPU, so its next switch-out closes it silently
};

struct kp_offcpu_record {
    __u32 kind;       // KP_RECORD_OFFCPU
    __u32 tgid;
    __u32 tid;
    __u32 state;      // enum kp_offcpu_state; bits 16 and up: 1 + the syscall it slept in (0: none)
    __u32 waker_tgid; // the thread that woke it; 0 when an interrupt did (timer, I/O completion) or none was seen
    __u32 waker_tid;
    __u64 on_ns;      // switch-in
    __u64 blocked_ns; // switch-out -> wakeup (0 when preempted)
    __u64 runqueue_ns; // wakeup (or preemption) -> switch-in
};

// A traced thread's name: when it is created (the creator's comm, copied), after a rename, after exec.
// KP_RECORD_THREAD_EXIT: the thread ended (comm is its last name).
#define KP_COMM_LEN 16
struct kp_thread_record {
    __u32 kind;
    __u32 tgid;
    __u32 tid;
    __u32 reserved;
    __u64 time_ns;
    char comm[KP_COMM_LEN]; // NUL-terminated unless all 16 bytes are used
};

// What a new fd refers to (TraceFormat's FDKind, same values).
enum kp_fd_kind {
    KP_FD_UNKNOWN = 0, KP_FD_FILE = 1, KP_FD_DIRECTORY = 2, KP_FD_TCP = 3, KP_FD_UDP = 4, KP_FD_UNIX = 5,
    KP_FD_SOCKET = 6, KP_FD_PIPE = 7, KP_FD_EVENTFD = 8, KP_FD_TIMERFD = 9, KP_FD_EPOLL = 10, KP_FD_SIGNALFD = 11,
    KP_FD_INOTIFY = 12, KP_FD_DEVICE = 13, KP_FD_PIDFD = 14, KP_FD_IO_URING = 15, KP_FD_NETLINK = 16,
};

// How kp_fd_record.detail is to be read.
enum kp_detail_kind {
    KP_DETAIL_NONE = 0,
    KP_DETAIL_PATH = 1,  // detail_len bytes of a path as the program passed it (truncated to KP_DETAIL_MAX)
    KP_DETAIL_INET4 = 2, // struct kp_inet_detail, addresses in the first 4 bytes
    KP_DETAIL_INET6 = 3, // struct kp_inet_detail
    KP_DETAIL_UNIX = 4,  // struct kp_unix_detail
    KP_DETAIL_NAME = 5,  // detail_len bytes of a name (memfd_create)
};

#define KP_DETAIL_MAX 256u
#define KP_UNIX_PATH_MAX 108u

struct kp_inet_detail {
    __u8 local[16];  // network byte order
    __u8 peer[16];
    __u16 local_port; // host byte order
    __u16 peer_port;
};

struct kp_unix_detail {
    __u16 local_len; // bytes of sun_path (0: unnamed); an abstract name starts with a NUL
    __u16 peer_len;
    char local[KP_UNIX_PATH_MAX];
    char peer[KP_UNIX_PATH_MAX];
};

// A completed syscall that made an fd (or two: pipe2, socketpair): the syscall itself and what
// the new fd refers to. new_fd < 0 when the call failed (then only the syscall counts).
struct kp_fd_record {
    struct kp_syscall_record sys;
    __s32 new_fd;     // an open that failed: -errno (its record has the path it asked for)
    __s32 new_fd2;    // the second end of pipe/pipe2/socketpair; -1 otherwise
    __s32 source_fd;  // dup/dup2/dup3/fcntl(F_DUPFD*): the fd duplicated; -1 otherwise
    __u16 fd_kind;    // enum kp_fd_kind
    __u16 detail_kind; // enum kp_detail_kind
    __u32 detail_len;
    __u32 reserved;
    __u8 detail[KP_DETAIL_MAX];
};

#endif
