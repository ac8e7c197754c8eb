// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Kernel side of asynctrace: records the syscalls, scheduling and thread/fd identity of one
// process tree.
//
// sys_enter saves the arguments in task-local storage, sys_exit completes the record and puts it
// into a ring buffer. Only processes whose tgid is set in `traced_tgids` (written by the loader,
// extended on fork, cleared on exit) pay more than a bitmap test. The scheduler probes
// (sched_probes.bpf.h) and the fd descriptions (fd_identity.bpf.h) are included below.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "syscall_event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// --- settings: read-only, fixed before load ---
// Force a consumer wakeup after this many records on one CPU ...
const volatile __u32 wakeup_every = 256;
// ... or as soon as this many bytes wait in the ring (0: never by size).
const volatile __u64 wakeup_bytes = 0;
// Record the user stack of every syscall and off-CPU wait at least this long (0: none).
const volatile __u64 stack_threshold_ns = 0;
// Skip the syscalls of a CPU's current process by the tgid on_sched_switch noted for that CPU (no
// helper call); 0: look at the current task every time (the benchmark's comparison).
const volatile __u32 cpu_filter = 1;

// --- state shared with the loader (mmapped .bss) ---
// One bit per tgid: the traced process tree.
__u64 traced_tgids[KP_MAX_PID / 64];
// Records lost because the ring was full (or task storage could not be allocated).
__u64 dropped_records;
// When the loader first marked a tgid traced (CLOCK_MONOTONIC ns; 0: none yet). A thread switched
// out before then (an attached process's, the held child's) has no episode open: its first wait
// counts from here, as the part of it inside the recording.
__u64 tracing_since_ns;
// Per-CPU state (syscall_event.h), one cache line per CPU, written only on its own CPU.
struct kp_cpu_state cpu_states[KP_MAX_CPUS];

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20); // the loader resizes it before load
} events SEC(".maps");

// The syscall a thread is in, between sys_enter and sys_exit.
struct inflight {
    __u64 enter_ns;
    __u64 size;
    __u64 events_ptr; // a user pointer read at exit: epoll waits' events, open's path, pipe's fds, memfd's name,
                      // connect's address
    __s32 fd;
    __u32 nr;         // 0 would be read(2): `active` says whether the slot is in use
    __s32 timeout_ms;
    __u32 active;
    __u32 addr_len;   // connect: the length of its address (read only if it fails)
    __u32 pad;
    __u64 write_set;  // select, pselect6: its write fd_set (events_ptr: its read set), read at exit
};

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct inflight);
} inflight_by_task SEC(".maps");

// x86_64 syscall numbers
#define NR_read 0
#define NR_write 1
#define NR_open 2
#define NR_close 3
#define NR_poll 7
#define NR_pread64 17
#define NR_pwrite64 18
#define NR_readv 19
#define NR_writev 20
#define NR_pipe 22
#define NR_select 23
#define NR_dup 32
#define NR_dup2 33
#define NR_nanosleep 35
#define NR_sendfile 40
#define NR_socket 41
#define NR_connect 42
#define NR_accept 43
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_bind 49
#define NR_listen 50
#define NR_socketpair 53
#define NR_fcntl 72
#define NR_flock 73
#define NR_fsync 74
#define NR_fdatasync 75
#define NR_futex 202
#define NR_epoll_create 213
#define NR_restart_syscall 219
#define NR_clock_nanosleep 230
#define NR_epoll_wait 232
#define NR_inotify_init 253
#define NR_openat 257
#define NR_pselect6 270
#define NR_ppoll 271
#define NR_splice 275
#define NR_epoll_pwait 281
#define NR_signalfd 282
#define NR_timerfd_create 283
#define NR_eventfd 284
#define NR_accept4 288
#define NR_signalfd4 289
#define NR_eventfd2 290
#define NR_epoll_create1 291
#define NR_dup3 292
#define NR_pipe2 293
#define NR_inotify_init1 294
#define NR_recvmmsg 299
#define NR_sendmmsg 307
#define NR_memfd_create 319
#define NR_io_uring_setup 425
#define NR_io_uring_enter 426
#define NR_pidfd_open 434
#define NR_close_range 436
#define NR_openat2 437
#define NR_epoll_pwait2 441

