// Every traced thread's time, from the kernel stream's version 3 events (threadName, threadExit, offCPU)
// and its syscalls: on CPU, blocked (in which syscall, woken by whom), or runnable and waiting for a CPU.
// For loop threads (those that wait in epoll) each stretch between two waits is a stall candidate, with
// what happened inside it. All arithmetic on file fields saturates: a crafted trace must not trap.
import TraceFormat

/// Why a thread was off the CPU, as a small key: a syscall number (futex split by operation), or the
/// task state when it blocked outside any traced syscall.
enum OffCPUReason {
    static let futexNr: UInt64 = 202
    static let outsideBase: UInt64 = 1 << 62

    /// `op`: futex's operation (the syscall event's `fd` field; docs/trace-format.md).
    static func syscall(_ nr: UInt64, op: Int64) -> UInt64 {
        guard nr == futexNr else { return nr }
        return nr | futexClass(op) << 32
    }

    /// 1 wait, 2 lock (PI), 3 wake/requeue, 0 unknown.
    static func futexClass(_ op: Int64) -> UInt64 {
        switch op & 0x7F {
        case 0, 9, 11: 1  // FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI
        case 6, 8, 13: 2  // FUTEX_LOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_LOCK_PI2
        case 1, 3, 4, 5, 7, 10, 12: 3
        default: 0
        }
    }

    /// Off CPU outside any traced syscall seen: `state` as the offCPU event has it (bits 0-7 OffCPUState,
    /// above them 1 + the syscall the scheduler saw it sleep in: one the probes do not record, or one begun
    /// before tracing did), named for that syscall when known, else for the state.
    static func outside(state: UInt64) -> UInt64 {
        let nr = state >> 8
        if nr > 0 && nr <= 0xFFFF { return syscall(nr - 1, op: -1) }
        return outsideBase | (state & 0xFF == switchInNotSeen ? switchInNotSeen : min(state & 0xFF, 3))
    }

    /// `OffCPUState.switchInNotSeen`: an episode whose switch-in the kernel's tracepoint never delivered.
    static let switchInNotSeen = UInt64(OffCPUState.switchInNotSeen.rawValue)

    /// epoll_wait, epoll_pwait, epoll_pwait2: a loop's idle wait.
    static func isEpollWait(_ key: UInt64) -> Bool { key == 232 || key == 281 || key == 441 }

    static func name(_ key: UInt64) -> String {
        if key & outsideBase != 0 {
            switch key & 7 {
            case 1: return "sleeping outside traced syscalls"
            case 2: return "uninterruptible (D) outside traced syscalls, e.g. a page fault"
            case 0: return "preempted"
            case switchInNotSeen: return "blocked outside traced syscalls (switch-in not seen)"
            default: return "stopped or other state"
            }
        }
        let nr = key & 0xFFFF_FFFF
        let name = SyscallNames.name(nr)
        guard nr == futexNr else { return name }
        switch key >> 32 {
        case 1: return "futex wait"
        case 2: return "futex lock"
        case 3: return "futex wake"
        default: return name
        }
    }
}

/// One stretch off the CPU, reported at switch-in.
struct OffInterval: Sendable {
    var outNs: UInt64
    var blockedNs: UInt64
    var runqueueNs: UInt64
    var state: UInt64
    var waker: UInt64  // pid << 32 | tid; 0: an interrupt or unknown
    /// A switch-in not seen: after `blockedNs`, the time to the next switch-out, neither known on nor off the CPU.
    var unknownNs: UInt64 = 0
    /// Its wakeup was not seen either: `waker` 0 means nothing (not an interrupt).
    var wakerUnknown = false
    /// The waker as the wait accounts count it (nil: not known).
    var knownWaker: UInt64? { wakerUnknown ? nil : waker }
}

struct ReasonAccum {
    var ns: UInt64 = 0
    var count: UInt64 = 0
    /// The wakers that ended the most of this waiting (at most 4 kept, by time), with how many waits each ended.
    var wakers: [(key: UInt64, ns: UInt64, count: UInt64)] = []
    /// Waits no thread was seen to end (an interrupt: a timer, a packet, I/O completion).
    var unnamedCount: UInt64 = 0
    var unnamedNs: UInt64 = 0

    /// `waker` nil: not known (its wakeup was not seen), neither a thread nor an interrupt.
    mutating func add(_ ns: UInt64, waker: UInt64?) {
        self.ns = self.ns.addingSaturated(ns)
        count &+= 1
        guard let waker else { return }
        guard waker != 0 else {
            unnamedCount &+= 1
            unnamedNs = unnamedNs.addingSaturated(ns)
            return
        }
        if let i = wakers.firstIndex(where: { $0.key == waker }) {
            wakers[i].ns = wakers[i].ns.addingSaturated(ns)
            wakers[i].count &+= 1
        } else if wakers.count < 4 {
            wakers.append((waker, ns, 1))
        } else if let i = wakers.indices.min(by: { wakers[$0].ns < wakers[$1].ns }), wakers[i].ns < ns {
            wakers[i] = (waker, ns, 1)
        }
    }
}

struct ThreadTracker {
    static let maxThreads = 65_536
    static let maxPending = 256
    static let recentSyscallsKept = 8
    /// A syscall the thread made: `idle` for a loop's epoll wait or a pool worker's park (not part of a stall).
    typealias RecentSyscall = (enterNs: UInt64, exitNs: UInt64, reason: UInt64, fd: Int64, idle: Bool)

