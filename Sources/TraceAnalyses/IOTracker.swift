// Syscalls by name and by fd, their attribution to callbacks, and the delay from epoll reporting
// an fd ready to the owning resource's callback starting.
import TraceFormat

struct FDKey: Hashable, FastHashable {
    var pid: UInt32
    var fd: Int64
    var fastHash: UInt64 { UInt64(bitPattern: fd) ^ (UInt64(pid) << 40) }
}

struct FDAccum {
    var ownerType: Int32 = -1
    /// The resource owning the fd now (0: none).
    var ownerAsyncID: UInt64 = 0
    /// Syscalls on the fd since the owner was set (an owner set just before the fdOpen that begins the
    /// life it belongs to moves to that life: the runtime stamps resourceFD without reading the clock).
    var syscallsSinceOwner: UInt64 = 0
    /// The life: FDKind code (nil: unknown, the fd was not seen created), detail, when and by whom.
    var kind: UInt8? = nil
    var detail: String? = nil
    var openedNs: UInt64? = nil
    var sourceFd: Int64 = -1
    var openedBy: UInt64 = 0
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
    var errnos: [UInt64: UInt64] = [:]
    /// Failed opens by (errno, path asked for): their fdOpen with fd -errno.
    var failedPaths: [FailedPathKey: UInt64] = [:]
    /// Failed opens with a path, beyond the bound on distinct paths (counted, not named).
    var failedPathsBeyondBound: UInt64 = 0
}

struct FailedPathKey: Hashable {
    var errno: UInt64
    var path: String
}

/// An fd life that ended.
struct EndedFDLife {
    var key: FDKey
    var life: FDAccum
    var closedNs: UInt64
}

struct IOTracker {
    static let eagain: Int64 = -11
    /// Bound on distinct (pid, fd) pairs tracked.
    static let maxFDs = 65_536
    /// Syscall numbers below `directSyscalls` index an array; the rest go to a dictionary.
    static let directSyscalls = 512
    var bySmallNr = [SyscallAccum?](repeating: nil, count: IOTracker.directSyscalls)
    var byLargeNr: [UInt64: SyscallAccum] = [:]
    var byFD = FastMap<FDKey, FDAccum>(capacity: 256)
    /// The keys of `byFD` by process, in fd order (close_range).
    var fdsOfProcess: [UInt32: OrderedFDs] = [:]
    /// Lives that ended (close, or replaced by a new life of the number), at most `maxEndedLives`.
    static let maxEndedLives = 65_536
    /// Lives that end before this (a `--from` window's start) are not rows.
    var listLivesEndingFrom: UInt64 = 0
    var endedLives: [EndedFDLife] = []
    var livesNotListed: UInt64 = 0

    /// Bits: 1 read-like, 2 write-like, 4 its return value is bytes; 0 other (a table: this runs for every syscall).
    static let ioClassTable: [UInt8] = (0..<UInt64(directSyscalls)).map {
        (SyscallNames.readLike.contains($0) ? 1 : SyscallNames.writeLike.contains($0) ? 2 : 0)
            | (SyscallNames.returnsBytes.contains($0) ? 4 : 0)
    }

    /// Bytes a completed read- or write-like call moved (0 for others, errors, and message counts).
    @inline(__always)
    static func bytesMoved(nr: UInt64, ret: Int64) -> UInt64 { ioClass(nr) & 4 != 0 && ret > 0 ? UInt64(ret) : 0 }

    @inline(__always)
    static func ioClass(_ nr: UInt64) -> UInt8 { nr < UInt64(directSyscalls) ? ioClassTable[Int(nr)] : 0 }

    /// Distinct (errno, path) pairs of failed opens kept per syscall (a crafted trace or a program probing
    /// thousands of paths); beyond it they are counted in failedPathsBeyondBound.
    static let maxFailedPaths = 4096

