// The analyses in one streaming pass: feed every event of `reader.events()` to `consume`, then
// `finish`. Exports can feed the same analyzer from their own pass over the events.
import TraceFormat
import TraceReader

/// How far `analyzeTrace` has read, for a progress line.
public struct AnalysisProgress: Sendable {
    /// Payload bytes read so far.
    public var bytesRead: UInt64
    /// Payload bytes in all (`TraceReader.payloadBytes`).
    public var bytesTotal: UInt64
    /// Events analysed so far.
    public var events: UInt64
}

/// Reads the whole trace once and runs every analysis.
public func analyzeTrace(
    _ reader: TraceReader, options: AnalysisOptions = AnalysisOptions(),
    progress: ((AnalysisProgress) -> Void)? = nil
) -> TraceAnalysis {
    var analyzer = TraceAnalyzer(reader: reader, options: options)
    let events = reader.events()
    var n: UInt64 = 0
    events.forEach { stream, event in
        analyzer.consume(stream: stream, event)
        n &+= 1
        if n & 0xFFFF == 0, let progress {
            progress(AnalysisProgress(bytesRead: events.bytesRead, bytesTotal: reader.payloadBytes, events: n))
        }
    }
    var analysis = analyzer.finish(decodeDamage: events.damage)
    analysis.attachCreationStacks()
    let samples =
        analyzer.kindCounts[Int(EventKind.cpuSample.rawValue)] + analyzer.kindCounts[Int(EventKind.sample.rawValue)]
        + analyzer.kindCounts[Int(EventKind.sampleNewStack.rawValue)] + analyzer.kindCounts[Int(EventKind.userSample.rawValue)]
        + analyzer.kindCounts[Int(EventKind.userSampleNewStack.rawValue)]
    if samples > 0 || !analysis.waitMoments.isEmpty {
        analysis.attachStacks(reader: reader)
    }
    return analysis
}

/// Every analysis in one streaming pass: `consume` each event of `reader.events()` in order, then
/// `finish`. `analyzeTrace` does all of it (and attaches stacks); exports feed an analyzer from their own pass.
public struct TraceAnalyzer {
    /// The trace being analysed; while following a recording, the latest batch (`follow(_:)`).
    public private(set) var reader: TraceReader
    /// What it measures and keeps.
    public let options: AnalysisOptions
    package internal(set) var resources: ResourceTable
    var kindCounts = [UInt64](repeating: 0, count: 256)
    var total: UInt64 = 0
    var firstNs: UInt64 = .max
    var lastNs: UInt64 = 0
    var lastEventNs: [UInt64]
    var streamPid: [UInt32]
    /// (pid << 32 | tid) -> user stream index, to find the callback running on a syscall's thread.
    var userStreamOfThread = FastMap<UInt64, Int>()
    /// The epoll fd each thread last waited on outside its callbacks (not a nested loop's): its loop's.
    var loopEpollFDs: [UInt64: Int64] = [:]
    /// Those loop epoll fds not closed since (pid << 32 | fd): while a thread's is open, its waits on any other
    /// epoll fd are a loop of its own run inside its loop's stretch (`nestedLoopWait`).
    var openLoopEpollFDs = Set<UInt64>()
    var uncaughtErrors: [UncaughtError] = []
    /// Per stream, the program's outermost callback that ended last, async id and type (an error thrown outside
    /// every callback came out of it); nil before any.
    var lastEndedCallback: [(asyncID: UInt64, type: Int32)?]
    var uncaughtErrorsNotListed: UInt64 = 0
    var kernelPids = Set<UInt32>()
    var callbacks: CallbackTracker
    /// Where resources were created (created_at attributes).
    var sites = CreationSites()
    /// Names and kinds the runtime gave resources (Swift tasks), for the listed callbacks.
    var labels = ResourceLabels()
    /// Node's thread-pool requests that waited for those queued before them.
    var threadPoolWaits: PoolWaitTracker
    /// Node's ref states and process.exit() calls: what held a process at its end.
    var ends = ProcessEnds()
    var loop: LoopTracker
    var io: IOTracker
    var kernelLoop: KernelLoopTracker
    var sharedPollers = SharedPollers()
    var restarts = RestartedSyscalls()
    var busySeconds = BusySecondsTracker(.callbacks)
    var busySecondsBetweenWaits = BusySecondsTracker(.betweenEpollWaits)
    var threads: ThreadTracker
    var spans: SpanTracker
    /// Per process: how it ended (processExit: an exit status 0...255, or -signal).
    var exitStatuses: [UInt32: Int64] = [:]
    /// Per process: waits and looks of its pool workers at their shared poller (`SharedPollers`). A worker's stall
    /// compares them at its start and end: the other workers' waits meanwhile say whether the pool went on.
    var poolWaits: [UInt32: UInt64] = [:]
    /// Long waits with the stack that made them (waitStack events), kept for attachStacks.
    var waitMoments: [WaitMoment] = []
    var waitMomentsNotKept: UInt64 = 0
    /// Per thread (pid << 32 | tid): the wait moment whose syscall event has not come yet.
    var waitMomentAwaitingSyscall: [UInt64: Int] = [:]
    /// The open just seen (thread key, the fd it made, its time), whose path the `fdOpen` after it gives.
    var pendingOpen: (thread: UInt64, fd: Int64, ns: UInt64)? = nil
    /// An open that just failed: its fdOpen (next, same time, fd = its return value) names the path.
    var pendingFailedOpen: (thread: UInt64, nr: UInt64, ret: Int64, ns: UInt64)? = nil
    /// A connect, bind or listen just seen: its fdOpen (next, same time, source fd = fd) gives the address it gave
    /// the socket, which names the call where it was tallied with the socket as it was before.
    var pendingDescribe: (thread: UInt64, nr: UInt64, fd: Int64, ns: UInt64)? = nil
    static let maxWaitMoments = 1 << 20
    /// Creation stacks (user streams' stackDefs) and every stream's code regions.
    var creationStacks = CreationStackTable()
    /// creationStack events naming a stack no stackDef of their stream defined (damage).
    var creationStacksUndefined: UInt64 = 0
    /// Names of the threads with a user stream (threadInfo).
    var userThreadNames: [UInt64: String] = [:]
    let windowStart: UInt64
    let windowEnd: UInt64

    /// An analyzer of `reader`'s trace with nothing consumed yet.
    public init(reader: TraceReader, options: AnalysisOptions = AnalysisOptions()) {
        self.reader = reader
        self.options = options
        let n = reader.streams.count
        resources = ResourceTable(maxLive: options.maxTrackedResources)
        lastEventNs = [UInt64](repeating: 0, count: n)
        lastEndedCallback = [(asyncID: UInt64, type: Int32)?](repeating: nil, count: n)
        streamPid = reader.streams.map(\.pid)
        creationStacks.perfMapsInTrace = reader.header.version >= 13
        for s in reader.streams where !s.isKernel {
            userStreamOfThread.set(UInt64(s.pid) << 32 | UInt64(s.tid), s.index)
            if let n = s.threadName, !n.isEmpty { userThreadNames[UInt64(s.pid) << 32 | UInt64(s.tid)] = n }
        }
        windowStart = options.window?.lowerBound ?? 0
        windowEnd = options.window?.upperBound ?? .max
        threads = ThreadTracker(
            earliestNs: max(reader.header.monotonicStartNs, windowStart), top: options.top,
            thresholdNs: options.blockingThresholdNs)
        callbacks = CallbackTracker(streams: n, options: options)
        threadPoolWaits = PoolWaitTracker(thresholdNs: options.blockingThresholdNs, top: options.top)
        loop = LoopTracker(streams: n)
        io = IOTracker(streams: n)
        io.listLivesEndingFrom = windowStart
        kernelLoop = KernelLoopTracker(top: options.top)
        spans = SpanTracker(top: options.top)
    }

    /// Continues with the next batch of a followed recording (`TraceFollower`): its streams extend the ones
    /// seen so far (same indices), and its events are consumed after those of the earlier batches.
    public mutating func follow(_ batch: TraceReader) {
        let old = streamPid.count
        reader = batch
        let n = batch.streams.count
        guard n >= old else { return }
        for s in batch.streams {
            let key = UInt64(s.pid) << 32 | UInt64(s.tid)
            if s.index >= old {
                streamPid.append(s.pid)
                lastEventNs.append(0)
                lastEndedCallback.append(nil)
                if !s.isKernel { userStreamOfThread.set(key, s.index) }
            }
            if !s.isKernel, let name = s.threadName, !name.isEmpty, userThreadNames[key] == nil {
                userThreadNames[key] = name
            }
        }
        callbacks.grow(streams: n)
        loop.grow(streams: n)
        io.grow(streams: n)
    }

    /// Starts a new interval of a live view: the slowest and blocking callbacks, the stalls and the recent
    /// loop iterations that `finish()` reports are those since this call (everything else stays cumulative).
    public mutating func startInterval() {
        callbacks.slowest = TopN(limit: options.top)
        callbacks.blockingLongest = TopN(limit: options.top)
        threads.stalls = TopN(limit: options.top)
        loop.startInterval()
        kernelLoop.startInterval()
    }

