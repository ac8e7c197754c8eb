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

struct LoopTracker {
    var states: [LoopState?]

    init(streams: Int) { states = [LoopState?](repeating: nil, count: streams) }

    mutating func grow(streams: Int) {
        while states.count < streams { states.append(nil) }
    }

    mutating func startInterval() {
        for s in states.indices where states[s] != nil { states[s]!.recentIterationNs = LogHistogram() }
    }

    mutating func iteration(stream s: Int, ns: UInt64) {
        // In place: a copy of the state would share the histograms' buckets with the array's element, and
        // the first record into it would copy them (15 KB each; it was most of the analyses' time).
        if states[s] == nil { states[s] = LoopState() }
        if states[s]!.iterations == 0 {
            states[s]!.firstIterationNs = ns
        } else {
            let d = ns - states[s]!.lastIterationNs
            states[s]!.iterationNs.record(d)
            states[s]!.recentIterationNs.record(d)
        }
        states[s]!.iterations += 1
        states[s]!.lastIterationNs = ns
    }

    /// A phase begins (phaseEnter, or phaseStart, which also ends the open phase).
    mutating func phaseEnter(stream s: Int, phase: UInt64, ns: UInt64) {
        guard phase < UInt64(TraceLoopPhase.allCases.count) else { return }
        if states[s] == nil { states[s] = LoopState() }
        if let open = states[s]!.openPhase { phaseLeave(stream: s, phase: UInt64(open), ns: ns) }
        states[s]!.phaseStart[Int(phase)] = ns
        states[s]!.openPhase = Int(phase)
    }

    mutating func phaseLeave(stream s: Int, phase: UInt64, ns: UInt64) {
        guard phase < UInt64(TraceLoopPhase.allCases.count), states[s] != nil,
            let start = states[s]!.phaseStart[Int(phase)]
        else { return }
        states[s]!.phaseNs[Int(phase)] = states[s]!.phaseNs[Int(phase)].addingSaturated(ns - min(ns, start))
        states[s]!.phaseCount[Int(phase)] += 1
        states[s]!.phaseStart[Int(phase)] = nil
        if states[s]!.openPhase == Int(phase) { states[s]!.openPhase = nil }
    }

    mutating func pollStart(stream s: Int, ns: UInt64) {
        if states[s] == nil { states[s] = LoopState() }
        states[s]!.pollStartNs = ns
    }

    mutating func pollEnd(stream s: Int, ns: UInt64) {
        guard states[s] != nil, let start = states[s]!.pollStartNs else { return }
        states[s]!.pollWaitNs = states[s]!.pollWaitNs.addingSaturated(ns - start)
        states[s]!.pollStartNs = nil
    }

    static func phases(_ ns: [UInt64], _ counts: [UInt64]) -> [PhaseTime] {
        TraceLoopPhase.allCases.compactMap { p in
            counts[Int(p.rawValue)] == 0
                ? nil
                : PhaseTime(phase: p.name, count: counts[Int(p.rawValue)], totalNs: ns[Int(p.rawValue)])
        }
    }

    /// `lastEventNs`: each stream's last event, where its final iteration ends.
    func summary(streams: [(pid: UInt32, tid: UInt32, name: String?)], lastEventNs: [UInt64]) -> LoopSummary? {
        var threads: [LoopThread] = []
        var all = LogHistogram()
        var phaseNs = [UInt64](repeating: 0, count: TraceLoopPhase.allCases.count)
        var phaseCount = [UInt64](repeating: 0, count: TraceLoopPhase.allCases.count)
        var iterations: UInt64 = 0, span: UInt64 = 0, wait: UInt64 = 0
        for (s, maybe) in states.enumerated() {
            guard var st = maybe, st.iterations > 0 else { continue }
            let end = max(lastEventNs[s], st.lastIterationNs)
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
                    pid: streams[s].pid, tid: streams[s].tid, threadName: streams[s].name,
                    iterations: st.iterations, spanNs: threadSpan, pollWaitNs: st.pollWaitNs,
                    utilization: util, iterationNs: DurationSummary(st.iterationNs),
                    recentIterationNs: DurationSummary(st.recentIterationNs),
                    phases: Self.phases(st.phaseNs, st.phaseCount)))
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