    /// An open (`nr`) that failed with `errno` on `path` (its fdOpen with fd -errno).
    mutating func failedOpen(nr: UInt64, errno: UInt64, path: String) {
        func note(_ s: inout SyscallAccum) {
            let key = FailedPathKey(errno: errno, path: path)
            if s.failedPaths.count < Self.maxFailedPaths || s.failedPaths[key] != nil {
                s.failedPaths[key, default: 0] &+= 1
            } else {
                s.failedPathsBeyondBound &+= 1
            }
        }
        if nr < UInt64(Self.directSyscalls) {
            guard var s = bySmallNr[Int(nr)] else { return }  // its syscall event comes first
            note(&s)
            bySmallNr[Int(nr)] = s
        } else if byLargeNr[nr] != nil {
            note(&byLargeNr[nr]!)
        }
    }

    func syscallTotals() -> [(UInt64, SyscallAccum)] {
        var out: [(UInt64, SyscallAccum)] = []
        for (nr, a) in bySmallNr.enumerated() { if let a { out.append((UInt64(nr), a)) } }
        for (nr, a) in byLargeNr { out.append((nr, a)) }
        return out
    }

    /// A forked child's fds as its parent had them at the fork (kind, path or address), per child pid. They become
    /// the child's lives only when the child uses them: a child inherits every fd, and most it never touches (a
    /// pre-fork server's workers, a backend forked per connection: the socket the parent accepted is the child's).
    var inherited: [UInt32: [Int64: InheritedFD]] = [:]
    /// Bounds (a crafted trace forking thousands of children of a parent with thousands of fds): per child, and
    /// in all; beyond them a child's fds are unknown, as before.
    static let maxInheritedFDs = 4_096
    static let maxInheritedInAll = 262_144
    var inheritedInAll = 0

    struct InheritedFD {
        var kind: UInt8?
        var detail: String?
        var forkNs: UInt64
    }

    /// `parent` forked `child` at `ns`: the child has the fds the parent had open then.
    mutating func forked(parent: UInt32, child: UInt32, ns: UInt64) {
        let most = min(Self.maxInheritedFDs, Self.maxInheritedInAll - inheritedInAll)
        guard parent != child, most > 0, inherited[child] == nil else { return }
        var fds: [Int64: InheritedFD] = [:]
        for (fd, f) in inherited[parent] ?? [:] {
            if fds.count >= most { break }
            fds[fd] = InheritedFD(kind: f.kind, detail: f.detail, forkNs: ns)
        }
        for fd in fdsOfProcess[parent]?.inRange(0, .max, atMost: most) ?? [] where fds.count < most {
            if let f = byFD.peek(FDKey(pid: parent, fd: fd), { InheritedFD(kind: $0.pointee.kind, detail: $0.pointee.detail, forkNs: ns) }) {
                fds[fd] = f
            }
        }
        guard !fds.isEmpty else { return }
        inherited[child] = fds
        inheritedInAll += fds.count
    }

    /// A process exited: what it inherited and never used goes.
    mutating func exited(pid: UInt32) {
        if !inherited.isEmpty, let gone = inherited.removeValue(forKey: pid) { inheritedInAll -= gone.count }
    }

    /// The fd's inherited life, if it has one not taken yet (removed: a life of its own from now on).
    private mutating func takeInherited(_ key: FDKey) -> InheritedFD? {
        guard !inherited.isEmpty, let i = inherited.index(forKey: key.pid) else { return nil }
        guard let f = inherited.values[i].removeValue(forKey: key.fd) else { return nil }
        inheritedInAll -= 1
        if inherited.values[i].isEmpty { inherited.remove(at: i) }
        return f
    }