    /// The callback running on (pid, tid) right now, if any: the resource and its frame.
    public func runningCallback(pid: UInt32, tid: UInt32, enteredAt ns: UInt64) -> (asyncID: UInt64, type: String)? {
        guard let s = userStreamOfThread[UInt64(pid) << 32 | UInt64(tid)],
            let f = callbacks.running(stream: s, enteredAt: ns)
        else { return nil }
        return (f.asyncID, resources.typeName(f.type))
    }

    /// Callbacks begun and not ended yet that have run at least `atLeastNs` by `nowNs` (a stall in
    /// progress, for the live view): the outermost one per thread, longest first, their duration so
    /// far. Threads whose stream has ended are left out (their frames lost their after()).
    public func runningCallbacks(atNs nowNs: UInt64, atLeastNs: UInt64) -> [CallbackRecord] {
        var out: [CallbackRecord] = []
        for (s, stack) in callbacks.stacks.enumerated() {
            guard let frame = stack.first, nowNs > frame.beforeNs, nowNs - frame.beforeNs >= atLeastNs,
                s < reader.streams.count, !reader.streams[s].endedCleanly
            else { continue }
            let st = reader.streams[s]
            // Syscalls of the whole nest: those made in inner callbacks count for the outer one too.
            var tallies: [SyscallTally] = []
            for f in stack { tallies += f.syscalls }
            var merged = frame
            merged.syscalls = tallies
            out.append(
                CallbackRecord(
                    asyncID: frame.asyncID, type: resources.typeName(frame.type), pid: st.pid, tid: st.tid,
                    threadName: st.threadName, startNs: frame.beforeNs, durationNs: nowNs - frame.beforeNs,
                    causalChain: resources.causalChain(ResourceKey(pid: st.pid, asyncID: frame.asyncID)),
                    syscalls: CallbackTracker.syscalls(of: merged), blockedNs: frame.blockedNs, runqueueNs: frame.runqueueNs,
                    unknownNs: frame.unknownNs))
        }
        return out.sorted { ($0.durationNs, $1.tid) > ($1.durationNs, $0.tid) }
    }

    /// Consumes one event (events must come in the reader's time order).
    public mutating func consume(_ e: TraceEvent) { consume(stream: e.stream, e.event) }