    struct GapState: Sendable {
        var startNs: UInt64
        /// A pool worker's (`SharedPollers`): its process's pool waits when it began, its own looks at the poller
        /// since, and (once it ended) the other workers' waits in it. nil for other threads.
        var poolWaitsAtStart: UInt64? = nil
        var ownLooks: UInt64 = 0
        var poolWaitsMeanwhile: UInt64? = nil
        var blockedNs: UInt64 = 0
        var runqueueNs: UInt64 = 0
        var kernelNs: UInt64 = 0
        var unknownNs: UInt64 = 0
        var syscalls: [SyscallTally] = []
        /// Its blocked stretches by who ended them: the thread holding the lock (or GIL) it waited for.
        var wakes = ReasonAccum()
        /// Of it, inside the thread's outermost recorded callbacks.
        var inCallbacksNs: UInt64 = 0
        /// It began before the recording did (a thread found at the attach, busy outside its loop's wait): it
        /// starts at the recording's start, and was at least this long.
        var beganBeforeRecording = false
        /// Such a stretch is one only once the thread is seen to have been asleep at the attach in a syscall other
        /// than a loop wait (a handler's time.sleep, a blocking read): a thread named at the start may as well be
        /// a program's starting up.
        var asleepAtAttach = false
    }

    struct ThreadState {
        var firstNs: UInt64 = .max
        var lastNs: UInt64 = 0
        var exited = false
        var blockedNs: UInt64 = 0
        var runqueueNs: UInt64 = 0
        var offCPUEvents: UInt64 = 0
        /// Episodes whose switch-in was not seen, and the time they leave unknown; of them, those the exit of the
        /// syscall they slept in closed (`closeAtSyscallExit`).
        var switchInsNotSeen: UInt64 = 0
        var unknownNs: UInt64 = 0
        var switchInsClosedBySyscall: UInt64 = 0
        /// Its latest syscalls (enter, exit, reason, fd, epoll), newest last: a switch-in not seen is written at the
        /// next switch-out, after the syscall it slept in and maybe others.
        var recentSyscalls: [RecentSyscall] = []
        var syscalls: UInt64 = 0
        var syscallNs: UInt64 = 0
        var errors: UInt64 = 0
        var reasons: [UInt64: ReasonAccum] = [:]
        var pending: [OffInterval] = []
        var longestWaitNs: UInt64 = 0
        var longestWaitReason: UInt64 = 0
        var longestWaitStartNs: UInt64 = 0
        // Loop threads: epoll waits and the stall being measured.
        var epollWaits: UInt64 = 0
        /// Futex waits that were idle time of a worker sharing an epoll fd (`parkedInPool`).
        var parks: UInt64 = 0
        /// From when its stalls count (`notALoop`).
        var stallsCountFromNs: UInt64 = 0
        var epollNs: UInt64 = 0
        /// Whether any of them was an epoll wait (not poll or select): then its polls are not loop waits.
        var usesEpoll = false
        /// The thread's program recorded callbacks on it (what a stall spent outside them means something).
        var ranCallbacks = false
        /// When its outermost recorded callback that is running now began (nil: none is).
        var callbackSinceNs: UInt64?
        var gap: GapState?
        /// The stretch as it would end at the latest wait on another loop's epoll fd outside callbacks
        /// (`nestedLoopWait`): its end if the thread's loop never waits again (`flush`).
        var endAtNestedWait: (GapState, UInt64)?
        var longestStallNs: UInt64 = 0
        var longestStallStartNs: UInt64 = 0
        /// Its stalls at or above the threshold (in `stallsAtThreshold` too): taken back if it is no loop after all.
        var stallsAtThreshold: UInt64 = 0
        var stallsAtThresholdNs: UInt64 = 0

        var lastSyscallEnterNs: UInt64 = .max
        var lastSyscallExitNs: UInt64 = 0
        var lastSyscallReason: UInt64 = 0
        var lastSyscallIsEpoll = false
        /// Time the last syscall was blocked (off CPU, not runnable), including stretches written after it.
        var lastSyscallBlockedNs: UInt64 = 0
        /// The latest switch-in (offCPU event) seen: the next episode began after it.
        var lastOnNs: UInt64 = 0

        mutating func noteLastSyscall(
            enterNs: UInt64, exitNs: UInt64, reason: UInt64, isEpoll: Bool, fd: Int64 = -1, idle: Bool? = nil
        ) {
            if recentSyscalls.count >= ThreadTracker.recentSyscallsKept { recentSyscalls.removeFirst() }
            recentSyscalls.append((enterNs, exitNs, reason, fd, idle ?? isEpoll))
            lastSyscallEnterNs = enterNs
            lastSyscallExitNs = exitNs
            lastSyscallReason = reason
            lastSyscallIsEpoll = isEpoll
            lastSyscallBlockedNs = 0
        }

        mutating func seen(_ ns: UInt64) {
            if ns < firstNs { firstNs = ns }
            if ns > lastNs { lastNs = ns }
        }
    }

    var threads: [UInt64: ThreadState] = [:]
    var names: [UInt64: String] = [:]
    /// Threads whose only name is their creator's, copied at their creation: never renamed, not found at the attach.
    var namedOnlyByCreator: Set<UInt64> = []
    /// Names of wakers outside the traced tree (wakerName), for naming them where they woke a traced thread.
    var wakerNames: [UInt64: String] = [:]
    /// Processes' titles (processTitle: argv rewritten, as postgres, nginx do), by pid; their parents (processFork).
    var titles: [UInt32: String] = [:]
    var parents: [UInt32: UInt32] = [:]
    var untrackedThreads: UInt64 = 0
    var sawScheduler = false
    /// Off-CPU time before this is cut (the recording's start, or the report window's).
    let earliestNs: UInt64
    var stalls: TopN<StallRecordDraft>
    /// All stalls at or above the blocking threshold.
    var stallsAtThreshold: UInt64 = 0
    var stallsAtThresholdNs: UInt64 = 0
    let thresholdNs: UInt64

    init(earliestNs: UInt64, top: Int, thresholdNs: UInt64) {
        self.earliestNs = earliestNs
        self.thresholdNs = thresholdNs
        stalls = TopN(limit: top)
    }

    @inline(__always)
    static func key(_ pid: UInt32, _ tid: UInt32) -> UInt64 { UInt64(pid) << 32 | UInt64(tid) }

    @inline(__always)
    private mutating func withThread(_ key: UInt64, _ body: (inout ThreadState) -> Void) {
        // Through the values' index: `threads[key]!` moved the whole state out and back (a memcpy per event).
        if let i = threads.index(forKey: key) {
            body(&threads.values[i])
            return
        }
        guard threads.count < Self.maxThreads else {
            untrackedThreads &+= 1
            return
        }
        threads[key] = ThreadState()
        body(&threads.values[threads.index(forKey: key)!])
    }

