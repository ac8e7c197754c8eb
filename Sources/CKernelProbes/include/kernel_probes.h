// The loader of the kernel probes (bpf/syscall_probes.bpf.c): open, configure, load, attach,
// choose the traced processes, drain the ring buffer. Also starts a program held before exec,
// so its tgid can be traced before its first instruction.
#ifndef KERNEL_PROBES_H
#define KERNEL_PROBES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "syscall_event.h"
#include "cpu_sample.h"
#include "loop_phase.h"

struct kp_probes;
struct bpf_program;

struct kp_options {
    uint64_t ring_bytes;   // ring buffer size: a power of two, >= 4096; 0 = KP_DEFAULT_RING_BYTES
    uint32_t wakeup_every; // wake the consumer after this many records per CPU; 0 = default
    uint64_t wakeup_bytes; // ... or when this many bytes wait; 0 = half the ring
    uint32_t baseline;     // 1: attach empty programs instead (measures the tracepoints' own cost)
    uint32_t sample_hz;    // CPU samples of traced threads per second per CPU (cpu-clock); 0 = off
    uint32_t kernel_stacks; // 1: samples carry the kernel stack too
    uint32_t stack_copy_bytes; // samples copy this many bytes of user stack for CFI unwinding (<= KP_STACK_COPY_MAX); 0 = none
    uint64_t stack_threshold_ns; // the user stack of every syscall / off-CPU wait this long or longer; 0 = none
    uint32_t no_syscalls;  // 1: no syscall records (nor fd identity, nor syscall wait stacks)
    uint32_t no_scheduler; // 1: no off-CPU records (sched_switch / sched_waking; nor off-CPU wait stacks)
                           // With `baseline`, no_syscalls / no_scheduler leave out that family's empty programs.
    uint32_t task_filter;  // 1: filter every syscall by the current task, not by the tgid the scheduler probe
                           // noted per CPU (only for the benchmark's comparison)
};

#define KP_DEFAULT_RING_BYTES (16u << 20)
#define KP_DEFAULT_WAKEUP_EVERY 256u

// Loads and attaches the probes. On failure returns NULL, sets errno and writes one line
// saying why (no privileges, no BTF, ...) into `why`.
struct kp_probes *kp_probes_open(const struct kp_options *options, char *why, size_t why_len);

// Adds a process (all its threads, and from now on its forks) to the traced tree. 0 or -errno.
int kp_probes_trace_tgid(struct kp_probes *probes, uint32_t tgid);

// Whether `tgid` is in the traced tree now (1) or not (0).
int kp_probes_is_traced(const struct kp_probes *probes, uint32_t tgid);

// Thread `tid`'s off-CPU episode as the scheduler probes hold it (struct kp_offcpu_episode; off_ns 0: none
// open). 0, or -errno: no such thread, no episode, no thread pidfds, or the scheduler probes are off.
int kp_probes_thread_episode(const struct kp_probes *probes, uint32_t tid, struct kp_offcpu_episode *out);

// Reading the ring without a callback per record (zero copy):
//   kp_probes_wait(p, timeout);                 // returns at once if records are waiting
//   while ((rec = kp_probes_next(p, &size)))   // valid until the next call
//       ...
//   kp_probes_done(p);                          // frees the space for the producers
// Waits up to `timeout_ms` unless records are waiting. 0, or -errno.
int kp_probes_wait(struct kp_probes *probes, int timeout_ms);
// The next committed record, or NULL when none is (yet) committed.
const void *kp_probes_next(struct kp_probes *probes, uint32_t *size);
void kp_probes_done(struct kp_probes *probes);

// Detaches the programs: no new records; those in the ring can still be read.
void kp_probes_detach(struct kp_probes *probes);

// Records the BPF side could not deliver (ring full), since open.
uint64_t kp_probes_dropped(const struct kp_probes *probes);
// CPUs with a sampling perf event (0: sampling off).
uint32_t kp_probes_sampled_cpus(const struct kp_probes *probes);
// Why sampling was asked for but could not start (an errno; 0: it started or was not asked for).
int kp_probes_sampling_error(const struct kp_probes *probes);
uint64_t kp_probes_ring_bytes(const struct kp_probes *probes);

// Detaches and frees everything.
void kp_probes_close(struct kp_probes *probes);

// Turns on the kernel's run_time_ns / run_cnt statistics of every BPF program while the returned fd is
// open (BPF_ENABLE_STATS: counted, so other holders are not disturbed); -errno on failure. Benchmarks only:
// the statistics add two clock reads to every program run.
int kp_enable_run_time_stats(void);