    @inline(__always)
    private mutating func withFD(_ key: FDKey, _ body: (inout FDAccum) -> Void) {
        if byFD.modify(key, body) { return }
        guard byFD.count < Self.maxFDs else { return }
        var f = FDAccum()
        if let i = takeInherited(key) {
            f.kind = i.kind
            f.detail = i.detail
            f.openedNs = i.forkNs
        }
        body(&f)
        byFD.set(key, f)
        fdsOfProcess[key.pid, default: OrderedFDs()].insert(key.fd)
    }
    /// Per user stream: fds the last epoll wait reported ready, and when.
    var pendingReady: [[Int64: UInt64]]
    var readWrite: UInt64 = 0
    var readWriteAttributed: UInt64 = 0
    var readWriteToOwner: UInt64 = 0
    var readWriteOnOwnedFDs: UInt64 = 0
    var readWriteOnOwnedFDsByOwner: UInt64 = 0

    init(streams: Int) { pendingReady = [[Int64: UInt64]](repeating: [:], count: streams) }

    mutating func grow(streams: Int) {
        while pendingReady.count < streams { pendingReady.append([:]) }
    }

    /// One completed syscall. `running`: the async id of the callback running on its thread (nil: none);
    /// `ownerFD`: that callback's resource's fd.
    mutating func syscall(pid: UInt32, nr: UInt64, fd: Int64, ret: Int64, durationNs: UInt64, running: UInt64?, ownerFD: Int64?) {
        let inCallback = running != nil
        let cls = Self.ioClass(nr)
        let isRead = cls & 1 != 0, isWrite = cls & 2 != 0
        let bytes = Self.bytesMoved(nr: nr, ret: ret)
        func tally(_ s: inout SyscallAccum) {
            s.count &+= 1
            s.bytes = s.bytes.addingSaturated(bytes)
            s.ns = s.ns.addingSaturated(durationNs)
            if ret < 0 {
                s.errors &+= 1
                if s.errnos.count < 64 || s.errnos[ret.magnitude] != nil { s.errnos[ret.magnitude, default: 0] &+= 1 }
            }
            if inCallback { s.attributed &+= 1 }
        }
        if nr < UInt64(Self.directSyscalls) {
            var s = bySmallNr[Int(nr)] ?? SyscallAccum()
            tally(&s)
            bySmallNr[Int(nr)] = s
        } else {
            tally(&byLargeNr[nr, default: SyscallAccum()])
        }
        if isRead || isWrite {
            readWrite += 1
            if inCallback { readWriteAttributed += 1 }
            if let o = ownerFD, o == fd { readWriteToOwner += 1 }
        }
        guard fd >= 0 else { return }
        var owner: UInt64 = 0
        withFD(FDKey(pid: pid, fd: fd)) { f in
            owner = f.ownerAsyncID
            f.syscalls &+= 1
            f.syscallsSinceOwner &+= 1
            f.kernelNs = f.kernelNs.addingSaturated(durationNs)
            if ret == Self.eagain { f.eagain &+= 1 }
            if isRead {
                f.reads &+= 1
                f.bytesRead = f.bytesRead.addingSaturated(bytes)
            } else if isWrite {
                f.writes &+= 1
                f.bytesWritten = f.bytesWritten.addingSaturated(bytes)
            }
        }
        if (isRead || isWrite) && owner != 0 {
            readWriteOnOwnedFDs += 1
            if running == owner { readWriteOnOwnedFDsByOwner += 1 }
        }
    }

    mutating func setOwner(pid: UInt32, fd: Int64, asyncID: UInt64, type: Int32) {
        guard fd >= 0 else { return }
        withFD(FDKey(pid: pid, fd: fd)) {
            $0.ownerType = type
            $0.ownerAsyncID = asyncID
            $0.syscallsSinceOwner = 0
        }
    }