    mutating func threadName(pid: UInt32, tid: UInt32, name: String, ns: UInt64) {
        let k = Self.key(pid, tid)
        guard names[k] != nil || names.count < Self.maxThreads else { return }
        let first = names[k] == nil && threads[k] == nil
        names[k] = name
        let start = earliestNs
        if first, ns > start.addingSaturated(Self.attachNamingNs) {
            namedOnlyByCreator.insert(k)
        } else if !namedOnlyByCreator.isEmpty {
            namedOnlyByCreator.remove(k)
        }
        withThread(k) { t in
            t.seen(ns)
            // Named at the attach (the recorder names every thread it finds there, at the recording's start): the
            // thread may be busy outside its loop's wait, and that stretch is a stall that began before the
            // recording. It ends at the thread's first loop wait; a wait in progress at the attach or a rename
            // (a launched program's exec) before that says there was none.
            if first, ns <= start.addingSaturated(Self.attachNamingNs) {
                t.gap = GapState(startNs: start, beganBeforeRecording: true)
            } else if !first, t.gap?.beganBeforeRecording == true, t.epollWaits == 0 {
                t.gap = nil
            }
        }
    }

    /// How soon after the recording's start the names of the threads found at the attach are written.
    static let attachNamingNs: UInt64 = 20_000_000
    /// Loop waits (epoll, poll, select): a thread asleep in one at the attach was idle there.
    static let loopWaitNrs: Set<UInt64> = [232, 281, 441, 7, 271, 23, 270]

    /// A thread outside the traced tree that woke a traced one (wakerName): a name only, not a thread of the trace.
    mutating func wakerName(pid: UInt32, tid: UInt32, name: String) {
        let k = Self.key(pid, tid)
        guard !name.isEmpty, wakerNames[k] != nil || wakerNames.count < Self.maxThreads else { return }
        wakerNames[k] = name
    }

    mutating func processTitle(pid: UInt32, title: String) {
        guard titles[pid] != nil || titles.count < Self.maxThreads else { return }
        titles[pid] = title.isEmpty ? nil : TitledProcess.bounded(title)
    }

    mutating func forked(parent: UInt32, child: UInt32) {
        guard parents[child] != nil || parents.count < Self.maxThreads else { return }
        parents[child] = parent
    }

    mutating func threadExit(pid: UInt32, tid: UInt32, ns: UInt64) {
        withThread(Self.key(pid, tid)) { t in
            t.seen(ns)
            t.exited = true
        }
    }

    /// A thread is back on a CPU at `inNs`. Returns the interval as it counts (cut at `earliestNs`).
    mutating func offCPU(
        pid: UInt32, tid: UInt32, inNs: UInt64, state: UInt64, blockedNs: UInt64, runqueueNs: UInt64,
        waker: UInt64
    ) -> OffInterval {
        sawScheduler = true
        let earliest = earliestNs
        var interval = OffInterval(outNs: inNs, blockedNs: 0, runqueueNs: 0, state: state, waker: waker)
        withThread(Self.key(pid, tid)) { t in
            // A switch-in not seen (written at the next switch-out, `inNs`): the blocked part is exact when its
            // wakeup was seen; the rest (`runqueueNs`) was run-queue wait and on-CPU time in unknown shares.
            let lost = state & 0xFF == OffCPUReason.switchInNotSeen
            var blocked = state & 0xFF == 0 ? 0 : blockedNs
            var runqueue = state & 0xFF == 0 ? blockedNs.addingSaturated(runqueueNs) : runqueueNs
            // Only the part inside the recording (or the window), and after the thread's previous switch-in
            // (episodes cannot overlap; a crafted trace's could), counts: the latest `allowed` ns, run queue last.
            let allowed = inNs.subtractingSaturated(max(earliest, t.lastOnNs))
            runqueue = min(runqueue, allowed)
            blocked = min(blocked, allowed - runqueue)
            let out = inNs - blocked - runqueue
            interval = OffInterval(outNs: out, blockedNs: blocked, runqueueNs: runqueue, state: state, waker: waker)
            var closedBy: RecentSyscall?
            if lost {
                t.switchInsNotSeen &+= 1
                closedBy = Self.closeAtSyscallExit(&interval, recent: t.recentSyscalls, nextOutNs: inNs)
                if closedBy != nil {
                    t.switchInsClosedBySyscall &+= 1
                } else {
                    interval.runqueueNs = 0
                    interval.unknownNs = runqueue
                    t.unknownNs = t.unknownNs.addingSaturated(runqueue)
                }
            }
            t.lastOnNs = max(t.lastOnNs, inNs)
            t.seen(out)
            t.seen(inNs)
            t.offCPUEvents &+= 1
            // Asleep at the attach: in a loop wait, it was idle, so its first stretch begins when that wait ends;
            // in another syscall, its loop was busy, and the stretch from the recording's start is a stall.
            // (Its episode begins when the probes began to trace it, just after the recording's start.)
            if t.gap?.beganBeforeRecording == true, t.epollWaits == 0, out <= earliest.addingSaturated(Self.attachNamingNs),
                state >> 8 > 0
            {
                if Self.loopWaitNrs.contains((state >> 8) - 1) {
                    t.gap = GapState(startNs: inNs)
                } else {
                    t.gap?.asleepAtAttach = true
                }
            }
            // Closed by an earlier syscall than the last: charged to it and to its row in the stall.
            if let c = closedBy, c.exitNs != t.lastSyscallExitNs || c.enterNs != t.lastSyscallEnterNs {
                if !c.idle { Self.addBlockedToStallRow(&t, reason: c.reason, fd: c.fd, enterNs: c.enterNs, blockedNs: interval.blockedNs) }
                Self.finalize(interval, reason: c.reason, gapEndNs: c.idle ? c.enterNs : .max, &t)
                return
            }
            if let c = closedBy, !c.idle {
                Self.addBlockedToStallRow(
                    &t, reason: t.lastSyscallReason, fd: c.fd, enterNs: t.lastSyscallEnterNs, blockedNs: interval.blockedNs)
            }
            // Written after the syscall it happened in (same timestamp, or the ring's order across CPUs); a switch-in
            // not seen is written at the next switch-out, so also after the syscall it began in ended.
            if (lost ? out : inNs) <= t.lastSyscallExitNs && out >= t.lastSyscallEnterNs {
                t.lastSyscallBlockedNs = t.lastSyscallBlockedNs.addingSaturated(interval.blockedNs)
                Self.finalize(interval, reason: t.lastSyscallReason, gapEndNs: t.lastSyscallIsEpoll ? t.lastSyscallEnterNs : .max, &t)
                return
            }
            if t.pending.count >= Self.maxPending { Self.finalize(t.pending.removeFirst(), reason: nil, gapEndNs: .max, &t) }
            t.pending.append(interval)
        }
        return interval
    }

