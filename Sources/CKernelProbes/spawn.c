// Starting the traced program: fork, hold the child on a pipe until its tgid is in the probes'
// filter, then exec (posix_spawn cannot pause between fork and exec). No shell.
#define _GNU_SOURCE
#include "kernel_probes.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXTRA_ENV_MAX 8192
// The release message: the go byte, the extra variable's length (uint32), the variable.
#define RELEASE_MESSAGE_MAX (1 + 4 + EXTRA_ENV_MAX)

struct exec_failure {
    int stage; // 1: dropping privileges, 2: execve
    int error;
};

static int read_full(int fd, void *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static void report_and_exit(int fd, int stage, int error) {
    struct exec_failure f = {stage, error};
    ssize_t w;
    do {
        w = write(fd, &f, sizeof(f));
    } while (w < 0 && errno == EINTR);
    _exit(error == ENOENT ? 127 : 126);
}

int kp_spawn_held(const char *path, char *const argv[], char *const envp[], int uid, int gid,
                  const gid_t *groups, int ngroups, struct kp_held_child *child) {
    // Allocated before the fork: the child may not call malloc. Two spare slots: the extra
    // variable sent at release, and the terminating NULL.
    size_t envc = 0;
    while (envp[envc])
        envc++;
    char **env = calloc(envc + 2, sizeof(char *));
    char *extra = malloc(RELEASE_MESSAGE_MAX);
    if (!env || !extra) {
        free(env);
        free(extra);
        return -ENOMEM;
    }
    memcpy(env, envp, envc * sizeof(char *));
    // `go` is a socket pair so that releasing a child that already died is EPIPE, not SIGPIPE.
    int go[2], status[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0) {
        int e = errno;
        free(env);
        free(extra);
        return -e;
    }
    if (pipe2(status, O_CLOEXEC) != 0) {
        int e = errno;
        close(go[0]);
        close(go[1]);
        free(env);
        free(extra);
        return -e;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        free(env);
        free(extra);
        close(go[0]);
        close(go[1]);
        close(status[0]);
        close(status[1]);
        return -e;
    }
    if (pid == 0) {
        // Child: async-signal-safe calls only (the parent may have other threads).
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        close(go[1]);
        close(status[0]);
        // The whole release message in the read the child is blocked in when it is traced (the parent sends
        // it with one send): a read after it would be in the trace as the program's, on a socket whose fd
        // number the program may use for its own files (a test of a program reading fd 101 saw one more).
        ssize_t r;
        do {
            r = read(go[0], extra, RELEASE_MESSAGE_MAX);
        } while (r < 0 && errno == EINTR);
        if (r < 1)
            _exit(127); // abandoned
        size_t got = (size_t)r;
        if (got < 5 && read_full(go[0], extra + got, 5 - got) != 0)
            _exit(127);
        got = got < 5 ? 5 : got;
        uint32_t len = 0;
        memcpy(&len, extra + 1, sizeof(len));
        if (len >= EXTRA_ENV_MAX || got > 5 + (size_t)len)
            _exit(127);
        if (got < 5 + (size_t)len && read_full(go[0], extra + got, 5 + (size_t)len - got) != 0)
            _exit(127);
        if (len > 0) {
            memmove(extra, extra + 5, len);
            extra[len] = 0;
            env[envc] = extra;
        }
        if (gid >= 0) {
            gid_t g = (gid_t)gid;
            int ok = ngroups > 0 ? setgroups((size_t)ngroups, groups) : setgroups(1, &g);
            if (ok != 0 || setgid(g) != 0)
                report_and_exit(status[1], 1, errno);
        }
        if (uid >= 0 && setuid((uid_t)uid) != 0)
            report_and_exit(status[1], 1, errno);
        // If asynctrace is killed, the program goes too rather than run on untraced (set after the
        // uid change, which clears it; a parent already gone is caught by the getppid check).
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execve(path, argv, env);
        report_and_exit(status[1], 2, errno);
    }
    free(env);
    free(extra);
    close(go[0]);
    close(status[1]);
    child->pid = pid;
    child->release_fd = go[1];
    child->status_fd = status[0];
    return 0;
}

int kp_release_held(struct kp_held_child *child, const char *extra_env, int *stage) {
    // One message: the go byte, the length of the extra variable, the variable.
    char msg[1 + sizeof(uint32_t) + EXTRA_ENV_MAX];
    uint32_t len = extra_env ? (uint32_t)strlen(extra_env) : 0;
    if (len >= EXTRA_ENV_MAX)
        len = 0;
    msg[0] = 1;
    memcpy(msg + 1, &len, sizeof(len));
    if (len)
        memcpy(msg + 1 + sizeof(len), extra_env, len);
    size_t total = 1 + sizeof(len) + len, sent = 0;
    ssize_t w = 0;
    while (sent < total) {
        w = send(child->release_fd, msg + sent, total - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    close(child->release_fd);
    child->release_fd = -1;
    struct exec_failure f = {0, 0};
    ssize_t r;
    do {
        r = read(child->status_fd, &f, sizeof(f));
    } while (r < 0 && errno == EINTR);
    close(child->status_fd);
    child->status_fd = -1;
    if (stage)
        *stage = r == sizeof(f) ? f.stage : 0;
    if (sent != total)
        return EPIPE;
    return r == sizeof(f) ? f.error : 0; // EOF: the close-on-exec pipe closed, exec succeeded
}

void kp_abandon_held(struct kp_held_child *child) {
    if (child->release_fd >= 0)
        close(child->release_fd);
    if (child->status_fd >= 0)
        close(child->status_fd);
    child->release_fd = child->status_fd = -1;
}

static volatile sig_atomic_t forward_pid;
static volatile sig_atomic_t last_signal;
static volatile sig_atomic_t interrupts;

static void say(const char *text) {
    ssize_t w = write(2, text, strlen(text));
    (void)w;
}

static void on_signal(int sig, siginfo_t *info, void *uctx) {
    (void)uctx;
    last_signal = sig;
    // Ctrl-C again: the program ignores SIGINT (or is slow to stop), so escalate as promised.
    if (sig == SIGINT && forward_pid > 0) {
        int n = ++interrupts;
        int saved = errno;
        if (n == 2) {
            say("\nasynctrace: sending SIGTERM to the program (Ctrl-C once more: SIGKILL)\n");
            kill((pid_t)forward_pid, SIGTERM);
        } else if (n >= 3) {
            say("\nasynctrace: sending SIGKILL to the program\n");
            kill((pid_t)forward_pid, SIGKILL);
        }
        errno = saved;
        if (n >= 2)
            return;
    }
    // SI_USER/SI_QUEUE: sent by a process (kill, a supervisor). Signals from the terminal
    // (SI_KERNEL) already went to the child, which shares our process group.
    if (forward_pid > 0 && info && (info->si_code == SI_USER || info->si_code == SI_QUEUE)) {
        int saved = errno;
        kill((pid_t)forward_pid, sig);
        errno = saved;
    }
}

void kp_catch_signals(pid_t forward_to) {
    forward_pid = forward_to;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    int signals[] = {SIGINT, SIGTERM, SIGHUP};
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        struct sigaction old;
        // A signal ignored when we started (nohup, a background job's SIGINT) stays ignored.
        if (sigaction(signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(signals[i], &sa, NULL);
        sigaddset(&set, signals[i]);
    }
    // Whoever started us may have blocked them (threads of a supervising runtime often do).
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int kp_last_signal(void) { return last_signal; }
