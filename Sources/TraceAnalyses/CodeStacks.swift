// The code behind the report's slow moments: the CPU samples taken on a blocking callback's thread
// while it ran (or in a loop stall), grouped by stack and named, most samples first; and the stacks
// of the long waits it blocked in (waitStack events), grouped by wait and stack, most time first.
import TraceReader
import TraceSymbols

/// A long wait as the kernel stream recorded it (waitStack), with its fd named at the time.
struct WaitMoment: Sendable {
    var pid: UInt32
    var tid: UInt32
    var endNs: UInt64
    var durationNs: UInt64
    var userStack: UInt32
    /// OffCPUReason key: the syscall (futex by operation) or the state outside traced syscalls.
    var reason: UInt64
    var fd: Int64
    var fdDetail: String?
    /// Of `durationNs`, the time off CPU and not runnable (all of it for waits outside syscalls, or without scheduler events).
    var blockedNs: UInt64
    /// A poll loop's wait for events (see TraceAnalyzer.pollWaitNrs): idle, as epoll waits are.
    var loopIdle = false
}

/// The code that made a callback's (or stall's) long waits of one kind: "blocked 140 ms in
/// read(fd 12 → big.bin) at readAll ← handler".
public struct WaitStackSummary: Sendable {
    /// "read", "futex wait", "sleeping outside traced syscalls", ...
    public var reason: String
    /// The fd waited on (nil: not an fd call).
    public var fd: Int64?
    /// What the fd was then: a path or `local->peer`.
    public var fdDetail: String?
    /// Innermost first.
    public var frames: [CodeFrame]
    /// Waits with this reason, fd and stack.
    public var count: Int
    /// Their total duration.
    public var ns: UInt64
    /// Of `ns`, the time blocked (off CPU, not runnable); the rest was on CPU or waiting for one.
    public var blockedNs: UInt64
}

/// Long waits of one kind and stack, added up.
struct WaitTally {
    var count = 0
    var ns: UInt64 = 0
    var blockedNs: UInt64 = 0
    var detail: String?

    mutating func add(ns: UInt64, blockedNs: UInt64, detail: String?) {
        count += 1
        self.ns = self.ns.addingSaturated(ns)
        self.blockedNs = self.blockedNs.addingSaturated(blockedNs)
        if self.detail == nil { self.detail = detail }
    }
}

/// One stack of code and how much of a callback's (or stall's) time was sampled in it.
public struct CodeStackSummary: Sendable {
    /// Innermost first.
    public var frames: [CodeFrame]
    /// CPU samples taken in this stack.
    public var samples: Int
    /// samples × the sampling period: CPU time in this stack.
    public var ns: UInt64
}