    /// A switch-in not seen, asleep in a syscall that ended before the next switch-out (`nextOutNs`, where the
    /// episode was written): the thread was back on a CPU by that syscall's exit, so the episode ends there. Its
    /// blocked part stays as seen (wakeup seen), the rest to the exit was run-queue wait; without the wakeup, all of
    /// it is counted blocked (by an unknown waker). Returns the syscall, or nil (the time stays unknown).
    private static func closeAtSyscallExit(
        _ i: inout OffInterval, recent: [RecentSyscall],
        nextOutNs: UInt64
    ) -> RecentSyscall? {
        guard let c = recent.last(where: { $0.enterNs <= i.outNs && i.outNs <= $0.exitNs && $0.exitNs <= nextOutNs }) else {
            return nil
        }
        let inside = c.exitNs - i.outNs
        if i.blockedNs > 0 {
            i.blockedNs = min(i.blockedNs, inside)
            i.runqueueNs = inside - i.blockedNs
        } else {
            i.blockedNs = inside
            i.runqueueNs = 0
            i.wakerUnknown = true
        }
        i.unknownNs = 0
        return c
    }

    /// The stall's row for a syscall already tallied (`reason`, `fd`, begun at `enterNs`) was blocked `blockedNs` more.
    private static func addBlockedToStallRow(_ t: inout ThreadState, reason: UInt64, fd: Int64, enterNs: UInt64, blockedNs: UInt64) {
        guard blockedNs > 0, var g = t.gap, enterNs >= g.startNs,
            let r = g.syscalls.lastIndex(where: { $0.nr == reason && ($0.fd == fd || $0.fd == SyscallTally.others) })
        else { return }
        g.syscalls[r].blockedNs = g.syscalls[r].blockedNs.addingSaturated(blockedNs)
        t.gap = g
    }

    /// Charges an off-CPU stretch to its reason (`nil`: outside any traced syscall) and to the stall it is in.
    /// `gapEndNs`: the stall being measured ends there (an epoll wait began), later stretches are not in it.
    private static func finalize(_ i: OffInterval, reason: UInt64?, gapEndNs: UInt64, _ t: inout ThreadState) {
        t.runqueueNs = t.runqueueNs.addingSaturated(i.runqueueNs)
        if var g = t.gap, i.outNs >= g.startNs && i.outNs < gapEndNs {
            g.blockedNs = g.blockedNs.addingSaturated(i.blockedNs)
            g.runqueueNs = g.runqueueNs.addingSaturated(i.runqueueNs)
            g.unknownNs = g.unknownNs.addingSaturated(i.unknownNs)
            if i.blockedNs > 0 { g.wakes.add(i.blockedNs, waker: i.knownWaker) }
            // A sleep in a syscall the probes do not record, named by the scheduler (a coroutine's
            // subprocess.run waiting in wait4): listed with the stall's syscalls, or the stall was only
            // 'blocked outside traced syscalls' with nothing naming what it waited for.
            let slept = i.state >> 8
            if reason == nil, i.blockedNs > 0, slept > 0, slept <= 0xFFFF {
                SyscallTally.add(
                    &g.syscalls, nr: OffCPUReason.outside(state: i.state), fd: -1, ns: i.blockedNs, bytes: 0,
                    blockedNs: i.blockedNs, detail: nil)
            }
            t.gap = g
        }
        guard i.blockedNs > 0 else { return }
        let r = reason ?? OffCPUReason.outside(state: i.state)
        t.blockedNs = t.blockedNs.addingSaturated(i.blockedNs)
        t.reasons[r, default: ReasonAccum()].add(i.blockedNs, waker: i.knownWaker)
        if i.blockedNs > t.longestWaitNs {
            t.longestWaitNs = i.blockedNs
            t.longestWaitReason = r
            t.longestWaitStartNs = i.outNs
        }
    }

    /// A completed syscall (not an epoll wait): it claims the off-CPU stretches that began inside it.
    /// The open the thread just made (tallied by the fd it made) opened `path`: the stall's tally says so.
    mutating func opened(pid: UInt32, tid: UInt32, fd: Int64, errno: UInt64 = 0, path: String) {
        guard let t = threads.index(forKey: Self.key(pid, tid)), threads.values[t].gap != nil else { return }
        SyscallTally.named(&threads.values[t].gap!.syscalls, fd: fd, errno: errno, path: path)
    }

    /// The stall's last `nr` on `fd` (connect, bind, listen) gave the socket `address`.
    mutating func described(pid: UInt32, tid: UInt32, nr: UInt64, fd: Int64, address: String) {
        guard let t = threads.index(forKey: Self.key(pid, tid)), threads.values[t].gap != nil else { return }
        SyscallTally.described(&threads.values[t].gap!.syscalls, nr: nr, fd: fd, address: address)
    }