// The recorded syscalls (docs/kernel-probes.md says why these and not the others).
#define RECORDED_SYSCALLS(X)                                                                                \
    X(NR_read) X(NR_write) X(NR_open) X(NR_close) X(NR_poll) X(NR_pread64) X(NR_pwrite64) X(NR_readv)       \
    X(NR_writev) X(NR_pipe) X(NR_select) X(NR_dup) X(NR_dup2) X(NR_nanosleep) X(NR_sendfile)                \
    X(NR_socket) X(NR_connect) X(NR_accept) X(NR_sendto) X(NR_recvfrom) X(NR_sendmsg) X(NR_recvmsg)         \
    X(NR_bind) X(NR_listen) X(NR_socketpair) X(NR_fcntl) X(NR_flock) X(NR_fsync) X(NR_fdatasync) X(NR_futex) \
    X(NR_epoll_create) X(NR_clock_nanosleep) X(NR_epoll_wait) X(NR_inotify_init) X(NR_openat)               \
    X(NR_pselect6) X(NR_ppoll) X(NR_splice) X(NR_epoll_pwait) X(NR_signalfd) X(NR_timerfd_create)           \
    X(NR_eventfd) X(NR_accept4) X(NR_signalfd4) X(NR_eventfd2) X(NR_epoll_create1) X(NR_dup3)               \
    X(NR_pipe2) X(NR_inotify_init1) X(NR_recvmmsg) X(NR_sendmmsg) X(NR_memfd_create)                        \
    X(NR_io_uring_setup) X(NR_io_uring_enter) X(NR_pidfd_open) X(NR_close_range) X(NR_openat2)              \
    X(NR_epoll_pwait2) X(NR_restart_syscall)

#define BIT(nr) (1ull << ((nr) & 63))
// The recorded syscalls as a 512-bit set: one load and a shift decide.
#define IN_WORD(nr, w) (((nr) >> 6) == (w) ? BIT(nr) : 0ull)
#define W0(nr) | IN_WORD(nr, 0)
#define W1(nr) | IN_WORD(nr, 1)
#define W2(nr) | IN_WORD(nr, 2)
#define W3(nr) | IN_WORD(nr, 3)
#define W4(nr) | IN_WORD(nr, 4)
#define W5(nr) | IN_WORD(nr, 5)
#define W6(nr) | IN_WORD(nr, 6)
#define W7(nr) | IN_WORD(nr, 7)
static const __u64 recorded_nrs[8] = {
    0 RECORDED_SYSCALLS(W0), 0 RECORDED_SYSCALLS(W1), 0 RECORDED_SYSCALLS(W2), 0 RECORDED_SYSCALLS(W3),
    0 RECORDED_SYSCALLS(W4), 0 RECORDED_SYSCALLS(W5), 0 RECORDED_SYSCALLS(W6), 0 RECORDED_SYSCALLS(W7),
};

static __always_inline bool is_recorded(long nr) {
    if (nr < 0 || nr >= 512)
        return false;
    return (recorded_nrs[nr >> 6] >> (nr & 63)) & 1;
}

static __always_inline bool is_traced(__u32 tgid) {
    if (tgid >= KP_MAX_PID)
        return false;
    return (traced_tgids[tgid >> 6] >> (tgid & 63)) & 1;
}

// Whether the current task is known to be untraced without looking at it: the tgid the scheduler
// probe noted at this CPU's last switch. Every change of a CPU's current task goes through
// sched_switch, so the note is exact where on_sched_switch runs for every switch; before its first
// switch here (or without the scheduler probes) it is 0 and the caller looks at the task. Not every
// kernel runs it for every switch (sched_probes.bpf.h: a VM hiding its agent), so this is only the
// benchmark's variant (record loads the probes with cpu_filter 0). On a machine whose
// retpolines and SRSO make every call dear, the bpf_get_current_task_btf() call this saves was half
// of what an untraced process paid per syscall beyond the tracepoints' own cost.
static __always_inline bool cpu_runs_untraced(void) {
    if (!cpu_filter)
        return false;
    __u32 cpu = bpf_get_smp_processor_id();
    if (cpu >= KP_MAX_CPUS)
        return false;
    __u32 tgid = cpu_states[cpu].current_tgid;
    return tgid != 0 && !is_traced(tgid);
}

