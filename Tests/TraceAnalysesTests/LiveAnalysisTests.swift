// The live view's analysis: a file followed second by second gives per-interval numbers that add up
// to the whole trace's, and each interval lists only its own slowest callbacks.
import Foundation
import Testing
import TraceAnalyses
import TraceFormat
import TraceReader
import TraceReports

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

    /// `top` gave a thread's shares of its own stretch in the interval: redis-server's bio threads, seen for a few
    /// µs at their start before sleeping 30 s on a condition variable, were "84.0% on CPU, 16.0% runnable" in the
    /// first interval. Shares are of the interval (or of the thread's stretch when longer: a wait that ended in it).
    @Test func aThreadSeenBrieflyIsNotShownBusyForTheInterval() throws {
        var k = KernelScript(pid: 7, startNs: 1_000_000_000)
        k.threadName(tid: 7, "busy", at: 1_000_000_000)
        k.threadName(tid: 8, "napper", at: 1_000_000_000)
        // busy: a syscall every 10 ms for a second, preempted 1 ms now and then (scheduler events).
        for i in UInt64(0)..<100 {
            let t = 1_000_000_000 + i * 10_000_000
            k.syscall(tid: 7, nr: 0, fd: 3, ret: 1, enter: t, exit: t + 1_000)
            if i % 10 == 5 { k.offCPU(tid: 7, out: t + 2_000, state: 0, blocked: 0, runqueue: 1_000_000) }
        }
        // napper: 10 µs of CPU, 8 µs of it before being preempted 2 µs, then a sleep not over by the interval's end.
        k.syscall(tid: 8, nr: 0, fd: 4, ret: 1, enter: 1_000_100_000, exit: 1_000_101_000)
        k.offCPU(tid: 8, out: 1_000_102_000, state: 0, blocked: 0, runqueue: 2_000)
        k.syscall(tid: 8, nr: 0, fd: 4, ret: 1, enter: 1_000_108_000, exit: 1_000_110_000)
        let path = writeTrace([k.stream()], pid: 7, startNs: 1_000_000_000)
        defer { removeTrace(path) }
        let follower = try TraceFollower(path: path)
        try follower.poll()
        var live = LiveTraceAnalysis(options: AnalysisOptions())
        live.consume(follower, all: true)
        let next = live.interval()
        let iv = try #require(next)
        #expect(iv.durationNs >= 990_000_000)
        let lines = LiveText.render(iv, options: LiveTextOptions())
        let napper = try #require(lines.first { $0.hasPrefix("napper") }, "\(lines)")
        let busy = try #require(lines.first { $0.hasPrefix("busy") }, "\(lines)")
        let napperShares = napper.split(separator: " ").filter { $0.hasSuffix("%") }
        let busyShares = busy.split(separator: " ").filter { $0.hasSuffix("%") }
        #expect(napperShares.first == "0.0%" && napperShares.dropFirst().first == "0.0%", "\(napper)")
        #expect(busyShares.first.map { $0.hasPrefix("9") } == true, "\(busy)")
    }
}