    /// Consumes one event from stream `s` (an index into `reader.streams`), in the reader's time order.
    public mutating func consume(stream s: Int, _ ev: borrowing DecodedEvent) {
        let ns = ev.timestampNs
        // Thread names hold for the whole trace, whenever they were recorded.
        if ev.kind == .threadName {
            threads.threadName(
                pid: UInt32(truncatingIfNeeded: ev.u(0)), tid: UInt32(truncatingIfNeeded: ev.u(1)), name: ev.text,
                ns: max(windowStart, min(ns, windowEnd)))
        }
        // And the names of the untraced threads that woke traced ones.
        if ev.kind == .wakerName {
            threads.wakerName(pid: UInt32(truncatingIfNeeded: ev.u(0)), tid: UInt32(truncatingIfNeeded: ev.u(1)), name: ev.text)
        }
        // So do process titles and parents (a title names its process in every section).
        if ev.kind == .processTitle {
            let pid = UInt32(truncatingIfNeeded: ev.u(0)), ppid = UInt32(truncatingIfNeeded: ev.u(1))
            threads.processTitle(pid: pid, title: ev.text)
            if ppid != 0 && ppid != pid { threads.forked(parent: ppid, child: pid) }
        }
        if ev.kind == .processFork {
            threads.forked(parent: UInt32(truncatingIfNeeded: ev.u(0)), child: UInt32(truncatingIfNeeded: ev.u(1)))
        }
        // Stack definitions and code regions hold for the rest of the trace too.
        if ev.kind == .stackDef || ev.kind == .mapping || ev.kind == .perfMap { creationStackEvent(stream: s, pid: streamPid[s], ev) }
        if ns < windowStart {
            fdIdentityBeforeWindow(ev, ns: ns)
            return
        }
        if ns > windowEnd { return }
        kindCounts[Int(ev.kind.rawValue)] &+= 1
        total &+= 1
        if ns < firstNs { firstNs = ns }
        if ns > lastNs { lastNs = ns }
        lastEventNs[s] = ns
        let pid = streamPid[s]
        switch ev.kind {
        case .initResource:
            let type = resources.intern(ev.text)
            callbacks.ensureType(type)
            callbacks.created[Int(type)] += 1
            resources.initResource(ResourceKey(pid: pid, asyncID: ev.u(0)), type: type, trigger: ev.u(2), ns: ns)
            let table = resources
            threadPoolWaits.initResource(ResourceKey(pid: pid, asyncID: ev.u(0)), type: type, typeName: { table.typeName($0) }, ns: ns)
        case .before:
            let key = ResourceKey(pid: pid, asyncID: ev.u(0))
            let info = resources.info(key)
            if callbacks.stacks[s].isEmpty {
                let st = reader.streams[s]
                threads.callbackBegan(pid: st.pid, tid: st.tid, ns: ns)
            }
            callbacks.before(stream: s, asyncID: ev.u(0), type: info?.type ?? untrackedType(), ns: ns)
            let table = resources
            threadPoolWaits.callback(key, ns: ns, typeName: { table.typeName($0) })
            if let fd = info?.fd, fd >= 0 { io.callbackStarts(stream: s, pid: pid, fd: Int64(fd), ns: ns) }
        case .after:
            if let (frame, d) = callbacks.after(stream: s, asyncID: ev.u(0), ns: ns) { finished(frame, d, stream: s) }
        case .destroy:
            let key = ResourceKey(pid: pid, asyncID: ev.u(0))
            threadPoolWaits.destroyed(key)
            if let info = resources.destroy(key) {
                callbacks.destroyed[Int(info.type)] += 1
                if info.fd >= 0 { io.releaseOwner(pid: pid, fd: Int64(info.fd), asyncID: key.asyncID) }
            }
        case .uncaughtError:
            uncaughtError(stream: s, pid: pid, asyncID: ev.u(0), message: ev.text, ns: ns)
        case .resourceFD:
            let key = ResourceKey(pid: pid, asyncID: ev.u(0))
            let fd = ev.s(1)
            guard let info = resources.live[key] else { break }
            if info.fd >= 0 && Int64(info.fd) != fd { io.releaseOwner(pid: pid, fd: Int64(info.fd), asyncID: key.asyncID) }
            resources.setFD(key, fd: Int32(truncatingIfNeeded: fd))
            io.setOwner(pid: pid, fd: fd, asyncID: key.asyncID, type: info.type)
        case .spanBegin:
            let exec = ev.u(2)
            let st = reader.streams[s]
            let execType = resources.info(ResourceKey(pid: pid, asyncID: exec)).map { resources.typeName($0.type) }
            spans.begin(
                pid: pid, tid: st.tid, threadName: st.threadName, spanID: ev.u(0), name: ev.text,
                executionAsyncID: exec, executionType: execType, ns: ns)
        case .resourceAttribute:
            let key = ResourceKey(pid: pid, asyncID: ev.u(0))
            if ev.text.hasPrefix("socket=") {
                // A socket handed over IPC (Node's cluster): its addresses from the runtime, for an fd the probes saw no
                // accept or connect for.
                if let fd = resources.live[key]?.fd, fd >= 0 {
                    io.describe(pid: pid, fd: Int64(fd), kind: .tcp, detail: String(ev.text.dropFirst("socket=".count).prefix(256)))
                }
            } else if !sites.attribute(key, text: ev.text) && !ends.attribute(key, text: ev.text, ns: ns)
                && !threadPoolWaits.attribute(key, text: ev.text)
            {
                _ = labels.attribute(key, text: ev.text)
            }
        case .spanAttribute:
            spans.attribute(pid: pid, spanID: ev.u(0), text: ev.text)
        case .spanEnd:
            let table = resources
            spans.end(pid: pid, spanID: ev.u(0), ns: ns, typeName: { table.typeName($0) })
        case .loopIteration:
            loopIsIdle(stream: s)
            loop.iteration(stream: s, ns: ns)
        case .phaseEnter:
            loop.phaseEnter(stream: s, phase: ev.u(0), ns: ns)
        case .phaseStart:
            if ev.u(1) != 0 {  // also begins a loop iteration
                loopIsIdle(stream: s)
                loop.iteration(stream: s, ns: ns)
            }
            loop.phaseEnter(stream: s, phase: ev.u(0), ns: ns)
        case .phaseLeave:
            loop.phaseLeave(stream: s, phase: ev.u(0), ns: ns)
        case .loopPhase:
            loop.kernelPhase(
                pid: UInt32(truncatingIfNeeded: ev.u(0)), tid: UInt32(truncatingIfNeeded: ev.u(1)),
                phase: ev.u(2), startsIteration: ev.u(3) != 0, ns: ns)
        case .pollStart:
            loopIsIdle(stream: s)
            loop.pollStart(stream: s, ns: ns)
            io.pollStart(stream: s)
        case .pollEnd:
            loop.pollEnd(stream: s, ns: ns)
            io.pollEnd(stream: s, fds: ev.list, ns: ns)
        case .syscall:
            syscall(ev, exitNs: ns)
        case .threadExit:
            threads.threadExit(pid: UInt32(truncatingIfNeeded: ev.u(0)), tid: UInt32(truncatingIfNeeded: ev.u(1)), ns: ns)
        case .offCPU:
            let pid = UInt32(truncatingIfNeeded: ev.u(0)), tid = UInt32(truncatingIfNeeded: ev.u(1))
            let i = threads.offCPU(
                pid: pid, tid: tid, inNs: ns, state: ev.u(2), blockedNs: ev.u(3), runqueueNs: ev.u(4),
                waker: ev.u(5) << 32 | (ev.u(6) & 0xFFFF_FFFF))
            let sleptIn = ev.u(2) >> 8  // 1 + the syscall it slept in (0: none)
            if sleptIn > 0 && OffCPUReason.isEpollWait(sleptIn - 1) && i.blockedNs > 0 {
                kernelLoop.asleepInEpollWait(pid: pid, tid: tid, outNs: i.outNs, blockedNs: i.blockedNs, endNs: ns)
            }
            if let s = userStreamOfThread[UInt64(pid) << 32 | UInt64(tid)] {
                callbacks.noteOffCPU(
                    stream: s, outNs: i.outNs, blockedNs: i.blockedNs, runqueueNs: i.runqueueNs, unknownNs: i.unknownNs,
                    waker: i.knownWaker)
            }
        case .waitStack:
            waitStack(ev, endNs: ns)
        case .creationStack:
            creationStackEvent(stream: s, pid: pid, ev)
        case .processFork:
            io.forked(parent: UInt32(truncatingIfNeeded: ev.u(0)), child: UInt32(truncatingIfNeeded: ev.u(1)), ns: ns)
        case .processExit:
            io.exited(pid: UInt32(truncatingIfNeeded: ev.u(0)))
            if exitStatuses.count < ThreadTracker.maxThreads { exitStatuses[UInt32(truncatingIfNeeded: ev.u(0))] = ev.s(1) }
            if ev.s(1) < 0 { threads.processKilled(pid: UInt32(truncatingIfNeeded: ev.u(0)), signal: Int32(clamping: -ev.s(1))) }
        case .fdOpen:
            let pid = UInt32(truncatingIfNeeded: ev.u(0)), tid = UInt32(truncatingIfNeeded: ev.u(1)), fd = ev.s(2)
            if fd < 0 {
                // A failed open's path (no life): paired with the syscall it follows, else ignored.
                if let p = pendingFailedOpen, p.thread == UInt64(pid) << 32 | UInt64(tid), p.ret == fd, p.ns == ns {
                    pendingFailedOpen = nil
                    let path = ev.text
                    if !path.isEmpty {
                        io.failedOpen(nr: p.nr, errno: fd.magnitude, path: path)
                        threads.opened(pid: pid, tid: tid, fd: -1, errno: fd.magnitude, path: path)
                        if let s = userStreamOfThread[p.thread] { callbacks.opened(stream: s, fd: -1, errno: fd.magnitude, path: path) }
                    }
                }
                break
            }
            io.fdOpen(pid: pid, tid: tid, fd: fd, kind: ev.u(3), sourceFd: ev.s(4), detail: ev.text, ns: ns)
            if let p = pendingDescribe, p.thread == UInt64(pid) << 32 | UInt64(tid), p.fd == fd, ev.s(4) == fd, p.ns == ns {
                pendingDescribe = nil
                if let address = io.detail(pid: pid, fd: fd) { described(p, address: address) }
            }
            if let p = pendingOpen, p.thread == UInt64(pid) << 32 | UInt64(tid), p.fd == fd, p.ns == ns {
                pendingOpen = nil
                if let path = io.detail(pid: pid, fd: fd) {
                    threads.opened(pid: pid, tid: tid, fd: fd, path: path)
                    // Its wait stack (written just before the syscall) says what it waited to open, too.
                    if let i = waitMoments.indices.last, waitMoments[i].pid == pid, waitMoments[i].tid == tid,
                        waitMoments[i].endNs == ns, waitMoments[i].fd < 0, SyscallNames.opensPath(waitMoments[i].reason)
                    {
                        waitMoments[i].fd = fd
                        waitMoments[i].fdDetail = path
                    }
                    if let s = userStreamOfThread[p.thread] { callbacks.opened(stream: s, fd: fd, path: path) }
                }
            }
        case .epollWait:
            let (p, tid, nr, dur) = (UInt32(truncatingIfNeeded: ev.u(0)), UInt32(truncatingIfNeeded: ev.u(1)), ev.u(2), ev.u(7))
            kernelPids.insert(p)
            let (epfd, ret) = (ev.s(3), ev.s(6))
            var neverBlocked: [UInt64] = []
            let wait = sharedPollers.waited(pid: p, tid: tid, epfd: epfd, timeoutMs: ev.s(5), joinedNeverBlocked: &neverBlocked)
            for k in neverBlocked {
                threads.notALoop(k, ns: ns)
                kernelLoop.forget(k)
            }
            // (A thread that only looks, as Go's sysmon, serves nothing: its looks are not the pool's waits.)
            let counted = sharedPollers.isWorker(pid: p, tid: tid) && sharedPollers.hasBlocked(pid: p, tid: tid)
            let poolCount = counted ? countPoolWait(pid: p) : sharedPollers.isWorker(pid: p, tid: tid) ? poolWaits[p] ?? 0 : nil
            if wait == .polled {
                if counted && poolCount != nil { threads.lookedAtPoller(pid: p, tid: tid) }
                // A worker's look at the shared poller in passing (Go's netpoll(0)): a syscall of its busy time.
                let enter = ns.subtractingSaturated(dur)
                threads.syscall(pid: p, tid: tid, nr: nr, fd: epfd, op: epfd, ret: ret, bytes: 0, enterNs: enter, exitNs: ns, fds: io)
                io.syscall(pid: p, nr: nr, fd: epfd, ret: ret, durationNs: dur, running: nil, ownerFD: nil)
                break
            }
            let thread = UInt64(p) << 32 | UInt64(tid)
            // Only on a thread whose own loop is known: a Swift task's nested run loop on a pool thread with no loop
            // of its own is that thread's loop (its stretches are stalls inside the task).
            let stream = userStreamOfThread[thread]
            if let loopFD = loopEpollFDs[thread], loopFD != epfd {
                let frame = stream.flatMap { callbacks.running(stream: $0, enteredAt: ns.subtractingSaturated(dur)) }
                // Outside every recorded callback too, and on threads that record none (node under --pid or
                // --no-node-hooks), while the loop's own epoll fd is open: Node's execSync waits for its child on
                // a loop of its own. Taken for the thread's loop, that wait read as idle time and cut the stall in two.
                if frame != nil || openLoopEpollFDs.contains(UInt64(p) << 32 | UInt64(UInt32(truncatingIfNeeded: loopFD))) {
                    nestedLoopWait(stream: stream, frame: frame, pid: p, tid: tid, nr: nr, epfd: epfd, ret: ret, durationNs: dur, exitNs: ns)
                    break
                }
            }
            if loopEpollFDs[thread] != nil || loopEpollFDs.count < ThreadTracker.maxThreads {
                loopEpollFDs[thread] = epfd
                if epfd >= 0 && epfd <= Int64(UInt32.max) { openLoopEpollFDs.insert(UInt64(p) << 32 | UInt64(epfd)) }
            }
            loopWait(pid: p, tid: tid, nr: nr, fd: epfd, ret: ret, durationNs: dur, exitNs: ns, isEpoll: true, poolWaits: poolCount)
        default:
            break
        }
    }

    /// A thread name (comm, or a title) that is node's: "node", "nodejs", "node20", "/usr/bin/node app.js".
    static func isNodeName(_ name: String) -> Bool {
        let program = name.split(separator: " ", maxSplits: 1).first.map { $0.split(separator: "/").last ?? $0 } ?? ""
        guard program.hasPrefix("node") else { return false }
        var rest = program.dropFirst(4)
        if rest.hasPrefix("js") { rest = rest.dropFirst(2) }
        return rest.allSatisfy { $0.isNumber || $0 == "." || $0 == "-" }
    }

    /// The label of the Node preload's batch writes among the listed callbacks.
    static let recorderWriteLabel = "the recorder's own"

    /// At most this many uncaught errors are listed (a program whose policy keeps it running may throw on
    /// every request); the rest are counted.
    public static let maxUncaughtErrors = 16

    private mutating func uncaughtError(stream s: Int, pid: UInt32, asyncID: UInt64, message: String, ns: UInt64) {
        guard uncaughtErrors.count < Self.maxUncaughtErrors else {
            uncaughtErrorsNotListed &+= 1
            return
        }
        // The resource is alive while its callback runs: its type, chain and creation stack are known now.
        let key = ResourceKey(pid: pid, asyncID: asyncID)
        let info = resources.info(key)
        var e = UncaughtError(
            pid: pid, tid: reader.streams[s].tid, threadName: reader.streams[s].threadName, ns: ns, asyncID: asyncID,
            type: info.map { resources.typeName($0.type) }, message: message,
            causalChain: info == nil ? [] : resources.causalChain(key))
        e.creationStack = info?.creationStack ?? -1
        if info == nil, asyncID <= 1, s < lastEndedCallback.count, let last = lastEndedCallback[s] {
            e.afterAsyncID = last.asyncID
            e.afterType = resources.typeName(last.type)
            e.afterCausalChain = resources.causalChain(ResourceKey(pid: pid, asyncID: last.asyncID))
        }
        uncaughtErrors.append(e)
    }