static __always_inline bool is_epoll_wait(__u32 nr) {
    return nr == NR_epoll_wait || nr == NR_epoll_pwait || nr == NR_epoll_pwait2;
}

#define MAX_IOVECS 8
// Bytes described by the first MAX_IOVECS iovecs of a user array (one user-memory read).
static __always_inline __u64 iovec_total(const struct iovec *uiov, __u64 count) {
    struct iovec iov[MAX_IOVECS];
    __u64 n = count < MAX_IOVECS ? count : MAX_IOVECS;
    __u64 total = 0;
    if (n == 0 || bpf_probe_read_user(iov, n * sizeof(struct iovec), uiov) != 0)
        return 0;
    for (int i = 0; i < MAX_IOVECS; i++) {
        if (i >= n)
            break;
        total += iov[i].iov_len;
    }
    return total;
}

static __always_inline __u64 msghdr_total(const struct user_msghdr *umsg) {
    struct user_msghdr msg;
    if (bpf_probe_read_user(&msg, sizeof(msg), umsg) != 0)
        return 0;
    return iovec_total(msg.msg_iov, msg.msg_iovlen);
}

// A user timespec as ns (0 if unreadable).
static __always_inline __u64 timespec_ns(__u64 uptr) {
    struct __kernel_timespec ts;
    if (!uptr || bpf_probe_read_user(&ts, sizeof(ts), (const void *)uptr) != 0 || ts.tv_sec < 0)
        return 0;
    return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

#define F_DUPFD 0
#define F_DUPFD_CLOEXEC 1030
#define F_SETLKW 7
#define F_OFD_SETLKW 38

// fcntl's that make an fd or wait for a lock on one (a stall in lockf names the file); the others
// (F_GETFL, F_SETFL on every socket) are many and say nothing about a wait.
static __always_inline bool is_recorded_fcntl(__u64 cmd) {
    return cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC || cmd == F_SETLKW || cmd == F_OFD_SETLKW;
}

#define TIMER_ABSTIME 1
#define CLOCK_MONOTONIC 1
#define CLOCK_BOOTTIME 7

SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long nr) {
    if (!is_recorded(nr) || cpu_runs_untraced())
        return 0;
    // The task's own fields rather than bpf_get_current_pid_tgid(): one helper call fewer, and a call
    // is dear where every kernel return goes through a mitigation thunk (SRSO). With
    // kernel.bpf_stats_enabled this program went from ~156 to ~142 ns per run on such a machine.
    struct task_struct *task = bpf_get_current_task_btf();
    if (!is_traced(task->tgid))
        return 0;
    __u64 a0 = regs->di, a1 = regs->si, a2 = regs->dx, a3 = regs->r10, a4 = regs->r8;
    if (nr == NR_fcntl && !is_recorded_fcntl(a1))
        return 0;
    struct inflight *s = bpf_task_storage_get(&inflight_by_task, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!s) {
        __sync_fetch_and_add(&dropped_records, 1);
        return 0;
    }
    s->nr = nr;
    s->fd = (__s32)a0;
    s->size = 0;
    s->events_ptr = 0;
    s->timeout_ms = -1;
    // The meaning of fd and size per syscall is documented in docs/trace-format.md.
    switch (nr) {
    case NR_read:
    case NR_write:
    case NR_pread64:
    case NR_pwrite64:
    case NR_recvfrom:
    case NR_sendto:
    case NR_recvmmsg:
    case NR_sendmmsg:
        s->size = a2;
        break;
    case NR_readv:
    case NR_writev:
        s->size = iovec_total((const struct iovec *)a1, a2);
        break;
    case NR_recvmsg:
    case NR_sendmsg:
        s->size = msghdr_total((const struct user_msghdr *)a1);
        break;
    case NR_epoll_wait:
    case NR_epoll_pwait:
        s->events_ptr = a1;
        s->size = a2;
        s->timeout_ms = (__s32)a3;
        break;
    case NR_epoll_pwait2: {
        s->events_ptr = a1;
        s->size = a2;
        struct __kernel_timespec ts;
        if (a3 && bpf_probe_read_user(&ts, sizeof(ts), (const void *)a3) == 0)
            s->timeout_ms = (__s32)(ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000);
        break;
    }
    // --- waits: size = requested time or the futex word ---
    case NR_nanosleep:
        s->fd = -1;
        s->size = timespec_ns(a0);
        break;
    case NR_clock_nanosleep: {
        s->fd = -1;
        __u64 t = timespec_ns(a2);
        if (a1 & TIMER_ABSTIME) { // a deadline: as a duration where the clock is the probes' own
            __u64 now = bpf_ktime_get_ns();
            t = (a0 == CLOCK_MONOTONIC && t > now) ? t - now : 0;
        }
        s->size = t;
        break;
    }
    case NR_futex:
        s->fd = (__s32)a1; // op (FUTEX_WAIT, FUTEX_WAKE, ... | FUTEX_PRIVATE_FLAG)
        s->size = a0;      // uaddr: a wait and its wake name the same word
        break;
    case NR_poll:
    case NR_ppoll:
        s->fd = -1;
        s->size = a1; // nfds
        // A poll of one fd is a wait on it: how Python waits on a socket with a timeout before each recv, send
        // or connect (urllib's, requests' timeout=), so a stall there names the socket. Its pollfd's fd (the
        // struct's first member; negative: an entry poll ignores).
        if (a1 == 1) {
            __s32 polled = -1;
            if (bpf_probe_read_user(&polled, sizeof(polled), (const void *)a0) == 0 && polled >= 0)
                s->fd = polled;
        } else {
            s->events_ptr = a0; // more fds: the first that became ready is read at exit (ready_fd)
        }
        break;
    case NR_select:
    case NR_pselect6:
        s->fd = -1;
        s->size = a0; // nfds
        s->events_ptr = a1;
        s->write_set = a2;
        break;
    // --- fd creation: fd = the fd it starts from (or -1), size as documented ---
    case NR_open:
        s->fd = -100; // AT_FDCWD
        s->events_ptr = a0;
        s->size = a1; // flags
        break;
    case NR_openat:
        s->events_ptr = a1;
        s->size = a2; // flags
        break;
    case NR_openat2: {
        s->events_ptr = a1;
        __u64 flags = 0;
        if (a2)
            bpf_probe_read_user(&flags, sizeof(flags), (const void *)a2);
        s->size = flags;
        break;
    }
    case NR_dup2:
    case NR_dup3:
        s->size = a1; // the target fd (closed first if open)
        break;
    case NR_fcntl:
        s->size = a1; // the command: F_DUPFD, F_DUPFD_CLOEXEC, F_SETLKW or F_OFD_SETLKW
        break;
    case NR_close_range:
        s->size = (a1 & 0xffffffffull) | (a2 << 32); // last fd | flags << 32
        break;
    case NR_socket:
        s->fd = -1;
        s->size = (a0 << 32) | (a1 & 0xffffffffull); // family << 32 | type
        break;
    case NR_socketpair:
        s->fd = -1;
        s->size = (a0 << 32) | (a1 & 0xffffffffull);
        s->events_ptr = a3;
        break;
    case NR_pipe:
    case NR_pipe2:
        s->fd = -1;
        s->events_ptr = a0;
        break;
    case NR_memfd_create:
        s->fd = -1;
        s->events_ptr = a0;
        break;
    case NR_eventfd:
    case NR_eventfd2:
    case NR_timerfd_create:
    case NR_epoll_create:
    case NR_epoll_create1:
    case NR_inotify_init:
    case NR_inotify_init1:
    case NR_pidfd_open:
    case NR_io_uring_setup:
        s->fd = -1;
        s->size = a0; // initval, clockid, size/flags, pid, entries
        break;
    // --- the rest: fd = their fd ---
    case NR_sendfile:
        s->size = a3; // count (fd = out_fd)
        break;
    case NR_splice:
        s->size = a4; // len (fd = fd_in)
        break;
    case NR_connect:
        s->events_ptr = a1; // the address it asks for: read at exit only if the call fails (fd_identity.bpf.h)
        s->addr_len = (__u32)a2;
        break;
    case NR_restart_syscall:
        s->fd = -1; // the rest of a sleep, poll or futex wait a signal interrupted (the reader names which)
        break;
    case NR_io_uring_enter:
        // to_submit | min_complete << 32 when it waits for completions (IORING_ENTER_GETEVENTS): a loop on a
        // ring waits for events there, as others do in epoll_wait.
        s->size = (a1 & 0xffffffffull) | ((a3 & 1) ? (a2 & 0xffffffffull) << 32 : 0);
        break;
    default:
        break;
    }
    s->active = 1;
    s->enter_ns = bpf_ktime_get_ns(); // last, so the argument reads are not counted as syscall time
    return 0;
}

