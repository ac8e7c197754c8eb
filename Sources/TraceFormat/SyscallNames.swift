/// x86_64 syscall numbers of the calls the kernel probes record (the kernel stream stores numbers).
public enum SyscallNames {
    /// Number to name, for every syscall the probes record.
    public static let table: [UInt64: String] = [
        0: "read", 1: "write", 3: "close", 17: "pread64", 18: "pwrite64", 19: "readv", 20: "writev",
        42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 49: "bind", 50: "listen",
        232: "epoll_wait", 281: "epoll_pwait", 288: "accept4", 299: "recvmmsg", 307: "sendmmsg",
        441: "epoll_pwait2",
        // waits
        7: "poll", 23: "select", 35: "nanosleep", 202: "futex", 230: "clock_nanosleep", 270: "pselect6",
        271: "ppoll",
        // fds made, duplicated, closed
        2: "open", 22: "pipe", 32: "dup", 33: "dup2", 41: "socket", 53: "socketpair", 72: "fcntl",
        213: "epoll_create", 253: "inotify_init", 257: "openat", 282: "signalfd", 283: "timerfd_create",
        284: "eventfd", 289: "signalfd4", 290: "eventfd2", 291: "epoll_create1", 292: "dup3", 293: "pipe2",
        294: "inotify_init1", 319: "memfd_create", 425: "io_uring_setup", 434: "pidfd_open", 436: "close_range",
        437: "openat2",
        // other I/O
        40: "sendfile", 74: "fsync", 75: "fdatasync", 275: "splice", 426: "io_uring_enter",
        // lock waits (and fcntl's F_SETLKW, F_OFD_SETLKW): a stall in one names the locked file
        73: "flock",
    ]

    /// The syscall's name (recorded or not: an off-CPU wait names the syscall it slept in), or "syscall_N"
    /// for a number x86_64 does not have.
    public static func name(_ nr: UInt64) -> String {
        if let name = table[nr] { return name }
        if nr < UInt64(x86_64.count), !x86_64[Int(nr)].isEmpty { return x86_64[Int(nr)] }
        return "syscall_\(nr)"
    }

    /// Calls that read from their fd (read, pread64, readv, recvfrom, recvmsg, recvmmsg; splice, whose
    /// recorded fd is fd_in); docs/trace-format.md says what `size` and `ret` are for each.
    public static let readLike: Set<UInt64> = [0, 17, 19, 45, 47, 299, 275]
    /// Calls that write to their fd (write, pwrite64, writev, sendto, sendmsg, sendmmsg; sendfile, whose
    /// recorded fd is out_fd); docs/trace-format.md says what `size` and `ret` are for each.
    public static let writeLike: Set<UInt64> = [1, 18, 20, 44, 46, 307, 40]
    /// The read- and write-like calls whose return value is bytes (not recvmmsg/sendmmsg: messages).
    public static let returnsBytes: Set<UInt64> = [0, 1, 17, 18, 19, 20, 40, 44, 45, 46, 47, 275]
    /// epoll_wait, epoll_pwait and epoll_pwait2 (recorded as `epollWait` events).
    public static let epollWaits: Set<UInt64> = [232, 281, 441]
    /// Calls whose `fd` argument is not an fd (futex: the op; waits with no fd: -1). See docs/trace-format.md.
    /// (poll and ppoll have the fd of a poll of one fd, else −1.)
    public static let fdIsNotAnFd: Set<UInt64> = [23, 35, 202, 230, 270]
    /// open, openat, openat2: their `fd` is the directory fd, their path is the new fd's (`fdOpen` detail).
    /// Compares, not a set lookup: the analysis asks for every syscall event.
    @inlinable public static func opensPath(_ nr: UInt64) -> Bool { nr == 257 || nr == 2 || nr == 437 }
    /// Calls that make an fd (their fdOpen events follow them, at the same time; fcntl only with F_DUPFD*).
    public static let makeFd: Set<UInt64> = [
        2, 22, 32, 33, 41, 43, 53, 72, 213, 253, 257, 282, 283, 284, 288, 289,
        290, 291, 292, 293, 294, 319, 425, 434, 437,
    ]
}
