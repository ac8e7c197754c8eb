// Starting the traced program: fork, hold the child on a pipe until its tgid is in the probes'
// filter, then exec (posix_spawn cannot pause between fork and exec). No shell.
#define _GNU_SOURCE
#include "kernel_probes.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct exec_failure {
    int stage; // 1: dropping privileges, 2: execve
    int error;
};

static void report_and_exit(int fd, int stage, int error) {
    struct exec_failure f = {stage, error};
    ssize_t w;
    do {
        w = write(fd, &f, sizeof(f));
    } while (w < 0 && errno == EINTR);
    _exit(error == ENOENT ? 127 : 126);
}

int kp_spawn_held(const char *path, char *const argv[], char *const envp[], int uid, int gid,
                  struct kp_held_child *child) {
    // `go` is a socket pair so that releasing a child that already died is EPIPE, not SIGPIPE.
    int go[2], status[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0)
        return -errno;
    if (pipe2(status, O_CLOEXEC) != 0) {
        int e = errno;
        close(go[0]);
        close(go[1]);
        return -e;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
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
        char byte;
        ssize_t r;
        do {
            r = read(go[0], &byte, 1);
        } while (r < 0 && errno == EINTR);
        if (r != 1)
            _exit(127); // abandoned
        if (gid >= 0) {
            gid_t g = (gid_t)gid;
            if (setgroups(1, &g) != 0 || setgid(g) != 0)
                report_and_exit(status[1], 1, errno);
        }
        if (uid >= 0 && setuid((uid_t)uid) != 0)
            report_and_exit(status[1], 1, errno);
        execve(path, argv, envp);
        report_and_exit(status[1], 2, errno);
    }
    close(go[0]);
    close(status[1]);
    child->pid = pid;
    child->release_fd = go[1];
    child->status_fd = status[0];
    return 0;
}

int kp_release_held(struct kp_held_child *child, int *stage) {
    char byte = 1;
    ssize_t w;
    do {
        w = send(child->release_fd, &byte, 1, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
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
    if (w != 1)
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

static void on_signal(int sig, siginfo_t *info, void *uctx) {
    (void)uctx;
    last_signal = sig;
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
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int kp_last_signal(void) { return last_signal; }
