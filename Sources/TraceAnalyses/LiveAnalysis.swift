// The analyses of a recording in progress, interval by interval (`asynctrace top`): batches of a
// followed file go through the same TraceAnalyzer as a whole trace; each interval is the difference
// between two of its summaries, plus what only the interval holds (slowest callbacks, stalls, recent
// loop iterations: TraceAnalyzer.startInterval()).
import TraceFormat
import TraceReader

/// One loop thread over the last interval.
public struct LiveLoop: Sendable {
    /// The loop thread.
    public var thread: ThreadRef
    /// Share of the interval not spent waiting in epoll (0...1).
    public var utilization: Double
    /// Iterations in the interval (for a kernel-only loop: epoll waits).
    public var iterations: UInt64
    /// 99th percentile of the iterations since the interval began (ns).
    public var iterationP99Ns: UInt64
    /// The longest iteration since the interval began (ns).
    public var iterationMaxNs: UInt64
    /// Seen only through its epoll waits (no runtime events): iterations are wait exit to wait exit.
    public var kernelOnly: Bool
}

/// One thread over the last interval.
public struct LiveThread: Sendable {
    /// The thread.
    public var thread: ThreadRef
    /// Whether it waits in epoll (a loop thread).
    public var isLoop: Bool
    /// Whether it has ended (by now, not only in this interval).
    public var exited: Bool
    /// The thread's time seen in the interval, and how it was spent (on CPU only with scheduler events).
    public var spanNs: UInt64
    /// Of `spanNs`, on a CPU (ns); nil without scheduler events.
    public var onCPUNs: UInt64?
    /// Of `spanNs`, off the CPU and blocked (ns).
    public var blockedNs: UInt64
    /// Of `spanNs`, runnable and waiting for a CPU (ns).
    public var runqueueNs: UInt64
    /// Where it was blocked the longest in the interval ("read", "futex wait", ...), and for how long.
    public var topReason: String?
    /// Time blocked for `topReason` in the interval (ns; 0 when there is none).
    public var topReasonNs: UInt64
    /// Syscalls it made in the interval.
    public var syscalls: UInt64
}

/// Callbacks of one resource type over the last interval.
public struct LiveCallbackType: Sendable {
    /// The resource type's name.
    public var type: String
    /// Callbacks of the type that ended in the interval.
    public var callbacks: UInt64
    /// `callbacks` per second of trace time in the interval.
    public var perSecond: Double
    /// Their total time (ns).
    public var totalNs: UInt64
    /// Resources of the type created in the interval.
    public var created: UInt64
    /// Resources of the type destroyed in the interval.
    public var destroyed: UInt64
}

/// A loop thread that has not come back to epoll_wait for at least the blocking threshold by the
/// latest time analysed (a stall in progress, or one that ended after that time): found from the
/// kernel stream; a live view checks what the thread is doing now and how long it has been away.
public struct LiveLoopAway: Sendable {
    /// The loop thread.
    public var thread: ThreadRef
    /// When its latest wait returned, and the time up to which its events were analysed (it did not
    /// wait in between).
    public var lastWaitExitNs: UInt64
    /// The latest time analysed (CLOCK_MONOTONIC ns): the thread had not waited again by then.
    public var knownUntilNs: UInt64
    /// The callback running on it, if its recorder handed the callback's start over.
    public var callback: CallbackRecord?
}

/// A stall in progress as a live view shows it: the thread, how long it has been away from its
/// epoll wait (or running its callback), and what it is doing now.
public struct LiveStallInProgress: Sendable {
    /// The thread.
    public var thread: ThreadRef
    /// When it left its epoll wait or began its callback (CLOCK_MONOTONIC ns).
    public var sinceNs: UInt64
    /// How long it has been away so far (ns).
    public var durationNs: UInt64
    /// e.g. "in read fd 5 (/tmp/big)", "on CPU"; nil when not known.
    public var doing: String?
    /// The callback's type, when known ("Timeout").
    public var callbackType: String?

    /// A stall in progress from its parts.
    public init(thread: ThreadRef, sinceNs: UInt64, durationNs: UInt64, doing: String?, callbackType: String?) {
        self.thread = thread
        self.sinceNs = sinceNs
        self.durationNs = durationNs
        self.doing = doing
        self.callbackType = callbackType
    }
}

