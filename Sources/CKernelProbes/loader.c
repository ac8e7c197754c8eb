// Loads the committed skeleton of bpf/syscall_probes.bpf.c and drains its ring buffer.
#include "kernel_probes.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "syscall_probes.skel.h"

struct kp_probes {
    struct syscall_probes_bpf *skel;
    struct ring_buffer *ring;
    uint64_t ring_bytes;
};

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

static int is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }

struct kp_probes *kp_probes_open(const struct kp_options *options, kp_record_fn on_record, void *ctx,
                                 char *why, size_t why_len) {
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
    step = "sizing the ring buffer";
    if ((err = -bpf_map__set_max_entries(p->skel->maps.events, (uint32_t)ring_bytes)) != 0)
        goto fail;
    step = "loading the BPF programs";
    if ((err = -syscall_probes_bpf__load(p->skel)) != 0)
        goto fail;
    step = "attaching to the syscall tracepoints";
    if ((err = -syscall_probes_bpf__attach(p->skel)) != 0)
        goto fail;
    step = "mapping the ring buffer";
    p->ring = ring_buffer__new(bpf_map__fd(p->skel->maps.events), (ring_buffer_sample_fn)on_record, ctx, NULL);
    if (!p->ring) {
        err = errno;
        goto fail;
    }
    return p;

fail:
    if (err <= 0)
        err = EINVAL;
    explain(why, why_len, err, step);
    kp_probes_close(p);
    errno = err;
    return NULL;
}

int kp_probes_trace_tgid(struct kp_probes *p, uint32_t tgid) {
    if (!p || tgid >= KP_MAX_PID)
        return -EINVAL;
    __atomic_fetch_or(&p->skel->bss->traced_tgids[tgid / 64], 1ull << (tgid % 64), __ATOMIC_SEQ_CST);
    return 0;
}

int kp_probes_poll(struct kp_probes *p, int timeout_ms) {
    // The BPF side wakes us only every few hundred records, and epoll reports only rings it was
    // woken for: consume after every wait, woken or timed out.
    int n = ring_buffer__poll(p->ring, timeout_ms);
    if (n < 0 && n != -EINTR)
        return n;
    int m = ring_buffer__consume(p->ring);
    if (m < 0)
        return m;
    return (n > 0 ? n : 0) + m;
}

uint64_t kp_probes_dropped(const struct kp_probes *p) {
    return __atomic_load_n(&p->skel->bss->dropped_records, __ATOMIC_RELAXED);
}

uint64_t kp_probes_ring_bytes(const struct kp_probes *p) { return p->ring_bytes; }

void kp_probes_close(struct kp_probes *p) {
    if (!p)
        return;
    ring_buffer__free(p->ring);
    syscall_probes_bpf__destroy(p->skel);
    free(p);
}

const char *kp_probes_source_hash(void) {
    // Written into the skeleton by tools/gen-bpf-skeleton.sh.
    return KP_SKELETON_SOURCE_HASH;
}
