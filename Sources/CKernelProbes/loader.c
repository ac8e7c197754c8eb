// Loads the committed skeleton of bpf/syscall_probes.bpf.c and drains its ring buffer.
#include "kernel_probes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <bpf/btf.h>

#include "syscall_probes.skel.h"
#include "cpu_sampling.h"

// The ring buffer, read directly rather than through libbpf's ring_buffer__consume, which
// publishes the consumer position after every record: the producer reads that position on every
// reserve, so each record would move a cache line between the CPUs. Here it is published once
// per batch.
struct ring_reader {
    int epoll_fd;
    unsigned long *consumer_pos; // rw page
    unsigned long *producer_pos; // ro page, followed by the data mapped twice
    uint8_t *data;
    uint64_t mask;
    size_t producer_map_len;
    unsigned long pos;        // the reader's position (published as consumer_pos)
    unsigned long known_prod; // producer position last read
    uint32_t unpublished;
};

struct kp_probes {
    struct syscall_probes_bpf *skel;
    struct ring_reader ring;
    uint64_t ring_bytes;
    struct kp_sampling *sampling; // CPU samples (NULL: off)
    int sampling_error;           // errno of a failed start of sampling
    int scheduler;                // the scheduler probes are attached
};

static int ring_open(struct ring_reader *r, int map_fd, uint64_t size) {
    long page = sysconf(_SC_PAGESIZE);
    r->epoll_fd = -1;
    r->mask = size - 1;
    void *c = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (c == MAP_FAILED)
        return -errno;
    r->consumer_pos = c;
    r->producer_map_len = page + 2 * size;
    void *p = mmap(NULL, r->producer_map_len, PROT_READ, MAP_SHARED, map_fd, page);
    if (p == MAP_FAILED)
        return -errno;
    r->producer_pos = p;
    r->data = (uint8_t *)p + page;
    r->pos = r->known_prod = __atomic_load_n(r->consumer_pos, __ATOMIC_ACQUIRE);
    r->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epoll_fd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN};
    if (epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, map_fd, &ev) != 0)
        return -errno;
    return 0;
}

static void ring_close(struct ring_reader *r) {
    long page = sysconf(_SC_PAGESIZE);
    if (r->consumer_pos)
        munmap(r->consumer_pos, page);
    if (r->producer_pos)
        munmap(r->producer_pos, r->producer_map_len);
    if (r->epoll_fd >= 0)
        close(r->epoll_fd);
    r->consumer_pos = NULL;
    r->producer_pos = NULL;
    r->epoll_fd = -1;
}

// The record at the reader's position if committed; skips discarded ones.
static const void *ring_next(struct ring_reader *r, uint32_t *size) {
    for (;;) {
        if (r->pos >= r->known_prod) {
            r->known_prod = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
            if (r->pos >= r->known_prod)
                return NULL;
        }
        uint32_t *len_ptr = (uint32_t *)(r->data + (r->pos & r->mask));
        uint32_t len = __atomic_load_n(len_ptr, __ATOMIC_ACQUIRE);
        if (len & BPF_RINGBUF_BUSY_BIT)
            return NULL; // reserved, not yet committed: later records wait for it
        uint32_t n = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
        unsigned long at = r->pos;
        r->pos += (n + BPF_RINGBUF_HDR_SZ + 7) & ~7ul;
        if (++r->unpublished >= 4096) { // let the producers reuse space during long drains
            __atomic_store_n(r->consumer_pos, at, __ATOMIC_RELEASE);
            r->unpublished = 0;
        }
        if (len & BPF_RINGBUF_DISCARD_BIT)
            continue;
        *size = n;
        return (uint8_t *)len_ptr + BPF_RINGBUF_HDR_SZ;
    }
}

// libbpf's own messages: kept (the last warning explains a failed load) and printed only when
// ASYNCTRACE_BPF_DEBUG is set, so a normal run shows one clear line, not libbpf's log.
static __thread char last_libbpf_message[256];

