// The code behind the report's slow moments: the CPU samples taken on a blocking callback's thread
// while it ran (or in a loop stall), grouped by stack and named, most samples first.
import TraceReader
import TraceSymbols

/// One stack of code and how much of a callback's (or stall's) time was sampled in it.
public struct CodeStackSummary: Sendable {
    /// Innermost first.
    public var frames: [CodeFrame]
    public var samples: Int
    /// samples × the sampling period: CPU time in this stack.
    public var ns: UInt64
}

extension TraceAnalysis {
    /// Fills `stacks` of the listed blocking callbacks, slowest callbacks and loop stalls from the
    /// trace's CPU samples (a pass over the kernel stream; nothing when it has none).
    public mutating func attachStacks(reader: TraceReader, top: Int = 3) {
        let data = TraceSamples(reader: reader)
        guard !data.samples.isEmpty else { return }
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
        guard !byThread.isEmpty else { return }
        var perList: [[[ [Int]: Int ]]] = [
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
        for i in blocking.longest.indices { blocking.longest[i].stacks = summaries(perList[0][i]) }
        for i in slowestCallbacks.indices { slowestCallbacks[i].stacks = summaries(perList[1][i]) }
        for i in stalls.indices { stalls[i].stacks = summaries(perList[2][i]) }
        samplePeriodNs = period
    }
}
