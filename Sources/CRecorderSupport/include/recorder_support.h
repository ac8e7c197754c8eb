// What the recorder needs from the platform that Swift cannot say directly: the TSC, the
// thread id and name, and fatal-signal handlers that flush before the signal takes effect.
#ifndef RECORDER_SUPPORT_H
#define RECORDER_SUPPORT_H
#include <stdint.h>
#include <stddef.h>
#include <time.h>

// rdtsc (~20 ns here) instead of clock_gettime (~35 ns); each chunk stores two
// (ticks, CLOCK_MONOTONIC) pairs and the reader maps ticks onto ns.
static inline uint64_t trace_clock_ticks(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
#endif
}

static inline uint64_t trace_clock_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t trace_clock_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/// A (ticks, monotonic ns) pair read as close together as possible: of three tries, the one
/// with the smallest tick gap wins.
static inline void trace_clock_pair(uint64_t *ticks, uint64_t *ns) {
    uint64_t best_gap = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = trace_clock_ticks();
        uint64_t n = trace_clock_monotonic_ns();
        uint64_t t1 = trace_clock_ticks();
        if (t1 - t0 < best_gap) {
            best_gap = t1 - t0;
            *ticks = t0 + (t1 - t0) / 2;
            *ns = n;
        }
    }
}

/// The calling thread's recorder stream: a C thread-local, one instruction to read from Swift
/// (pthread_getspecific is a call). The pthread key is still what runs the thread-exit hook.
extern __thread void *trace_stream_tls;
static inline void *trace_current_stream(void) { return trace_stream_tls; }
static inline void trace_set_current_stream(void *s) { trace_stream_tls = s; }