static int on_libbpf_print(enum libbpf_print_level level, const char *format, va_list args) {
    if (getenv("ASYNCTRACE_BPF_DEBUG")) {
        va_list copy;
        va_copy(copy, args);
        vfprintf(stderr, format, copy);
        va_end(copy);
    }
    if (level == LIBBPF_WARN) {
        vsnprintf(last_libbpf_message, sizeof(last_libbpf_message), format, args);
        size_t n = strlen(last_libbpf_message);
        while (n > 0 && last_libbpf_message[n - 1] == '\n')
            last_libbpf_message[--n] = 0;
    }
    return 0;
}

static void explain(char *why, size_t len, int err, const char *step) {
    if (!why || len == 0)
        return;
    if (err == EPERM || err == EACCES) {
        snprintf(why, len,
                 "kernel probes off: loading eBPF needs root or CAP_BPF+CAP_PERFMON (running as uid %u)",
                 (unsigned)geteuid());
    } else if (last_libbpf_message[0]) {
        snprintf(why, len, "kernel probes off: %s failed: %s (%s)", step, strerror(err), last_libbpf_message);
    } else {
        snprintf(why, len, "kernel probes off: %s failed: %s", step, strerror(err));
    }
}

// PROC_PID_INIT_INO: the inode number of the initial PID namespace, fixed in the kernel.
#define KP_INITIAL_PID_NS_INODE 0xEFFFFFFCu

static int is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }

struct kp_probes *kp_probes_open(const struct kp_options *options, char *why, size_t why_len) {
    if (why && why_len)
        why[0] = 0;
    last_libbpf_message[0] = 0;
    libbpf_set_print(on_libbpf_print);

    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
        if (why)
            snprintf(why, why_len, "kernel probes off: this kernel has no BTF (/sys/kernel/btf/vmlinux is missing)");
        errno = ENOTSUP;
        return NULL;
    }
    // The probes see the kernel's pids (the initial PID namespace); in a container with its own
    // PID namespace, fork() returns pids the filter would never match.
    struct stat ns;
    if (stat("/proc/self/ns/pid", &ns) == 0 && ns.st_ino != KP_INITIAL_PID_NS_INODE) {
        if (why)
            snprintf(why, why_len, "kernel probes off: asynctrace runs in a PID namespace of its own (a container); "
                                   "the probes need the host's PID namespace");
        errno = ENOTSUP;
        return NULL;
    }
    uint64_t ring_bytes = options && options->ring_bytes ? options->ring_bytes : KP_DEFAULT_RING_BYTES;
    long page = sysconf(_SC_PAGESIZE);
    if (!is_power_of_two(ring_bytes) || ring_bytes < (uint64_t)page || ring_bytes > (1ull << 31)) {
        if (why)
            snprintf(why, why_len, "kernel probes off: ring buffer size %llu is not a power of two between %ld and 2 GiB",
                     (unsigned long long)ring_bytes, page);
        errno = EINVAL;
        return NULL;
    }

    struct kp_probes *p = calloc(1, sizeof(*p));
    if (p)
        p->ring.epoll_fd = -1;
    if (!p) {
        explain(why, why_len, ENOMEM, "allocation");
        errno = ENOMEM;
        return NULL;
    }
    p->ring_bytes = ring_bytes;
    int err = 0;
    const char *step = "opening the BPF object";
    p->skel = syscall_probes_bpf__open();
    if (!p->skel) {
        err = errno;
        goto fail;
    }
    p->skel->rodata->wakeup_every = options && options->wakeup_every ? options->wakeup_every : KP_DEFAULT_WAKEUP_EVERY;
    p->skel->rodata->wakeup_bytes = options && options->wakeup_bytes ? options->wakeup_bytes : ring_bytes / 2;
    int baseline = options && options->baseline;
    // Families switched off are not loaded at all, so their tracepoints cost nothing.
    int syscall_family = !(options && options->no_syscalls), scheduler_family = !(options && options->no_scheduler);
    int syscalls = !baseline && syscall_family;
    int scheduler = !baseline && scheduler_family;
    p->skel->rodata->cpu_filter = options && options->task_filter ? 0 : 1;
    bpf_program__set_autoload(p->skel->progs.on_sys_enter, syscalls);
    bpf_program__set_autoload(p->skel->progs.on_sys_exit, syscalls);
    bpf_program__set_autoload(p->skel->progs.on_process_fork, !baseline);
    bpf_program__set_autoload(p->skel->progs.on_process_exit, !baseline);
    bpf_program__set_autoload(p->skel->progs.on_sched_switch, scheduler);
    bpf_program__set_autoload(p->skel->progs.on_sched_waking, scheduler);
    bpf_program__set_autoload(p->skel->progs.on_sched_wakeup_new, scheduler);
    bpf_program__set_autoload(p->skel->progs.on_task_rename, !baseline);
    bpf_program__set_autoload(p->skel->progs.baseline_sys_enter, baseline && syscall_family);
    bpf_program__set_autoload(p->skel->progs.baseline_sys_exit, baseline && syscall_family);
    bpf_program__set_autoload(p->skel->progs.baseline_sched_switch, baseline && scheduler_family);
    bpf_program__set_autoload(p->skel->progs.baseline_sched_waking, baseline && scheduler_family);
    uint32_t sample_hz = options && !baseline ? options->sample_hz : 0;
    bpf_program__set_autoload(p->skel->progs.on_cpu_sample, sample_hz > 0);
    uint64_t stack_threshold = options && !baseline ? options->stack_threshold_ns : 0;
    // Only stacks need the mappings.
    bpf_program__set_autoload(p->skel->progs.on_process_exec, sample_hz > 0 || stack_threshold > 0);
    p->skel->rodata->sample_kernel_stacks = options && options->kernel_stacks ? 1 : 0;
    uint32_t copy = options ? options->stack_copy_bytes : 0;
    p->skel->rodata->stack_copy_bytes = (copy > KP_STACK_COPY_MAX ? KP_STACK_COPY_MAX : copy) & ~7u;
    p->skel->rodata->stack_threshold_ns = stack_threshold;
    step = "sizing the ring buffer";
    if ((err = -bpf_map__set_max_entries(p->skel->maps.events, (uint32_t)ring_bytes)) != 0)
        goto fail;
    step = "loading the BPF programs";
    if ((err = -syscall_probes_bpf__load(p->skel)) != 0)
        goto fail;
    step = "attaching to the syscall and scheduler tracepoints";
    if ((err = -syscall_probes_bpf__attach(p->skel)) != 0)
        goto fail;
    if (sample_hz > 0) {
        // Not fatal: the syscall probes are worth having without samples (the caller says why).
        p->sampling = kp_sampling_start(p->skel->progs.on_cpu_sample, sample_hz);
        if (!p->sampling)
            p->sampling_error = errno;
    }
    p->scheduler = scheduler;
    step = "mapping the ring buffer";
    if ((err = -ring_open(&p->ring, bpf_map__fd(p->skel->maps.events), ring_bytes)) != 0)
        goto fail;
    return p;

