// The analyses in one streaming pass: feed every event of `reader.events()` to `consume`, then
// `finish`. Exports can feed the same analyzer from their own pass over the events.
import TraceFormat
import TraceReader

public struct AnalysisProgress: Sendable {
    public var bytesRead: UInt64
    public var bytesTotal: UInt64
    public var events: UInt64
}

/// Reads the whole trace once and runs every analysis.
public func analyzeTrace(_ reader: TraceReader, options: AnalysisOptions = AnalysisOptions(),
                         progress: ((AnalysisProgress) -> Void)? = nil) -> TraceAnalysis {
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
    return analyzer.finish(decodeDamage: events.damage)
}

public struct TraceAnalyzer {
    public let reader: TraceReader
    public let options: AnalysisOptions
    public private(set) var resources: ResourceTable
    var kindCounts = [UInt64](repeating: 0, count: 256)
    var total: UInt64 = 0
    var firstNs: UInt64 = .max
    var lastNs: UInt64 = 0
    var lastEventNs: [UInt64]
    var streamPid: [UInt32]
    /// (pid << 32 | tid) -> user stream index, to find the callback running on a syscall's thread.
    var userStreamOfThread = FastMap<UInt64, Int>()
    var kernelPids = Set<UInt32>()
    var callbacks: CallbackTracker
    var loop: LoopTracker
    var io: IOTracker
    var kernelLoop: KernelLoopTracker
    var busySeconds = BusySecondsTracker(.callbacks)
    var busySecondsBetweenWaits = BusySecondsTracker(.betweenEpollWaits)

    public init(reader: TraceReader, options: AnalysisOptions = AnalysisOptions()) {
        self.reader = reader
        self.options = options
        let n = reader.streams.count
        resources = ResourceTable(maxLive: options.maxTrackedResources)
        lastEventNs = [UInt64](repeating: 0, count: n)
        streamPid = reader.streams.map(\.pid)
        for s in reader.streams where !s.isKernel {
            userStreamOfThread.set(UInt64(s.pid) << 32 | UInt64(s.tid), s.index)
        }
        callbacks = CallbackTracker(streams: n, options: options)
        loop = LoopTracker(streams: n)
        io = IOTracker(streams: n)
        kernelLoop = KernelLoopTracker(top: options.top)
    }

    /// The callback running on (pid, tid) right now, if any: the resource and its frame.
    public func runningCallback(pid: UInt32, tid: UInt32, enteredAt ns: UInt64) -> (asyncID: UInt64, type: String)? {
        guard let s = userStreamOfThread[UInt64(pid) << 32 | UInt64(tid)],
              let f = callbacks.running(stream: s, enteredAt: ns) else { return nil }
        return (f.asyncID, resources.typeName(f.type))
    }

    public mutating func consume(_ e: TraceEvent) { consume(stream: e.stream, e.event) }

