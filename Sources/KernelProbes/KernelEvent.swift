// One record of the kernel probes, decoded from the ring buffer.
import CKernelProbes

public struct KernelEvent: Sendable {
    public enum Kind: Sendable, Equatable {
        case syscall, epollWait, processFork, processExit
    }

    public var kind: Kind
    /// The process (tgid); for a fork the parent, for an exit the exiting process.
    public var pid: UInt32
    public var tid: UInt32
    /// x86_64 syscall number (see TraceFormat's SyscallNames).
    public var nr: UInt32 = 0
    /// First argument; the epoll fd for waits.
    public var fd: Int32 = -1
    /// Bytes requested (vectored calls: the first 8 iovecs); message count for recvmmsg/sendmmsg;
    /// maxevents for epoll waits.
    public var size: UInt64 = 0
    /// Bytes, fd, ready count, or -errno.
    public var ret: Int64 = 0
    public var enterNs: UInt64 = 0
    /// Syscall exit, or when the fork/exit happened (CLOCK_MONOTONIC ns).
    public var timestampNs: UInt64
    public var timeoutMs: Int32 = -1
    /// How many of `epollDataStorage` are valid.
    public var epollDataCount: UInt8 = 0
    /// Inline, so that a KernelEvent is a plain value: copying millions of them costs no
    /// reference counting.
    public var epollDataStorage = InlineArray<16, UInt64>(repeating: 0)
    public var childPid: UInt32 = 0
    /// Exit status 0...255, or -signal.
    public var exitCode: Int32 = 0

    public var durationNs: UInt64 { timestampNs >= enterNs ? timestampNs - enterNs : 0 }

    /// `data` of the returned epoll events (at most 16), in the order epoll returned them.
    public var epollData: [UInt64] {
        get { (0..<Int(epollDataCount)).map { epollDataStorage[$0] } }
        set {
            epollDataCount = UInt8(min(newValue.count, epollDataStorage.count))
            for i in 0..<Int(epollDataCount) { epollDataStorage[i] = newValue[i] }
        }
    }

    public init(kind: Kind, pid: UInt32, tid: UInt32, timestampNs: UInt64) {
        self.kind = kind
        self.pid = pid
        self.tid = tid
        self.timestampNs = timestampNs
    }

    /// Decodes one ring-buffer record; nil for an unknown kind or a short record.
    public init?(record: UnsafeRawPointer, size: Int) {
        guard size >= 4 else { return nil }
        let kind = record.loadUnaligned(as: UInt32.self)
        switch kind {
        case UInt32(KP_RECORD_SYSCALL.rawValue), UInt32(KP_RECORD_EPOLL_WAIT.rawValue):
            let isEpoll = kind == UInt32(KP_RECORD_EPOLL_WAIT.rawValue)
            guard size >= (isEpoll ? MemoryLayout<kp_epoll_record>.size : MemoryLayout<kp_syscall_record>.size) else {
                return nil
            }
            let r = record.loadUnaligned(as: kp_syscall_record.self)
            self.init(kind: isEpoll ? .epollWait : .syscall, pid: r.tgid, tid: r.tid, timestampNs: r.exit_ns)
            nr = r.nr
            fd = r.fd
            self.size = r.size
            ret = r.ret
            enterNs = r.enter_ns
            if isEpoll {
                let e = record.loadUnaligned(as: kp_epoll_record.self)
                timeoutMs = e.timeout_ms
                let count = min(Int(e.data_count), Int(KP_EPOLL_MAX_DATA))
                let dataOffset = MemoryLayout<kp_epoll_record>.offset(of: \kp_epoll_record.data)!
                for i in 0..<count {
                    epollDataStorage[i] = record.loadUnaligned(fromByteOffset: dataOffset + 8 * i, as: UInt64.self)
                }
                epollDataCount = UInt8(count)
            }
        case UInt32(KP_RECORD_PROCESS_FORK.rawValue), UInt32(KP_RECORD_PROCESS_EXIT.rawValue):
            guard size >= MemoryLayout<kp_process_record>.size else { return nil }
            let r = record.loadUnaligned(as: kp_process_record.self)
            let isFork = kind == UInt32(KP_RECORD_PROCESS_FORK.rawValue)
            self.init(kind: isFork ? .processFork : .processExit, pid: r.tgid, tid: r.tid, timestampNs: r.time_ns)
            childPid = r.child_tgid
            exitCode = r.exit_code
        default:
            return nil
        }
    }
}
