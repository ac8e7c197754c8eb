// Creating a trace file without letting whoever controls the path steer it (issue 13): root
// under sudo must not truncate, re-own or re-mode a file the invoking user planted a link to.
#define _GNU_SOURCE
#include "recorder_support.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *trace_secure_getenv(const char *name) { return secure_getenv(name); }

// The fs identity calls act on the calling thread only when made as raw syscalls (glibc's
// setgroups broadcasts to every thread); that is what we want: nothing else changes identity.
struct saved_identity {
    long fsuid, fsgid;
    int group_count;
    gid_t groups[256];
    int active;
};

static int become(const struct trace_file_owner *owner, struct saved_identity *saved) {
    saved->active = 0;
    if (owner == NULL || owner->uid < 0) return 0;
    if (owner->group_count > 65536) { errno = EINVAL; return -1; }
    saved->group_count = (int)syscall(SYS_getgroups, 256, saved->groups);
    if (saved->group_count < 0) return -1;
    saved->fsuid = syscall(SYS_setfsuid, -1);
    saved->fsgid = syscall(SYS_setfsgid, -1);
    if (syscall(SYS_setgroups, owner->group_count, owner->groups) != 0) return -1;
    syscall(SYS_setfsgid, owner->gid);
    syscall(SYS_setfsuid, owner->uid);
    saved->active = 1;
    // setfsuid reports no errors: read the values back.
    if (syscall(SYS_setfsuid, -1) != owner->uid || syscall(SYS_setfsgid, -1) != owner->gid) { errno = EPERM; return -1; }
    return 0;
}

static void restore(struct saved_identity *saved) {
    if (!saved->active) return;
    int e = errno;
    syscall(SYS_setfsuid, saved->fsuid);
    syscall(SYS_setfsgid, saved->fsgid);
    syscall(SYS_setgroups, saved->group_count, saved->groups);
    saved->active = 0;
    errno = e;
}

int trace_open_output(const char *path, int truncate, int append_only, const struct trace_file_owner *owner,
                      int *created, const char **why) {
    *created = 0;
    *why = NULL;
    struct saved_identity saved;
    if (become(owner, &saved) != 0) {
        restore(&saved);
        *why = "cannot take on the invoking user's identity";
        return -1;
    }
    int fd = -1;
    if (!append_only) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) *created = 1;
    }
    if (fd < 0 && (append_only || errno == EEXIST)) {
        // O_NONBLOCK: a FIFO must not hang the open; anything but a regular file is refused below.
        fd = open(path, O_WRONLY | O_NOFOLLOW | O_APPEND | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0 && errno == ELOOP) *why = "it is a symbolic link";
        if (fd < 0 && errno == ENXIO) *why = "it is not a regular file";
        if (fd >= 0) {
            struct stat st;
            uid_t me = (owner != NULL && owner->uid >= 0) ? (uid_t)owner->uid : geteuid();
            int bad = 0;
            if (fstat(fd, &st) != 0) bad = errno;
            else if (!S_ISREG(st.st_mode)) { *why = "it is not a regular file"; bad = EINVAL; }
            else if (st.st_nlink != 1) { *why = "it has more than one hard link"; bad = EPERM; }
            else if (st.st_uid != me) { *why = "it belongs to another user"; bad = EPERM; }
            else if (fcntl(fd, F_SETFL, O_APPEND) != 0) bad = errno;
            else if (truncate && ftruncate(fd, 0) != 0) bad = errno;
            if (bad) {
                close(fd);
                fd = -1;
                errno = bad;
            }
        }
    } else if (fd < 0 && errno == ELOOP) {
        *why = "it is a symbolic link";
    }
    restore(&saved);
    return fd;
}

int trace_open_reserve(int trace_fd, const char *path, const struct trace_file_owner *owner, size_t bytes) {
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir) { errno = ENAMETOOLONG; return -1; }
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    struct saved_identity saved;
    if (become(owner, &saved) != 0) {
        restore(&saved);
        return -1;
    }
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    restore(&saved);
    if (fd < 0) return -1;
    struct stat reserve, trace;
    int bad = 0;
    if (fstat(fd, &reserve) != 0 || fstat(trace_fd, &trace) != 0) bad = errno;
    else if (reserve.st_dev != trace.st_dev) bad = EXDEV;  // the directory changed under us: no use
    else if (fallocate(fd, 0, 0, (off_t)bytes) != 0) {
        // Filesystems without fallocate: write the blocks.
        static const char zeros[4096];
        for (size_t done = 0; done < bytes && !bad;) {
            size_t want = bytes - done < sizeof zeros ? bytes - done : sizeof zeros;
            ssize_t w = write(fd, zeros, want);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) bad = w < 0 ? errno : ENOSPC;
            else done += (size_t)w;
        }
    }
    if (bad) {
        close(fd);
        errno = bad;
        return -1;
    }
    return fd;
}