    /// Returns the time it was blocked.
    @discardableResult
    mutating func syscall(
        pid: UInt32, tid: UInt32, nr: UInt64, fd: Int64, op: Int64, ret: Int64, bytes: UInt64,
        enterNs: UInt64, exitNs: UInt64, fds: IOTracker, errno: UInt64 = 0, severalFds: UInt64? = nil
    ) -> UInt64 {
        var blocked: UInt64 = 0
        withThread(Self.key(pid, tid)) { t in
            t.seen(enterNs)
            t.seen(exitNs)
            t.syscalls &+= 1
            let dur = exitNs.subtractingSaturated(enterNs)
            t.syscallNs = t.syscallNs.addingSaturated(dur)
            if ret < 0 { t.errors &+= 1 }
            let reason = OffCPUReason.syscall(nr, op: op)
            blocked = Self.claim(&t, enterNs: enterNs, reason: reason, gapEndNs: .max)
            t.noteLastSyscall(enterNs: enterNs, exitNs: exitNs, reason: reason, isEpoll: false, fd: fd)
            t.lastSyscallBlockedNs = blocked
            guard var g = t.gap, enterNs >= g.startNs else { return }
            g.kernelNs = g.kernelNs.addingSaturated(dur)
            // An open is merged with the opens of the same path once its fdOpen names it (`opened`).
            // futex by its operation ("futex wait", "futex wake"), as THREADS names its waits: its fd field is the op.
            SyscallTally.add(
                &g.syscalls, nr: reason, fd: fd, errno: errno, severalFds: severalFds, ns: dur, bytes: bytes, blockedNs: blocked,
                detail: SyscallNames.opensPath(reason) ? nil : fds.detail(pid: pid, fd: fd))
            t.gap = g
        }
        return blocked
    }

    /// How long the thread's last syscall was blocked, if it ended at `exitNs` (a waitStack follows its syscall).
    func blockedInLastSyscall(pid: UInt32, tid: UInt32, exitNs: UInt64) -> UInt64? {
        guard let t = threads[Self.key(pid, tid)], t.lastSyscallExitNs == exitNs, !t.lastSyscallIsEpoll else { return nil }
        return t.lastSyscallBlockedNs
    }

    /// Pending stretches that began before `enterNs` were outside any traced syscall; the rest were in this one.
    private static func claim(_ t: inout ThreadState, enterNs: UInt64, reason: UInt64, gapEndNs: UInt64) -> UInt64 {
        guard !t.pending.isEmpty else { return 0 }
        var blocked: UInt64 = 0
        let pending = t.pending
        t.pending.removeAll(keepingCapacity: true)
        for i in pending {
            if i.outNs < enterNs {
                finalize(i, reason: nil, gapEndNs: gapEndNs, &t)
            } else {
                finalize(i, reason: reason, gapEndNs: gapEndNs, &t)
                blocked = blocked.addingSaturated(i.blockedNs)
            }
        }
        return blocked
    }

    /// An epoll wait from `enterNs` to `exitNs`: the thread is a loop thread; the stretch since its previous
    /// wait ends here, and the next begins.
    /// `poolWaits`: a pool worker's process's pool waits so far, this one included (`TraceAnalyzer.poolWaits`).
    mutating func epollWait(
        pid: UInt32, tid: UInt32, nr: UInt64, ret: Int64, enterNs: UInt64, exitNs: UInt64, isEpoll: Bool = true,
        poolWaits: UInt64? = nil
    ) {
        let k = Self.key(pid, tid)
        var finished: (GapState, UInt64)? = nil
        withThread(k) { t in
            if isEpoll { t.usesEpoll = true }
            t.seen(enterNs)
            t.seen(exitNs)
            t.syscalls &+= 1
            let dur = exitNs.subtractingSaturated(enterNs)
            t.syscallNs = t.syscallNs.addingSaturated(dur)
            if ret < 0 { t.errors &+= 1 }
            t.epollWaits &+= 1
            t.epollNs = t.epollNs.addingSaturated(dur)
            // Stretches that began before the wait belong to the stall; the rest to the wait itself.
            let reason = OffCPUReason.syscall(nr, op: 0)
            _ = Self.claim(&t, enterNs: enterNs, reason: reason, gapEndNs: enterNs)
            t.noteLastSyscall(enterNs: enterNs, exitNs: exitNs, reason: reason, isEpoll: true)
            finished = Self.endGap(&t, enterNs: enterNs, exitNs: exitNs, poolWaits: poolWaits, ownWait: 1)
            t.endAtNestedWait = nil
        }
        offerStall(k, finished)
    }

    /// An epoll wait of a loop thread on another loop's epoll fd, outside its callbacks, while its own loop's
    /// is open (Node's execSync after an `await`): a syscall of the stretch it is in, not its end. Should the
    /// thread's loop never wait again, the stretch ends at the latest such wait, as it would have at its
    /// loop's: node's exit waits once on another loop after its loop's last wait, and a program whose last
    /// callback blocked keeps that stall. Returns the time it was blocked.
    mutating func nestedLoopWait(
        pid: UInt32, tid: UInt32, nr: UInt64, fd: Int64, ret: Int64, enterNs: UInt64, exitNs: UInt64, fds: IOTracker
    ) -> UInt64 {
        if let i = threads.index(forKey: Self.key(pid, tid)), let g = threads.values[i].gap, enterNs >= g.startNs {
            var ending = threads.values[i]
            _ = Self.claim(&ending, enterNs: enterNs, reason: OffCPUReason.syscall(nr, op: 0), gapEndNs: enterNs)
            threads.values[i].endAtNestedWait = Self.endGap(&ending, enterNs: enterNs, exitNs: exitNs, poolWaits: nil, ownWait: 1)
        }
        return syscall(pid: pid, tid: tid, nr: nr, fd: fd, op: fd, ret: ret, bytes: 0, enterNs: enterNs, exitNs: exitNs, fds: fds)
    }