    /// An epoll wait on an epoll fd other than the thread's loop's, inside a running callback (`frame`) or while
    /// the loop's fd is open: a loop of its own run to completion there (Node's `execSync`/`spawnSync` wait for
    /// the child that way). The thread's loop is not idle in it but stalled: it is a syscall of the callback, if
    /// any, and of the stall, like a read.
    private mutating func nestedLoopWait(
        stream: Int?, frame: CallbackFrame?, pid p: UInt32, tid: UInt32, nr: UInt64, epfd: Int64, ret: Int64,
        durationNs dur: UInt64, exitNs ns: UInt64
    ) {
        let enter = ns.subtractingSaturated(dur)
        let blocked =
            frame == nil
            ? threads.nestedLoopWait(pid: p, tid: tid, nr: nr, fd: epfd, ret: ret, enterNs: enter, exitNs: ns, fds: io)
            : threads.syscall(pid: p, tid: tid, nr: nr, fd: epfd, op: epfd, ret: ret, bytes: 0, enterNs: enter, exitNs: ns, fds: io)
        let thread = UInt64(p) << 32 | UInt64(tid)
        if !waitMomentAwaitingSyscall.isEmpty, let i = waitMomentAwaitingSyscall.removeValue(forKey: thread), waitMoments[i].endNs == ns {
            waitMoments[i].blockedNs = min(waitMoments[i].durationNs, blocked)
        }
        guard let frame, let s = stream else {
            io.syscall(pid: p, nr: nr, fd: epfd, ret: ret, durationNs: dur, running: nil, ownerFD: nil)
            return
        }
        callbacks.noteSyscall(
            stream: s, pid: p, nr: OffCPUReason.syscall(nr, op: epfd), fd: epfd, ns: dur, bytes: 0, blockedNs: blocked, fds: io)
        var ownerFD: Int64? = nil
        if let f = resources.info(ResourceKey(pid: p, asyncID: frame.asyncID))?.fd, f >= 0 { ownerFD = Int64(f) }
        io.syscall(pid: p, nr: nr, fd: epfd, ret: ret, durationNs: dur, running: frame.asyncID, ownerFD: ownerFD)
    }

    /// A loop thread's wait for events (epoll, or poll/select in a loop that never uses epoll): the loop is
    /// idle in it, and the stretch since its previous wait (a stall, if long) ends at its start.
    private mutating func loopWait(
        pid p: UInt32, tid: UInt32, nr: UInt64, fd: Int64, ret: Int64, durationNs dur: UInt64, exitNs ns: UInt64,
        isEpoll: Bool, poolWaits: UInt64? = nil
    ) {
        loop.kernelWait(pid: p, tid: tid, durationNs: dur, exitNs: ns)
        threads.epollWait(
            pid: p, tid: tid, nr: nr, ret: ret, enterNs: ns.subtractingSaturated(dur), exitNs: ns, isEpoll: isEpoll,
            poolWaits: poolWaits)
        io.syscall(pid: p, nr: nr, fd: fd, ret: ret, durationNs: dur, running: nil, ownerFD: nil)
        if let gap = kernelLoop.wait(pid: p, tid: tid, exitNs: ns, durationNs: dur) {
            busySecondsBetweenWaits.busy(startNs: gap.startNs, endNs: gap.startNs &+ gap.durationNs, earliestNs: firstNs)
        }
    }

    /// Counts a wait (or look) of a pool worker of `pid` at its shared poller; the count so far, this one included.
    private mutating func countPoolWait(pid: UInt32) -> UInt64? {
        guard poolWaits[pid] != nil || poolWaits.count < SharedPollers.limit else { return nil }
        poolWaits[pid, default: 0] &+= 1
        return poolWaits[pid]
    }

    /// poll, select, pselect6, ppoll: how loops that do not use epoll wait (GLib, Python's socketserver
    /// and http.server, sshd, Tcl); io_uring loops wait in io_uring_enter (isPollLoopWait).
    static let pollWaitNrs: Set<UInt64> = [7, 23, 270, 271]
    static let ioUringEnterNr: UInt64 = 426

    /// Whether a syscall is a wait for events of a loop that does not use epoll: poll, select, or an io_uring_enter
    /// that waits for completions (its size's high half is min_complete with IORING_ENTER_GETEVENTS; to_submit alone
    /// in traces before that was recorded). An io_uring server's 666 ms stalls made no loop and no stall at all.
    package static func isPollLoopWait(nr: UInt64, size: UInt64) -> Bool {
        pollWaitNrs.contains(nr) || (nr == ioUringEnterNr && size >> 32 != 0)
    }

    /// Before `--from`: what the fds are (opens, closes, forks) holds in the window, but nothing is counted and
    /// lives that ended before it make no row. "write(fd 14)" in a window said nothing of a socket opened before it.
    private mutating func fdIdentityBeforeWindow(_ ev: borrowing DecodedEvent, ns: UInt64) {
        switch ev.kind {
        case .fdOpen:
            io.fdOpen(
                pid: UInt32(truncatingIfNeeded: ev.u(0)), tid: UInt32(truncatingIfNeeded: ev.u(1)), fd: ev.s(2), kind: ev.u(3),
                sourceFd: ev.s(4), detail: ev.text, ns: ns)
        case .syscall:
            let pid = UInt32(truncatingIfNeeded: ev.u(0)), nr = ev.u(2), fd = ev.s(3), ret = ev.s(5)
            if nr == Self.closeNr && ret == 0 { io.closed(pid: pid, fd: fd, ns: ns) }
            if nr == Self.closeRangeNr && ret == 0 && (ev.u(4) >> 32) & Self.closeRangeCloexec == 0 {
                io.closedRange(pid: pid, first: fd, last: Int64(ev.u(4) & 0xFFFF_FFFF), ns: ns)
            }
        case .processFork:
            io.forked(parent: UInt32(truncatingIfNeeded: ev.u(0)), child: UInt32(truncatingIfNeeded: ev.u(1)), ns: ns)
        case .processExit:
            io.exited(pid: UInt32(truncatingIfNeeded: ev.u(0)))
        default:
            break
        }
    }

    private mutating func untrackedType() -> Int32 {
        let t = resources.intern("(untracked)")
        callbacks.ensureType(t)
        return t
    }

    private mutating func waitStack(_ ev: borrowing DecodedEvent, endNs: UInt64) {
        guard ev.u(2) != 0, ev.u(2) <= UInt64(UInt32.max) else { return }
        guard waitMoments.count < Self.maxWaitMoments else {
            waitMomentsNotKept &+= 1
            return
        }
        let pid = UInt32(truncatingIfNeeded: ev.u(0))
        let what = ev.u(4), raw = ev.s(5)
        var m = WaitMoment(
            pid: pid, tid: UInt32(truncatingIfNeeded: ev.u(1)), endNs: endNs, durationNs: ev.u(6),
            userStack: UInt32(ev.u(2)), reason: 0, fd: -1, fdDetail: nil, blockedNs: ev.u(6))
        if ev.u(3) == 0 {
            let (what, raw) = restarts.continued(thread: UInt64(pid) << 32 | UInt64(m.tid), nr: what, raw: raw)
            m.reason = OffCPUReason.syscall(what & 0xFFFF_FFFF, op: raw)
            // After its syscall (a poll loop's wait, already counted as the loop's idle time).
            m.loopIdle = threads.lastSyscallWasPollLoopWait(pid: pid, tid: m.tid, exitNs: endNs)
            // A long syscall is not a blocked one (a 64 MiB read from the page cache runs on CPU): its blocked part.
            if threads.sawScheduler {
                if let b = threads.blockedInLastSyscall(pid: pid, tid: m.tid, exitNs: endNs) {
                    m.blockedNs = min(m.durationNs, b)
                } else {
                    // The syscall's own event (same time) comes next: it fills this in.
                    waitMomentAwaitingSyscall[UInt64(pid) << 32 | UInt64(m.tid)] = waitMoments.count
                }
            }
            // An open's fd is its directory's: the fd it made (and its path) comes with its fdOpen.
            if !SyscallNames.fdIsNotAnFd.contains(what) && !SyscallNames.opensPath(what) && what != Self.futexWaitvNr
                && raw >= 0
            {
                m.fd = raw
                m.fdDetail = io.detail(pid: pid, fd: raw)
            }
        } else {
            m.reason = OffCPUReason.outside(state: what)
        }
        waitMoments.append(m)
    }