// Wake the consumer only every `wakeup_every` records per CPU, or when the ring is filling;
// it also polls with a short timeout, so nothing waits long. A wakeup per record would cost
// several hundred ns per syscall.
static __always_inline __u64 wakeup_flag(void) {
    struct kp_cpu_state *c = &cpu_states[bpf_get_smp_processor_id() & (KP_MAX_CPUS - 1)];
    __u64 n = c->records_since_wakeup + 1;
    // The fill level is looked at every 32nd record only: it costs a helper call and a read of
    // the consumer's cache line.
    if (n >= wakeup_every ||
        ((n & 31) == 0 && wakeup_bytes && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)) {
        c->records_since_wakeup = 0;
        return BPF_RB_FORCE_WAKEUP;
    }
    c->records_since_wakeup = n;
    return BPF_RB_NO_WAKEUP;
}

static __always_inline void fill_syscall(struct kp_syscall_record *r, __u32 kind, __u64 pid_tgid,
                                         const struct inflight *s, long ret, __u64 now) {
    r->kind = kind;
    r->tgid = pid_tgid >> 32;
    r->tid = (__u32)pid_tgid;
    r->nr = s->nr;
    r->fd = s->fd;
    r->reserved = 0;
    r->size = s->size;
    r->ret = ret;
    r->enter_ns = s->enter_ns;
    r->exit_ns = now;
}

