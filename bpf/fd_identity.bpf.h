// fd identity (included by syscall_probes.bpf.c): when a traced syscall makes an fd, the record
// carries what the fd refers to, so that the reader can tell the lives of one fd number apart.
// Kinds come from the syscall where it says (eventfd2, pipe2, ...), else from the new file's inode
// (regular file, directory, device, fifo, socket); sockets add their addresses from the kernel's
// socket, paths are copied from the program's argument.

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFBLK 0060000
#define S_IFDIR 0040000
#define S_IFCHR 0020000
#define S_IFIFO 0010000

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define AF_NETLINK 16
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_UDPLITE 136
#define EINPROGRESS 115

// Whether this completed syscall starts an fd life (or, for connect, bind and listen, describes one), or is
// an open that failed: its record then carries the path it asked for, with new_fd = ret (-errno), so that
// "openat: 623 ENOENT" can say of which files. A connect that failed describes its socket with the address it
// asked for (the kernel forgets a refused or timed-out peer before the call returns).
static __always_inline bool makes_fd(__u32 nr, __s32 fd_arg, __u64 size, long ret) {
    switch (nr) {
    case NR_open:
    case NR_openat:
    case NR_openat2:
        return true;
    case NR_connect:
        return true;
    case NR_bind:
    case NR_listen:
        return ret == 0;
    case NR_fcntl:
        return ret >= 0 && (size == F_DUPFD || size == F_DUPFD_CLOEXEC); // else a lock wait (returns 0)
    case NR_signalfd:
    case NR_signalfd4:
        return ret >= 0 && fd_arg == -1; // else an existing signalfd was changed
    case NR_pipe:
    case NR_pipe2:
    case NR_socketpair:
        return ret == 0;
    case NR_dup:
    case NR_dup2:
    case NR_dup3:
    case NR_socket:
    case NR_accept:
    case NR_accept4:
    case NR_eventfd:
    case NR_eventfd2:
    case NR_timerfd_create:
    case NR_epoll_create:
    case NR_epoll_create1:
    case NR_inotify_init:
    case NR_inotify_init1:
    case NR_memfd_create:
    case NR_pidfd_open:
    case NR_io_uring_setup:
        return ret >= 0;
    default:
        return false;
    }
}