    /// A futex wait of a thread that takes turns with others at one epoll fd (a Go or Tokio worker parked
    /// until there is work, while another waits in epoll): the thread is idle in it as in its epoll waits, so
    /// the stretch since its previous wait ends here and the next begins. It stays a syscall of the thread's
    /// (THREADS names it and its wakers). Returns the time it was blocked.
    mutating func parkedInPool(
        pid: UInt32, tid: UInt32, nr: UInt64, op: Int64, ret: Int64, enterNs: UInt64, exitNs: UInt64, poolWaits: UInt64? = nil
    ) -> UInt64 {
        let k = Self.key(pid, tid)
        var finished: (GapState, UInt64)? = nil
        var blocked: UInt64 = 0
        withThread(k) { t in
            t.seen(enterNs)
            t.seen(exitNs)
            t.syscalls &+= 1
            t.syscallNs = t.syscallNs.addingSaturated(exitNs.subtractingSaturated(enterNs))
            if ret < 0 { t.errors &+= 1 }
            let reason = OffCPUReason.syscall(nr, op: op)
            blocked = Self.claim(&t, enterNs: enterNs, reason: reason, gapEndNs: enterNs)
            t.noteLastSyscall(enterNs: enterNs, exitNs: exitNs, reason: reason, isEpoll: false, idle: true)
            t.lastSyscallBlockedNs = blocked
            t.parks &+= 1
            // A pool worker parks in a futex as a loop waits: one parked at the attach was idle, not busy.
            if t.gap?.beganBeforeRecording == true { t.gap = nil }
            finished = Self.endGap(&t, enterNs: enterNs, exitNs: exitNs, poolWaits: poolWaits, ownWait: 0)
        }
        offerStall(k, finished)
        return blocked
    }

    /// A pool worker looked at its shared poller in passing (a wait with timeout 0, counted in `poolWaits`): not
    /// one of the other workers' waits in its stretch.
    mutating func lookedAtPoller(pid: UInt32, tid: UInt32) {
        guard let i = threads.index(forKey: Self.key(pid, tid)), threads.values[i].gap != nil else { return }
        threads.values[i].gap!.ownLooks &+= 1
    }

    /// Ends the thread's stretch between waits at `enterNs` (its length, if it had one) and begins the next at `exitNs`.
    /// A pool worker's (`poolWaits`, its process's pool waits so far, `ownWait` of them this one): the other
    /// workers' waits in the stretch, which the thread itself did not make.
    private static func endGap(
        _ t: inout ThreadState, enterNs: UInt64, exitNs: UInt64, poolWaits: UInt64?, ownWait: UInt64
    ) -> (GapState, UInt64)? {
        var finished: (GapState, UInt64)? = nil
        if var g = t.gap, enterNs >= g.startNs, !g.beganBeforeRecording || g.asleepAtAttach {
            if let now = poolWaits, let start = g.poolWaitsAtStart {
                g.poolWaitsMeanwhile = now.subtractingSaturated(start).subtractingSaturated(g.ownLooks).subtractingSaturated(ownWait)
            }
            // A callback still running holds this stretch from its start (a nested run loop inside a Swift
            // task waits many times inside one callback); its end credits only the stretch it ends in.
            if let since = t.callbackSinceNs, enterNs > max(since, g.startNs) {
                g.inCallbacksNs = g.inCallbacksNs.addingSaturated(enterNs - max(since, g.startNs))
            }
            let d = enterNs - g.startNs
            if d > t.longestStallNs {
                t.longestStallNs = d
                t.longestStallStartNs = g.startNs
            }
            finished = (g, d)
        }
        t.gap = GapState(startNs: exitNs, poolWaitsAtStart: poolWaits)
        return finished
    }

    /// A signal killed the process: its loop threads' stretches since their last wait end at their last event. A loop
    /// stuck until a watchdog or a supervisor killed it never waits again, and that last (often longest) stretch
    /// was never listed (a cluster worker killed inside its request's handler lost its 22 ms stall).
    mutating func processKilled(pid: UInt32, signal: Int32) {
        for k in Array(threads.keys) where UInt32(truncatingIfNeeded: k >> 32) == pid {
            guard let i = threads.index(forKey: k), threads.values[i].epollWaits > 0, threads.values[i].gap != nil,
                threads.values[i].endAtNestedWait == nil
            else { continue }
            let end = threads.values[i].lastNs
            let finished = Self.endGap(&threads.values[i], enterNs: end, exitNs: end, poolWaits: nil, ownWait: 0)
            threads.values[i].gap = nil
            offerStall(k, finished, killedBySignal: signal)
        }
    }

    private mutating func offerStall(
        _ k: UInt64, _ finished: (GapState, UInt64)?, endsAtExit: Bool = false, killedBySignal: Int32? = nil
    ) {
        guard let (g, d) = finished else { return }
        if d >= thresholdNs {
            stallsAtThreshold &+= 1
            stallsAtThresholdNs = stallsAtThresholdNs.addingSaturated(d)
            if let i = threads.index(forKey: k) {
                threads.values[i].stallsAtThreshold &+= 1
                threads.values[i].stallsAtThresholdNs = threads.values[i].stallsAtThresholdNs.addingSaturated(d)
            }
        }
        stalls.offer(d, StallRecordDraft(key: k, gap: g, durationNs: d, endsAtExit: endsAtExit, killedBySignal: killedBySignal))
    }

    /// An outermost recorded callback ran on the thread until `endNs`: the stall being measured counts its
    /// time inside callbacks (a loop waits only between callbacks, so a stall holds its callbacks whole).
    /// An outermost recorded callback began on the thread at `ns` (it may never end: a job cut by the exit).
    mutating func callbackBegan(pid: UInt32, tid: UInt32, ns: UInt64) {
        guard let i = threads.index(forKey: Self.key(pid, tid)) else { return }
        threads.values[i].ranCallbacks = true
        threads.values[i].callbackSinceNs = ns
    }

    /// The thread's open callbacks lost their after() (damage): none runs any more.
    mutating func callbackAbandoned(pid: UInt32, tid: UInt32) {
        guard let i = threads.index(forKey: Self.key(pid, tid)) else { return }
        threads.values[i].callbackSinceNs = nil
    }