    private mutating func syscall(_ ev: borrowing DecodedEvent, exitNs: UInt64) {
        let pid = UInt32(truncatingIfNeeded: ev.u(0)), tid = UInt32(truncatingIfNeeded: ev.u(1))
        let ret = ev.s(5), dur = ev.u(6)
        let (nr, raw) = restarts.syscall(thread: UInt64(pid) << 32 | UInt64(tid), nr: ev.u(2), raw: ev.s(3), ret: ret)
        // futex's fd field is its operation, the waits' -1 (docs/trace-format.md): not an fd. A poll of several fds or
        // a select has the first fd it returned as ready (-1: none; traces before it: always -1).
        let severalFds = Self.waitsOnSeveralFds(nr: nr, size: ev.u(4))
        let fd = severalFds != nil ? max(raw, -1) : SyscallNames.fdIsNotAnFd.contains(nr) || nr == Self.futexWaitvNr ? -1 : raw
        // An open is tallied inside stalls and callbacks by the fd it made, named by the path its fdOpen (next,
        // same time) gives: "openat() 115 µs in 3 calls" said nothing of what was opened.
        let opened = SyscallNames.opensPath(nr) && ret >= 0 && ret <= Int64(Int32.max)
        let tallyFd = SyscallNames.opensPath(nr) ? (opened ? ret : -1) : fd  // not the directory fd
        // A failed open is tallied by its error and (once its fdOpen names it) the path it asked for; a failed connect
        // by its error and (its fdOpen) the address it asked for.
        let failedConnect = nr == Self.connectNr && ret < 0 && ret != Self.inProgress
        let openErrno = (SyscallNames.opensPath(nr) || failedConnect) && ret < 0 ? ret.magnitude : 0
        pendingOpen = opened ? (UInt64(pid) << 32 | UInt64(tid), ret, exitNs) : nil
        pendingFailedOpen = SyscallNames.opensPath(nr) && ret < 0 ? (UInt64(pid) << 32 | UInt64(tid), nr, ret, exitNs) : nil
        let describes = nr == Self.connectNr || ((nr == Self.bindNr || nr == Self.listenNr) && ret == 0)
        pendingDescribe = describes && fd >= 0 ? (UInt64(pid) << 32 | UInt64(tid), nr, fd, exitNs) : nil
        if kernelPids.count < 4096 { kernelPids.insert(pid) }
        let enter = exitNs >= dur ? exitNs - dur : 0
        // A thread of a program that records no events of its own, that waits in poll or select and has never
        // waited in epoll, runs its loop on poll: that wait is its idle time, as epoll's is for the others. (A
        // poll inside an epoll loop's callback, such as a resolver's, stays a syscall of the stall it is in.)
        if Self.isPollLoopWait(nr: nr, size: ev.u(4)), userStreamOfThread[UInt64(pid) << 32 | UInt64(tid)] == nil,
            threads.mayLoopOnPoll(pid: pid, tid: tid)
        {
            if !waitMomentAwaitingSyscall.isEmpty { waitMomentAwaitingSyscall.removeValue(forKey: UInt64(pid) << 32 | UInt64(tid)) }
            // Its stack, written just before it (same end), is the loop's idle wait, not a wait to explain.
            for i in waitMoments.indices.suffix(4).reversed()
            where waitMoments[i].endNs == exitNs && waitMoments[i].pid == pid && waitMoments[i].tid == tid {
                waitMoments[i].loopIdle = true
            }
            loopWait(pid: pid, tid: tid, nr: nr, fd: -1, ret: ret, durationNs: dur, exitNs: exitNs, isEpoll: false)
            return
        }
        var running: UInt64? = nil
        var ownerFD: Int64? = nil
        let bytes = IOTracker.bytesMoved(nr: nr, ret: ret)
        let parked =
            (nr == Self.futexWaitvNr || (nr == OffCPUReason.futexNr && OffCPUReason.futexClass(raw) == 1))
            && sharedPollers.isWorker(pid: pid, tid: tid) && threads.isLoop(pid: pid, tid: tid)
        let blocked =
            parked
            ? threads.parkedInPool(
                pid: pid, tid: tid, nr: nr, op: raw, ret: ret, enterNs: enter, exitNs: exitNs, poolWaits: poolWaits[pid] ?? 0)
            : threads.syscall(
                pid: pid, tid: tid, nr: nr, fd: tallyFd, op: raw, ret: ret, bytes: bytes, enterNs: enter, exitNs: exitNs,
                fds: io, errno: openErrno, severalFds: severalFds)
        if parked, let gap = kernelLoop.wait(pid: pid, tid: tid, exitNs: exitNs, durationNs: dur) {
            busySecondsBetweenWaits.busy(startNs: gap.startNs, endNs: gap.startNs &+ gap.durationNs, earliestNs: firstNs)
        }
        if nr == Self.closeNr && ret == 0 {
            sharedPollers.closed(pid: pid, fd: fd)
            if !openLoopEpollFDs.isEmpty && fd >= 0 && fd <= Int64(UInt32.max) { openLoopEpollFDs.remove(UInt64(pid) << 32 | UInt64(fd)) }
        }
        if !waitMomentAwaitingSyscall.isEmpty, let i = waitMomentAwaitingSyscall.removeValue(forKey: UInt64(pid) << 32 | UInt64(tid)),
            waitMoments[i].endNs == exitNs
        {
            waitMoments[i].blockedNs = min(waitMoments[i].durationNs, blocked)
        }
        if let s = userStreamOfThread[UInt64(pid) << 32 | UInt64(tid)], let frame = callbacks.running(stream: s, enteredAt: enter) {
            running = frame.asyncID
            if let f = resources.info(ResourceKey(pid: pid, asyncID: frame.asyncID))?.fd, f >= 0 { ownerFD = Int64(f) }
            callbacks.noteSyscall(
                stream: s, pid: pid, nr: OffCPUReason.syscall(nr, op: raw), fd: tallyFd, errno: openErrno, severalFds: severalFds,
                ns: dur, bytes: bytes,
                blockedNs: blocked, fds: io)
        }
        io.syscall(pid: pid, nr: nr, fd: fd, ret: ret, durationNs: dur, running: running, ownerFD: ownerFD)
        if nr == Self.closeNr && ret == 0 { io.closed(pid: pid, fd: fd, ns: exitNs) }
        if nr == Self.closeRangeNr && ret == 0 && (ev.u(4) >> 32) & Self.closeRangeCloexec == 0 {
            io.closedRange(pid: pid, first: fd, last: Int64(ev.u(4) & 0xFFFF_FFFF), ns: exitNs)
            let last = Int64(ev.u(4) & 0xFFFF_FFFF)
            openLoopEpollFDs = openLoopEpollFDs.filter {
                $0 >> 32 != UInt64(pid) || Int64($0 & 0xFFFF_FFFF) < fd || Int64($0 & 0xFFFF_FFFF) > last
            }
        }
    }

    static let closeNr: UInt64 = 3
    /// A poll or ppoll of more than one fd (`size`: nfds): nfds; a select or pselect6: 0 (how many it waited on is
    /// not recorded); nil for other calls.
    package static func waitsOnSeveralFds(nr: UInt64, size: UInt64) -> UInt64? {
        if nr == 7 || nr == 271 { return size > 1 ? size : nil }
        return nr == 23 || nr == 270 ? 0 : nil
    }
    static let connectNr: UInt64 = 42
    static let bindNr: UInt64 = 49
    static let listenNr: UInt64 = 50
    static let inProgress: Int64 = -115  // -EINPROGRESS: a non-blocking connect under way (described already)

    /// The connect, bind or listen `p` gave its socket `address`: the call, tallied in its thread's stall, its
    /// callback and its wait stack with the socket as it was before ('connect(fd 6)'), is named by it.
    private mutating func described(_ p: (thread: UInt64, nr: UInt64, fd: Int64, ns: UInt64), address: String) {
        let pid = UInt32(truncatingIfNeeded: p.thread >> 32), tid = UInt32(truncatingIfNeeded: p.thread)
        threads.described(pid: pid, tid: tid, nr: p.nr, fd: p.fd, address: address)
        if let s = userStreamOfThread[p.thread] { callbacks.described(stream: s, nr: p.nr, fd: p.fd, address: address) }
        if let i = waitMoments.indices.last, waitMoments[i].pid == pid, waitMoments[i].tid == tid, waitMoments[i].endNs == p.ns,
            waitMoments[i].fd == p.fd, waitMoments[i].reason == p.nr
        {
            waitMoments[i].fdDetail = address
        }
    }
    static let futexWaitvNr: UInt64 = 449
    static let closeRangeNr: UInt64 = 436
    static let closeRangeCloexec: UInt64 = 4

    /// "local->peer" split at its first "->"; nil without one.
    static func splitArrow(_ s: String) -> (String, String)? {
        let u = Array(s.utf8)
        guard u.count >= 2 else { return nil }
        for i in 0..<(u.count - 1) where u[i] == UInt8(ascii: "-") && u[i + 1] == UInt8(ascii: ">") {
            return (String(decoding: u[..<i], as: UTF8.self), String(decoding: u[(i + 2)...], as: UTF8.self))
        }
        return nil
    }

    /// The loop of stream `s` is between callbacks: frames still open lost their after().
    private mutating func loopIsIdle(stream s: Int) {
        guard !callbacks.stacks[s].isEmpty else { return }
        callbacks.loopIsIdle(stream: s)
        let st = reader.streams[s]
        threads.callbackAbandoned(pid: st.pid, tid: st.tid)
    }