// Whether a BPF trampoline program (fentry) can be loaded and attached to the kernel function `function`
// here: 0, or -errno with the reason (and the verifier's words, if any) in `why`. Detaches at once. The
// probes use tracepoints; this answers, for the benchmark and the docs, whether fentry would be an option.
int kp_fentry_probe(const char *function, char *why, size_t why_len);

// How many BPF programs named `name` (at most 15 characters: the kernel keeps no more) are loaded on the machine
// now, by any process; -errno if they cannot be listed. Benchmarks use it to tell when other sessions' probes share
// the tracepoints they measure.
int kp_count_loaded_programs(const char *name);

// SHA-256 of the bpf/ sources the compiled-in skeleton was generated from.
const char *kp_probes_source_hash(void);

// --- libuv loop phases by uprobes (record --node-loop-phases; loop_probes.c) ---

struct kp_loop_probes;

// The probes' loop-phase program (NULL if this skeleton has none); for kp_loop_probes_new.
struct bpf_program *kp_probes_loop_program(struct kp_probes *probes);
// A set of loop uprobes (none attached yet); NULL with errno set on failure. Free it before the probes.
struct kp_loop_probes *kp_loop_probes_new(struct kp_probes *probes);
// Attaches uprobes to the libuv phase functions of `binary` (NULL: process `pid`'s executable, by
// its symbol table), firing for process `pid` only (all its threads; also after an exec of `binary`
// by a process held before exec). The number attached, or -errno with the reason in `why`
// (-ENOENT: the executable has no such symbols, e.g. not node).
int kp_loop_probes_attach(struct kp_loop_probes *loops, uint32_t pid, const char *binary, char *why, size_t why_len);
// Detaches them all and frees the set (NULL is fine).
void kp_loop_probes_free(struct kp_loop_probes *loops);

// --- starting a program held before exec ---

struct kp_held_child {
    pid_t pid;
    int release_fd; // writing a byte lets the child exec; closing it without a byte makes it exit 127
    int status_fd;  // after release: EOF = exec succeeded, else the failure
};

// Forks a child that waits until released, then drops to gid/uid (if >= 0; supplementary
// groups `groups`, or just gid when ngroups is 0) and execs `path`. Only async-signal-safe calls
// run in the child. 0 or -errno.
int kp_spawn_held(const char *path, char *const argv[], char *const envp[], int uid, int gid,
                  const gid_t *groups, int ngroups, struct kp_held_child *child);

// Lets the child exec, with `extra_env` ("NAME=value", < 8 KiB, or NULL) added to its
// environment: it can name things that exist only after the fork, like a file named after the
// child's pid. 0 if exec succeeded; otherwise the errno of the failed step, and `*stage` says
// which: 1 setgroups/setgid/setuid, 2 execve. The child has then exited (reap it).
int kp_release_held(struct kp_held_child *child, const char *extra_env, int *stage);

// Makes a held child exit without exec'ing (status 127).
void kp_abandon_held(struct kp_held_child *child);

// --- the guardian: the traced tree does not outlive a killed asynctrace ---
// PR_SET_PDEATHSIG covers the program asynctrace started, not what that program started. The guardian is a
// small process forked from asynctrace (in its own process group, ignoring the terminal's signals) that
// reads the tree's processes from a pipe; when the pipe closes without the all-clear (asynctrace was
// killed, even by SIGKILL), it sends SIGKILL to each of them still alive and still the same process (its
// start time in /proc/PID/stat unchanged), then exits. At most KP_GUARDIAN_MAX processes are watched.
#define KP_GUARDIAN_MAX 16384
struct kp_guardian {
    pid_t pid;
    int fd; // write end (close-on-exec: the traced program never holds it); -1 when there is no guardian
};
// Starts the guardian. 0 or -errno.
int kp_guardian_start(struct kp_guardian *g);
// Adds a process of the traced tree (its start time is read now). No effect without a guardian.
void kp_guardian_watch(struct kp_guardian *g, pid_t pid);
// The recording ended normally: the guardian exits without killing anything, and is reaped.
void kp_guardian_dismiss(struct kp_guardian *g);

// Catches SIGINT, SIGTERM and SIGHUP. With pid > 0 they are forwarded to `pid` when another
// process sent them (a terminal's Ctrl-C already reaches the whole foreground process group,
// so it is not sent twice). kp_last_signal() returns the last one caught (0: none).
void kp_catch_signals(pid_t forward_to);
int kp_last_signal(void);

#endif