static __always_inline void emit_epoll(__u64 pid_tgid, const struct inflight *s, long ret, __u64 now) {
    struct kp_epoll_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) {
        __sync_fetch_and_add(&dropped_records, 1);
        return;
    }
    fill_syscall(&r->sys, KP_RECORD_EPOLL_WAIT, pid_tgid, s, ret, now);
    r->timeout_ms = s->timeout_ms;
    r->max_events = s->size;
    r->reserved = 0;
    r->data_count = 0;
    __u32 n = ret > 0 ? (ret < KP_EPOLL_MAX_DATA ? ret : KP_EPOLL_MAX_DATA) : 0;
    // struct epoll_event is packed (12 bytes) on x86_64: read 32-bit words, stack loads must be aligned.
    __u32 words[KP_EPOLL_MAX_DATA * 3];
    if (n > 0 && bpf_probe_read_user(words, (n & 31) * 12, (const void *)s->events_ptr) == 0) {
        r->data_count = n;
        for (int i = 0; i < KP_EPOLL_MAX_DATA; i++) {
            if (i >= n)
                break;
            r->data[i] = (__u64)words[3 * i + 1] | ((__u64)words[3 * i + 2] << 32);
        }
    }
    bpf_ringbuf_submit(r, wakeup_flag());
}

#define KP_POLL_READ_MAX 16
#define KP_SELECT_WORDS_MAX 16