    /// fd `fd` begins a new life (fdOpen); the previous life of the number, if any, ends at `ns`.
    mutating func fdOpen(pid: UInt32, tid: UInt32, fd: Int64, kind: UInt64, sourceFd: Int64, detail: String, ns: UInt64) {
        guard fd >= 0 else { return }
        let key = FDKey(pid: pid, fd: fd)
        // connect's fdOpen (sourceFd == fd) describes the current life (now connected), it does not begin one.
        if sourceFd == fd,
            byFD.modify(
                key,
                { f in
                    if !detail.isEmpty { f.detail = detail }
                    if kind != 0 { f.kind = UInt8(truncatingIfNeeded: min(kind, 255)) }
                })
        {
            return
        }
        _ = takeInherited(key)  // a new life of the number: the inherited one, never used, ends
        var life = FDAccum()
        life.kind = UInt8(truncatingIfNeeded: min(kind, 255))
        // A dup (dup, dup2, dup3, fcntl F_DUPFD; mmap.mmap's copy of a file's fd) is the file it copies: the kernel
        // gives it no path (only an open has one), so it takes its source's.
        life.detail = detail.isEmpty ? recordedDetail(pid: pid, fd: sourceFd) : detail
        life.openedNs = tid == 0 ? nil : ns  // tid 0: found open at attach
        life.sourceFd = sourceFd
        life.openedBy = tid == 0 ? 0 : UInt64(pid) << 32 | UInt64(tid)
        if let old = byFD.remove(key) {
            if old.ownerAsyncID != 0 && old.syscallsSinceOwner == 0 {
                life.ownerAsyncID = old.ownerAsyncID
                life.ownerType = old.ownerType
            }
            // A life that only carried an early owner (nothing else happened on it) is not a row of its own.
            if old.syscalls > 0 || old.kind != nil || old.readyToCallback.count > 0 || old.ownerAsyncID == 0 {
                endLife(key, old, at: ns)
            }
        } else if byFD.count >= Self.maxFDs {
            livesNotListed &+= 1
            return
        } else {
            fdsOfProcess[pid, default: OrderedFDs()].insert(fd)
        }
        byFD.set(key, life)
    }

    /// What the runtime says of an fd the probes saw no open for (a socket received over IPC): its kind and detail,
    /// where the life has none.
    mutating func describe(pid: UInt32, fd: Int64, kind: FDKind, detail: String) {
        guard fd >= 0, !detail.isEmpty else { return }
        _ = byFD.modify(FDKey(pid: pid, fd: fd)) { f in
            guard f.kind == nil || f.kind == FDKind.unknown.rawValue || f.detail == nil else { return }
            if f.kind == nil || f.kind == FDKind.unknown.rawValue { f.kind = kind.rawValue }
            if f.detail == nil { f.detail = detail }
        }
    }

    /// A successful close of `fd` at `ns`: its life ends.
    mutating func closed(pid: UInt32, fd: Int64, ns: UInt64) {
        guard fd >= 0 else { return }
        _ = takeInherited(FDKey(pid: pid, fd: fd))
        guard let old = byFD.remove(FDKey(pid: pid, fd: fd)) else { return }
        fdsOfProcess[pid]?.remove(fd)
        if fdsOfProcess[pid]?.isEmpty == true { fdsOfProcess[pid] = nil }
        endLife(FDKey(pid: pid, fd: fd), old, at: ns)
    }

    /// close_range(first, last): every life of the pid in the range ends.
    mutating func closedRange(pid: UInt32, first: Int64, last: Int64, ns: UInt64) {
        guard first >= 0, last >= first else { return }
        if let i = inherited.index(forKey: pid) {
            let before = inherited.values[i].count
            inherited.values[i] = inherited.values[i].filter { $0.key < first || $0.key > last }
            inheritedInAll -= before - inherited.values[i].count
            if inherited.values[i].isEmpty { inherited.remove(at: i) }
        }
        guard let fds = fdsOfProcess[pid] else { return }
        for fd in fds.inRange(first, last) { closed(pid: pid, fd: fd, ns: ns) }
    }

    private mutating func endLife(_ key: FDKey, _ life: FDAccum, at ns: UInt64) {
        guard ns >= listLivesEndingFrom else { return }  // ended before the report's window: not a row of it
        guard endedLives.count < Self.maxEndedLives else {
            livesNotListed &+= 1
            return
        }
        endedLives.append(EndedFDLife(key: key, life: life, closedNs: ns))
    }