    private mutating func finished(_ frame: CallbackFrame, _ d: UInt64, stream s: Int) {
        if !spans.byContext.isEmpty {
            let st = reader.streams[s]
            let table = resources
            spans.callbackEnded(pid: st.pid, asyncID: frame.asyncID, type: frame.type, durationNs: d, resources: table) {
                CallbackRecord(
                    asyncID: frame.asyncID, type: table.typeName(frame.type), pid: st.pid, tid: st.tid,
                    threadName: st.threadName, startNs: frame.beforeNs, durationNs: d,
                    causalChain: table.causalChain(ResourceKey(pid: st.pid, asyncID: frame.asyncID)),
                    syscalls: CallbackTracker.syscalls(of: frame), blockedNs: frame.blockedNs,
                    runqueueNs: frame.runqueueNs, unknownNs: frame.unknownNs)
            }
        }
        if callbacks.stacks[s].isEmpty {
            if frame.type != resources.recorderWriteType { lastEndedCallback[s] = (frame.asyncID, frame.type) }
            busySeconds.busy(startNs: frame.beforeNs, endNs: frame.beforeNs &+ d, earliestNs: firstNs)
            let st = reader.streams[s]
            threads.callbackRan(pid: st.pid, tid: st.tid, startNs: frame.beforeNs, endNs: frame.beforeNs &+ d)
        }
        let blocking = d >= options.blockingThresholdNs
        if blocking {
            callbacks.blockingCount += 1
            callbacks.blockingNs = callbacks.blockingNs.addingSaturated(d)
        }
        guard callbacks.slowest.admits(d) || (blocking && callbacks.blockingLongest.admits(d)) else { return }
        let st = reader.streams[s]
        var record = CallbackRecord(
            asyncID: frame.asyncID, type: resources.typeName(frame.type), pid: st.pid, tid: st.tid,
            threadName: st.threadName, startNs: frame.beforeNs, durationNs: d,
            causalChain: resources.causalChain(ResourceKey(pid: st.pid, asyncID: frame.asyncID)),
            syscalls: CallbackTracker.syscalls(of: frame), blockedNs: frame.blockedNs, runqueueNs: frame.runqueueNs, unknownNs: frame.unknownNs)
        record.creationStack = resources.info(ResourceKey(pid: st.pid, asyncID: frame.asyncID))?.creationStack ?? -1
        record.addWakes(frame.wakes)
        callbacks.slowest.offer(d, record)
        if blocking { callbacks.blockingLongest.offer(d, record) }
    }