    mutating func callbackRan(pid: UInt32, tid: UInt32, startNs: UInt64, endNs: UInt64) {
        guard let i = threads.index(forKey: Self.key(pid, tid)) else { return }
        threads.values[i].ranCallbacks = true
        threads.values[i].callbackSinceNs = nil
        guard var g = threads.values[i].gap else { return }
        let from = max(startNs, g.startNs)
        if endNs > from { g.inCallbacksNs = g.inCallbacksNs.addingSaturated(endNs - from) }
        threads.values[i].gap = g
    }

    /// Whether the thread's last syscall, ending at `exitNs`, was a poll loop's wait.
    func lastSyscallWasPollLoopWait(pid: UInt32, tid: UInt32, exitNs: UInt64) -> Bool {
        guard let t = threads[Self.key(pid, tid)] else { return false }
        return t.lastSyscallExitNs == exitNs && t.lastSyscallIsEpoll && !t.usesEpoll
    }

    /// A thread that waited in poll or select (never epoll) is taken for a loop at its first such wait. It is none
    /// when those waits are under a tenth of the time it was blocked, and few: it mostly waited for something
    /// else (a lock, a pipe) and polled on the way (multiprocessing's main thread: 6 polls, 1 ms, then 2.4 s in
    /// futex waits, was 'busy 99.8%' with a 473 ms 'loop stall'). A loop on poll that blocks in a handler still
    /// spends its idle time in poll; with 20 waits or more it stays one whatever the shares. Needs the
    /// scheduler's blocked time: without it nothing is decided here.
    func pollCallersThatAreNoLoop() -> Set<UInt64> {
        guard sawScheduler else { return [] }
        var out: Set<UInt64> = []
        for (k, t) in threads where !t.usesEpoll && t.epollWaits > 0 && t.epollWaits < 20 {
            let (tenfold, overflow) = t.epollNs.multipliedReportingOverflow(by: 10)
            if !overflow && tenfold < t.blockedNs { out.insert(k) }
        }
        return out
    }

    /// A thread whose epoll waits until `ns` were looks in passing at a poller other threads wait on: not a
    /// loop, so no stretch between them is a stall (those already offered are left out of the summary).
    mutating func notALoop(_ key: UInt64, ns: UInt64) {
        guard let i = threads.index(forKey: key) else { return }
        threads.values[i].gap = nil
        threads.values[i].epollWaits = 0
        threads.values[i].longestStallNs = 0
        stallsAtThreshold = stallsAtThreshold.subtractingSaturated(threads.values[i].stallsAtThreshold)
        stallsAtThresholdNs = stallsAtThresholdNs.subtractingSaturated(threads.values[i].stallsAtThresholdNs)
        threads.values[i].stallsAtThreshold = 0
        threads.values[i].stallsAtThresholdNs = 0
        threads.values[i].stallsCountFromNs = ns
    }

    /// Whether the thread has waited for events (epoll, or poll in a poll loop).
    func isLoop(pid: UInt32, tid: UInt32) -> Bool { (threads[Self.key(pid, tid)]?.epollWaits ?? 0) > 0 }

    /// Whether a poll or select of this thread may be its loop's wait: it has not waited in epoll.
    func mayLoopOnPoll(pid: UInt32, tid: UInt32) -> Bool { !(threads[Self.key(pid, tid)]?.usesEpoll ?? false) }

    /// Stretches still pending at the end: outside any syscall seen.
    mutating func flush() {
        for k in Array(threads.keys) {
            guard let i = threads.index(forKey: k), let (g, d) = threads.values[i].endAtNestedWait else { continue }
            threads.values[i].endAtNestedWait = nil
            if d > threads.values[i].longestStallNs {
                threads.values[i].longestStallNs = d
                threads.values[i].longestStallStartNs = g.startNs
            }
            offerStall(k, (g, d), endsAtExit: threads.values[i].exited)
        }
        for k in Array(threads.keys) where !(threads[k]?.pending.isEmpty ?? true) {
            var t = threads[k]!
            let pending = t.pending
            t.pending.removeAll()
            for i in pending { Self.finalize(i, reason: nil, gapEndNs: .max, &t) }
            threads[k] = t
        }
    }

    func name(_ key: UInt64) -> String? { names[key] }

    /// The stalls at or above the threshold of these threads (count, ns).
    func stallsAtThreshold(of keys: Set<UInt64>) -> (count: UInt64, ns: UInt64) {
        var count: UInt64 = 0, ns: UInt64 = 0
        for k in keys {
            count &+= threads[k]?.stallsAtThreshold ?? 0
            ns = ns.addingSaturated(threads[k]?.stallsAtThresholdNs ?? 0)
        }
        return (count, ns)
    }

    /// A thread's name in every section: the kernel's (its comm, which follows renames), unless the name its
    /// runtime gave the thread (a user stream's `threadInfo`) extends it: node's `node (worker 1)` for a
    /// worker whose comm is `node`, a name longer than comm's 15 bytes. Either where the other is unknown.
    /// A Dispatch worker's cut of its queue's label is the label (`DispatchThreadNames`). Dispatch names its workers
    /// itself (a rename after their creation); a thread the program made on a worker (pthread_create, Thread) has
    /// the worker's name only because Linux copies the creator's, and is no worker: `inherited` says so, and it is
    /// "thread made on com.apple.root.default-qos".
    static func preferredName(kernel: String?, user: String?, inherited: Bool = false) -> String? {
        guard let kernel, !kernel.isEmpty else { return user.map(DispatchThreadNames.expanded) }
        if let user, user.count > kernel.count, user.hasPrefix(kernel) { return DispatchThreadNames.expanded(user) }
        if inherited, let label = DispatchThreadNames.labels[kernel] { return "thread made on " + label }
        return DispatchThreadNames.expanded(kernel)
    }

    /// A thread's name in every section (`preferredName`, titled): `user` is its stream's thread name, if any.
    func displayName(_ key: UInt64, user: String?) -> String? {
        titled(Self.preferredName(kernel: names[key], user: user, inherited: namedOnlyByCreator.contains(key)), key)
    }

