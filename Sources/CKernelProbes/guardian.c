// The guardian (kernel_probes.h): kills the traced tree when asynctrace dies without dismissing it.
#define _GNU_SOURCE
#include "kernel_probes.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct guardian_entry {
    int64_t pid; // -1: the all-clear
    uint64_t start_time;
};

// Field 22 of /proc/PID/stat (clock ticks after boot); 0 if the process is gone. Async-signal-safe.
static uint64_t start_time(pid_t pid) {
    char path[32] = "/proc/";
    char digits[16];
    int n = 0;
    for (unsigned v = (unsigned)pid; n == 0 || v > 0; v /= 10) digits[n++] = (char)('0' + v % 10);
    size_t at = 6;
    while (n > 0) path[at++] = digits[--n];
    memcpy(path + at, "/stat", 6);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[1024];
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) return 0;
    buf[len] = 0;
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    char *p = NULL;
    for (ssize_t i = len - 1; i >= 0; i--)
        if (buf[i] == ')') { p = buf + i + 1; break; }
    if (p == NULL) return 0;
    int field = 2;
    while (*p && field < 22) {
        if (*p == ' ') field++;
        p++;
    }
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

static struct guardian_entry watched[KP_GUARDIAN_MAX];

static void guard(int fd) __attribute__((noreturn));
static void guard(int fd) {
    size_t count = 0;
    for (;;) {
        struct guardian_entry e;
        size_t got = 0;
        while (got < sizeof e) {
            ssize_t r = read(fd, (char *)&e + got, sizeof e - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (got < sizeof e) break; // EOF: asynctrace is gone without the all-clear
        if (e.pid == -1) _exit(0);
        if (count < KP_GUARDIAN_MAX) watched[count++] = e;
    }
    // Newest first: a parent killed first could not have its children reparented out of reach anyway
    // (they are named here by pid), but a shell killed first might still start something.
    for (size_t i = count; i-- > 0;) {
        pid_t pid = (pid_t)watched[i].pid;
        if (pid > 1 && start_time(pid) == watched[i].start_time) kill(pid, SIGKILL);
    }
    _exit(0);
}

int kp_guardian_start(struct kp_guardian *g) {
    g->pid = -1;
    g->fd = -1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
    }
    if (pid == 0) {
        // Child of a process with threads: async-signal-safe calls only, no allocation.
        close(fds[1]);
        if (fds[0] != 3) {
            dup2(fds[0], 3);
            close(fds[0]);
        }
        syscall(SYS_close_range, 4, ~0U, 0); // nothing of asynctrace's (trace file, BPF objects) stays open
        setpgid(0, 0);                        // a signal to asynctrace's process group does not reach it
        struct sigaction ignore;
        memset(&ignore, 0, sizeof ignore);
        ignore.sa_handler = SIG_IGN;
        sigaction(SIGINT, &ignore, NULL);
        sigaction(SIGTERM, &ignore, NULL);
        sigaction(SIGHUP, &ignore, NULL);
        sigaction(SIGPIPE, &ignore, NULL);
        sigaction(SIGQUIT, &ignore, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        prctl(PR_SET_NAME, "asynctrace-guard");
        guard(3);
    }
    close(fds[0]);
    g->pid = pid;
    g->fd = fds[1];
    return 0;
}

void kp_guardian_watch(struct kp_guardian *g, pid_t pid) {
    if (g->fd < 0 || pid <= 1) return;
    struct guardian_entry e = {pid, start_time(pid)};
    if (e.start_time == 0) return; // already gone
    ssize_t w;
    do {
        w = write(g->fd, &e, sizeof e);
    } while (w < 0 && errno == EINTR);
}

void kp_guardian_dismiss(struct kp_guardian *g) {
    if (g->fd < 0) return;
    struct guardian_entry e = {-1, 0};
    ssize_t w;
    do {
        w = write(g->fd, &e, sizeof e);
    } while (w < 0 && errno == EINTR);
    close(g->fd);
    g->fd = -1;
    int status;
    while (waitpid(g->pid, &status, 0) < 0 && errno == EINTR) {
    }
    g->pid = -1;
}
