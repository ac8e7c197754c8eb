// The live view's analysis: a file followed second by second gives per-interval numbers that add up
// to the whole trace's, and each interval lists only its own slowest callbacks.
import Foundation
import Testing
import TraceAnalyses
import TraceFormat
import TraceReader

@Suite struct LiveAnalysisTests {
    private func append(_ path: String, _ bytes: [UInt8]) {
        let h = FileHandle(forWritingAtPath: path)!
        h.seekToEndOfFile()
        h.write(Data(bytes))
        try? h.close()
    }

    /// Second `s` of a loop thread: 10 Timeout callbacks of 1 ms (one of `slowMs` at 500 ms when given),
    /// a new Immediate resource each second, iterations between callbacks.
    private func second(_ s: UInt64, slowMs: UInt64? = nil) -> StreamScript {
        let base: UInt64 = 1_000_000_000 * (s + 1)
        var t = StreamScript(pid: 5, tid: 5, startNs: base)
        t.sequence = s
        if s == 0 {
            t.threadName("main", at: base)
            t.initResource(100, "Timeout", trigger: 1, at: base)
        }
        t.initResource(200 + s, "Immediate", trigger: 1, at: base + 1)
        for i in 0..<UInt64(10) {
            let at = base + 10 + i * 90_000_000
            let d = i == 5 ? (slowMs ?? 1) * 1_000_000 : 1_000_000
            t.loopIteration(s * 10 + i, at: at)
            t.before(100, at: at + 1)
            t.after(100, at: at + 1 + d)
            t.pollStart(timeoutMs: 100, at: at + 2 + d)
            t.pollEnd(fds: [], at: at + 89_000_000)
        }
        return t
    }

    @Test func intervalsAddUpAndHoldTheirOwnSlowestCallbacks() throws {
        let path = NSTemporaryDirectory() + "asynctrace-live-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).atrace"
        _ = FileManager.default.createFile(
            atPath: path,
            contents: Data(
                FileHeader(
                    pid: 5, monotonicStartNs: 1_000_000_000, realtimeStartNs: 0,
                    program: "./live"
                ).encode()))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let follower = try TraceFollower(path: path)
        var options = AnalysisOptions()
        options.blockingThresholdNs = 50_000_000
        var live = LiveTraceAnalysis(options: options)
        var intervals: [LiveInterval] = []
        for s in UInt64(0)..<3 {
            append(path, second(s, slowMs: s == 1 ? 80 : nil).sealed())
            try follower.poll()
            live.consume(follower, all: true)
            let iv = live.interval()
            intervals.append(try #require(iv))
        }
        #expect(intervals.map { $0.callbackTypes.first { $0.type == "Timeout" }?.callbacks ?? 0 } == [10, 10, 10])
        // Only the second second had the slow callback, and it is listed there only.
        #expect(intervals[1].slowestCallbacks.first?.durationNs == 80_000_000)
        #expect(intervals[0].slowestCallbacks.allSatisfy { $0.durationNs < 50_000_000 })
        #expect(intervals[2].slowestCallbacks.allSatisfy { $0.durationNs < 50_000_000 })
        // Loops: one thread per interval, busy ~1% of the first second and ~10% of the second.
        #expect(intervals.allSatisfy { $0.loops.count == 1 })
        #expect(intervals[0].loops[0].utilization < 0.03)
        #expect(intervals[1].loops[0].utilization > 0.08)
        // Resources alive grow by one Immediate a second (never destroyed), plus the Timeout.
        #expect(intervals.map { $0.resourcesAlive.reduce(0) { $0 + $1.count } } == [2, 3, 4])
        // The whole file read at once agrees with the sum of the intervals.
        let whole = analyzeTrace(try TraceReader(path: path), options: options)
        let total = intervals.reduce(UInt64(0)) { $0 + $1.events }
        #expect(total == whole.overview.totalEvents)
        #expect(whole.resources.first { $0.type == "Timeout" }?.callbacks.count == 30)
        #expect(intervals.allSatisfy { $0.damage.isEmpty })
    }

    @Test func intervalsBeforeTheFirstEventStartAtTheRecordingsStart() throws {
        let path = NSTemporaryDirectory() + "asynctrace-live-empty-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).atrace"
        _ = FileManager.default.createFile(
            atPath: path,
            contents: Data(FileHeader(pid: 5, monotonicStartNs: 1_000_000_000, realtimeStartNs: 0, program: "./live").encode()))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let follower = try TraceFollower(path: path)
        var live = LiveTraceAnalysis(options: AnalysisOptions())
        try follower.poll()
        live.consume(follower, all: true)
        // No event yet: the view stands at the recording's start, not at time 0.
        if let empty = live.interval() {
            #expect(empty.endNs == 1_000_000_000 && empty.durationNs == 0, "\(empty.startNs)...\(empty.endNs)")
        }
        append(path, second(0).sealed())
        try follower.poll()
        live.consume(follower, all: true)
        let next = live.interval()
        let first = try #require(next)
        // From the recording's start (or the first event) to the last event of that second: about 1 s, not the clock's age.
        #expect(first.startNs >= 1_000_000_000 && first.durationNs <= 1_000_000_000, "\(first.startNs)...\(first.endNs)")
    }
}