    /// The analysis of everything consumed so far (the analyzer can go on consuming); `decodeDamage` is damage
    /// found while iterating (`TraceEventIterator.damage`). Creation and CPU stacks are attached by
    /// `TraceAnalysis.attachCreationStacks()` and `attachStacks(reader:top:)`.
    public func finish(decodeDamage: [TraceDamage] = []) -> TraceAnalysis {
        var byKind: [String: UInt64] = [:]
        for (code, n) in kindCounts.enumerated() where n > 0 {
            byKind[EventKind(rawValue: UInt8(code)).description] = n
        }
        let damage = reader.damage + decodeDamage
        let userPids = Set(reader.streams.filter { !$0.isKernel }.map(\.pid))
        var overview = Overview(
            path: reader.path, program: reader.header.program, pid: reader.header.pid,
            formatVersion: reader.header.version, recordingStartNs: reader.header.monotonicStartNs,
            realtimeStartNs: reader.header.realtimeStartNs, startNs: total == 0 ? 0 : firstNs, endNs: lastNs,
            eventsByKind: byKind, totalEvents: total,
            userThreads: reader.streams.filter { !$0.isKernel }.count,
            processes: userPids.union(kernelPids).sorted(),
            hasUserEvents: reader.hasUserEvents, hasKernelEvents: reader.hasKernelEvents,
            droppedUser: reader.droppedUser, droppedKernel: reader.droppedKernel, damage: damage,
            eventsLostToDamage: damage.reduce(0) { $0.addingSaturated($1.eventsLost ?? 0) },
            unwrittenUser: reader.unwritten?.userEvents ?? 0, unwrittenKernel: reader.unwritten?.kernelEvents ?? 0,
            unwrittenError: reader.unwritten.flatMap {
                $0.userEvents > 0 || $0.kernelEvents > 0 ? ErrnoNames.name(UInt64(UInt32(bitPattern: $0.errno))) : nil
            },
            processesNotFlushed: reader.unwritten?.processesNotFlushed ?? 0,
            programSignal: reader.unwritten.flatMap { $0.programSignal > 0 ? SignalNames.name($0.programSignal) : nil })
        if total > 0 {
            // A window clamps the recording's end to it; an end before the last event (a crafted header) is ignored.
            overview.recordingEndNs = reader.recordingEndNs == 0 ? 0 : max(lastNs, min(reader.recordingEndNs, windowEnd))
        }

        let (threadTracker, userNames) = (threads, userThreadNames)
        let loopSummary = loop.summary(
            streams: reader.streams.map { ($0.pid, $0.tid, $0.threadName) },
            lastEventNs: lastEventNs,
            threadName: { pid, tid in
                threadTracker.name(UInt64(pid) << 32 | UInt64(tid), userThreadNames: userNames)
            })

        var types: [ResourceTypeStats] = []
        for t in 0..<callbacks.durations.count where callbacks.created[t] > 0 || callbacks.durations[t].count > 0 {
            types.append(
                ResourceTypeStats(
                    type: resources.typeName(Int32(t)), created: callbacks.created[t],
                    destroyed: callbacks.destroyed[t],
                    callbacks: DurationSummary(callbacks.durations[t])))
        }
        types.sort { ($0.callbacks.totalNs, $0.created) > ($1.callbacks.totalNs, $1.created) }

        let syscalls = io.syscallTotals().map { nr, a in
            SyscallStats(
                name: SyscallNames.name(nr), count: a.count, bytes: a.bytes, totalNs: a.ns, errors: a.errors,
                attributed: a.attributed,
                errorsByErrno: a.errnos.map { (ErrnoNames.name($0.key), $0.value) }.sorted { ($0.1, $1.0) > ($1.1, $0.0) },
                failedPaths: a.failedPaths.sorted { ($0.value, $1.key.path) > ($1.value, $0.key.path) }.prefix(SyscallStats.failedPathsShown)
                    .map { FailedPath(path: $0.key.path, errno: ErrnoNames.name($0.key.errno), count: $0.value) },
                failedPathCount: a.failedPaths.count,
                failedWithPath: a.failedPaths.values.reduce(a.failedPathsBeyondBound) { $0.addingSaturated($1) })
        }.sorted { ($0.totalNs, $0.count) > ($1.totalNs, $1.count) }

        var finalThreads = threads
        finalThreads.flush()
        var names = userThreadNames.mapValues(DispatchThreadNames.expanded)
        for k in finalThreads.names.keys { names[k] = finalThreads.name(k, userThreadNames: userThreadNames) }
        for (k, n) in finalThreads.wakerNames where names[k] == nil { names[k] = n }
        func ref(_ key: UInt64) -> ThreadRef? {
            key == 0 ? nil : ThreadRef(pid: UInt32(key >> 32), tid: UInt32(truncatingIfNeeded: key), name: names[key])
        }
        func fdRow(_ k: FDKey, _ f: FDAccum, closedNs: UInt64?) -> FDStats {
            let kind = f.kind.map { FDKind(rawValue: $0)?.name ?? "kind \($0)" } ?? "unknown"
            var path: String? = nil, local: String? = nil, peer: String? = nil
            if let d = f.detail {
                let isSocket = f.kind.map { [3, 4, 5, 6, 16].contains($0) } ?? false
                if let (l, p) = Self.splitArrow(d) {
                    local = l.isEmpty ? nil : l
                    peer = p.isEmpty ? nil : p
                } else if isSocket {
                    local = d
                } else {
                    path = d
                }
            }
            return FDStats(
                pid: k.pid, fd: k.fd, kind: kind, path: path, local: local, peer: peer, openedNs: f.openedNs,
                closedNs: closedNs, sourceFd: f.sourceFd, openedBy: ref(f.openedBy),
                resourceType: f.ownerType >= 0 ? resources.typeName(f.ownerType) : nil,
                reads: f.reads, writes: f.writes, bytesRead: f.bytesRead, bytesWritten: f.bytesWritten,
                syscalls: f.syscalls, eagain: f.eagain, kernelNs: f.kernelNs,
                readyToCallbackNs: DurationSummary(f.readyToCallback))
        }
        var fds: [FDStats] = io.endedLives.map { fdRow($0.key, $0.life, closedNs: $0.closedNs) }
        io.byFD.forEach { fds.append(fdRow($0, $1, closedNs: nil)) }
        fds.sort { ($0.pid, $0.fd, $0.openedNs ?? 0, $0.closedNs ?? .max) < ($1.pid, $1.fd, $1.openedNs ?? 0, $1.closedNs ?? .max) }

        var kernelLoopSummary = kernelLoop.summary()
        // Threads that polled on their way to other waits are no loops: not in the loop view, no stalls.
        let noLoops = finalThreads.pollCallersThatAreNoLoop()
        if var k = kernelLoopSummary, !noLoops.isEmpty {
            k.threads.removeAll { noLoops.contains(UInt64($0.pid) << 32 | UInt64($0.tid)) }
            k.longestGaps.removeAll { noLoops.contains(UInt64($0.pid) << 32 | UInt64($0.tid)) }
            kernelLoopSummary = k.threads.isEmpty ? nil : k
        }
        var loopUtilization: [UInt64: Double] = [:]
        if var k = kernelLoopSummary {
            for i in k.threads.indices {
                let key = UInt64(k.threads[i].pid) << 32 | UInt64(k.threads[i].tid)
                k.threads[i].threadName = names[key]
                loopUtilization[key] = k.threads[i].utilization
            }
            for i in k.longestGaps.indices {
                k.longestGaps[i].threadName = names[UInt64(k.longestGaps[i].pid) << 32 | UInt64(k.longestGaps[i].tid)]
            }
            kernelLoopSummary = k
        }
        for t in loopSummary?.threads ?? [] { loopUtilization[UInt64(t.pid) << 32 | UInt64(t.tid)] = t.utilization }
        var (threadList, stalls) = finalThreads.summary(
            loopUtilization: loopUtilization, userThreadNames: userThreadNames, noLoops: noLoops)
        let stallsOfNoLoops = finalThreads.stallsAtThreshold(of: noLoops)
        // Node processes the kernel saw that sent no events of their own: the hooks were not injected (a shell or
        // script started node without --node, --pid, --no-node-hooks, or NODE_OPTIONS reset by the program).
        overview.nodeProcessesWithoutHooks = finalThreads.names.compactMap { key, name in
            let pid = UInt32(key >> 32), tid = UInt32(truncatingIfNeeded: key)
            return pid == tid && !userPids.contains(pid) && Self.isNodeName(name) ? pid : nil
        }.sorted()
        overview.switchInsNotSeen = threadList.filter { $0.switchInsNotSeen > 0 }
            .map {
                SwitchInsNotSeen(
                    thread: $0.ref, count: $0.switchInsNotSeen, unknownNs: $0.unknownNs, closedBySyscall: $0.switchInsClosedBySyscall)
            }
            .sorted { ($0.unknownNs, $1.thread.tid) > ($1.unknownNs, $0.thread.tid) }
        let sched = finalThreads.sawScheduler
        func withSplit(_ c: CallbackRecord) -> CallbackRecord {
            var c = c
            if !sched {
                c.blockedNs = nil
                c.runqueueNs = nil
            }
            let key = UInt64(c.pid) << 32 | UInt64(c.tid)
            c.threadName = finalThreads.displayName(key, user: c.threadName)
            if c.createdAt.isEmpty { c.createdAt = sites.frames(ResourceKey(pid: c.pid, asyncID: c.asyncID)) }
            if c.createdAt.isEmpty && c.creationStack < 0 {
                c.createdAtMissing = sites.missingReason(ResourceKey(pid: c.pid, asyncID: c.asyncID), type: c.type)
            }
            if c.label == nil { c.label = labels.label(ResourceKey(pid: c.pid, asyncID: c.asyncID)) }
            // The Node preload's own batch writes: listed among the program's callbacks (they cost its loop that
            // time), said to be the recorder's ("async id 4294967295" alone looked like a callback of the program).
            if c.label == nil && c.type == ResourceTable.recorderWriteTypeName { c.label = Self.recorderWriteLabel }
            for i in c.wokenBy.indices {
                c.wokenBy[i].thread.name = names[UInt64(c.wokenBy[i].thread.pid) << 32 | UInt64(c.wokenBy[i].thread.tid)]
            }
            return c
        }

        // Callbacks still running where their process's events end: the longest blocker of a program that
        // exited or was killed inside a callback, so listed (marked unfinished), never silently left out.
        var callbacks = self.callbacks
        var processEndNs: [UInt32: UInt64] = [:]
        for (s, st) in reader.streams.enumerated() where !st.isKernel && s < lastEventNs.count {
            processEndNs[st.pid] = max(processEndNs[st.pid] ?? 0, lastEventNs[s])
        }
        for (s, stack) in callbacks.stacks.enumerated() where s < reader.streams.count {
            guard let frame = stack.first else { continue }
            let st = reader.streams[s]
            var endNs = processEndNs[st.pid] ?? lastNs
            // A stream its recorder closed (stop at exit, a fatal signal's flush) shows the thread still inside the
            // callback when its last chunk was sealed: an after before that would be in it. A task that slept and
            // then called exit() ran that long, not until its own before.
            if st.endedCleanly { endNs = max(endNs, min(st.lastNs, windowEnd)) }
            guard endNs > frame.beforeNs else { continue }
            let d = endNs - frame.beforeNs
            var merged = frame
            merged.syscalls = stack.flatMap(\.syscalls)
            let blocking = d >= options.blockingThresholdNs
            if blocking {
                callbacks.blockingCount += 1
                callbacks.blockingNs = callbacks.blockingNs.addingSaturated(d)
            }
            guard callbacks.slowest.admits(d) || (blocking && callbacks.blockingLongest.admits(d)) else { continue }
            var record = CallbackRecord(
                asyncID: frame.asyncID, type: resources.typeName(frame.type), pid: st.pid, tid: st.tid,
                threadName: st.threadName, startNs: frame.beforeNs, durationNs: d,
                causalChain: resources.causalChain(ResourceKey(pid: st.pid, asyncID: frame.asyncID)),
                syscalls: CallbackTracker.syscalls(of: merged), blockedNs: frame.blockedNs, runqueueNs: frame.runqueueNs, unknownNs: frame.unknownNs)
            record.creationStack = resources.info(ResourceKey(pid: st.pid, asyncID: frame.asyncID))?.creationStack ?? -1
            record.unfinished = true
            record.addWakes(frame.wakes)
            callbacks.slowest.offer(d, record)
            if blocking { callbacks.blockingLongest.offer(d, record) }
        }

        // A stall (between epoll waits) is named by the listed callback that ran longest inside it.
        let listed = callbacks.blockingLongest.sorted + callbacks.slowest.sorted
        if !listed.isEmpty {
            for i in stalls.indices {
                let st = stalls[i], end = st.startNs &+ st.durationNs
                func inside(_ c: CallbackRecord) -> UInt64 {
                    guard c.pid == st.thread.pid, c.tid == st.thread.tid else { return 0 }
                    let from = max(c.startNs, st.startNs), to = min(c.startNs &+ c.durationNs, end)
                    return to > from ? to - from : 0
                }
                if let best = listed.max(by: { inside($0) < inside($1) }), inside(best) > 0 { stalls[i].callback = withSplit(best) }
            }
        }

        var analysis = TraceAnalysis(
            options: options, overview: overview, loop: loopSummary, resources: types,
            slowestCallbacks: callbacks.slowest.sorted.map(withSplit),
            blocking: BlockingSummary(
                thresholdNs: options.blockingThresholdNs, count: callbacks.blockingCount,
                totalNs: callbacks.blockingNs, longest: callbacks.blockingLongest.sorted.map(withSplit)),
            io: IOSummary(
                syscalls: syscalls, fds: fds, readWriteSyscalls: io.readWrite,
                readWriteAttributed: io.readWriteAttributed, readWriteAttributedToOwner: io.readWriteToOwner,
                readWriteOnResourceFDs: io.readWriteOnOwnedFDs,
                readWriteOnResourceFDsByOwner: io.readWriteOnOwnedFDsByOwner, fdLivesNotListed: io.livesNotListed),
            openAtExit: openAtExit(), untrackedResources: resources.untracked, kernelLoop: kernelLoopSummary,
            unmatchedAfters: callbacks.unmatchedAfters, abandonedCallbacks: callbacks.abandonedFrames,
            busiestSecond: busySeconds.busiest() ?? busySecondsBetweenWaits.busiest(),
            threads: threadList, hasSchedulerEvents: sched, stalls: stalls,
            stallsAtThreshold: finalThreads.stallsAtThreshold.subtractingSaturated(stallsOfNoLoops.count),
            stallsAtThresholdNs: finalThreads.stallsAtThresholdNs.subtractingSaturated(stallsOfNoLoops.ns),
            window: options.window, untrackedThreads: finalThreads.untrackedThreads)
        let table = resources
        analysis.spans = spans.finished(endNs: lastNs, typeName: { table.typeName($0) })
        analysis.waitMoments = waitMoments
        analysis.creationStacks = creationStacks
        analysis.creationStacksUndefined = creationStacksUndefined
        analysis.waitMomentsNotKept = waitMomentsNotKept
        analysis.titledProcesses = finalThreads.titledProcesses()
        // Every process that emitted events ended by itself (an exit status, not a signal, not process.exit(), not
        // an uncaught exception): nothing kept it alive.
        analysis.exitCalls = ends.exitCalls.sorted { $0.key < $1.key }.map { pid, call in
            let key = ResourceKey(pid: pid, asyncID: call.asyncID)
            let type = resources.info(key).map { resources.typeName($0.type) }
            return ProcessExitCall(
                pid: pid, ns: call.ns, asyncID: call.asyncID, type: type,
                causalChain: type == nil ? [] : resources.causalChain(key), createdAt: sites.frames(key))
        }
        let threw = Set(uncaughtErrors.map(\.pid))
        analysis.endedByUncaughtError = userPids.contains { threw.contains($0) && (exitStatuses[$0] ?? 0) > 0 && ends.exitCalls[$0] == nil }
        let statuses = userPids.sorted().map { exitStatuses[$0] }
        if let killed = userPids.sorted().first(where: { (exitStatuses[$0] ?? 0) < 0 }) {
            analysis.killedBySignal = Int32(clamping: -(exitStatuses[killed] ?? 0))
            if userPids.count > 1 { analysis.killedPid = killed }
        }
        if !statuses.isEmpty, statuses.allSatisfy({ ($0 ?? -1) >= 0 }), analysis.exitCalls.isEmpty, !analysis.endedByUncaughtError {
            analysis.exitedByThemselvesStatus = statuses.compactMap { $0 }.max()
        }
        analysis.uncaughtErrors = uncaughtErrors.map { e in
            var e = e
            let key = UInt64(e.pid) << 32 | UInt64(e.tid)
            e.threadName = finalThreads.displayName(key, user: e.threadName)
            if e.type != nil { e.createdAt = sites.frames(ResourceKey(pid: e.pid, asyncID: e.asyncID)) }
            if let id = e.afterAsyncID { e.afterCreatedAt = sites.frames(ResourceKey(pid: e.pid, asyncID: id)) }
            return e
        }
        analysis.uncaughtErrorsNotListed = uncaughtErrorsNotListed
        analysis.poolWaits = PoolWaitSummary(
            count: threadPoolWaits.count, queueNsTotal: threadPoolWaits.queueNsTotal,
            longest: threadPoolWaits.waits.map { w in
                var w = w
                let key = ResourceKey(pid: w.pid, asyncID: w.asyncID)
                w.createdAt = sites.frames(key)
                w.causalChain = resources.causalChain(key)
                var groups: [(type: String, site: Int32, count: Int)] = []
                for a in w.aheadKeys {
                    let site = sites.site(ResourceKey(pid: w.pid, asyncID: a.asyncID)) ?? -1
                    if let i = groups.firstIndex(where: { $0.type == a.type && $0.site == site }) {
                        groups[i].count += 1
                    } else {
                        groups.append((a.type, site, 1))
                    }
                }
                w.ahead = groups.sorted { $0.count > $1.count }.map {
                    PoolWaitAhead(type: $0.type, count: $0.count, createdAt: $0.site < 0 ? [] : sites.frames(site: $0.site))
                }
                w.aheadKeys = []
                return w
            })
        return analysis
    }