int trace_open_window_directory(const char *path, const struct trace_file_owner *owner, const char **why) {
    *why = NULL;
    struct saved_identity saved;
    if (become(owner, &saved) != 0) {
        restore(&saved);
        *why = "cannot take on the invoking user's identity";
        return -1;
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        restore(&saved);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) *why = "it is a symbolic link or not a directory";
    if (fd >= 0) {
        struct stat st;
        uid_t me = (owner != NULL && owner->uid >= 0) ? (uid_t)owner->uid : geteuid();
        int bad = 0;
        if (fstat(fd, &st) != 0) bad = errno;
        else if (!S_ISDIR(st.st_mode)) { *why = "it is not a directory"; bad = ENOTDIR; }
        else if (st.st_uid != me) { *why = "it belongs to another user"; bad = EPERM; }
        else if ((st.st_mode & 022) != 0) { *why = "other users can write to it (give a directory only you can write)"; bad = EPERM; }
        if (bad) {
            close(fd);
            fd = -1;
            errno = bad;
        }
    }
    restore(&saved);
    return fd;
}

int trace_create_at(int directory, const char *name, const struct trace_file_owner *owner) {
    struct saved_identity saved;
    if (become(owner, &saved) != 0) {
        restore(&saved);
        return -1;
    }
    int fd = openat(directory, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    restore(&saved);
    return fd;
}

int trace_unlink_at(int directory, const char *name, const struct trace_file_owner *owner) {
    struct saved_identity saved;
    if (become(owner, &saved) != 0) {
        restore(&saved);
        return -1;
    }
    int r = unlinkat(directory, name, 0);
    restore(&saved);
    return r;
}

int trace_loss_counters_create(struct trace_loss_counters **out) {
    *out = NULL;
    int fd = memfd_create("asynctrace-losses", 0); // inherited by the program on purpose
    if (fd < 0) return -1;
    if (ftruncate(fd, 4096) != 0) { close(fd); return -1; }
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { close(fd); return -1; }
    struct trace_loss_counters *c = p;
    c->magic = TRACE_LOSS_MAGIC;
    *out = c;
    return fd;
}

struct trace_loss_counters *trace_loss_counters_attach(int fd) {
    struct stat st;
    // Only a memfd set up by record: a crafted fd number must not map someone's file writable.
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 4096 || st.st_nlink != 0) return NULL;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || (flags & O_ACCMODE) != O_RDWR) return NULL;
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return NULL;
    struct trace_loss_counters *c = p;
    if (__atomic_load_n(&c->magic, __ATOMIC_RELAXED) != TRACE_LOSS_MAGIC) {
        munmap(p, 4096);
        return NULL;
    }
    return c;
}

void trace_loss_counters_add(struct trace_loss_counters *c, uint64_t events, int error) {
    if (c == NULL) return;
    __atomic_fetch_add(&c->events_lost, events, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->chunks_lost, 1, __ATOMIC_RELAXED);
    uint64_t none = 0;
    __atomic_compare_exchange_n(&c->first_errno, &none, (uint64_t)(error > 0 ? error : 5), 0, __ATOMIC_RELAXED,
                                __ATOMIC_RELAXED);
}

void trace_loss_counters_recorder(struct trace_loss_counters *c, int flushed) {
    if (c == NULL) return;
    __atomic_fetch_add(flushed ? &c->recorders_flushed : &c->recorders_started, 1, __ATOMIC_RELAXED);
    if ((uint32_t)getpid() == __atomic_load_n(&c->root_pid, __ATOMIC_RELAXED))
        __atomic_fetch_or(&c->root_state, flushed ? TRACE_RECORDER_FLUSHED : TRACE_RECORDER_STARTED, __ATOMIC_RELAXED);
}

int trace_peer_uid(int fd, unsigned int *uid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *uid = cred.uid;
    return 0;
}

int trace_memory_file(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int trace_discard_prefix(int fd, uint64_t bytes) {
    uint64_t page = 4096;
    uint64_t n = bytes - bytes % page;
    if (n == 0) return 0;
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)n);
}
