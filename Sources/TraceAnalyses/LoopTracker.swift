// Event-loop iterations, epoll waiting and phase times per loop thread, from the runtime's loop events
// (loopIteration/phaseEnter/phaseLeave, or the recorder's folded phaseStart; see docs/trace-format.md).
import TraceFormat

struct LoopState {
    var iterations: UInt64 = 0
    var firstIterationNs: UInt64 = 0
    var lastIterationNs: UInt64 = 0
    var pollStartNs: UInt64?
    var pollWaitNs: UInt64 = 0
    var iterationNs = LogHistogram()
    /// Iterations since the interval began (`startInterval`; the whole trace if it never does).
    var recentIterationNs = LogHistogram()
    var phaseStart = [UInt64?](repeating: nil, count: TraceLoopPhase.allCases.count)
    var phaseNs = [UInt64](repeating: 0, count: TraceLoopPhase.allCases.count)
    var phaseCount = [UInt64](repeating: 0, count: TraceLoopPhase.allCases.count)
    /// The phase begun last and not yet ended (a phaseStart ends it; so does the stream's end).
    var openPhase: Int?
}

extension LoopState {
    mutating func iteration(ns: UInt64) {
        if iterations == 0 {
            firstIterationNs = ns
        } else {
            let d = ns - min(ns, lastIterationNs)
            iterationNs.record(d)
            recentIterationNs.record(d)
        }
        iterations += 1
        lastIterationNs = ns
    }

    /// A phase begins (phaseEnter, or phaseStart, which also ends the open phase).
    mutating func phaseEnter(phase: UInt64, ns: UInt64) {
        guard phase < UInt64(TraceLoopPhase.allCases.count) else { return }
        if let open = openPhase { phaseLeave(phase: UInt64(open), ns: ns) }
        phaseStart[Int(phase)] = ns
        openPhase = Int(phase)
    }

    mutating func phaseLeave(phase: UInt64, ns: UInt64) {
        guard phase < UInt64(TraceLoopPhase.allCases.count), let start = phaseStart[Int(phase)] else { return }
        phaseNs[Int(phase)] = phaseNs[Int(phase)].addingSaturated(ns - min(ns, start))
        phaseCount[Int(phase)] += 1
        phaseStart[Int(phase)] = nil
        if openPhase == Int(phase) { openPhase = nil }
    }
}

struct LoopTracker {
    var states: [LoopState?]
    /// Loops seen by the kernel (loopPhase events of uprobes on libuv), per thread: their own slots,
    /// apart from the streams' (a thread recorded by --pid has no stream).
    var kernelStates: [LoopState] = []
    var kernelThreads: [(pid: UInt32, tid: UInt32)] = []
    var kernelLastNs: [UInt64] = []
    var kernelSlot: [UInt64: Int] = [:]
    static let maxKernelLoops = 4096

    init(streams: Int) { states = [LoopState?](repeating: nil, count: streams) }

    mutating func grow(streams: Int) {
        while states.count < streams { states.append(nil) }
    }

    mutating func startInterval() {
        for s in states.indices where states[s] != nil { states[s]!.recentIterationNs = LogHistogram() }
        for k in kernelStates.indices { kernelStates[k].recentIterationNs = LogHistogram() }
    }

    // The states are changed in place: a copy would share the histograms' buckets with the array's
    // element, and the first record into it would copy them (15 KB each; it was most of the analyses' time).

    mutating func iteration(stream s: Int, ns: UInt64) {
        if states[s] == nil { states[s] = LoopState() }
        states[s]!.iteration(ns: ns)
    }

    mutating func phaseEnter(stream s: Int, phase: UInt64, ns: UInt64) {
        guard phase < UInt64(TraceLoopPhase.allCases.count) else { return }
        if states[s] == nil { states[s] = LoopState() }
        states[s]!.phaseEnter(phase: phase, ns: ns)
    }

    mutating func phaseLeave(stream s: Int, phase: UInt64, ns: UInt64) {
        guard states[s] != nil else { return }
        states[s]!.phaseLeave(phase: phase, ns: ns)
    }

    mutating func pollStart(stream s: Int, ns: UInt64) {
        if states[s] == nil { states[s] = LoopState() }
        states[s]!.pollStartNs = ns
    }

    mutating func pollEnd(stream s: Int, ns: UInt64) {
        guard states[s] != nil, let start = states[s]!.pollStartNs else { return }
        states[s]!.pollWaitNs = states[s]!.pollWaitNs.addingSaturated(ns - min(ns, start))
        states[s]!.pollStartNs = nil
    }