// The open file behind `fd` in `task`'s table, or NULL.
static __always_inline struct file *fd_file(struct task_struct *task, int fd) {
    struct files_struct *files = BPF_CORE_READ(task, files);
    if (!files || fd < 0)
        return NULL;
    struct fdtable *fdt = BPF_CORE_READ(files, fdt);
    if (!fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
        return NULL;
    struct file **table = BPF_CORE_READ(fdt, fd);
    struct file *f = NULL;
    bpf_probe_read_kernel(&f, sizeof(f), &table[fd]);
    return f;
}

// A unix socket's bound name: bytes of sun_path into `out` (at most KP_UNIX_PATH_MAX); its length.
static __always_inline __u16 unix_name(struct sock *sk, char *out) {
    if (!sk)
        return 0;
    struct unix_sock *u = (struct unix_sock *)sk;
    struct unix_address *addr = BPF_CORE_READ(u, addr);
    if (!addr)
        return 0;
    int len = BPF_CORE_READ(addr, len) - 2; // minus sun_family
    if (len <= 0)
        return 0;
    if (len > KP_UNIX_PATH_MAX)
        len = KP_UNIX_PATH_MAX;
    const char *path = (const char *)addr + bpf_core_field_offset(struct unix_address, name) + 2;
    if (bpf_probe_read_kernel(out, len & 0x7f, path) != 0)
        return 0;
    // A pathname socket's length may include the terminating NUL: drop it (an abstract name starts with NUL).
    return len;
}

// Kind (tcp/udp/unix/netlink/socket) and addresses of a socket file.
static __always_inline void describe_socket(struct file *f, struct kp_fd_record *r) {
    struct socket *sock = BPF_CORE_READ(f, private_data);
    struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
    r->fd_kind = KP_FD_SOCKET;
    if (!sk)
        return;
    __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
    __u16 protocol = BPF_CORE_READ(sk, sk_protocol);
    if (family == AF_INET || family == AF_INET6) {
        if (protocol == IPPROTO_TCP)
            r->fd_kind = KP_FD_TCP;
        else if (protocol == IPPROTO_UDP || protocol == IPPROTO_UDPLITE)
            r->fd_kind = KP_FD_UDP;
        struct kp_inet_detail *d = (struct kp_inet_detail *)r->detail;
        d->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
        d->peer_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
        if (family == AF_INET) {
            __u32 local = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
            __u32 peer = BPF_CORE_READ(sk, __sk_common.skc_daddr);
            __builtin_memcpy(d->local, &local, 4);
            __builtin_memcpy(d->peer, &peer, 4);
            r->detail_kind = KP_DETAIL_INET4;
        } else {
            BPF_CORE_READ_INTO(&d->local, sk, __sk_common.skc_v6_rcv_saddr);
            BPF_CORE_READ_INTO(&d->peer, sk, __sk_common.skc_v6_daddr);
            r->detail_kind = KP_DETAIL_INET6;
        }
        r->detail_len = sizeof(*d);
    } else if (family == AF_UNIX) {
        r->fd_kind = KP_FD_UNIX;
        struct kp_unix_detail *d = (struct kp_unix_detail *)r->detail;
        d->local_len = unix_name(sk, d->local);
        d->peer_len = unix_name(BPF_CORE_READ((struct unix_sock *)sk, peer), d->peer);
        r->detail_kind = KP_DETAIL_UNIX;
        r->detail_len = sizeof(*d);
    } else if (family == AF_NETLINK) {
        r->fd_kind = KP_FD_NETLINK;
    }
}

// The peer a connect asked for, from the program's sockaddr (user memory, `len` bytes), over the socket's own
// peer in `r` (which describe_socket filled in): a failed connect's socket no longer has it. Families other
// than the socket's, or an address that cannot be read, leave `r` as it is.
static __always_inline void describe_asked_peer(struct kp_fd_record *r, __u64 uaddr, __u32 len) {
    __u16 family = 0;
    if (!uaddr || len < sizeof(family) || bpf_probe_read_user(&family, sizeof(family), (const void *)uaddr) != 0)
        return;
    if (family == AF_INET && r->detail_kind == KP_DETAIL_INET4 && len >= 8) {
        struct kp_inet_detail *d = (struct kp_inet_detail *)r->detail;
        struct { __u16 family; __u16 port; __u32 addr; } in;
        if (bpf_probe_read_user(&in, sizeof(in), (const void *)uaddr) != 0)
            return;
        d->peer_port = bpf_ntohs(in.port);
        __builtin_memset(d->peer, 0, sizeof(d->peer));
        __builtin_memcpy(d->peer, &in.addr, 4);
    } else if (family == AF_INET6 && r->detail_kind == KP_DETAIL_INET6 && len >= 24) {
        struct kp_inet_detail *d = (struct kp_inet_detail *)r->detail;
        struct { __u16 family; __u16 port; __u32 flowinfo; __u8 addr[16]; } in6;
        if (bpf_probe_read_user(&in6, sizeof(in6), (const void *)uaddr) != 0)
            return;
        d->peer_port = bpf_ntohs(in6.port);
        __builtin_memcpy(d->peer, in6.addr, 16);
    } else if (family == AF_UNIX && r->detail_kind == KP_DETAIL_UNIX && len > 2) {
        struct kp_unix_detail *d = (struct kp_unix_detail *)r->detail;
        __u32 n = len - 2;
        if (n > KP_UNIX_PATH_MAX)
            n = KP_UNIX_PATH_MAX;
        if (bpf_probe_read_user(d->peer, n & 0x7f, (const void *)(uaddr + 2)) != 0)
            return;
        // A pathname's length may count its NUL and what follows it; an abstract name (leading NUL) is all bytes.
        if (d->peer[0] != 0) {
            for (__u32 i = 1; i < KP_UNIX_PATH_MAX; i++) {
                if (i >= n)
                    break;
                if (d->peer[i] == 0) {
                    n = i;
                    break;
                }
            }
        }
        d->peer_len = n;
    }
}

// Kind of an fd from its inode (and, for sockets, its addresses).
static __always_inline void describe_fd(struct task_struct *task, int fd, struct kp_fd_record *r) {
    struct file *f = fd_file(task, fd);
    if (!f)
        return;
    __u16 mode = BPF_CORE_READ(f, f_inode, i_mode);
    switch (mode & S_IFMT) {
    case S_IFREG:
        r->fd_kind = KP_FD_FILE;
        break;
    case S_IFDIR:
        r->fd_kind = KP_FD_DIRECTORY;
        break;
    case S_IFCHR:
    case S_IFBLK:
        r->fd_kind = KP_FD_DEVICE;
        break;
    case S_IFIFO:
        r->fd_kind = KP_FD_PIPE;
        break;
    case S_IFSOCK:
        describe_socket(f, r);
        break;
    default:
        break; // anonymous inodes (eventfd, epoll, ... when dup'ed): the source fd tells
    }
}

static __always_inline void emit_fd_record(struct task_struct *task, __u64 pid_tgid, const struct inflight *s,
                                           long ret, __u64 now) {
    struct kp_fd_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) {
        __sync_fetch_and_add(&dropped_records, 1);
        return;
    }
    fill_syscall(&r->sys, KP_RECORD_FD_SYSCALL, pid_tgid, s, ret, now);
    r->new_fd = (__s32)ret;
    r->new_fd2 = -1;
    r->source_fd = -1;
    r->fd_kind = KP_FD_UNKNOWN;
    r->detail_kind = KP_DETAIL_NONE;
    r->detail_len = 0;
    r->reserved = 0;
    __u32 nr = s->nr;
    switch (nr) {
    case NR_open:
    case NR_openat:
    case NR_openat2: {
        if (ret >= 0)
            describe_fd(task, ret, r);
        long n = bpf_probe_read_user_str(r->detail, KP_DETAIL_MAX, (const void *)s->events_ptr);
        if (n > 0) {
            r->detail_kind = KP_DETAIL_PATH;
            r->detail_len = n - 1; // without the NUL
        }
        break;
    }
    case NR_memfd_create: {
        r->fd_kind = KP_FD_FILE;
        long n = bpf_probe_read_user_str(r->detail, KP_DETAIL_MAX, (const void *)s->events_ptr);
        if (n > 0) {
            r->detail_kind = KP_DETAIL_NAME;
            r->detail_len = n - 1;
        }
        break;
    }
    case NR_dup:
    case NR_dup2:
    case NR_dup3:
    case NR_fcntl:
        r->source_fd = s->fd;
        describe_fd(task, ret, r);
        break;
    case NR_connect:
    case NR_bind:   // a server's socket: its local address (a unix socket's path)
    case NR_listen: // its address again, as listen may have bound it (port 0 before)
        r->new_fd = s->fd; // the same life, now with its peer (see docs/trace-format.md)
        r->source_fd = s->fd;
        describe_fd(task, s->fd, r);
        if (nr == NR_connect && ret < 0 && ret != -EINPROGRESS)
            describe_asked_peer(r, s->events_ptr, s->addr_len);
        break;
    case NR_socket:
    case NR_accept:
    case NR_accept4:
        describe_fd(task, ret, r);
        break;
    case NR_pipe:
    case NR_pipe2:
    case NR_socketpair: {
        int fds[2] = {-1, -1};
        if (bpf_probe_read_user(fds, sizeof(fds), (const void *)s->events_ptr) != 0) {
            r->new_fd = -1;
            break;
        }
        r->new_fd = fds[0];
        r->new_fd2 = fds[1];
        if (nr == NR_socketpair)
            describe_fd(task, fds[0], r);
        else
            r->fd_kind = KP_FD_PIPE;
        break;
    }
    case NR_eventfd:
    case NR_eventfd2:
        r->fd_kind = KP_FD_EVENTFD;
        break;
    case NR_timerfd_create:
        r->fd_kind = KP_FD_TIMERFD;
        break;
    case NR_epoll_create:
    case NR_epoll_create1:
        r->fd_kind = KP_FD_EPOLL;
        break;
    case NR_signalfd:
    case NR_signalfd4:
        r->fd_kind = KP_FD_SIGNALFD;
        break;
    case NR_inotify_init:
    case NR_inotify_init1:
        r->fd_kind = KP_FD_INOTIFY;
        break;
    case NR_pidfd_open:
        r->fd_kind = KP_FD_PIDFD;
        break;
    case NR_io_uring_setup:
        r->fd_kind = KP_FD_IO_URING;
        break;
    default:
        break;
    }
    bpf_ringbuf_submit(r, wakeup_flag());
}