fail:
    if (err <= 0)
        err = EINVAL;
    explain(why, why_len, err, step);
    kp_probes_close(p);
    errno = err;
    return NULL;
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL // linux/pidfd.h, kernel 6.9: a pidfd for one thread
#endif

// A thread's state letter from /proc/<tgid>/task/<tid>/stat (0: unreadable). The name before it may hold
// any byte, ')' and spaces included: the state follows the last ')'.
static char thread_state(uint32_t tgid, unsigned long tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%u/task/%lu/stat", tgid, tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' ? close_paren[2] : 0;
}

// Whether a thread is off its CPU, and in which syscall, from /proc/<tgid>/task/<tid>/syscall: the kernel
// answers only once the thread has left its CPU (wait_task_inactive), with "nr arg... sp pc", or "-1 sp pc"
// outside a syscall; "running" when it runs, is woken meanwhile, or is on its way to sleep (state set, not yet
// switched out, which /proc/.../stat already shows as asleep). Returns 1 + the syscall, 0 for none, -1: on a
// CPU or not known.
static int64_t thread_off_cpu_in(uint32_t tgid, unsigned long tid) {
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%u/task/%lu/syscall", tgid, tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *end;
    long nr = strtol(buf, &end, 10);
    if (end == buf || (*end != ' ' && *end != '\n'))
        return -1;
    return nr >= 0 && nr < 0xffff ? nr + 1 : 0;
}

