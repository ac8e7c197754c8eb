// The perf events behind CPU sampling: one software cpu-clock event per CPU (hardware counters
// are often unavailable in VMs; cpu-clock always works), each running on_cpu_sample, which keeps
// only the traced processes' samples.
#include "cpu_sampling.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <bpf/libbpf.h>

struct kp_sampling {
    uint32_t count;
    int *fds;
    struct bpf_link **links;
};

static int perf_event_open(struct perf_event_attr *attr, int cpu) {
    return (int)syscall(SYS_perf_event_open, attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

struct kp_sampling *kp_sampling_start(struct bpf_program *program, uint32_t hz) {
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    if (cpus <= 0 || hz == 0) {
        errno = EINVAL;
        return NULL;
    }
    struct kp_sampling *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fds = calloc((size_t)cpus, sizeof(int));
    s->links = calloc((size_t)cpus, sizeof(struct bpf_link *));
    if (!s->fds || !s->links) {
        kp_sampling_stop(s);
        errno = ENOMEM;
        return NULL;
    }
    int last_error = ENODEV;
    for (long cpu = 0; cpu < cpus; cpu++) {
        struct perf_event_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.size = sizeof(attr);
        attr.type = PERF_TYPE_SOFTWARE;
        attr.config = PERF_COUNT_SW_CPU_CLOCK;
        // A fixed period of CPU time (cpu-clock counts ns), not freq mode: the kernel's frequency
        // adjustment starts slow (a 0.5 s run got a third of the asked-for samples).
        attr.sample_period = 1000000000ull / hz;
        int fd = perf_event_open(&attr, (int)cpu);
        if (fd < 0) {
            last_error = errno; // offline CPU, or over kernel.perf_event_max_sample_rate
            continue;
        }
        struct bpf_link *link = bpf_program__attach_perf_event(program, fd);
        if (!link) {
            last_error = errno;
            close(fd);
            continue;
        }
        s->fds[s->count] = fd;
        s->links[s->count] = link;
        s->count++;
    }
    if (s->count == 0) {
        kp_sampling_stop(s);
        errno = last_error;
        return NULL;
    }
    return s;
}

void kp_sampling_stop(struct kp_sampling *s) {
    if (!s)
        return;
    for (uint32_t i = 0; i < s->count; i++) {
        bpf_link__destroy(s->links[i]);
        close(s->fds[i]);
    }
    free(s->fds);
    free(s->links);
    free(s);
}

uint32_t kp_sampling_cpus(const struct kp_sampling *s) { return s ? s->count : 0; }
