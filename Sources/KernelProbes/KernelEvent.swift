// One record of the kernel probes, decoded from the ring buffer.
import CKernelProbes

/// One event of the kernel probes, decoded from a ring-buffer record: a plain value (no references),
/// whose fields mean what its `kind` says.
public struct KernelEvent: Sendable {
    /// What the event records.
    public enum Kind: Sendable, Equatable {
        /// A completed syscall, a completed epoll wait, a fork (`childPid`), a process exit (`exitCode`).
        case syscall, epollWait, processFork, processExit
        /// A traced thread's name (`detail`): at attach, at creation, after a rename or exec.
        case threadName
        /// A traced thread ended.
        case threadExit
        /// The name (`detail`) of a thread outside the traced tree that woke a traced one (an offCPU's
        /// `wakerPid`/`wakerTid`). Read by the recorder from /proc, not by the probes.
        case wakerName
        /// A traced process's title (`detail`, "": none again): its /proc/PID/cmdline when it differs from
        /// the command line it was exec'd with. Read by the recorder, not the probes.
        case processTitle
        /// A traced thread is back on a CPU (`timestampNs`) after `blockedNs` + `runqueueNs` off it.
        case offCPU
        /// `fd` begins a new life (`fdKind`, `sourceFd`, `detail`); `sourceFd == fd`: the current
        /// life was described further (a connect).
        case fdOpen
        /// CPU samples and mappings (SampleCollector): their stacks and paths live in its SampleTables.
        case cpuSample, mapping
        /// The user stack (`userStack`) of a long wait: the end of syscall `nr` on `fd` after
        /// `durationNs` (`waitCause` 0), or a switch-in after `durationNs` blocked outside traced
        /// syscalls in state `offCPUState` (`waitCause` 1).
        case waitStack
        /// A libuv loop thread entered phase `loopPhase` (TraceLoopPhase value); `startsIteration`: an
        /// iteration begins with it (record --node-loop-phases).
        case loopPhase
    }

    /// What the event records.
    public var kind: Kind
    /// The process (tgid); for a fork the parent, for an exit the exiting process.
    public var pid: UInt32
    /// The thread.
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
    /// Syscall entry (CLOCK_MONOTONIC ns); 0 for events that are not calls.
    public var enterNs: UInt64 = 0
    /// Syscall exit, or when the fork/exit happened (CLOCK_MONOTONIC ns).
    public var timestampNs: UInt64
    /// epoll waits: the timeout argument (ms; -1: none).
    public var timeoutMs: Int32 = -1
    /// How many of `epollDataStorage` are valid.
    public var epollDataCount: UInt8 = 0
    /// Inline, so that a KernelEvent is a plain value: copying millions of them costs no
    /// reference counting.
    public var epollDataStorage = InlineArray<16, UInt64>(repeating: 0)
    /// processFork: the new process.
    public var childPid: UInt32 = 0
    /// processTitle: the process's parent (0: not known).
    public var parentPid: UInt32 = 0
    /// Exit status 0...255, or -signal.
    public var exitCode: Int32 = 0
    /// offCPU: the state at switch-out (TraceFormat's OffCPUState values).
    public var offCPUState: UInt8 = 0
    /// offCPU, and waitStack with `waitCause` 1: 1 + the syscall the thread slept in as the scheduler saw it
    /// (one the probes do not record, or one begun before tracing began); 0: none, or not known.
    public var offCPUSyscall: UInt16 = 0
    /// offCPU: switch-out -> wakeup (0 when preempted), and wakeup/preemption -> switch-in.
    public var blockedNs: UInt64 = 0
    /// offCPU: runnable, waiting for a CPU, after the wakeup or preemption (ns).
    public var runqueueNs: UInt64 = 0
    /// offCPU: the thread that woke it (0: an interrupt, or not seen).
    public var wakerPid: UInt32 = 0
    /// offCPU: the waker's thread id (0: an interrupt, or not seen).
    public var wakerTid: UInt32 = 0
    /// fdOpen: TraceFormat's FDKind value.
    public var fdKind: UInt8 = 0
    /// fdOpen: the fd it duplicates (-1: none).
    public var sourceFd: Int32 = -1
    /// threadName / wakerName / processTitle / fdOpen: how many bytes of text `epollDataStorage` holds (it is free there).
    public var detailLength: UInt8 = 0
    /// cpuSample: interned stack ids (SampleTables.stacks; 0: none).
    public var userStack: UInt32 = 0
    /// cpuSample: the interned kernel stack id (0: none, or kernel stacks off).
    public var kernelStack: UInt32 = 0
    /// cpuSample: its user stack copy in SampleTables.stackCopies (0: none).
    public var stackCopy: UInt32 = 0
    /// waitStack: 0 the end of a syscall, 1 an off-CPU wait outside traced syscalls.
    public var waitCause: UInt8 = 0
    /// mapping: index into SampleTables.mappings.
    public var mappingIndex: UInt32 = 0
    /// loopPhase: the phase (TraceLoopPhase value) and whether an iteration begins with it.
    public var loopPhase: UInt8 = 0
    /// loopPhase: whether a loop iteration begins with this phase.
    public var startsIteration = false

