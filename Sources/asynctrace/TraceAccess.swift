// Whether the caller may trace a running process: the kernel probes read another process's
// syscalls, so `--pid` follows the rules of attaching a debugger (issue 13: with CAP_BPF and
// CAP_PERFMON but not root, --pid must not record other users' processes).
#if canImport(Glibc)
import Glibc
#endif

enum TraceAccess {
    /// nil if the caller may trace `pid`, else why not. Opening /proc/PID/mem makes the kernel
    /// apply exactly ptrace's attach check (same user on every uid and gid, not setuid-tainted,
    /// or CAP_SYS_PTRACE; and the LSMs' ptrace rules, Yama included) without attaching.
    static func check(pid: Int32) -> String? {
        let fd = open("/proc/\(pid)/mem", O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            close(fd)
            return nil
        }
        let e = errno
        if e == ENOENT || e == ESRCH { return "no process \(pid)" }
        var st = stat()
        let owner = stat("/proc/\(pid)", &st) == 0 ? " (it belongs to uid \(st.st_uid))" : ""
        if e == EACCES || e == EPERM {
            return "you may not trace process \(pid)\(owner): only its owner or root (CAP_SYS_PTRACE) may, "
                + "as for attaching a debugger"
        }
        return "cannot check access to process \(pid): \(String(cString: strerror(e)))"
    }
}
