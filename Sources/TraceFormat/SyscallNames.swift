// x86_64 syscall numbers of the calls the kernel probes record (the kernel stream stores numbers).

public enum SyscallNames {
    public static let table: [UInt64: String] = [
        0: "read", 1: "write", 3: "close", 17: "pread64", 18: "pwrite64", 19: "readv", 20: "writev",
        42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg",
        232: "epoll_wait", 281: "epoll_pwait", 288: "accept4", 299: "recvmmsg", 307: "sendmmsg",
        441: "epoll_pwait2",
    ]

    public static func name(_ nr: UInt64) -> String { table[nr] ?? "syscall_\(nr)" }

    public static let readLike: Set<UInt64> = [0, 17, 19, 45, 47, 299]
    public static let writeLike: Set<UInt64> = [1, 18, 20, 44, 46, 307]
    public static let epollWaits: Set<UInt64> = [232, 281, 441]
}