    /// `timestampNs - enterNs` (ns; 0 when the entry is later or unknown).
    public var durationNs: UInt64 { timestampNs >= enterNs ? timestampNs - enterNs : 0 }

    /// `data` of the returned epoll events (at most 16), in the order epoll returned them.
    public var epollData: [UInt64] {
        get { (0..<Int(epollDataCount)).map { epollDataStorage[$0] } }
        set {
            epollDataCount = UInt8(min(newValue.count, epollDataStorage.count))
            for i in 0..<Int(epollDataCount) { epollDataStorage[i] = newValue[i] }
        }
    }

    /// threadName, wakerName: the name; processTitle: the title; fdOpen: the path, or `local->peer`. At most 128 bytes are kept; a
    /// longer text keeps its start and end around "...".
    public var detail: String {
        get {
            withUnsafeBytes(of: epollDataStorage) { raw in
                String(decoding: raw.prefix(Int(detailLength)), as: UTF8.self)
            }
        }
        set { setDetail(Array(newValue.utf8)) }
    }

    /// Sets `detail` from raw bytes (kept as `detail` says: at most 128, the middle elided).
    public mutating func setDetail(_ bytes: some Collection<UInt8>) {
        let capacity = MemoryLayout<InlineArray<16, UInt64>>.size
        var text = Array(bytes)
        if text.count > capacity {
            let dots = Array("...".utf8)
            let head = 40, tail = capacity - head - dots.count
            text = Array(text.prefix(head)) + dots + Array(text.suffix(tail))
        }
        withUnsafeMutableBytes(of: &epollDataStorage) { raw in
            for (i, b) in text.enumerated() { raw[i] = b }
        }
        detailLength = UInt8(text.count)
    }

    /// An event of `kind` with every other field at its default.
    public init(kind: Kind, pid: UInt32, tid: UInt32, timestampNs: UInt64) {
        self.kind = kind
        self.pid = pid
        self.tid = tid
        self.timestampNs = timestampNs
    }

    /// Decodes one ring-buffer record; nil for an unknown kind or a short record, and for records
    /// that make more than one event (use `decode(record:size:into:)`).
    public init?(record: UnsafeRawPointer, size: Int) {
        var events: [KernelEvent] = []
        guard Self.decode(record: record, size: size, into: &events), events.count == 1 else { return nil }
        self = events[0]
    }