    /// The current life's path or address, for naming an fd in a stall or callback.
    func detail(pid: UInt32, fd: Int64) -> String? {
        guard fd >= 0 else { return nil }
        // In place: an FDAccum is large.
        if let (d, kind) = byFD.peek(FDKey(pid: pid, fd: fd), { ($0.pointee.detail, $0.pointee.kind) }) {
            return d ?? Self.unnamedKind(kind)
        }
        guard !inherited.isEmpty, let i = inherited[pid]?[fd] else { return nil }
        return i.detail ?? Self.unnamedKind(i.kind)
    }

    /// The path or address recorded for the fd's current life (or its inherited one), nil if none.
    private func recordedDetail(pid: UInt32, fd: Int64) -> String? {
        guard fd >= 0 else { return nil }
        if let d = byFD.peek(FDKey(pid: pid, fd: fd), { $0.pointee.detail }) { return d }
        return inherited.isEmpty ? nil : inherited[pid]?[fd]?.detail
    }

    /// An fd with no path or address is named by its kind where that says what it is: node's
    /// 'write(fd 17) 8 B' in every callback is libuv's wake-up eventfd, uv_spawn's 'read(fd 21) 49 ms' a
    /// pipe (its child's exec). Files and sockets without a path or address stay unnamed.
    static func unnamedKind(_ code: UInt8?) -> String? {
        guard let code, let kind = FDKind(rawValue: code) else { return nil }
        switch kind {
        case .pipe, .eventfd, .timerfd, .epoll, .signalfd, .inotify, .pidfd, .ioUring: return kind.name
        default: return nil
        }
    }

    /// `asyncID` no longer owns `fd` (it gave it up or was destroyed); the type stays for the report.
    mutating func releaseOwner(pid: UInt32, fd: Int64, asyncID: UInt64) {
        guard fd >= 0 else { return }
        byFD.modify(FDKey(pid: pid, fd: fd)) { if $0.ownerAsyncID == asyncID { $0.ownerAsyncID = 0 } }
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
        withFD(FDKey(pid: pid, fd: fd)) { $0.readyToCallback.record(ns >= readyNs ? ns - readyNs : 0) }
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
        /// Wait exit to wait exit (one iteration), since the interval began (`startInterval`).
        var recentIterations = LogHistogram()
    }
    var threads: [UInt64: ThreadState] = [:]
    var gaps: TopN<Gap>
    /// Per thread, the scheduler's episodes asleep in an epoll wait since its last complete one (first switch-out,
    /// time blocked, last switch-in): they belong to the next complete wait, or to a wait no syscall event shows,
    /// begun before tracing did or still open at the stop. An idle asyncio server attached with --pid for 3 s was
    /// "busy 64.4%": its span ran from its first to its last complete wait (467 ms), and left those out.
    private var asleepInWait: [UInt64: [(outNs: UInt64, blockedNs: UInt64, endNs: UInt64)]] = [:]

    init(top: Int) { gaps = TopN(limit: top) }

    /// The thread was asleep in an epoll wait from `outNs` for `blockedNs`, and back on a CPU at `endNs`.
    mutating func asleepInEpollWait(pid: UInt32, tid: UInt32, outNs: UInt64, blockedNs: UInt64, endNs: UInt64) {
        let key = UInt64(pid) << 32 | UInt64(tid)
        if var list = asleepInWait[key] {
            if list.count < 8 {
                list.append((outNs, blockedNs, endNs))
            } else {  // (a wait woken again and again: its latest episodes are one)
                list[7].blockedNs = list[7].blockedNs.addingSaturated(blockedNs)
                list[7].endNs = max(list[7].endNs, endNs)
            }
            asleepInWait[key] = list
        } else if asleepInWait.count < ThreadTracker.maxThreads {
            asleepInWait[key] = [(outNs, blockedNs, endNs)]
        }
    }