/// One interval of a recording in progress (`LiveTraceAnalysis.interval(wallSeconds:)`): the difference
/// between two successive analyses, plus what only the interval holds. Drops and damage are totals so far.
public struct LiveInterval: Sendable {
    /// The trace time the interval covers (CLOCK_MONOTONIC ns) and the recording's start.
    public var startNs: UInt64
    /// The interval's end: the latest event consumed (CLOCK_MONOTONIC ns).
    public var endNs: UInt64
    /// The recording's start (CLOCK_MONOTONIC ns, file header); times are shown relative to it.
    public var recordingStartNs: UInt64
    /// The recorded program's command line.
    public var program: String
    /// Events in the interval.
    public var events: UInt64
    /// Events consumed so far, all intervals together.
    public var totalEvents: UInt64
    /// `events` per second of trace time (per `wallSeconds` when the interval has no trace time).
    public var eventsPerSecond: Double
    /// Loop threads active in the interval, busiest (highest utilization) first.
    public var loops: [LiveLoop]
    /// Threads active in the interval, most on-CPU time first (span without scheduler events).
    public var threads: [LiveThread]
    /// Resource types with callbacks, creations or destructions in the interval, most callbacks first.
    public var callbackTypes: [LiveCallbackType]
    /// Callbacks that ended in the interval, slowest first, with their syscalls (and stacks when recorded).
    public var slowestCallbacks: [CallbackRecord]
    /// Loop stalls (between two epoll waits) that ended in the interval, longest first.
    public var stalls: [LoopStall]
    /// Callbacks still running at the interval's end for at least the blocking threshold (a stall in
    /// progress), longest first, their duration so far.
    public var running: [CallbackRecord] = []
    /// Loop threads away from epoll_wait for at least the threshold by the latest time analysed.
    public var awayFromWait: [LiveLoopAway] = []
    /// What the view shows as stalls in progress (filled in by the view from `running` and
    /// `awayFromWait`, checking the threads now).
    public var inProgress: [LiveStallInProgress] = []
    /// The blocking threshold the analyses use (ns; `AnalysisOptions.blockingThresholdNs`).
    public var blockingThresholdNs: UInt64
    /// Resources alive now, by type, most first.
    public var resourcesAlive: [OpenResourceGroup]
    /// Events the program's recorder dropped so far.
    public var droppedUser: UInt64
    /// Events the kernel probes dropped so far.
    public var droppedKernel: UInt64
    /// Damage found so far.
    public var damage: [TraceDamage]
    /// Whether the trace has scheduler events (on/off-CPU times are known).
    public var hasSchedulerEvents: Bool
    /// `endNs - startNs` (ns).
    public var durationNs: UInt64 { endNs.subtractingSaturated(startNs) }
}

/// The analyses of a recording in progress (`asynctrace top`): feed it a `TraceFollower` with
/// `consume(_:all:)`, then take an `interval(wallSeconds:)` per screen.
public struct LiveTraceAnalysis {
    /// The options every interval is analysed with.
    public let options: AnalysisOptions
    /// The analyzer of everything consumed so far; nil before the first batch.
    public private(set) var analyzer: TraceAnalyzer?
    private var previous: TraceAnalysis?
    /// Events consumed so far.
    public private(set) var events: UInt64 = 0
    /// The latest time the recording is known to have reached (any stream's latest chunk end).
    public private(set) var latestNs: UInt64 = 0

    /// Nothing consumed yet.
    public init(options: AnalysisOptions = AnalysisOptions()) { self.options = options }

    /// Feeds the events `follower` has ready (all of them with `all`) to the analyses.
    public mutating func consume(_ follower: TraceFollower, all: Bool = false) {
        guard let streams = follower.snapshot() else { return }
        if analyzer == nil {
            analyzer = TraceAnalyzer(reader: streams, options: options)
        } else {
            analyzer!.follow(streams)
        }
        events &+= follower.forEachEvent(all: all) { stream, event in analyzer!.consume(stream: stream, event) }
        latestNs = max(latestNs, follower.latestNs)
        // Damage found while handing out events (undecodable chunks) is the follower's: the next snapshot has it.
        analyzer!.follow(follower.snapshot()!)
    }