// The lowest fd set in one fd_set word `w` (not 0) of index `word`.
static __always_inline __s32 lowest_fd(__u64 w, __u32 word) {
    for (int b = 0; b < 64; b++)
        if ((w >> b) & 1)
            return (__s32)(word * 64 + b);
    return -1;
}

// The first fd, in the program's order, that a poll of several fds or a select returned as ready (its
// pollfd's revents, or its place in the returned read, else write, set), so that a stall in such a wait
// names a socket: -1 when none returned (a timeout, a signal) or it lies beyond the first
// KP_POLL_READ_MAX pollfds or KP_SELECT_WORDS_MAX * 64 fds.
static __always_inline __s32 ready_fd(const struct inflight *s, long ret) {
    if (ret <= 0 || !s->events_ptr)
        return -1;
    if (s->nr == NR_poll || s->nr == NR_ppoll) {
        struct { __s32 fd; __s16 events; __s16 revents; } fds[KP_POLL_READ_MAX];
        __u64 n = s->size < KP_POLL_READ_MAX ? s->size : KP_POLL_READ_MAX;
        if (n == 0 || bpf_probe_read_user(fds, (n & 31) * sizeof(fds[0]), (const void *)s->events_ptr) != 0)
            return -1;
        for (int i = 0; i < KP_POLL_READ_MAX; i++) {
            if (i >= n)
                break;
            if (fds[i].fd >= 0 && fds[i].revents != 0)
                return fds[i].fd;
        }
        return -1;
    }
    __u64 words = (s->size + 63) / 64;
    if (words > KP_SELECT_WORDS_MAX)
        words = KP_SELECT_WORDS_MAX;
    __u64 sets[2] = {s->events_ptr, s->write_set};
    for (int k = 0; k < 2; k++) {
        __u64 set[KP_SELECT_WORDS_MAX];
        if (!sets[k] || words == 0 || bpf_probe_read_user(set, (words & 31) * 8, (const void *)sets[k]) != 0)
            continue;
        for (int i = 0; i < KP_SELECT_WORDS_MAX; i++) {
            if (i >= words)
                break;
            if (set[i])
                return lowest_fd(set[i], i);
        }
    }
    return -1;
}

#include "fd_identity.bpf.h"
#include "stack_capture.bpf.h"
#include "wait_stacks.bpf.h"

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret) {
    if (!is_recorded(regs->orig_ax)) {
        // A long off-CPU wait in this untraced syscall takes its stack copy here (wait_stacks.bpf.h);
        // every other untraced syscall pays one per-CPU load for it.
        take_deferred_wait_stack();
        return 0;
    }
    if (cpu_runs_untraced())
        return 0;
    struct task_struct *task = bpf_get_current_task_btf();
    __u32 tgid = task->tgid;
    if (!is_traced(tgid))
        return 0;
    __u64 pid_tgid = ((__u64)tgid << 32) | (__u32)task->pid;
    struct inflight *s = bpf_task_storage_get(&inflight_by_task, task, 0, 0);
    if (!s || !s->active) { // entered before the process was traced, or a recorded syscall's call not recorded
        take_deferred_wait_stack();
        return 0;
    }
    s->active = 0;
    __u64 now = bpf_ktime_get_ns();
    // The stack first: the user registers it starts from are the same at every point of the exit. Its fd is the
    // one waited on (-1 for several), not the one a poll or select returned as ready.
    if (stack_threshold_ns && now - s->enter_ns >= stack_threshold_ns)
        emit_wait_stack(ctx, tgid, task->pid, KP_WAIT_SYSCALL, s->nr, s->fd, now, now - s->enter_ns);
    if (is_epoll_wait(s->nr)) {
        emit_epoll(pid_tgid, s, ret, now);
        return 0;
    }
    if (makes_fd(s->nr, s->fd, s->size, ret)) {
        emit_fd_record(task, pid_tgid, s, ret, now);
        return 0;
    }
    // Built on the stack and copied in by one helper call (reserve + submit are two): with the task
    // fields above, ~210 -> ~179 ns per run (kernel.bpf_stats_enabled).
    struct kp_syscall_record r;
    fill_syscall(&r, KP_RECORD_SYSCALL, pid_tgid, s, ret, now);
    // A poll of several fds, or a select: its fd is the first it returned as ready (docs/trace-format.md).
    if ((s->nr == NR_poll || s->nr == NR_ppoll) ? s->size > 1 : (s->nr == NR_select || s->nr == NR_pselect6))
        r.fd = ready_fd(s, ret);
    if (bpf_ringbuf_output(&events, &r, sizeof(r), wakeup_flag()) != 0)
        __sync_fetch_and_add(&dropped_records, 1);
    return 0;
}

