// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Kernel side of asynctrace: records the I/O and epoll syscalls of one process tree.
//
// sys_enter saves the arguments in task-local storage, sys_exit completes the record and puts it
// into a ring buffer. Only processes whose tgid is set in `traced_tgids` (written by the loader,
// extended on fork, cleared on exit) pay more than a bitmap test.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "syscall_event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// --- settings: read-only, fixed before load ---
// Force a consumer wakeup after this many records on one CPU ...
const volatile __u32 wakeup_every = 256;
// ... or as soon as this many bytes wait in the ring (0: never by size).
const volatile __u64 wakeup_bytes = 0;

// --- state shared with the loader (mmapped .bss) ---
// One bit per tgid: the traced process tree.
__u64 traced_tgids[KP_MAX_PID / 64];
// Records lost because the ring was full (or task storage could not be allocated).
__u64 dropped_records;
// Per-CPU count of records since the last forced wakeup, one cache line (8 words) per CPU.
__u64 records_since_wakeup[KP_MAX_CPUS * 8];

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20); // the loader resizes it before load
} events SEC(".maps");

// The syscall a thread is in, between sys_enter and sys_exit.
struct inflight {
    __u64 enter_ns;
    __u64 size;
    __u64 events_ptr; // epoll waits: the user's epoll_event array
    __s32 fd;
    __u32 nr;         // 0 would be read(2): `active` says whether the slot is in use
    __s32 timeout_ms;
    __u32 active;
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
#define NR_close 3
#define NR_pread64 17
#define NR_pwrite64 18
#define NR_readv 19
#define NR_writev 20
#define NR_epoll_wait 232
#define NR_connect 42
#define NR_accept 43
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_epoll_pwait 281
#define NR_accept4 288
#define NR_recvmmsg 299
#define NR_sendmmsg 307
#define NR_epoll_pwait2 441

#define BIT(nr) (1ull << ((nr) & 63))
// The recorded syscalls as a 512-bit set: one load and a shift decide.
_Static_assert(NR_epoll_pwait / 64 == 4 && NR_accept4 / 64 == 4 && NR_recvmmsg / 64 == 4 && NR_sendmmsg / 64 == 4,
               "syscall set layout");
static const __u64 recorded_nrs[8] = {
    [0] = BIT(NR_read) | BIT(NR_write) | BIT(NR_close) | BIT(NR_pread64) | BIT(NR_pwrite64) | BIT(NR_readv) |
          BIT(NR_writev) | BIT(NR_connect) | BIT(NR_accept) | BIT(NR_sendto) | BIT(NR_recvfrom) |
          BIT(NR_sendmsg) | BIT(NR_recvmsg),
    [NR_epoll_wait / 64] = BIT(NR_epoll_wait),
    [NR_epoll_pwait / 64] = BIT(NR_epoll_pwait) | BIT(NR_accept4) | BIT(NR_recvmmsg) | BIT(NR_sendmmsg),
    [NR_epoll_pwait2 / 64] = BIT(NR_epoll_pwait2),
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

SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long nr) {
    if (!is_recorded(nr))
        return 0;
    // The task's own fields rather than bpf_get_current_pid_tgid(): one helper call fewer, and a call
    // is dear where every kernel return goes through a mitigation thunk (SRSO). With
    // kernel.bpf_stats_enabled this program went from ~156 to ~142 ns per run on such a machine.
    struct task_struct *task = bpf_get_current_task_btf();
    if (!is_traced(task->tgid))
        return 0;
    struct inflight *s = bpf_task_storage_get(&inflight_by_task, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!s) {
        __sync_fetch_and_add(&dropped_records, 1);
        return 0;
    }
    __u64 a0 = regs->di, a1 = regs->si, a2 = regs->dx, a3 = regs->r10;
    s->nr = nr;
    s->fd = (__s32)a0;
    s->size = 0;
    s->events_ptr = 0;
    s->timeout_ms = -1;
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
    __u32 slot = (bpf_get_smp_processor_id() & (KP_MAX_CPUS - 1)) * 8;
    __u64 n = records_since_wakeup[slot] + 1;
    // The fill level is looked at every 32nd record only: it costs a helper call and a read of
    // the consumer's cache line.
    if (n >= wakeup_every ||
        ((n & 31) == 0 && wakeup_bytes && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)) {
        records_since_wakeup[slot] = 0;
        return BPF_RB_FORCE_WAKEUP;
    }
    records_since_wakeup[slot] = n;
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

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret) {
    if (!is_recorded(regs->orig_ax))
        return 0;
    struct task_struct *task = bpf_get_current_task_btf();
    __u32 tgid = task->tgid;
    if (!is_traced(tgid))
        return 0;
    __u64 pid_tgid = ((__u64)tgid << 32) | (__u32)task->pid;
    struct inflight *s = bpf_task_storage_get(&inflight_by_task, task, 0, 0);
    if (!s || !s->active)
        return 0; // entered before the process was traced
    s->active = 0;
    __u64 now = bpf_ktime_get_ns();
    if (is_epoll_wait(s->nr)) {
        emit_epoll(pid_tgid, s, ret, now);
        return 0;
    }
    // Built on the stack and copied in by one helper call (reserve + submit are two): with the task
    // fields above, ~210 -> ~179 ns per run (kernel.bpf_stats_enabled).
    struct kp_syscall_record r;
    fill_syscall(&r, KP_RECORD_SYSCALL, pid_tgid, s, ret, now);
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

// A new process (not a thread) of a traced process joins the tree.
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_process_fork, struct task_struct *parent, struct task_struct *child) {
    __u32 ptgid = parent->tgid;
    __u32 ctgid = child->tgid;
    if (ptgid == ctgid || !is_traced(ptgid) || ctgid >= KP_MAX_PID)
        return 0;
    __sync_fetch_and_or(&traced_tgids[ctgid >> 6], BIT(ctgid));
    emit_process(KP_RECORD_PROCESS_FORK, ptgid, parent->pid, ctgid, 0);
    return 0;
}

// The last thread of a traced process leaves: record it and drop the tgid (it may be reused).
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_process_exit, struct task_struct *p) {
    __u32 tgid = p->tgid;
    if (!is_traced(tgid))
        return 0;
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