    /// Live resources grouped by type and creation site (where the trace has sites); the most common
    /// causal chain (sampled) says where they came from.
    private func openAtExit() -> [OpenResourceGroup] {
        struct Group {
            var count: UInt64 = 0
            var oldest: UInt64 = .max
            var chains: [[String]: Int] = [:]
            var sampled = 0
            var streams: [Int32] = []
        }
        // By type and creation site (Node) or creation stack (attachCreationStacks merges stacks that name the same code).
        struct GroupKey: Hashable {
            var type: Int32
            var site: Int32
            var stack: Int32
            var standardStream: Bool  // fds 0-2: apart from the handles that may have kept the process alive
            var unrefed: Bool  // apart from the ref'd ones, which may have kept it alive
        }
        var groups: [GroupKey: Group] = [:]
        let sites = self.sites
        let ends = self.ends
        resources.live.forEach { key, info in
            let site = sites.isEmpty ? -1 : (sites.site(key) ?? -1)
            let groupKey = GroupKey(
                type: info.type, site: site, stack: info.creationStack, standardStream: (0...2).contains(info.fd),
                unrefed: ends.isUnrefed(key))
            var g = groups[groupKey] ?? Group()
            g.count += 1
            if groupKey.standardStream && !g.streams.contains(info.fd) { g.streams.append(info.fd) }
            g.oldest = min(g.oldest, info.initNs)
            if g.sampled < 64 {
                g.sampled += 1
                g.chains[Array(resources.causalChain(key).dropLast()), default: 0] += 1
            }
            groups[groupKey] = g
        }
        return groups.map { k, g in
            let chain = g.chains.max { ($0.value, $1.key.count) < ($1.value, $0.key.count) }?.key ?? []
            var group = OpenResourceGroup(
                type: resources.typeName(k.type), count: g.count, createdBy: chain, oldestInitNs: g.oldest,
                createdAt: k.site < 0 ? [] : sites.frames(site: k.site))
            group.creationStack = k.stack
            group.standardStreams = g.streams.sorted()
            group.unrefed = k.unrefed
            return group
        }.sorted { ($0.count, $1.type, $1.oldestInitNs) > ($1.count, $0.type, $0.oldestInitNs) }
    }
}

/// Epoll fds that more than one thread of a process waits on: a runtime whose worker threads take turns at one
/// poller (Go's netpoller, Tokio's driver) and park on a futex when there is no work, while one of them waits
/// in epoll. Such a worker's futex wait is its idle time, as its epoll waits are; its epoll waits with no
/// timeout are a look in passing, not a wait (Go's sysmon only ever looks). A thread becomes one the moment a
/// second thread waits on its epoll fd: its waits before that were counted as a lone loop's.
package struct SharedPollers {
    package enum Wait { case loopWait, polled }
    /// (pid << 32 | epfd) -> the first thread (tid) that waited on it, or `shared` once another did.
    private var firstWaiter: [UInt64: UInt32] = [:]
    private static let shared = UInt32.max
    /// Threads (pid << 32 | tid) that wait on a shared epoll fd.
    package private(set) var workers = Set<UInt64>()
    /// Threads that have blocked in an epoll wait (a timeout other than 0), shared or not.
    private var blockers = Set<UInt64>()
    /// Beyond these many epoll fds, workers or blocking threads, new ones are not followed (their threads stay
    /// lone loops).
    static let limit = 4096

    /// `joinedNeverBlocked`: the threads that became workers with this wait and have never blocked in epoll:
    /// their waits so far were looks in passing, and they are no loops (until they block in one).
    package init() {}

    package mutating func waited(
        pid: UInt32, tid: UInt32, epfd: Int64, timeoutMs: Int64, joinedNeverBlocked: inout [UInt64]
    ) -> Wait {
        let thread = UInt64(pid) << 32 | UInt64(tid)
        if timeoutMs != 0 && blockers.count < Self.limit { blockers.insert(thread) }
        let fdKey = UInt64(pid) << 32 | UInt64(UInt32(truncatingIfNeeded: epfd))
        var joined: [UInt64] = []
        switch firstWaiter[fdKey] {
        case nil:
            if firstWaiter.count < Self.limit { firstWaiter[fdKey] = tid }
        case Self.shared?:
            joined = [thread]
        case let first? where first != tid:
            firstWaiter[fdKey] = Self.shared
            joined = [UInt64(pid) << 32 | UInt64(first), thread]
        default:
            break
        }
        for k in joined where workers.count < Self.limit && workers.insert(k).inserted && !blockers.contains(k) {
            joinedNeverBlocked.append(k)
        }
        return timeoutMs == 0 && workers.contains(thread) ? .polled : .loopWait
    }

    /// Whether the thread waits on a shared epoll fd.
    package func isWorker(pid: UInt32, tid: UInt32) -> Bool {
        !workers.isEmpty && workers.contains(UInt64(pid) << 32 | UInt64(tid))
    }

    /// Whether the thread has blocked in an epoll wait (one with a timeout other than 0): a look-only thread
    /// (Go's sysmon) has not.
    package func hasBlocked(pid: UInt32, tid: UInt32) -> Bool { blockers.contains(UInt64(pid) << 32 | UInt64(tid)) }

    /// A closed fd's number may be a new epoll's, waited on by other threads.
    package mutating func closed(pid: UInt32, fd: Int64) {
        guard !firstWaiter.isEmpty else { return }
        firstWaiter.removeValue(forKey: UInt64(pid) << 32 | UInt64(UInt32(truncatingIfNeeded: fd)))
    }
}

/// A sleep, poll or futex wait that a stop (SIGSTOP, a debugger) or a signal without a handler interrupted returns
/// ERESTART_RESTARTBLOCK inside the kernel, and the thread goes on waiting in restart_syscall: that is the same
/// wait. A 200 ms usleep stopped for 5 ms read "clock_nanosleep() 50.2 ms" and "blocked 145 ms in
/// restart_syscall"; an io_uring server's sleeps were cut the same way by its completions' task work.
package struct RestartedSyscalls {
    static let restartSyscallNr: UInt64 = 219
    static let restartBlock: Int64 = -516  // ERESTART_RESTARTBLOCK
    /// Beyond these many threads with a wait to continue, new ones are not followed (their rest reads restart_syscall).
    static let limit = 4096
    /// Thread (pid << 32 | tid) -> the interrupted syscall's number and fd field.
    private var interrupted: [UInt64: (nr: UInt64, raw: Int64)] = [:]

    package init() {}

    /// The syscall a completed one stands for: restart_syscall is the wait it continues.
    package mutating func syscall(thread: UInt64, nr: UInt64, raw: Int64, ret: Int64) -> (UInt64, Int64) {
        var named = (nr, raw)
        if !interrupted.isEmpty, let was = interrupted.removeValue(forKey: thread), nr == Self.restartSyscallNr {
            named = (was.nr, was.raw)
        }
        if ret == Self.restartBlock && interrupted.count < Self.limit { interrupted[thread] = named }
        return named
    }

    /// The syscall a thread is in while it is off CPU (its restart_syscall is the one it continues); nothing changes.
    package func continued(thread: UInt64, nr: UInt64, raw: Int64) -> (UInt64, Int64) {
        guard nr == Self.restartSyscallNr, !interrupted.isEmpty, let was = interrupted[thread] else { return (nr, raw) }
        return (was.nr, was.raw)
    }
}