static __always_inline void emit_process(__u32 kind, __u32 tgid, __u32 tid, __u32 child, __s32 code) {
    struct kp_process_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) {
        __sync_fetch_and_add(&dropped_records, 1);
        return;
    }
    r->kind = kind;
    r->tgid = tgid;
    r->tid = tid;
    r->child_tgid = child;
    r->exit_code = code;
    r->reserved = 0;
    r->time_ns = bpf_ktime_get_ns();
    bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP); // rare: wake at once
}

#include "sched_probes.bpf.h"

// A traced process made a thread (its name: the creator's comm, copied) or a new process, which
// joins the tree.
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_process_fork, struct task_struct *parent, struct task_struct *child) {
    __u32 ptgid = parent->tgid;
    __u32 ctgid = child->tgid;
    if (!is_traced(ptgid) || ctgid >= KP_MAX_PID)
        return 0;
    if (ptgid != ctgid) {
        __sync_fetch_and_or(&traced_tgids[ctgid >> 6], BIT(ctgid));
        emit_process(KP_RECORD_PROCESS_FORK, ptgid, parent->pid, ctgid, 0);
    }
    emit_thread(KP_RECORD_THREAD_NAME, ctgid, child->pid, child->comm, false);
    return 0;
}

// A traced thread ends; when it is the process's last, record the process's exit too and drop
// the tgid (it may be reused).
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_process_exit, struct task_struct *p) {
    __u32 tgid = p->tgid;
    if (!is_traced(tgid))
        return 0;
    // p is running: an episode still open lost its switch-in, and no later switch-out will see it (the
    // last thread's tgid is dropped below). Written now, this exit its latest end.
    struct kp_offcpu_episode *o = bpf_task_storage_get(&offcpu_by_task, p, 0, 0);
    if (o && o->off_ns != 0 && !o->assumed) {
        emit_switch_in_not_seen(p, o, bpf_ktime_get_ns());
        o->off_ns = 0;
    }
    emit_thread(KP_RECORD_THREAD_EXIT, tgid, p->pid, p->comm, false);
    if (p->signal->live.counter != 0)
        return 0; // other threads still run
    int code = p->exit_code;
    __s32 status = (code & 0x7f) ? -(code & 0x7f) : ((code >> 8) & 0xff);
    __sync_fetch_and_and(&traced_tgids[tgid >> 6], ~BIT(tgid));
    emit_process(KP_RECORD_PROCESS_EXIT, tgid, p->pid, 0, status);
    return 0;
}

// Empty programs on the same tracepoints, attached instead of the ones above only to measure
// what the tracepoints themselves cost (the benchmark's baseline).
SEC("tp_btf/sys_enter")
int BPF_PROG(baseline_sys_enter, struct pt_regs *regs, long nr) { return 0; }

SEC("tp_btf/sys_exit")
int BPF_PROG(baseline_sys_exit, struct pt_regs *regs, long ret) { return 0; }

SEC("tp_btf/sched_switch")
int BPF_PROG(baseline_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
             unsigned int prev_state) { return 0; }

SEC("tp_btf/sched_waking")
int BPF_PROG(baseline_sched_waking, struct task_struct *p) { return 0; }
// CPU samples with stacks (record --sample-rate): their own file, sharing the filter and the ring.
#include "cpu_samples_probes.h"
// libuv loop phases by uprobes (record --node-loop-phases): attached per process by the loader.
#include "loop_probes.bpf.h"