/// A stream's in-hook count (issue 13: stop must not seal a chunk a thread is still writing). Only its
/// thread writes it: entering a hook adds one (then reads the recording's epoch), leaving takes one.
/// `stop` changes the epoch, runs `trace_process_barrier`, then waits for every count to be zero: either
/// the thread saw the new epoch, or stop sees its count (an asymmetric Dekker pair; the fast side pays two
/// plain stores and no fence).
static inline void trace_hook_enter(uint32_t *count) {
    __atomic_store_n(count, __atomic_load_n(count, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
static inline void trace_hook_leave(uint32_t *count) {
    __atomic_store_n(count, __atomic_load_n(count, __ATOMIC_RELAXED) - 1, __ATOMIC_RELEASE);
}
static inline uint32_t trace_hook_count(const uint32_t *count) { return __atomic_load_n(count, __ATOMIC_ACQUIRE); }

/// A full memory barrier on every running thread of this process (membarrier, private expedited; the global
/// command where that is refused). 0 on success, -1 if neither works (then the caller waits a grace period).
int trace_process_barrier(void);
/// Registers the process for private expedited barriers (cheap; once per recording start).
void trace_process_barrier_register(void);

/// The calling thread's stack: its highest address (exclusive), for `trace_capture_return_addresses`;
/// 0 where pthread_getattr_np cannot say (then nothing is captured).
uintptr_t trace_thread_stack_top(void);

/// Creation stacks: the return addresses of the calling code by its frame-pointer chain, innermost
/// first, after skipping `skip` of them; at most `max`. A walk through code without frame pointers
/// (swiftc -O, Debian's glibc) stops where the chain leaves the stack [own frame, `stack_top`), stops
/// rising, or is misaligned, so it never reads outside the thread's stack. Swift async frames'
/// flag bit (60) is cleared. Returns the count; *hash: a hash of the addresses (0 with none).
int trace_capture_return_addresses(uint64_t *out, int max, int skip, uintptr_t stack_top, uint64_t *hash);

/// One executable region of a loaded object (dl_iterate_phdr: no file is read): its addresses,
/// file offset of `start`, the object's path (NULL for the main program: /proc/self/exe names it)
/// and GNU build id (from its PT_NOTE in memory).
struct trace_code_region {
    uint64_t start, end, file_offset;
    const char *path;
    uint8_t build_id[64];
    uint32_t build_id_length;
};
/// Calls `visit` for every executable PT_LOAD segment of every loaded object; stops early when it returns non-zero.
void trace_code_regions(int (*visit)(const struct trace_code_region *, void *), void *context);

/// CRC32C with the SSE4.2 instruction (the same checksum TraceFormat computes in software, about
/// 5x faster), continuing from `crc` (0 to start). Returns 0 with *ok = 0 where the CPU lacks it.
uint32_t trace_crc32c_hw(uint32_t crc, const void *data, size_t length, int *ok);

uint32_t trace_gettid(void);
/// The calling thread's name into buf (NUL-terminated); 0 on success.
int trace_thread_name(char *buf, size_t size);
void trace_set_thread_name(const char *name);

/// getenv, except in a set-user-ID or otherwise privileged (AT_SECURE) process, where it is NULL:
/// there the environment belongs to whoever started the program, not to the program.
const char *trace_secure_getenv(const char *name);

/// Identity to create a trace file as (under sudo: the invoking user), or uid -1: as the caller.
struct trace_file_owner {
    long uid;
    long gid;
    const unsigned int *groups; // supplementary groups (gid_t)
    size_t group_count;
};

/// Opens a trace file for appending, safely against a path planted by someone else:
/// - the last component is never followed if it is a symlink (O_NOFOLLOW);
/// - a new file is created with O_EXCL, mode 0600 (less by the umask); *created = 1;
/// - an existing file is used only if it is a regular file with one link, owned by the identity
///   opening it; its mode and owner are never changed; with `truncate` it is emptied;
/// - with `owner->uid >= 0` every check and the creation run with that user's filesystem identity
///   (setfsuid/setfsgid/setgroups on this thread only, restored before returning), so the user
///   can reach nothing through the path that they could not reach themselves.
/// `append_only` opens an existing file (written by `asynctrace record`) without creating one.
/// Returns the fd, or -1 with errno set; *why says which rule refused (a static string or NULL).
int trace_open_output(const char *path, int truncate, int append_only, const struct trace_file_owner *owner,
                      int *created, const char **why);

/// Disk space held in reserve for `asynctrace record`'s last words: an unnamed file (O_TMPFILE, so there is
/// nothing to plant, follow or clean up) of `bytes` allocated blocks in the directory of `path`, opened as
/// `owner`, on the same filesystem as `trace_fd` (EXDEV otherwise). When the disk fills while recording,
/// closing it frees just enough room to append the note of what could not be written. -1 with errno set
/// when the filesystem cannot do it (then there is no reserve).
int trace_open_reserve(int trace_fd, const char *path, const struct trace_file_owner *owner, size_t bytes);

/// A flight recorder's window on disk (`--keep-on-disk DIR`): opens DIR (creating it, mode 0700,
/// if missing) as `owner` (as trace_open_output does) and returns a directory fd for the *_at calls
/// below. DIR itself is never followed if it is a symlink, and it must be a directory owned by the
/// identity opening it that no other user can write (nobody else can plant, rename or remove files
/// in it). Returns -1 with errno set; *why says which rule refused (a static string or NULL).
int trace_open_window_directory(const char *path, const struct trace_file_owner *owner, const char **why);

/// Creates `name` in the window directory (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600, read-write) as
/// `owner`. Returns the fd or -1 with errno set (EEXIST: the name is taken).
int trace_create_at(int directory, const char *name, const struct trace_file_owner *owner);

/// Removes `name` from the window directory as `owner`. Returns 0 or -1 with errno set.
int trace_unlink_at(int directory, const char *name, const struct trace_file_owner *owner);

/// What the recorders of a process tree could not write (disk full, I/O error), shared with
/// `asynctrace record` through an inherited memfd (ASYNCTRACE_LOSS_FD), so its summary counts
/// losses that by their nature never reach the trace file.
struct trace_loss_counters {
    uint64_t magic;         // TRACE_LOSS_MAGIC once set up
    uint64_t events_lost;   // events in chunks that could not be written
    uint64_t chunks_lost;
    uint64_t first_errno;   // the first write error (0: none)
    // Recorders that started, and those that then wrote their buffers at the end (stop, exit, a fatal
    // signal): the difference ended without writing them (_exit, SIGKILL), which no file can show.
    uint64_t recorders_started;
    uint64_t recorders_flushed;
    uint32_t root_pid;      // the program record started (set by record before releasing it)
    uint32_t root_state;    // TRACE_RECORDER_STARTED | TRACE_RECORDER_FLUSHED, for root_pid's recorder
};
#define TRACE_RECORDER_STARTED 1u
#define TRACE_RECORDER_FLUSHED 2u
#define TRACE_LOSS_MAGIC 0x31534f4c43525441ull // "ATRCLOS1"
/// record: creates the shared counters; returns the fd (inheritable) or -1.
int trace_loss_counters_create(struct trace_loss_counters **out);
/// recorder: maps the counters behind `fd` if it is such a memfd; NULL otherwise.
struct trace_loss_counters *trace_loss_counters_attach(int fd);
/// recorder: counts one chunk that could not be written (async-signal-safe).
void trace_loss_counters_add(struct trace_loss_counters *c, uint64_t events, int error);
/// recorder: counts this process's recorder as started (`flushed` 0) or as having written its buffers at
/// the end (`flushed` 1; async-signal-safe).
void trace_loss_counters_recorder(struct trace_loss_counters *c, int flushed);

/// Whether `fd` is a SOCK_SEQPACKET socket (a flight recorder's, ASYNCTRACE_FLIGHT_FD).
int trace_is_seqpacket_socket(int fd);

/// The uid of the process at the other end of a unix socket (SO_PEERCRED); 0 on success.
int trace_peer_uid(int fd, unsigned int *uid);

/// `asynctrace top` attached to a flight recorder: a file in memory (memfd, close-on-exec) that the
/// feed is appended to and the follower reads; -1 on error.
int trace_memory_file(const char *name);
/// Frees the first `bytes` of such a file (rounded down to pages; offsets and size stay): 0 on success.
int trace_discard_prefix(int fd, uint64_t bytes);

/// Installs handlers that call `flush(sig)`, restore the previous disposition and re-raise, so the process
/// ends as it would have: for the faults (SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS) unless
/// ignored, for SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGXCPU and SIGXFSZ only where the default action
/// (ending the process) is in place.
void trace_install_fatal_handlers(void (*flush)(int));
/// Blocks every signal but the faults on the calling thread (the recorder's own threads): a signal sent to the
/// process goes to one of the program's threads, as it would without the recorder (Dispatch's workers block
/// them, so a Swift program whose other threads are all workers keeps such a signal pending).
void trace_block_async_signals(void);
#endif
