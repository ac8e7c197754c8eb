// Syscalls by name and by fd, their attribution to callbacks, and the delay from epoll reporting
// an fd ready to the owning resource's callback starting.
import TraceFormat

struct FDKey: Hashable {
    var pid: UInt32
    var fd: Int64
}

struct FDAccum {
    var ownerType: Int32 = -1
    var reads: UInt64 = 0
    var writes: UInt64 = 0
    var bytesRead: UInt64 = 0
    var bytesWritten: UInt64 = 0
    var syscalls: UInt64 = 0
    var eagain: UInt64 = 0
    var kernelNs: UInt64 = 0
    var readyToCallback = LogHistogram()
}

struct SyscallAccum {
    var count: UInt64 = 0
    var bytes: UInt64 = 0
    var ns: UInt64 = 0
    var errors: UInt64 = 0
    var attributed: UInt64 = 0
}

struct IOTracker {
    static let eagain: Int64 = -11
    /// Bound on distinct (pid, fd) pairs tracked.
    static let maxFDs = 65_536
    var bySyscall: [UInt64: SyscallAccum] = [:]
    var byFD: [FDKey: FDAccum] = [:]
    /// Per user stream: fds the last epoll wait reported ready, and when.
    var pendingReady: [[Int64: UInt64]]
    var readWrite: UInt64 = 0
    var readWriteAttributed: UInt64 = 0
    var readWriteToOwner: UInt64 = 0

    init(streams: Int) { pendingReady = [[Int64: UInt64]](repeating: [:], count: streams) }

    /// One completed syscall. `inCallback`: a callback was running on its thread; `ownerFD`: that callback's resource's fd.
    mutating func syscall(pid: UInt32, nr: UInt64, fd: Int64, ret: Int64, durationNs: UInt64, inCallback: Bool, ownerFD: Int64?) {
        let isRead = SyscallNames.readLike.contains(nr)
        let isWrite = SyscallNames.writeLike.contains(nr)
        let bytes: UInt64 = (isRead || isWrite) && ret > 0 ? UInt64(ret) : 0
        var s = bySyscall[nr] ?? SyscallAccum()
        s.count += 1
        s.bytes += bytes
        s.ns += durationNs
        if ret < 0 { s.errors += 1 }
        if inCallback { s.attributed += 1 }
        bySyscall[nr] = s
        if isRead || isWrite {
            readWrite += 1
            if inCallback { readWriteAttributed += 1 }
            if let o = ownerFD, o == fd { readWriteToOwner += 1 }
        }
        guard fd >= 0 else { return }
        let key = FDKey(pid: pid, fd: fd)
        guard byFD[key] != nil || byFD.count < Self.maxFDs else { return }
        var f = byFD[key] ?? FDAccum()
        f.syscalls += 1
        f.kernelNs += durationNs
        if ret == Self.eagain { f.eagain += 1 }
        if isRead {
            f.reads += 1
            f.bytesRead += bytes
        } else if isWrite {
            f.writes += 1
            f.bytesWritten += bytes
        }
        byFD[key] = f
    }

    mutating func setOwner(pid: UInt32, fd: Int64, type: Int32) {
        guard fd >= 0 else { return }
        let key = FDKey(pid: pid, fd: fd)
        guard byFD[key] != nil || byFD.count < Self.maxFDs else { return }
        byFD[key, default: FDAccum()].ownerType = type
    }

    mutating func pollStart(stream s: Int) {
        if !pendingReady[s].isEmpty { pendingReady[s].removeAll(keepingCapacity: true) }
    }

    mutating func pollEnd(stream s: Int, fds: [UInt64], ns: UInt64) {
        for fd in fds { pendingReady[s][Int64(bitPattern: fd)] = ns }
    }

    /// A callback of a resource owning `fd` starts on stream `s`.
    mutating func callbackStarts(stream s: Int, pid: UInt32, fd: Int64, ns: UInt64) {
        guard let readyNs = pendingReady[s].removeValue(forKey: fd) else { return }
        let key = FDKey(pid: pid, fd: fd)
        guard byFD[key] != nil || byFD.count < Self.maxFDs else { return }
        byFD[key, default: FDAccum()].readyToCallback.record(ns >= readyNs ? ns - readyNs : 0)
    }
}

/// Loop behaviour of threads seen only through their epoll waits (kernel stream).
struct KernelLoopTracker {
    struct ThreadState {
        var waits: UInt64 = 0
        var waitNs: UInt64 = 0
        var firstEnterNs: UInt64 = 0
        var lastExitNs: UInt64 = 0
        var busy = LogHistogram()
    }
    var threads: [UInt64: ThreadState] = [:]
    var gaps: TopN<Gap>

    init(top: Int) { gaps = TopN(limit: top) }

    mutating func wait(pid: UInt32, tid: UInt32, exitNs: UInt64, durationNs: UInt64) {
        let key = UInt64(pid) << 32 | UInt64(tid)
        let enter = exitNs >= durationNs ? exitNs - durationNs : 0
        var t = threads[key] ?? ThreadState()
        if t.waits == 0 {
            t.firstEnterNs = enter
        } else if enter >= t.lastExitNs {
            let gap = enter - t.lastExitNs
            t.busy.record(gap)
            gaps.offer(gap, Gap(pid: pid, tid: tid, startNs: t.lastExitNs, durationNs: gap))
        }
        t.waits += 1
        t.waitNs += durationNs
        t.lastExitNs = max(t.lastExitNs, exitNs)
        threads[key] = t
    }

    func summary() -> KernelLoopSummary? {
        guard !threads.isEmpty else { return nil }
        let list = threads.sorted { $0.key < $1.key }.map { key, t in
            let span = t.lastExitNs - t.firstEnterNs
            return KernelLoopThread(pid: UInt32(key >> 32), tid: UInt32(truncatingIfNeeded: key), waits: t.waits,
                                    waitNs: t.waitNs, spanNs: span,
                                    utilization: span == 0 ? 0 : Double(span - min(span, t.waitNs)) / Double(span),
                                    busyNs: DurationSummary(t.busy))
        }
        return KernelLoopSummary(threads: list, longestGaps: gaps.sorted)
    }
}
