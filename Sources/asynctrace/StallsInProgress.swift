// `top`: stalls in progress. The trace says which loop threads have not come back to epoll_wait (and
// which callbacks have not ended) by the latest time analysed; the view checks each thread now in
// /proc (its current syscall, or that it runs): a stall shows while it grows, not only once it has
// ended.
import TraceAnalyses
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

enum StallsInProgress {
    /// What a thread is doing now, from /proc.
    enum ThreadNow: Equatable {
        case waiting  // in an epoll wait: back in its loop
        case syscall(nr: UInt64, fd: Int64?)
        case onCPU
        case blockedOutsideSyscall
        case unknown(state: Character?)
        case gone
    }

    static let epollWaits: Set<UInt64> = [232, 281, 441]  // epoll_wait, epoll_pwait, epoll_pwait2 (x86_64)
    /// Syscalls whose first argument is an fd worth naming.
    static let fdSyscalls: Set<UInt64> = [0, 1, 16, 17, 18, 19, 20, 42, 43, 44, 45, 46, 47, 73, 74, 75, 288, 295, 296]

    /// The stalls to show: each at least as long as the trace proves (to the latest event analysed, some
    /// 0.3–0.5 s behind the present: the thread may have gone back to its loop since, and a loop busy
    /// with other callbacks is not in its wait either, so the present is not extrapolated); a thread
    /// that is back in its wait now is left out (its stall shows once analysed).
    static func check(_ i: LiveInterval) -> [LiveStallInProgress] {
        var out: [LiveStallInProgress] = []
        var seen = Set<UInt64>()
        for a in i.awayFromWait {
            let now = read(pid: a.thread.pid, tid: a.thread.tid)
            seen.insert(UInt64(a.thread.pid) << 32 | UInt64(a.thread.tid))
            if now == .waiting || now == .gone { continue }  // it ended after the time analysed: shown once analysed
            out.append(
                LiveStallInProgress(
                    thread: a.thread, sinceNs: a.lastWaitExitNs,
                    durationNs: a.knownUntilNs - a.lastWaitExitNs,
                    doing: describe(now, pid: a.thread.pid), callbackType: a.callback?.type))
        }
        for c in i.running where !seen.contains(UInt64(c.pid) << 32 | UInt64(c.tid)) {
            let now = read(pid: c.pid, tid: c.tid)
            if now == .waiting || now == .gone { continue }
            out.append(
                LiveStallInProgress(
                    thread: ThreadRef(pid: c.pid, tid: c.tid, name: c.threadName), sinceNs: c.startNs,
                    durationNs: c.durationNs, doing: describe(now, pid: c.pid), callbackType: c.type))
        }
        return out.sorted { ($0.durationNs, $1.thread.tid) > ($1.durationNs, $0.thread.tid) }
    }

    static func describe(_ now: ThreadNow, pid: UInt32) -> String? {
        switch now {
        case .syscall(let nr, let fd):
            var s = "in " + SyscallNames.name(nr)
            if let fd {
                s += " fd \(fd)"
                if let target = link("/proc/\(pid)/fd/\(fd)") { s += " (\(target))" }
            }
            return s
        case .onCPU: return "on CPU"
        case .blockedOutsideSyscall: return "off CPU outside a syscall (page fault?)"
        case .unknown(let state):
            switch state {
            case "R": return "on CPU"
            case "D": return "in an uninterruptible wait"
            case "S": return "sleeping"
            default: return nil
            }
        case .waiting, .gone: return nil
        }
    }

    /// /proc/PID/task/TID/syscall ("running", "-1 sp pc" or "nr arg1 ... sp pc"); it needs the right
    /// to ptrace the thread: without it, the thread's state letter from /proc/PID/task/TID/stat.
    static func read(pid: UInt32, tid: UInt32) -> ThreadNow {
        let base = "/proc/\(pid)/task/\(tid)"
        if let text = contents(base + "/syscall") {
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard let first = fields.first else { return .unknown(state: nil) }
            if first == "running" { return .onCPU }
            if first == "-1" { return .blockedOutsideSyscall }
            guard let nr = UInt64(first) else { return .unknown(state: nil) }
            if epollWaits.contains(nr) { return .waiting }
            var fd: Int64?
            if fdSyscalls.contains(nr), fields.count > 1, fields[1].hasPrefix("0x"),
                let v = UInt64(fields[1].dropFirst(2), radix: 16), v < 1 << 20
            {
                fd = Int64(v)
            }
            return .syscall(nr: nr, fd: fd)
        }
        if access(base, F_OK) != 0 { return .gone }
        guard let stat = contents(base + "/stat"), let close = stat.lastIndex(of: ")") else { return .gone }
        let rest = stat[stat.index(after: close)...].drop(while: { $0 == " " })
        if rest.first == "Z" || rest.first == "X" { return .gone }
        return .unknown(state: rest.first)
    }

    private static func contents(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = Glibc.read(fd, &buf, buf.count)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }

    private static func link(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 512)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