    /// Returns the time the thread was busy since its previous wait, if it had one.
    @discardableResult
    mutating func wait(pid: UInt32, tid: UInt32, exitNs: UInt64, durationNs: UInt64) -> Gap? {
        let key = UInt64(pid) << 32 | UInt64(tid)
        let enter = exitNs >= durationNs ? exitNs - durationNs : 0
        // Asleep in an epoll wait that ended before this one began, and before any complete one: the wait tracing
        // began in (no syscall event shows it).
        if let list = asleepInWait.removeValue(forKey: key), threads[key] == nil {
            let before = list.filter { $0.endNs <= enter }
            if let first = before.first, let last = before.last {
                var t = ThreadState()
                t.waits = 1
                t.waitNs = before.reduce(UInt64(0)) { $0.addingSaturated($1.blockedNs) }
                t.firstEnterNs = first.outNs
                t.lastExitNs = last.endNs
                threads[key] = t
            }
        }
        // In place (`&threads[key, default:]`): a copy would share the histograms' buckets and copy them
        // on the first record.
        let busy = Self.wait(
            &threads[key, default: ThreadState()], pid: pid, tid: tid, enter: enter, exitNs: exitNs,
            durationNs: durationNs)
        if let busy { gaps.offer(busy.durationNs, busy) }
        return busy
    }

    private static func wait(
        _ t: inout ThreadState, pid: UInt32, tid: UInt32, enter: UInt64, exitNs: UInt64,
        durationNs: UInt64
    ) -> Gap? {
        var busy: Gap? = nil
        if t.waits > 0 && exitNs >= t.lastExitNs { t.recentIterations.record(exitNs - t.lastExitNs) }
        if t.waits == 0 {
            t.firstEnterNs = enter
        } else if enter >= t.lastExitNs {
            let gap = enter - t.lastExitNs
            t.busy.record(gap)
            busy = Gap(pid: pid, tid: tid, startNs: t.lastExitNs, durationNs: gap)
        }
        t.waits += 1
        t.waitNs = t.waitNs.addingSaturated(durationNs)
        t.lastExitNs = max(t.lastExitNs, exitNs)
        return busy
    }

    mutating func startInterval() {
        for k in Array(threads.keys) { threads[k]!.recentIterations = LogHistogram() }
    }

    /// A thread found not to be a loop (`SharedPollers`): its waits so far and their gaps are not shown.
    mutating func forget(_ key: UInt64) {
        threads.removeValue(forKey: key)
        asleepInWait.removeValue(forKey: key)
        if forgotten.count < 4096 { forgotten.insert(key) }
    }
    private var forgotten = Set<UInt64>()

    func summary() -> KernelLoopSummary? {
        guard !threads.isEmpty else { return nil }
        let list = threads.sorted { $0.key < $1.key }.map { key, state in
            var t = state
            // Asleep in an epoll wait after its last complete one, with no syscall event since: still waiting at the stop.
            for w in asleepInWait[key] ?? [] where w.outNs >= t.lastExitNs {
                t.waitNs = t.waitNs.addingSaturated(w.blockedNs)
                t.lastExitNs = max(t.lastExitNs, w.endNs)
            }
            let span = t.lastExitNs - t.firstEnterNs
            return KernelLoopThread(
                pid: UInt32(key >> 32), tid: UInt32(truncatingIfNeeded: key), waits: t.waits,
                waitNs: t.waitNs, spanNs: span,
                utilization: span == 0 ? 0 : Double(span - min(span, t.waitNs)) / Double(span),
                busyNs: DurationSummary(t.busy), recentIterationNs: DurationSummary(t.recentIterations),
                lastWaitExitNs: t.lastExitNs)
        }
        return KernelLoopSummary(
            threads: list, longestGaps: gaps.sorted.filter { !forgotten.contains(UInt64($0.pid) << 32 | UInt64($0.tid)) })
    }
}