    /// Appends the events of one ring-buffer record (an fd-making syscall gives the syscall and one
    /// or two fdOpen events); false for an unknown kind or a short record.
    public static func decode(record: UnsafeRawPointer, size: Int, into events: inout [KernelEvent]) -> Bool {
        guard size >= 4 else { return false }
        let kind = record.loadUnaligned(as: UInt32.self)
        switch kind {
        case UInt32(KP_RECORD_SYSCALL.rawValue), UInt32(KP_RECORD_EPOLL_WAIT.rawValue),
            UInt32(KP_RECORD_FD_SYSCALL.rawValue):
            let isEpoll = kind == UInt32(KP_RECORD_EPOLL_WAIT.rawValue)
            let isFd = kind == UInt32(KP_RECORD_FD_SYSCALL.rawValue)
            let needed =
                isEpoll
                ? MemoryLayout<kp_epoll_record>.size
                : isFd ? MemoryLayout<kp_fd_record>.size : MemoryLayout<kp_syscall_record>.size
            guard size >= needed else { return false }
            let r = record.loadUnaligned(as: kp_syscall_record.self)
            var e = KernelEvent(kind: isEpoll ? .epollWait : .syscall, pid: r.tgid, tid: r.tid, timestampNs: r.exit_ns)
            e.nr = r.nr
            e.fd = r.fd
            e.size = r.size
            e.ret = r.ret
            e.enterNs = r.enter_ns
            if isEpoll {
                let ep = record.loadUnaligned(as: kp_epoll_record.self)
                e.timeoutMs = ep.timeout_ms
                let count = min(Int(ep.data_count), Int(KP_EPOLL_MAX_DATA))
                let dataOffset = MemoryLayout<kp_epoll_record>.offset(of: \kp_epoll_record.data)!
                for i in 0..<count {
                    e.epollDataStorage[i] = record.loadUnaligned(fromByteOffset: dataOffset + 8 * i, as: UInt64.self)
                }
                e.epollDataCount = UInt8(count)
            }
            events.append(e)
            if isFd { decodeFdOpen(record: record, syscall: r, into: &events) }
        case UInt32(KP_RECORD_PROCESS_FORK.rawValue), UInt32(KP_RECORD_PROCESS_EXIT.rawValue):
            guard size >= MemoryLayout<kp_process_record>.size else { return false }
            let r = record.loadUnaligned(as: kp_process_record.self)
            let isFork = kind == UInt32(KP_RECORD_PROCESS_FORK.rawValue)
            var e = KernelEvent(kind: isFork ? .processFork : .processExit, pid: r.tgid, tid: r.tid, timestampNs: r.time_ns)
            e.childPid = r.child_tgid
            e.exitCode = r.exit_code
            events.append(e)
        case UInt32(KP_RECORD_OFFCPU.rawValue):
            guard size >= MemoryLayout<kp_offcpu_record>.size else { return false }
            let r = record.loadUnaligned(as: kp_offcpu_record.self)
            var e = KernelEvent(kind: .offCPU, pid: r.tgid, tid: r.tid, timestampNs: r.on_ns)
            let state = r.state & 0xFFFF
            e.offCPUState = state == KP_OFFCPU_SWITCH_IN_NOT_SEEN.rawValue ? UInt8(state) : UInt8(min(state, 3))
            e.offCPUSyscall = UInt16(truncatingIfNeeded: r.state >> 16)
            e.blockedNs = r.blocked_ns
            e.runqueueNs = r.runqueue_ns
            e.wakerPid = r.waker_tgid
            e.wakerTid = r.waker_tid
            events.append(e)
        case UInt32(KP_RECORD_THREAD_NAME.rawValue), UInt32(KP_RECORD_THREAD_EXIT.rawValue):
            guard size >= MemoryLayout<kp_thread_record>.size else { return false }
            let r = record.loadUnaligned(as: kp_thread_record.self)
            let isName = kind == UInt32(KP_RECORD_THREAD_NAME.rawValue)
            var e = KernelEvent(kind: isName ? .threadName : .threadExit, pid: r.tgid, tid: r.tid, timestampNs: r.time_ns)
            if isName {
                let commOffset = MemoryLayout<kp_thread_record>.offset(of: \kp_thread_record.comm)!
                let comm = UnsafeRawBufferPointer(start: record + commOffset, count: Int(KP_COMM_LEN))
                e.setDetail(comm.prefix { $0 != 0 })
            }
            events.append(e)
        case UInt32(KP_RECORD_LOOP_PHASE):
            guard size >= MemoryLayout<kp_loop_record>.size else { return false }
            let r = record.loadUnaligned(as: kp_loop_record.self)
            var e = KernelEvent(kind: .loopPhase, pid: r.tgid, tid: r.tid, timestampNs: r.time_ns)
            e.loopPhase = UInt8(truncatingIfNeeded: r.phase & 0xFF)
            e.startsIteration = r.phase & UInt32(KP_LOOP_STARTS_ITERATION) != 0
            events.append(e)
        default:
            return false
        }
        return true
    }

    private static func decodeFdOpen(
        record: UnsafeRawPointer, syscall r: kp_syscall_record,
        into events: inout [KernelEvent]
    ) {
        let f = record.loadUnaligned(as: kp_fd_record.self)
        // An open that failed has its path, and fd -errno: an fdOpen that begins no life (fdOpen's spec).
        let failedOpen = f.new_fd < 0 && [2, 257, 437].contains(r.nr) && f.detail_kind == KP_DETAIL_PATH.rawValue
        guard f.new_fd >= 0 || failedOpen else { return }
        let detailOffset = MemoryLayout<kp_fd_record>.offset(of: \kp_fd_record.detail)!
        let detailBytes = UnsafeRawBufferPointer(
            start: record + detailOffset,
            count: min(Int(f.detail_len), Int(KP_DETAIL_MAX)))
        let text = FdDetail.text(kind: UInt32(f.detail_kind), bytes: detailBytes)
        for fd in failedOpen ? [f.new_fd] : [f.new_fd, f.new_fd2] where fd >= 0 || failedOpen {
            var e = KernelEvent(kind: .fdOpen, pid: r.tgid, tid: r.tid, timestampNs: r.exit_ns)
            e.fd = fd
            e.fdKind = UInt8(truncatingIfNeeded: f.fd_kind)
            e.sourceFd = f.source_fd
            e.setDetail(text)
            events.append(e)
        }
    }
}