// A thread asleep when its process begins to be traced has no episode in the probes until they see its
// wakeup or its switch-in. Should they miss both (rare; sched_probes.bpf.h), its next switch-out would open a
// fresh episode and the wait would count as time on a CPU. So every thread found asleep (S, D, I, T in its
// stat) and off its CPU (its syscall file) after the tgid's bit was set gets an episode open since tracing
// began, as the probes' own wakeup path would open it, unless the probes have opened one by now (BPF_NOEXIST:
// they saw it wake or switch out, and theirs is the truth). Best effort: a thread that ends meanwhile, or a
// kernel without thread pidfds (before 6.9), is left to the probes.
static void open_episodes_of_sleepers(struct kp_probes *p, uint32_t tgid, uint64_t since) {
    if (since == 0)
        return;
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/task", tgid);
    DIR *dir = opendir(path);
    if (!dir)
        return;
    int map = bpf_map__fd(p->skel->maps.offcpu_by_task);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        char *end;
        unsigned long tid = strtoul(entry->d_name, &end, 10);
        if (*end != 0 || tid == 0 || tid >= KP_MAX_PID)
            continue;
        char state = thread_state(tgid, tid);
        uint32_t kp_state = state == 'S'                   ? KP_OFFCPU_SLEEPING
                            : state == 'D' || state == 'I' ? KP_OFFCPU_UNINTERRUPTIBLE
                            : state == 'T' || state == 't' ? KP_OFFCPU_OTHER
                                                           : UINT32_MAX;
        if (kp_state == UINT32_MAX)
            continue; // running or runnable: the probes' switch-in path counts a runnable one's wait
        int64_t syscall_plus_one = thread_off_cpu_in(tgid, tid);
        if (syscall_plus_one < 0)
            continue;
        int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)tid, PIDFD_THREAD);
        if (pidfd < 0)
            continue;
        struct kp_offcpu_episode episode = {.off_ns = since, .state = kp_state, .syscall = (uint32_t)syscall_plus_one};
        bpf_map_update_elem(map, &pidfd, &episode, BPF_NOEXIST);
        close(pidfd);
    }
    closedir(dir);
}

int kp_probes_trace_tgid(struct kp_probes *p, uint32_t tgid) {
    if (!p || tgid >= KP_MAX_PID)
        return -EINVAL;
    if (__atomic_load_n(&p->skel->bss->tracing_since_ns, __ATOMIC_RELAXED) == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts); // bpf_ktime_get_ns()'s clock
        __atomic_store_n(&p->skel->bss->tracing_since_ns, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec,
                         __ATOMIC_SEQ_CST);
    }
    __atomic_fetch_or(&p->skel->bss->traced_tgids[tgid / 64], 1ull << (tgid % 64), __ATOMIC_SEQ_CST);
    if (p->scheduler)
        open_episodes_of_sleepers(p, tgid, __atomic_load_n(&p->skel->bss->tracing_since_ns, __ATOMIC_SEQ_CST));
    return 0;
}

int kp_probes_is_traced(const struct kp_probes *p, uint32_t tgid) {
    if (!p || tgid >= KP_MAX_PID)
        return 0;
    return (int)((__atomic_load_n(&p->skel->bss->traced_tgids[tgid / 64], __ATOMIC_RELAXED) >> (tgid % 64)) & 1);
}

int kp_probes_thread_episode(const struct kp_probes *p, uint32_t tid, struct kp_offcpu_episode *out) {
    if (!p || !p->scheduler || !out || tid == 0 || tid >= KP_MAX_PID)
        return -EINVAL;
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)tid, PIDFD_THREAD);
    if (pidfd < 0)
        return -errno;
    int rc = bpf_map_lookup_elem(bpf_map__fd(p->skel->maps.offcpu_by_task), &pidfd, out) == 0 ? 0 : -errno;
    close(pidfd);
    return rc;
}

int kp_probes_wait(struct kp_probes *p, int timeout_ms) {
    // The BPF side wakes us only every few thousand records, so the caller reads after every
    // wait, woken or timed out; and never waits while records are there. (Waiting edge-triggered for
    // the next wakeup even with records waiting was measured too: no difference in the reader's CPU
    // per request on four servers under load, asynctrace-bench probes.)
    struct ring_reader *r = &p->ring;
    r->known_prod = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
    if (r->pos < r->known_prod || timeout_ms == 0)
        return 0;
    struct epoll_event ev;
    if (epoll_wait(r->epoll_fd, &ev, 1, timeout_ms) < 0 && errno != EINTR)
        return -errno;
    return 0;
}