    func name(_ key: UInt64, userThreadNames: [UInt64: String]) -> String? {
        let user = userThreadNames[key]
        return titled(Self.preferredName(kernel: names[key], user: user, inherited: namedOnlyByCreator.contains(key)) ?? wakerNames[key], key)
    }

    /// A thread's name where its process has a title: the title for its main thread ("postgres: checkpointer"),
    /// "name in title" for the others.
    func titled(_ name: String?, _ key: UInt64) -> String? {
        let pid = UInt32(key >> 32), tid = UInt32(truncatingIfNeeded: key)
        guard let title = titles[pid] else { return name }
        if pid == tid { return title }
        return "\(name ?? "thread") in \(title)"
    }

    /// The titled processes, by pid: pid, parent, program (its main thread's comm) and title.
    func titledProcesses() -> [TitledProcess] {
        titles.keys.sorted().map { pid in
            TitledProcess(
                pid: pid, ppid: parents[pid], program: names[UInt64(pid) << 32 | UInt64(pid)], title: titles[pid]!)
        }
    }

    /// `noLoops`: threads that waited for events but are no loop (`pollCallersThatAreNoLoop`): no loop, no stalls.
    func summary(
        loopUtilization: [UInt64: Double], userThreadNames: [UInt64: String], noLoops: Set<UInt64> = []
    ) -> ([ThreadSummary], [LoopStall]) {
        func threadName(_ k: UInt64) -> String? { name(k, userThreadNames: userThreadNames) }
        func wakers(_ a: ReasonAccum) -> [WakerTime] {
            a.wakers.sorted { $0.ns > $1.ns }.map {
                WakerTime(
                    thread: ThreadRef(pid: UInt32($0.key >> 32), tid: UInt32(truncatingIfNeeded: $0.key), name: threadName($0.key)),
                    count: $0.count, ns: $0.ns)
            }
        }
        var out: [ThreadSummary] = []
        var keys = Set(threads.keys)
        for k in userThreadNames.keys where keys.count < Self.maxThreads { keys.insert(k) }
        for k in keys.sorted() {
            let t = threads[k] ?? ThreadState()
            let span = t.firstNs == .max ? 0 : t.lastNs.subtractingSaturated(t.firstNs)
            let offOrUnknown = t.blockedNs.addingSaturated(t.runqueueNs).addingSaturated(t.unknownNs)
            let onCPU: UInt64? = sawScheduler ? span.subtractingSaturated(offOrUnknown) : nil
            let reasons = t.reasons.map { r, a in
                OffCPUReasonTime(
                    reason: OffCPUReason.name(r), ns: a.ns, count: a.count,
                    wokenBy: wakers(a), wokenByInterrupt: a.unnamedCount, wokenByInterruptNs: a.unnamedNs)
            }.sorted { ($0.ns, $1.reason) > ($1.ns, $0.reason) }
            out.append(
                ThreadSummary(
                    pid: UInt32(k >> 32), tid: UInt32(truncatingIfNeeded: k), name: threadName(k),
                    isLoop: t.epollWaits > 0 && !noLoops.contains(k),
                    firstNs: t.firstNs == .max ? 0 : t.firstNs, lastNs: t.lastNs, exited: t.exited, spanNs: span,
                    onCPUNs: onCPU, offCPUNs: t.blockedNs, runqueueNs: t.runqueueNs, offCPUByReason: reasons,
                    syscalls: t.syscalls, syscallNs: t.syscallNs, errors: t.errors, epollWaits: t.epollWaits,
                    epollWaitNs: t.epollNs, loopUtilization: noLoops.contains(k) ? nil : loopUtilization[k],
                    longestStallNs: noLoops.contains(k) ? 0 : t.longestStallNs,
                    longestStallStartNs: noLoops.contains(k) ? 0 : t.longestStallStartNs,
                    longestWaitNs: t.longestWaitNs, longestWaitStartNs: t.longestWaitStartNs,
                    longestWaitReason: t.longestWaitNs > 0 ? OffCPUReason.name(t.longestWaitReason) : nil,
                    switchInsNotSeen: t.switchInsNotSeen, switchInsClosedBySyscall: t.switchInsClosedBySyscall, idleParks: t.parks,
                    unknownNs: t.unknownNs,
                    role: names[k] == TraceFileFormat.recorderWriterThreadName ? .recorderWriter : nil))
        }
        let stallList = stalls.sorted.filter {
            !noLoops.contains($0.key) && $0.gap.startNs >= threads[$0.key]?.stallsCountFromNs ?? 0
        }.map { d in
            let g = d.gap
            let off = g.blockedNs.addingSaturated(g.runqueueNs).addingSaturated(g.unknownNs)
            return LoopStall(
                thread: ThreadRef(pid: UInt32(d.key >> 32), tid: UInt32(truncatingIfNeeded: d.key), name: threadName(d.key)),
                startNs: g.startNs, durationNs: d.durationNs,
                onCPUNs: sawScheduler ? d.durationNs.subtractingSaturated(off) : nil,
                blockedNs: g.blockedNs, runqueueNs: g.runqueueNs, kernelNs: g.kernelNs,
                syscalls: g.syscalls.sorted { $0.ns > $1.ns }.map(SyscallInCallback.init),
                inCallbacksNs: threads[d.key]?.ranCallbacks == true ? min(g.inCallbacksNs, d.durationNs) : nil,
                blockedWaits: g.wakes.count, wokenBy: wakers(g.wakes), wokenByInterrupt: g.wakes.unnamedCount,
                wokenByInterruptNs: g.wakes.unnamedNs, otherWorkersWaits: g.poolWaitsMeanwhile, endsAtExit: d.endsAtExit,
                beganBeforeRecording: g.beganBeforeRecording, killedBySignal: d.killedBySignal)
        }
        return (out, stallList)
    }
}

struct StallRecordDraft: Sendable {
    var key: UInt64
    var gap: ThreadTracker.GapState
    var durationNs: UInt64
    var endsAtExit = false
    var killedBySignal: Int32? = nil
}

// addingSaturated / subtractingSaturated: TraceFormat (Saturating.swift), shared by every reading module.