extension TraceAnalysis {
    /// Fills `stacks` of the listed blocking callbacks, slowest callbacks and loop stalls from the
    /// trace's CPU samples (a pass over the kernel stream; nothing when it has none).
    public mutating func attachStacks(reader: TraceReader, top: Int = 3) {
        let data = TraceSamples(reader: reader)
        guard !data.samples.isEmpty || !waitMoments.isEmpty else { return }
        let period = data.periodNs > 0 ? data.periodNs : 1_000_000
        // Per thread, the intervals to collect for: (list, index, start, end).
        struct Interval { var list: Int; var index: Int; var start: UInt64; var end: UInt64 }
        var byThread: [UInt64: [Interval]] = [:]
        func add(_ list: Int, _ index: Int, pid: UInt32, tid: UInt32, start: UInt64, duration: UInt64) {
            let end = start &+ duration < start ? UInt64.max : start &+ duration
            byThread[UInt64(pid) << 32 | UInt64(tid), default: []].append(Interval(list: list, index: index, start: start, end: end))
        }
        for (i, c) in blocking.longest.enumerated() { add(0, i, pid: c.pid, tid: c.tid, start: c.startNs, duration: c.durationNs) }
        for (i, c) in slowestCallbacks.enumerated() { add(1, i, pid: c.pid, tid: c.tid, start: c.startNs, duration: c.durationNs) }
        for (i, s) in stalls.enumerated() { add(2, i, pid: s.thread.pid, tid: s.thread.tid, start: s.startNs, duration: s.durationNs) }
        guard !byThread.isEmpty || !waitMoments.isEmpty || !threads.isEmpty else { return }
        var perList: [[[[Int]: Int]]] = [
            Array(repeating: [:], count: blocking.longest.count),
            Array(repeating: [:], count: slowestCallbacks.count),
            Array(repeating: [:], count: stalls.count),
        ]
        for s in data.samples {
            guard let intervals = byThread[UInt64(s.pid) << 32 | UInt64(s.tid)] else { continue }
            for iv in intervals where s.timeNs >= iv.start && s.timeNs <= iv.end {
                // Inside a callback the runtime's own frames that called it say nothing (JS: cut below the outermost JS frame).
                let frames = iv.list == 2 ? data.frames(of: s) : data.callbackFrames(of: s)
                perList[iv.list][iv.index][frames, default: 0] += 1
            }
        }
        func summaries(_ counts: [[Int]: Int]) -> [CodeStackSummary] {
            counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.lexicographicallyPrecedes($1.key) }
                .prefix(top)
                .map { CodeStackSummary(frames: $0.key.map(data.frame), samples: $0.value, ns: UInt64($0.value) &* period) }
        }
        // Long waits that ended inside an interval: the code that made them.
        struct WaitKey: Hashable { var reason: UInt64; var fd: Int64; var frames: [Int] }
        var waitsPerList: [[[WaitKey: WaitTally]]] = perList.map { $0.map { _ in [:] } }
        for w in waitMoments {
            guard let intervals = byThread[UInt64(w.pid) << 32 | UInt64(w.tid)] else { continue }
            for iv in intervals where w.endNs > iv.start && w.endNs <= iv.end {
                let all = data.frames(pid: w.pid, userStack: w.userStack, timeNs: w.endNs)
                let key = WaitKey(reason: w.reason, fd: w.fd, frames: iv.list == 2 ? all : data.callbackFrames(all))
                // Only the part of the wait inside the interval counts.
                let inside = min(w.durationNs, w.endNs - iv.start)
                waitsPerList[iv.list][iv.index][key, default: WaitTally()].add(
                    ns: inside, blockedNs: min(w.blockedNs, inside), detail: w.fdDetail)
            }
        }
        func waitSummaries(_ waits: [WaitKey: WaitTally]) -> [WaitStackSummary] {
            waits.sorted { $0.value.ns != $1.value.ns ? $0.value.ns > $1.value.ns : $0.key.frames.lexicographicallyPrecedes($1.key.frames) }
                .prefix(top)
                .map {
                    WaitStackSummary(
                        reason: OffCPUReason.name($0.key.reason), fd: $0.key.fd >= 0 ? $0.key.fd : nil,
                        fdDetail: $0.value.detail, frames: $0.key.frames.map(data.frame),
                        count: $0.value.count, ns: $0.value.ns, blockedNs: $0.value.blockedNs)
                }
        }
        // Per thread: every long wait but idle epoll waits.
        var perThread: [UInt64: [WaitKey: WaitTally]] = [:]
        let threadKeys = Set(threads.map { UInt64($0.pid) << 32 | UInt64($0.tid) })
        for w in waitMoments where !OffCPUReason.isEpollWait(w.reason) && !w.loopIdle {
            let t = UInt64(w.pid) << 32 | UInt64(w.tid)
            guard threadKeys.contains(t) else { continue }
            let key = WaitKey(reason: w.reason, fd: w.fd, frames: data.frames(pid: w.pid, userStack: w.userStack, timeNs: w.endNs))
            perThread[t, default: [:]][key, default: WaitTally()].add(ns: w.durationNs, blockedNs: w.blockedNs, detail: w.fdDetail)
        }
        for i in threads.indices {
            if let waits = perThread[UInt64(threads[i].pid) << 32 | UInt64(threads[i].tid)] { threads[i].waitStacks = waitSummaries(waits) }
        }
        // Per thread: where its CPU samples were, over the whole recording.
        var samplesPerThread: [UInt64: [[Int]: Int]] = [:]
        for s in data.samples {
            let t = UInt64(s.pid) << 32 | UInt64(s.tid)
            guard threadKeys.contains(t) else { continue }
            samplesPerThread[t, default: [:]][data.frames(of: s), default: 0] += 1
        }
        for i in threads.indices {
            guard let counts = samplesPerThread[UInt64(threads[i].pid) << 32 | UInt64(threads[i].tid)] else { continue }
            threads[i].stacks = summaries(counts)
            threads[i].hot = OwnCode.hot(counts, frame: data.frame)
        }
        markDispatchEventThreads(data, samplesPerThread: samplesPerThread)
        for i in blocking.longest.indices {
            blocking.longest[i].stacks = summaries(perList[0][i])
            blocking.longest[i].hot = OwnCode.hot(perList[0][i], frame: data.frame)
            blocking.longest[i].waitStacks = waitSummaries(waitsPerList[0][i])
        }
        for i in slowestCallbacks.indices {
            slowestCallbacks[i].stacks = summaries(perList[1][i])
            slowestCallbacks[i].hot = OwnCode.hot(perList[1][i], frame: data.frame)
            slowestCallbacks[i].waitStacks = waitSummaries(waitsPerList[1][i])
        }
        for i in stalls.indices {
            stalls[i].stacks = summaries(perList[2][i])
            stalls[i].hot = OwnCode.hot(perList[2][i], frame: data.frame)
            stalls[i].waitStacks = waitSummaries(waitsPerList[2][i])
        }
        if !data.samples.isEmpty { samplePeriodNs = period }
    }

    /// Libdispatch's functions that only its event thread runs: its manager's loop and its epoll drain.
    static let dispatchEventLoopFunctions: Set<String> = ["_dispatch_event_loop_drain", "_dispatch_mgr_invoke", "_dispatch_mgr_thread"]

    /// A loop thread is Dispatch's event thread when the code of its epoll waits (or of its CPU samples) is
    /// Dispatch's manager: its name is only a worker's (`-qos.overcommit`), which a program's own loop run in a
    /// queue's block shares.
    private mutating func markDispatchEventThreads(_ data: TraceSamples, samplesPerThread: [UInt64: [[Int]: Int]]) {
        var loops = Set(threads.filter { $0.isLoop && $0.role == nil }.map { UInt64($0.pid) << 32 | UInt64($0.tid) })
        guard !loops.isEmpty else { return }
        func isDispatchEventLoop(_ frames: [Int]) -> Bool {
            frames.contains { data.frame($0).function.map(Self.dispatchEventLoopFunctions.contains) ?? false }
        }
        var found: Set<UInt64> = []
        // One epoll wait's stack says it; a few per thread are enough (a program's loop has none of these frames).
        var looked: [UInt64: Int] = [:]
        for w in waitMoments where OffCPUReason.isEpollWait(w.reason) || w.loopIdle {
            let t = UInt64(w.pid) << 32 | UInt64(w.tid)
            guard loops.contains(t), looked[t, default: 0] < 4 else { continue }
            looked[t, default: 0] += 1
            if isDispatchEventLoop(data.frames(pid: w.pid, userStack: w.userStack, timeNs: w.endNs)) {
                found.insert(t)
                loops.remove(t)
            }
        }
        for t in loops where samplesPerThread[t]?.keys.contains(where: isDispatchEventLoop) ?? false { found.insert(t) }
        for i in threads.indices where found.contains(UInt64(threads[i].pid) << 32 | UInt64(threads[i].tid)) {
            threads[i].role = .dispatchEventThread
        }
    }
}
