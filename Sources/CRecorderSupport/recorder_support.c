#define _GNU_SOURCE
#include "recorder_support.h"
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread void *trace_stream_tls;

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p++);
        n--;
    }
    return ~c32;
}
#endif

uint32_t trace_crc32c_hw(uint32_t crc, const void *data, size_t length, int *ok) {
#if defined(__x86_64__)
    static int supported = -1;
    if (supported < 0) supported = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    if (supported) {
        *ok = 1;
        return crc32c_sse42(crc, (const unsigned char *)data, length);
    }
#endif
    *ok = 0;
    return 0;
}

uint32_t trace_gettid(void) { return (uint32_t)syscall(SYS_gettid); }

int trace_thread_name(char *buf, size_t size) { return pthread_getname_np(pthread_self(), buf, size); }

void trace_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

// Faults end the process whatever handler runs; the others end it only by their default action, so they
// are caught only where that action is in place (a program's own handler decides for itself, and an ignored
// signal must stay ignored: catching it would stop the recording of a process that goes on).
static const int fatal_signals[] = {SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS,
                                    SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGXCPU, SIGXFSZ};
#define NFAULTS 7
#define NFATAL (sizeof fatal_signals / sizeof fatal_signals[0])
static struct sigaction previous[NFATAL];
static void (*flush_fn)(int);
static volatile sig_atomic_t flushing;

static void on_fatal(int sig, siginfo_t *info, void *ctx) {
    (void)info;
    (void)ctx;
    if (!flushing && flush_fn) {
        flushing = 1;
        flush_fn(sig);
    }
    for (size_t i = 0; i < NFATAL; i++) {
        if (fatal_signals[i] == sig) {
            sigaction(sig, &previous[i], NULL);
            break;
        }
    }
    // A previous handler that returns (or SIG_DFL) runs when the signal is raised again.
    raise(sig);
}

void trace_block_async_signals(void) {
    sigset_t set;
    sigfillset(&set);
    for (size_t i = 0; i < NFAULTS; i++) sigdelset(&set, fatal_signals[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void trace_install_fatal_handlers(void (*flush)(int)) {
    flush_fn = flush;
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    stack_t old;
    if (sigaltstack(NULL, &old) == 0 && (old.ss_flags & SS_DISABLE)) sigaltstack(&ss, NULL);
    for (size_t i = 0; i < NFATAL; i++) {
        struct sigaction current;
        if (sigaction(fatal_signals[i], NULL, &current) != 0) continue;
        if (current.sa_handler == SIG_IGN) continue;
        if (i >= NFAULTS && ((current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL)) continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fatal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(fatal_signals[i], &sa, &previous[i]);
    }
}

int trace_is_seqpacket_socket(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return 0;
    return type == SOCK_SEQPACKET;
}

// membarrier(2) by number: glibc has no wrapper.

void trace_process_barrier_register(void) {
    (void)syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
}

int trace_process_barrier(void) {
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return 0;
    // Not registered (or refused): the global command waits for every CPU to pass a barrier (slower, always
    // allowed where membarrier exists).
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0) return 0;
    return -1;
}