const void *kp_probes_next(struct kp_probes *p, uint32_t *size) { return ring_next(&p->ring, size); }

void kp_probes_done(struct kp_probes *p) {
    __atomic_store_n(p->ring.consumer_pos, p->ring.pos, __ATOMIC_RELEASE);
    p->ring.unpublished = 0;
}

void kp_probes_detach(struct kp_probes *p) {
    if (!p)
        return;
    kp_sampling_stop(p->sampling);
    p->sampling = NULL;
    if (p->skel)
        syscall_probes_bpf__detach(p->skel);
}

uint64_t kp_probes_dropped(const struct kp_probes *p) {
    return __atomic_load_n(&p->skel->bss->dropped_records, __ATOMIC_RELAXED);
}

uint32_t kp_probes_sampled_cpus(const struct kp_probes *p) { return kp_sampling_cpus(p->sampling); }

int kp_probes_sampling_error(const struct kp_probes *p) { return p->sampling_error; }

uint64_t kp_probes_ring_bytes(const struct kp_probes *p) { return p->ring_bytes; }

void kp_probes_close(struct kp_probes *p) {
    if (!p)
        return;
    ring_close(&p->ring);
    kp_sampling_stop(p->sampling);
    syscall_probes_bpf__destroy(p->skel);
    free(p);
}

struct bpf_program *kp_probes_loop_program(struct kp_probes *p) { return p && p->skel ? p->skel->progs.on_loop_phase : NULL; }

int kp_enable_run_time_stats(void) {
    int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    return fd < 0 ? -errno : fd;
}

int kp_fentry_probe(const char *function, char *why, size_t why_len) {
    if (why && why_len)
        why[0] = 0;
    struct btf *vmlinux = btf__load_vmlinux_btf();
    if (!vmlinux) {
        int err = errno ? errno : ENOENT;
        if (why)
            snprintf(why, why_len, "no kernel BTF: %s", strerror(err));
        return -err;
    }
    int id = btf__find_by_name_kind(vmlinux, function, BTF_KIND_FUNC);
    btf__free(vmlinux);
    if (id < 0) {
        if (why)
            snprintf(why, why_len, "%s is not a function in the kernel's BTF", function);
        return -ENOENT;
    }
    // r0 = 0; exit: the smallest program; what is asked is whether the kernel lets one in.
    struct bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT},
    };
    char log[512] = {0};
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FENTRY, .attach_btf_id = (uint32_t)id,
                .log_buf = log, .log_size = sizeof(log), .log_level = 1);
    int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "kp_fentry_probe", "GPL", insns, 2, &opts);
    if (fd < 0) {
        int err = errno;
        size_t n = strlen(log);
        while (n > 0 && (log[n - 1] == '\n' || log[n - 1] == ' '))
            log[--n] = 0;
        if (why)
            snprintf(why, why_len, "loading an fentry program on %s failed: %s%s%s%s", function, strerror(err),
                     n ? " (verifier: " : " (no verifier log: refused before verification)", n ? log : "", n ? ")" : "");
        return -err;
    }
    int link = bpf_raw_tracepoint_open(NULL, fd); // attaches a tracing program to its target
    int err = link < 0 ? errno : 0;
    if (link >= 0)
        close(link);
    close(fd);
    if (err && why)
        snprintf(why, why_len, "attaching an fentry program to %s failed: %s", function, strerror(err));
    return -err;
}

int kp_count_loaded_programs(const char *name) {
    uint32_t id = 0;
    int count = 0;
    while (bpf_prog_get_next_id(id, &id) == 0) {
        int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0)
            continue; // unloaded meanwhile
        struct bpf_prog_info info = {0};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && strncmp(info.name, name, sizeof(info.name)) == 0)
            count++;
        close(fd);
    }
    return errno == ENOENT ? count : -errno;
}

const char *kp_probes_source_hash(void) {
    // Written into the skeleton by tools/gen-bpf-skeleton.sh.
    return KP_SKELETON_SOURCE_HASH;
}