    /// A loopPhase event: thread (pid, tid) entered `phase`, beginning an iteration if `startsIteration`.
    mutating func kernelPhase(pid: UInt32, tid: UInt32, phase: UInt64, startsIteration: Bool, ns: UInt64) {
        let key = UInt64(pid) << 32 | UInt64(tid)
        var k = kernelSlot[key] ?? -1
        if k < 0 {
            guard kernelStates.count < Self.maxKernelLoops else { return }
            k = kernelStates.count
            kernelSlot[key] = k
            kernelStates.append(LoopState())
            kernelThreads.append((pid, tid))
            kernelLastNs.append(ns)
        }
        if startsIteration { kernelStates[k].iteration(ns: ns) }
        kernelStates[k].phaseEnter(phase: phase, ns: ns)
        kernelLastNs[k] = max(kernelLastNs[k], ns)
    }

    /// An epoll wait of a thread whose loop the kernel sees: its time is the loop's waiting.
    mutating func kernelWait(pid: UInt32, tid: UInt32, durationNs: UInt64, exitNs: UInt64) {
        guard let k = kernelSlot[UInt64(pid) << 32 | UInt64(tid)] else { return }
        kernelStates[k].pollWaitNs = kernelStates[k].pollWaitNs.addingSaturated(durationNs)
        kernelLastNs[k] = max(kernelLastNs[k], exitNs)
    }

    static func phases(_ ns: [UInt64], _ counts: [UInt64]) -> [PhaseTime] {
        TraceLoopPhase.allCases.compactMap { p in
            counts[Int(p.rawValue)] == 0
                ? nil
                : PhaseTime(phase: p.name, count: counts[Int(p.rawValue)], totalNs: ns[Int(p.rawValue)])
        }
    }

    /// `lastEventNs`: each stream's last event, where its final iteration ends; `threadName` names the
    /// loops' threads (a stream's own name where it gives none).
    func summary(
        streams: [(pid: UInt32, tid: UInt32, name: String?)], lastEventNs: [UInt64],
        threadName: (UInt32, UInt32) -> String? = { _, _ in nil }
    ) -> LoopSummary? {
        var threads: [LoopThread] = []
        var all = LogHistogram()
        var phaseNs = [UInt64](repeating: 0, count: TraceLoopPhase.allCases.count)
        var phaseCount = [UInt64](repeating: 0, count: TraceLoopPhase.allCases.count)
        var iterations: UInt64 = 0, span: UInt64 = 0, wait: UInt64 = 0
        var loops: [(state: LoopState, pid: UInt32, tid: UInt32, name: String?, lastNs: UInt64, kernel: Bool)] = []
        for (s, maybe) in states.enumerated() {
            guard let st = maybe, st.iterations > 0 else { continue }
            let (pid, tid) = (streams[s].pid, streams[s].tid)
            loops.append((st, pid, tid, threadName(pid, tid) ?? streams[s].name, lastEventNs[s], false))
        }
        for (k, st) in kernelStates.enumerated() where st.iterations > 0 {
            let (pid, tid) = kernelThreads[k]
            loops.append((st, pid, tid, threadName(pid, tid), kernelLastNs[k], true))
        }
        for loop in loops {
            var st = loop.state
            let (pid, tid, name, lastNs, kernel) = (loop.pid, loop.tid, loop.name, loop.lastNs, loop.kernel)
            let end = max(lastNs, st.lastIterationNs)
            // A phase still open (its loop returned with no event after it) ends at the thread's last event.
            if let open = st.openPhase, let start = st.phaseStart[open] {
                st.phaseNs[open] = st.phaseNs[open].addingSaturated(end - min(end, start))
                st.phaseCount[open] += 1
            }
            // The last iteration runs until the thread's last event.
            st.iterationNs.record(end - st.lastIterationNs)
            st.recentIterationNs.record(end - st.lastIterationNs)
            let threadSpan = end - st.firstIterationNs
            let util = threadSpan == 0 ? 0 : Double(threadSpan - min(threadSpan, st.pollWaitNs)) / Double(threadSpan)
            threads.append(
                LoopThread(
                    pid: pid, tid: tid, threadName: name,
                    iterations: st.iterations, spanNs: threadSpan, pollWaitNs: st.pollWaitNs,
                    utilization: util, iterationNs: DurationSummary(st.iterationNs),
                    recentIterationNs: DurationSummary(st.recentIterationNs),
                    phases: Self.phases(st.phaseNs, st.phaseCount), fromKernel: kernel))
            all.merge(st.iterationNs)
            for i in 0..<phaseNs.count {
                phaseNs[i] = phaseNs[i].addingSaturated(st.phaseNs[i])
                phaseCount[i] += st.phaseCount[i]
            }
            iterations += st.iterations
            span = span.addingSaturated(threadSpan)
            wait = wait.addingSaturated(st.pollWaitNs)
        }
        guard !threads.isEmpty else { return nil }
        return LoopSummary(
            threads: threads, iterations: iterations, spanNs: span, pollWaitNs: wait,
            utilization: span == 0 ? 0 : Double(span - min(span, wait)) / Double(span),
            iterationNs: DurationSummary(all), phases: Self.phases(phaseNs, phaseCount))
    }
}