    public mutating func consume(stream s: Int, _ ev: borrowing DecodedEvent) {
        let ns = ev.timestampNs
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
        case .before:
            let key = ResourceKey(pid: pid, asyncID: ev.u(0))
            let info = resources.info(key)
            callbacks.before(stream: s, asyncID: ev.u(0), type: info?.type ?? untrackedType(), ns: ns)
            if let fd = info?.fd, fd >= 0 { io.callbackStarts(stream: s, pid: pid, fd: Int64(fd), ns: ns) }
        case .after:
            if let (frame, d) = callbacks.after(stream: s, asyncID: ev.u(0), ns: ns) { finished(frame, d, stream: s) }
        case .destroy:
            let key = ResourceKey(pid: pid, asyncID: ev.u(0))
            if let info = resources.destroy(key) {
                callbacks.destroyed[Int(info.type)] += 1
                if info.fd >= 0 { io.releaseOwner(pid: pid, fd: Int64(info.fd), asyncID: key.asyncID) }
            }
        case .resourceFD:
            let key = ResourceKey(pid: pid, asyncID: ev.u(0))
            let fd = ev.s(1)
            guard let info = resources.live[key] else { break }
            if info.fd >= 0 && Int64(info.fd) != fd { io.releaseOwner(pid: pid, fd: Int64(info.fd), asyncID: key.asyncID) }
            resources.setFD(key, fd: Int32(truncatingIfNeeded: fd))
            io.setOwner(pid: pid, fd: fd, asyncID: key.asyncID, type: info.type)
        case .loopIteration:
            callbacks.loopIsIdle(stream: s)
            loop.iteration(stream: s, ns: ns)
        case .phaseEnter:
            loop.phaseEnter(stream: s, phase: ev.u(0), ns: ns)
        case .phaseStart:
            if ev.u(1) != 0 {  // also begins a loop iteration
                callbacks.loopIsIdle(stream: s)
                loop.iteration(stream: s, ns: ns)
            }
            loop.phaseEnter(stream: s, phase: ev.u(0), ns: ns)
        case .phaseLeave:
            loop.phaseLeave(stream: s, phase: ev.u(0), ns: ns)
        case .pollStart:
            callbacks.loopIsIdle(stream: s)
            loop.pollStart(stream: s, ns: ns)
            io.pollStart(stream: s)
        case .pollEnd:
            loop.pollEnd(stream: s, ns: ns)
            io.pollEnd(stream: s, fds: ev.list, ns: ns)
        case .syscall:
            syscall(ev, exitNs: ns)
        case .epollWait:
            let (p, tid, nr, dur) = (UInt32(truncatingIfNeeded: ev.u(0)), UInt32(truncatingIfNeeded: ev.u(1)), ev.u(2), ev.u(7))
            kernelPids.insert(p)
            io.syscall(pid: p, nr: nr, fd: ev.s(3), ret: ev.s(6), durationNs: dur, running: nil, ownerFD: nil)
            if let gap = kernelLoop.wait(pid: p, tid: tid, exitNs: ns, durationNs: dur) {
                busySecondsBetweenWaits.busy(startNs: gap.startNs, endNs: gap.startNs &+ gap.durationNs, earliestNs: firstNs)
            }
        default:
            break
        }
    }

    private mutating func untrackedType() -> Int32 {
        let t = resources.intern("(untracked)")
        callbacks.ensureType(t)
        return t
    }

    private mutating func syscall(_ ev: borrowing DecodedEvent, exitNs: UInt64) {
        let pid = UInt32(truncatingIfNeeded: ev.u(0)), tid = UInt32(truncatingIfNeeded: ev.u(1))
        let nr = ev.u(2), fd = ev.s(3), ret = ev.s(5), dur = ev.u(6)
        if kernelPids.count < 4096 { kernelPids.insert(pid) }
        let enter = exitNs >= dur ? exitNs - dur : 0
        var running: UInt64? = nil
        var ownerFD: Int64? = nil
        if let s = userStreamOfThread[UInt64(pid) << 32 | UInt64(tid)], let frame = callbacks.running(stream: s, enteredAt: enter) {
            running = frame.asyncID
            if let f = resources.info(ResourceKey(pid: pid, asyncID: frame.asyncID))?.fd, f >= 0 { ownerFD = Int64(f) }
            let isIO = IOTracker.ioClass(nr) != 0
            callbacks.noteSyscall(stream: s, nr: nr, fd: fd, ns: dur, bytes: isIO && ret > 0 ? UInt64(ret) : 0)
        }
        io.syscall(pid: pid, nr: nr, fd: fd, ret: ret, durationNs: dur, running: running, ownerFD: ownerFD)
    }

    private mutating func finished(_ frame: CallbackFrame, _ d: UInt64, stream s: Int) {
        if callbacks.stacks[s].isEmpty {
            busySeconds.busy(startNs: frame.beforeNs, endNs: frame.beforeNs &+ d, earliestNs: firstNs)
        }
        let blocking = d >= options.blockingThresholdNs
        if blocking {
            callbacks.blockingCount += 1
            callbacks.blockingNs += d
        }
        guard callbacks.slowest.admits(d) || (blocking && callbacks.blockingLongest.admits(d)) else { return }
        let st = reader.streams[s]
        let record = CallbackRecord(
            asyncID: frame.asyncID, type: resources.typeName(frame.type), pid: st.pid, tid: st.tid,
            threadName: st.threadName, startNs: frame.beforeNs, durationNs: d,
            causalChain: resources.causalChain(ResourceKey(pid: st.pid, asyncID: frame.asyncID)),
            syscalls: CallbackTracker.syscalls(of: frame))
        callbacks.slowest.offer(d, record)
        if blocking { callbacks.blockingLongest.offer(d, record) }
    }

    public func finish(decodeDamage: [TraceDamage] = []) -> TraceAnalysis {
        var byKind: [String: UInt64] = [:]
        for (code, n) in kindCounts.enumerated() where n > 0 {
            byKind[EventKind(rawValue: UInt8(code)).description] = n
        }
        let damage = reader.damage + decodeDamage
        let userPids = Set(reader.streams.filter { !$0.isKernel }.map(\.pid))
        let overview = Overview(
            path: reader.path, program: reader.header.program, pid: reader.header.pid,
            formatVersion: reader.header.version, recordingStartNs: reader.header.monotonicStartNs,
            realtimeStartNs: reader.header.realtimeStartNs, startNs: total == 0 ? 0 : firstNs, endNs: lastNs,
            eventsByKind: byKind, totalEvents: total,
            userThreads: reader.streams.filter { !$0.isKernel }.count,
            processes: userPids.union(kernelPids).sorted(),
            hasUserEvents: reader.hasUserEvents, hasKernelEvents: reader.hasKernelEvents,
            droppedUser: reader.droppedUser, droppedKernel: reader.droppedKernel, damage: damage,
            eventsLostToDamage: damage.reduce(0) { $0 + ($1.eventsLost ?? 0) })

        let loopSummary = loop.summary(streams: reader.streams.map { ($0.pid, $0.tid, $0.threadName) },
                                       lastEventNs: lastEventNs)

        var types: [ResourceTypeStats] = []
        for t in 0..<callbacks.durations.count where callbacks.created[t] > 0 || callbacks.durations[t].count > 0 {
            types.append(ResourceTypeStats(type: resources.typeName(Int32(t)), created: callbacks.created[t],
                                           destroyed: callbacks.destroyed[t],
                                           callbacks: DurationSummary(callbacks.durations[t])))
        }
        types.sort { ($0.callbacks.totalNs, $0.created) > ($1.callbacks.totalNs, $1.created) }

        let syscalls = io.syscallTotals().map { nr, a in
            SyscallStats(name: SyscallNames.name(nr), count: a.count, bytes: a.bytes, totalNs: a.ns, errors: a.errors,
                         attributed: a.attributed)
        }.sorted { ($0.totalNs, $0.count) > ($1.totalNs, $1.count) }
        var fdList: [(FDKey, FDAccum)] = []
        io.byFD.forEach { fdList.append(($0, $1)) }
        let fds = fdList.map { k, f in
            FDStats(pid: k.pid, fd: k.fd, resourceType: f.ownerType >= 0 ? resources.typeName(f.ownerType) : nil,
                    reads: f.reads, writes: f.writes, bytesRead: f.bytesRead, bytesWritten: f.bytesWritten,
                    syscalls: f.syscalls, eagain: f.eagain, kernelNs: f.kernelNs,
                    readyToCallbackNs: DurationSummary(f.readyToCallback))
        }.sorted { ($0.pid, $0.fd) < ($1.pid, $1.fd) }

        return TraceAnalysis(
            options: options, overview: overview, loop: loopSummary, resources: types,
            slowestCallbacks: callbacks.slowest.sorted,
            blocking: BlockingSummary(thresholdNs: options.blockingThresholdNs, count: callbacks.blockingCount,
                                      totalNs: callbacks.blockingNs, longest: callbacks.blockingLongest.sorted),
            io: IOSummary(syscalls: syscalls, fds: fds, readWriteSyscalls: io.readWrite,
                          readWriteAttributed: io.readWriteAttributed, readWriteAttributedToOwner: io.readWriteToOwner,
                          readWriteOnResourceFDs: io.readWriteOnOwnedFDs,
                          readWriteOnResourceFDsByOwner: io.readWriteOnOwnedFDsByOwner),
            openAtExit: openAtExit(), untrackedResources: resources.untracked, kernelLoop: kernelLoop.summary(),
            unmatchedAfters: callbacks.unmatchedAfters, abandonedCallbacks: callbacks.abandonedFrames,
            busiestSecond: busySeconds.busiest() ?? busySecondsBetweenWaits.busiest())
    }

    /// Live resources grouped by type; the most common causal chain (sampled) says where they came from.
    private func openAtExit() -> [OpenResourceGroup] {
        struct Group {
            var count: UInt64 = 0
            var oldest: UInt64 = .max
            var chains: [[String]: Int] = [:]
            var sampled = 0
        }
        var groups: [Int32: Group] = [:]
        resources.live.forEach { key, info in
            var g = groups[info.type] ?? Group()
            g.count += 1
            g.oldest = min(g.oldest, info.initNs)
            if g.sampled < 64 {
                g.sampled += 1
                g.chains[Array(resources.causalChain(key).dropLast()), default: 0] += 1
            }
            groups[info.type] = g
        }
        return groups.map { t, g in
            let chain = g.chains.max { ($0.value, $1.key.count) < ($1.value, $0.key.count) }?.key ?? []
            return OpenResourceGroup(type: resources.typeName(t), count: g.count, createdBy: chain, oldestInitNs: g.oldest)
        }.sorted { ($0.count, $1.type) > ($1.count, $0.type) }
    }
}