/// The text of an fd's detail: a path, a memfd name, or `local->peer`.
enum FdDetail {
    static func text(kind: UInt32, bytes: UnsafeRawBufferPointer) -> [UInt8] {
        switch kind {
        case UInt32(KP_DETAIL_PATH.rawValue):
            return Array(bytes)
        case UInt32(KP_DETAIL_NAME.rawValue):
            return Array("memfd:".utf8) + Array(bytes)
        case UInt32(KP_DETAIL_INET4.rawValue), UInt32(KP_DETAIL_INET6.rawValue):
            guard bytes.count >= MemoryLayout<kp_inet_detail>.size else { return [] }
            let d = bytes.baseAddress!.loadUnaligned(as: kp_inet_detail.self)
            let v4 = kind == UInt32(KP_DETAIL_INET4.rawValue)
            let local = withUnsafeBytes(of: d.local) { inetText(Array($0), port: d.local_port, v4: v4) }
            let peer = withUnsafeBytes(of: d.peer) { inetText(Array($0), port: d.peer_port, v4: v4) }
            return Array(joined(local, peer).utf8)
        case UInt32(KP_DETAIL_UNIX.rawValue):
            guard bytes.count >= MemoryLayout<kp_unix_detail>.size else { return [] }
            let d = bytes.baseAddress!.loadUnaligned(as: kp_unix_detail.self)
            let local = withUnsafeBytes(of: d.local) { unixText(Array($0.prefix(Int(d.local_len)))) }
            let peer = withUnsafeBytes(of: d.peer) { unixText(Array($0.prefix(Int(d.peer_len)))) }
            return Array(joined(local, peer).utf8)
        default:
            return []
        }
    }

    /// "local->peer"; a side not known is left out ("local", "->peer"); "" when neither is.
    static func joined(_ local: String, _ peer: String) -> String {
        if peer.isEmpty { return local }
        return local + "->" + peer
    }

    /// "1.2.3.4:80" / "[::1]:80"; "" for the unspecified address with port 0.
    static func inetText(_ addr: [UInt8], port: UInt16, v4: Bool) -> String {
        var a = v4 ? Array(addr.prefix(4)) : addr
        var isV4 = v4
        if !v4, a.count == 16, a[0..<10].allSatisfy({ $0 == 0 }), a[10] == 0xff, a[11] == 0xff {
            a = Array(a[12..<16])  // v4-mapped
            isV4 = true
        }
        if port == 0 && a.allSatisfy({ $0 == 0 }) { return "" }
        if isV4 { return a.map(String.init).joined(separator: ".") + ":\(port)" }
        var groups: [String] = []
        for i in stride(from: 0, to: 16, by: 2) { groups.append(String(UInt16(a[i]) << 8 | UInt16(a[i + 1]), radix: 16)) }
        // The longest run of zero groups (2 or more) becomes "::".
        var best = (start: -1, length: 0), i = 0
        while i < 8 {
            if groups[i] == "0" {
                var j = i
                while j < 8 && groups[j] == "0" { j += 1 }
                if j - i > best.length && j - i >= 2 { best = (i, j - i) }
                i = j
            } else {
                i += 1
            }
        }
        let text =
            best.start < 0
            ? groups.joined(separator: ":")
            : groups[..<best.start].joined(separator: ":") + "::" + groups[(best.start + best.length)...].joined(separator: ":")
        return "[\(text)]:\(port)"
    }

    /// A pathname socket's path, "@name" for an abstract one, "" when unnamed.
    static func unixText(_ raw: [UInt8]) -> String {
        guard let first = raw.first else { return "" }
        if first == 0 {
            return "@" + String(decoding: raw.dropFirst().map { $0 == 0 ? UInt8(ascii: "@") : $0 }, as: UTF8.self)
        }
        return String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}
