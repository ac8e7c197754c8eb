// The ground-truth child of the kernel probe tests: a known sequence of syscalls on fixed fds.
// Usage: kernel-groundtruth RESULTS_PATH
// The test records it and checks that the kernel events match this sequence exactly.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { WRITE_FD = 100, READ_FD = 101, RESULTS_FD = 102, A_IN = 110, A_OUT = 111, B_IN = 112, B_OUT = 113, EPOLL_FD = 120 };

static void die(const char *what) {
    perror(what);
    exit(99);
}

static void move_fd(int fd, int to) {
    if (fd < 0 || dup2(fd, to) != to)
        die("dup2");
    close(fd);
}

static uint64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void writes(int count, const char *bytes, size_t len) {
    for (int i = 0; i < count; i++)
        if (write(WRITE_FD, bytes, len) != (ssize_t)len)
            die("write");
}

static pid_t thread_tids[2];

static void *thread_a(void *arg) {
    (void)arg;
    thread_tids[0] = gettid();
    writes(10, "abc", 3);
    return NULL;
}

static void *thread_b(void *arg) {
    (void)arg;
    thread_tids[1] = gettid();
    writes(20, "abcde", 5);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: kernel-groundtruth RESULTS_PATH\n");
        return 2;
    }
    move_fd(open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600), RESULTS_FD);
    move_fd(open("/dev/null", O_WRONLY), WRITE_FD);
    move_fd(open("/dev/zero", O_RDONLY), READ_FD);

    // 1,000 writes of 7 bytes; the mark is taken just before the first.
    uint64_t mark = monotonic_ns();
    writes(1000, "abcdefg", 7);

    // 500 reads of 4 KiB.
    static char buf[4096];
    for (int i = 0; i < 500; i++)
        if (read(READ_FD, buf, sizeof(buf)) != sizeof(buf))
            die("read");

    // epoll on two socket pairs with known readiness; data.u64 = fd, like the runtime.
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        die("socketpair");
    move_fd(sv[0], A_IN);
    move_fd(sv[1], A_OUT);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        die("socketpair");
    move_fd(sv[0], B_IN);
    move_fd(sv[1], B_OUT);
    move_fd(epoll_create1(0), EPOLL_FD);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = A_IN;
    if (epoll_ctl(EPOLL_FD, EPOLL_CTL_ADD, A_IN, &ev) != 0)
        die("epoll_ctl");
    ev.data.u64 = B_IN;
    if (epoll_ctl(EPOLL_FD, EPOLL_CTL_ADD, B_IN, &ev) != 0)
        die("epoll_ctl");
    struct epoll_event out[16];
    if (epoll_wait(EPOLL_FD, out, 16, 0) != 0) // nothing ready
        die("epoll_wait 1");
    if (write(A_OUT, "x", 1) != 1)
        die("write a");
    if (epoll_wait(EPOLL_FD, out, 16, 1000) != 1) // A_IN
        die("epoll_wait 2");
    if (write(B_OUT, "y", 1) != 1)
        die("write b");
    if (epoll_pwait(EPOLL_FD, out, 8, -1, NULL) != 2) // A_IN and B_IN
        die("epoll_pwait");
    if (read(A_IN, buf, 1) != 1 || read(B_IN, buf, 1) != 1)
        die("read a/b");
    struct timespec five_ms = {0, 5000000};
    if (syscall(SYS_epoll_pwait2, EPOLL_FD, out, 4, &five_ms, NULL, 0) != 0) // times out
        die("epoll_pwait2");

    // A grandchild: 3 writes of 11 bytes, exit status 3.
    pid_t grandchild = fork();
    if (grandchild < 0)
        die("fork");
    if (grandchild == 0) {
        writes(3, "12345678901", 11);
        _exit(3);
    }
    int status;
    if (waitpid(grandchild, &status, 0) != grandchild)
        die("waitpid");

    // Two threads: 10 writes of 3 bytes and 20 writes of 5 bytes.
    pthread_t a, b;
    if (pthread_create(&a, NULL, thread_a, NULL) != 0 || pthread_create(&b, NULL, thread_b, NULL) != 0)
        die("pthread_create");
    pthread_join(a, NULL);
    pthread_join(b, NULL);

    dprintf(RESULTS_FD, "mark %llu\nmain %d\ngrandchild %d\nthreadA %d\nthreadB %d\n", (unsigned long long)mark,
            (int)gettid(), (int)grandchild, (int)thread_tids[0], (int)thread_tids[1]);
    return 0;
}
