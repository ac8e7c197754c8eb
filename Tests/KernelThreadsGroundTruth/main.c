// The ground-truth child of the scheduler/thread/fd tests: threads with known names that sleep,
// wait on a condition variable, burn CPU and read a file for known times, and one fd number that
// is reused for a file, a TCP socket and a pipe. It writes what it did ("key value" lines) to
// RESULTS_PATH; the test compares the recorded kernel events with it.
// Usage: kernel-threads-groundtruth RESULTS_PATH SCRATCH_FILE
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static FILE *results;
static pthread_mutex_t results_lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what) {
    perror(what);
    exit(99);
}

static void fact(const char *key, long long value) {
    pthread_mutex_lock(&results_lock);
    fprintf(results, "%s %lld\n", key, value);
    pthread_mutex_unlock(&results_lock);
}

static uint64_t now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// --- sleeper: nanosleep(2) 50 ms, then usleep 30 ms (glibc: clock_nanosleep) ---
static void *sleeper(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "gt-sleeper");
    fact("sleeper", gettid());
    struct timespec ts = {0, 50 * 1000 * 1000};
    if (syscall(SYS_nanosleep, &ts, NULL) != 0)
        die("nanosleep");
    usleep(30 * 1000);
    return NULL;
}

// --- condition variable: the waiter waits, the signaler signals after 40 ms ---
static pthread_mutex_t cv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int cv_ready, cv_waiting;

static void *waiter(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "gt-waiter");
    fact("waiter", gettid());
    pthread_mutex_lock(&cv_lock);
    cv_waiting = 1;
    while (!cv_ready)
        pthread_cond_wait(&cv, &cv_lock);
    pthread_mutex_unlock(&cv_lock);
    return NULL;
}

static void *signaler(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "gt-signaler");
    fact("signaler", gettid());
    for (;;) { // until the waiter is inside pthread_cond_wait
        pthread_mutex_lock(&cv_lock);
        int w = cv_waiting;
        pthread_mutex_unlock(&cv_lock);
        if (w)
            break;
        usleep(1000);
    }
    usleep(40 * 1000);
    pthread_mutex_lock(&cv_lock);
    cv_ready = 1;
    fact("signal_ns", (long long)now_ns(CLOCK_MONOTONIC));
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&cv_lock);
    return NULL;
}

// --- burner: 100 ms of its own CPU time, no syscalls in between ---
static volatile uint64_t sink;

// Time all CPUs spent in interrupts or stolen by the hypervisor (ns, from /proc/stat): the
// thread's own CPU clock leaves it out, the scheduler's view of "on CPU" does not.
static long long unaccounted_ns(void) {
    FILE *f = fopen("/proc/stat", "re");
    unsigned long long v[10] = {0};
    if (!f)
        return 0;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
               &v[7]) != 8)
        v[5] = v[6] = v[7] = 0;
    fclose(f);
    return (long long)(v[5] + v[6] + v[7]) * (1000000000ll / sysconf(_SC_CLK_TCK));
}

static void *burner(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "gt-burner");
    fact("burner", gettid());
    long long unaccounted0 = unaccounted_ns();
    uint64_t wall0 = now_ns(CLOCK_MONOTONIC), cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    while (now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0 < 100 * 1000 * 1000ull)
        for (int i = 0; i < 10000; i++)
            sink += i;
    uint64_t wall1 = now_ns(CLOCK_MONOTONIC), cpu1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    fact("burn_start_ns", (long long)wall0);
    fact("burn_end_ns", (long long)wall1);
    fact("burn_cpu_ns", (long long)(cpu1 - cpu0));
    fact("burn_unaccounted_ns", unaccounted_ns() - unaccounted0);
    return NULL;
}

// --- readers: blocking reads of the scratch file ---
static const char *scratch;
static void *reader(void *arg) {
    char name[16];
    snprintf(name, sizeof(name), "gt-reader-%d", (int)(intptr_t)arg);
    pthread_setname_np(pthread_self(), name);
    char key[32];
    snprintf(key, sizeof(key), "reader%d", (int)(intptr_t)arg);
    fact(key, gettid());
    int fd = open(scratch, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open scratch");
    static __thread char buf[1 << 16];
    for (int i = 0; i < 16; i++)
        if (pread(fd, buf, sizeof(buf), (off_t)i * sizeof(buf)) != sizeof(buf))
            die("pread");
    close(fd);
    return NULL;
}

// One fd number: a file, then a TCP socket connected to a listener of ours, then a pipe.
static void fd_reuse(const char *path) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(listener, 4) != 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &len) != 0)
        die("listener");
    fact("listener_port", ntohs(addr.sin_port));
    fact("listener_fd", listener);

    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        die("open");
    fact("reused_fd", f);
    close(f);

    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s != f)
        die("socket did not reuse the fd");
    if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        die("connect");
    struct sockaddr_in local;
    len = sizeof(local);
    getsockname(s, (struct sockaddr *)&local, &len);
    fact("client_port", ntohs(local.sin_port));
    int accepted = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (accepted < 0)
        die("accept");
    fact("accepted_fd", accepted);
    close(s);

    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0 || p[0] != f)
        die("pipe2 did not reuse the fd");
    fact("pipe_write_fd", p[1]);
    close(p[0]);
    close(p[1]);
    close(accepted);
    close(listener);

    // A unix socket bound to a path (the scratch file's name + ".sock"): its row names the path.
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof(un.sun_path), "%s.sock", path);
    unlink(un.sun_path);
    int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (u < 0 || bind(u, (struct sockaddr *)&un, sizeof(un)) != 0)
        die("unix bind");
    fact("unix_fd", u);
    close(u);
    unlink(un.sun_path);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: kernel-threads-groundtruth RESULTS_PATH SCRATCH_FILE\n");
        return 2;
    }
    results = fopen(argv[1], "w");
    if (!results)
        die("results");
    scratch = argv[2];
    fact("main", getpid());
    fd_reuse(argv[2]);

    pthread_t t[6];
    void *(*fns[4])(void *) = {sleeper, waiter, signaler, burner};
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, fns[i], NULL) != 0)
            die("pthread_create");
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[4 + i], NULL, reader, (void *)(intptr_t)i) != 0)
            die("pthread_create");
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    fact("cond_addr", (long long)(uintptr_t)&cv);
    fact("cond_size", (long long)sizeof(cv));
    fclose(results);
    return 0;
}