    /// The interval since the previous call (or the start), ending at the latest event consumed; the next
    /// interval starts here. nil before the first event.
    public mutating func interval(wallSeconds: Double = 1) -> LiveInterval? {
        guard var analyzer else { return nil }
        let now = analyzer.finish()
        let before = previous
        analyzer.startInterval()
        self.analyzer = analyzer
        previous = now
        // Before the first event the trace has no times of its own: the recording's start stands in
        // (else the first view said "at -35544 s" and the next "interval 35547 s").
        let origin = now.overview.recordingStartNs > 0 ? now.overview.recordingStartNs : now.overview.startNs
        let hasEvents = now.overview.totalEvents > 0
        let start =
            before.map { $0.overview.totalEvents > 0 ? $0.overview.endNs : origin } ?? (hasEvents ? now.overview.startNs : origin)
        let end = max(hasEvents ? now.overview.endNs : origin, start)
        let seconds = end > start ? Double(end - start) / 1e9 : wallSeconds
        let events = now.overview.totalEvents.subtractingSaturated(before?.overview.totalEvents ?? 0)

        var loops: [LiveLoop] = []
        var prevLoop: [UInt64: LoopThread] = [:]
        for t in before?.loop?.threads ?? [] { prevLoop[Self.key(t.pid, t.tid)] = t }
        var userLoops = Set<UInt64>()
        for t in now.loop?.threads ?? [] {
            let k = Self.key(t.pid, t.tid)
            userLoops.insert(k)
            let p = prevLoop[k]
            let span = t.spanNs.subtractingSaturated(p?.spanNs ?? 0)
            let wait = t.pollWaitNs.subtractingSaturated(p?.pollWaitNs ?? 0)
            let iterations = t.iterations.subtractingSaturated(p?.iterations ?? 0)
            guard span > 0 || iterations > 0 else { continue }
            loops.append(
                LiveLoop(
                    thread: ThreadRef(pid: t.pid, tid: t.tid, name: t.threadName),
                    utilization: span == 0 ? 0 : Double(span - min(span, wait)) / Double(span),
                    iterations: iterations, iterationP99Ns: t.recentIterationNs.p99Ns,
                    iterationMaxNs: t.recentIterationNs.maxNs, kernelOnly: false))
        }
        var prevKernel: [UInt64: KernelLoopThread] = [:]
        for t in before?.kernelLoop?.threads ?? [] { prevKernel[Self.key(t.pid, t.tid)] = t }
        for t in now.kernelLoop?.threads ?? [] where !userLoops.contains(Self.key(t.pid, t.tid)) {
            let p = prevKernel[Self.key(t.pid, t.tid)]
            let span = t.spanNs.subtractingSaturated(p?.spanNs ?? 0)
            let wait = t.waitNs.subtractingSaturated(p?.waitNs ?? 0)
            let waits = t.waits.subtractingSaturated(p?.waits ?? 0)
            guard waits > 0 else { continue }
            loops.append(
                LiveLoop(
                    thread: ThreadRef(pid: t.pid, tid: t.tid, name: t.threadName),
                    utilization: span == 0 ? 0 : Double(span - min(span, wait)) / Double(span),
                    iterations: waits, iterationP99Ns: t.recentIterationNs.p99Ns,
                    iterationMaxNs: t.recentIterationNs.maxNs, kernelOnly: true))
        }
        loops.sort { ($0.utilization, $1.thread.tid) > ($1.utilization, $0.thread.tid) }

        var prevThreads: [UInt64: ThreadSummary] = [:]
        for t in before?.threads ?? [] { prevThreads[Self.key(t.pid, t.tid)] = t }
        var threads: [LiveThread] = []
        for t in now.threads {
            let p = prevThreads[Self.key(t.pid, t.tid)]
            let span = t.spanNs.subtractingSaturated(p?.spanNs ?? 0)
            let syscalls = t.syscalls.subtractingSaturated(p?.syscalls ?? 0)
            let blocked = t.offCPUNs.subtractingSaturated(p?.offCPUNs ?? 0)
            guard span > 0 || syscalls > 0 || blocked > 0 || (t.exited && !(p?.exited ?? false)) else { continue }
            var prevReasons: [String: UInt64] = [:]
            for r in p?.offCPUByReason ?? [] { prevReasons[r.reason] = r.ns }
            var top: (String, UInt64)? = nil
            for r in t.offCPUByReason {
                let d = r.ns.subtractingSaturated(prevReasons[r.reason] ?? 0)
                if d > 0 && d > (top?.1 ?? 0) { top = (r.reason, d) }
            }
            threads.append(
                LiveThread(
                    thread: t.ref, isLoop: t.isLoop, exited: t.exited, spanNs: span,
                    onCPUNs: t.onCPUNs.map { $0.subtractingSaturated(p?.onCPUNs ?? 0) }, blockedNs: blocked,
                    runqueueNs: t.runqueueNs.subtractingSaturated(p?.runqueueNs ?? 0), topReason: top?.0,
                    topReasonNs: top?.1 ?? 0, syscalls: syscalls))
        }
        threads.sort { ($0.onCPUNs ?? $0.spanNs, $0.syscalls, $1.thread.tid) > ($1.onCPUNs ?? $1.spanNs, $1.syscalls, $0.thread.tid) }

        var prevTypes: [String: ResourceTypeStats] = [:]
        for t in before?.resources ?? [] { prevTypes[t.type] = t }
        var types: [LiveCallbackType] = []
        for t in now.resources {
            let p = prevTypes[t.type]
            let n = t.callbacks.count.subtractingSaturated(p?.callbacks.count ?? 0)
            let created = t.created.subtractingSaturated(p?.created ?? 0)
            let destroyed = t.destroyed.subtractingSaturated(p?.destroyed ?? 0)
            guard n > 0 || created > 0 || destroyed > 0 else { continue }
            types.append(
                LiveCallbackType(
                    type: t.type, callbacks: n, perSecond: Double(n) / seconds,
                    totalNs: t.callbacks.totalNs.subtractingSaturated(p?.callbacks.totalNs ?? 0),
                    created: created, destroyed: destroyed))
        }
        types.sort { ($0.callbacks, $0.totalNs, $1.type) > ($1.callbacks, $1.totalNs, $0.type) }

        // Measured to the latest event analysed: a callback that had not ended by then ran at least that
        // long (its after() may be among the events not analysed yet).
        let running = analyzer.runningCallbacks(atNs: analyzer.lastNs, atLeastNs: options.blockingThresholdNs)
        // Loop threads whose latest wait returned long before the latest event analysed: they have not
        // waited since (the kernel stream is in time order up to there).
        var exited = Set<UInt64>()
        for t in now.threads where t.exited { exited.insert(Self.key(t.pid, t.tid)) }
        var away: [LiveLoopAway] = []
        let knownUntil = analyzer.lastNs
        for t in now.kernelLoop?.threads ?? [] where !exited.contains(Self.key(t.pid, t.tid)) {
            guard t.lastWaitExitNs > 0, knownUntil > t.lastWaitExitNs,
                knownUntil - t.lastWaitExitNs >= options.blockingThresholdNs
            else { continue }
            let callback = running.first { $0.pid == t.pid && $0.tid == t.tid }
            away.append(
                LiveLoopAway(
                    thread: ThreadRef(pid: t.pid, tid: t.tid, name: t.threadName), lastWaitExitNs: t.lastWaitExitNs,
                    knownUntilNs: knownUntil, callback: callback))
        }
        return LiveInterval(
            startNs: start, endNs: end, recordingStartNs: now.overview.recordingStartNs, program: now.overview.program,
            events: events, totalEvents: now.overview.totalEvents, eventsPerSecond: Double(events) / seconds,
            loops: loops, threads: threads, callbackTypes: types, slowestCallbacks: now.slowestCallbacks,
            stalls: now.stalls, running: Array(running.prefix(options.top)), awayFromWait: away, blockingThresholdNs: options.blockingThresholdNs,
            resourcesAlive: now.openAtExit,
            droppedUser: now.overview.droppedUser, droppedKernel: now.overview.droppedKernel,
            damage: now.overview.damage, hasSchedulerEvents: now.hasSchedulerEvents)
    }

    private static func key(_ pid: UInt32, _ tid: UInt32) -> UInt64 { UInt64(pid) << 32 | UInt64(tid) }
}
