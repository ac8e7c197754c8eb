import Foundation
import Testing
import TraceFormat
@testable import TraceAnalyses
import TraceReader
import TraceReports

/// One loop thread and a kernel stream with known syscalls; every number below follows from the script.
/// Times are ns after T = 1 s.
func scriptedServerTrace() -> String {
    let T: UInt64 = 1_000_000_000
    var m = StreamScript(pid: 100, tid: 100, startNs: T)
    var k = StreamScript(pid: 100, tid: 0, kernel: true, startNs: T)
    m.dropped = 5
    k.dropped = 2
    m.threadName("main", at: T)
    m.initResource(2, "TCPSERVERWRAP", trigger: 1, at: T)
    m.resourceFD(2, fd: 5, at: T)
    // Iteration 1: wait 1 ms, the server's fd is ready, it accepts.
    m.loopIteration(1, at: T + 1_000)
    m.phaseEnter(.poll, at: T + 2_000)
    m.pollStart(timeoutMs: -1, at: T + 2_000)
    k.epollWait(pid: 100, tid: 100, epfd: 3, ret: 1, enter: T + 2_000, exit: T + 1_002_000, ready: [5])
    m.pollEnd(fds: [5], at: T + 1_002_000)
    m.before(2, at: T + 1_003_024)  // ready → callback 1,024 ns
    k.syscall(pid: 100, tid: 100, nr: 288, fd: 5, ret: 7, enter: T + 1_003_500, exit: T + 1_003_800)
    m.initResource(3, "TCPWRAP", trigger: 2, at: T + 1_004_000)
    m.resourceFD(3, fd: 7, at: T + 1_004_500)
    m.after(2, at: T + 1_010_024)  // 7,000 ns
    m.phaseLeave(.poll, at: T + 1_011_000)
    // Iteration 2: the connection is readable: read, EAGAIN, start a timer, write.
    m.loopIteration(2, at: T + 1_020_000)
    m.phaseEnter(.poll, at: T + 1_021_000)
    m.pollStart(timeoutMs: -1, at: T + 1_021_000)
    k.epollWait(pid: 100, tid: 100, epfd: 3, ret: 1, enter: T + 1_021_000, exit: T + 2_021_000, ready: [7])
    m.pollEnd(fds: [7], at: T + 2_021_000)
    m.before(3, at: T + 2_023_048)  // ready → callback 2,048 ns
    k.syscall(pid: 100, tid: 100, nr: 0, fd: 7, size: 65_536, ret: 100, enter: T + 2_024_000, exit: T + 2_025_000)
    k.syscall(pid: 100, tid: 100, nr: 0, fd: 7, size: 65_536, ret: -11, enter: T + 2_026_000, exit: T + 2_026_500)
    m.initResource(4, "Timeout", trigger: 3, at: T + 2_027_000)
    k.syscall(pid: 100, tid: 100, nr: 1, fd: 7, size: 100, ret: 100, enter: T + 2_028_000, exit: T + 2_030_000)
    m.after(3, at: T + 2_030_548)  // 7,500 ns
    m.phaseLeave(.poll, at: T + 2_031_000)
    // Iteration 3: the timer's callback blocks for 20 ms reading a file.
    m.loopIteration(3, at: T + 2_040_000)
    m.phaseEnter(.timers, at: T + 2_040_000)
    m.before(4, at: T + 2_041_000)
    k.syscall(pid: 100, tid: 100, nr: 0, fd: 9, size: 4_096, ret: 4_096, enter: T + 2_042_000, exit: T + 22_042_000)
    m.after(4, at: T + 22_050_000)  // 20,009,000 ns
    m.destroy(4, at: T + 22_051_000)
    m.phaseLeave(.timers, at: T + 22_052_000)
    // Iteration 4: a write outside any callback, then a last 1 ms wait.
    m.loopIteration(4, at: T + 22_060_000)
    k.syscall(pid: 100, tid: 100, nr: 1, fd: 1, size: 5, ret: 5, enter: T + 22_061_000, exit: T + 22_062_000)
    m.phaseEnter(.poll, at: T + 22_070_000)
    m.pollStart(timeoutMs: -1, at: T + 22_070_000)
    k.epollWait(pid: 100, tid: 100, epfd: 3, ret: 0, enter: T + 22_070_000, exit: T + 23_070_000, ready: [])
    m.pollEnd(fds: [], at: T + 23_070_000)
    m.phaseLeave(.poll, at: T + 23_071_000)
    return writeTrace([m, k], pid: 100, startNs: T, program: "./server")
}

@Suite struct AnalysesTests {
    @Test func scriptedServer() throws {
        let path = scriptedServerTrace()
        defer { removeTrace(path) }
        var options = AnalysisOptions()
        options.top = 2
        let a = analyzeTrace(try TraceReader(path: path), options: options)
        let T: UInt64 = 1_000_000_000

        // Overview
        let o = a.overview
        #expect(o.program == "./server" && o.pid == 100 && o.formatVersion == TraceFileFormat.currentVersion)
        #expect(o.startNs == T && o.endNs == T + 23_071_000 && o.durationNs == 23_071_000)
        #expect(o.count("init") == 3 && o.count("before") == 3 && o.count("after") == 3 && o.count("destroy") == 1)
        #expect(o.count("syscall") == 6 && o.count("epollWait") == 3 && o.count("loopIteration") == 4)
        #expect(o.droppedUser == 5 && o.droppedKernel == 2 && o.damage.isEmpty)
        #expect(o.hasUserEvents && o.hasKernelEvents && o.userThreads == 1)

        // Loop
        let loop = try #require(a.loop)
        #expect(loop.iterations == 4 && loop.threads.count == 1 && loop.threads[0].threadName == "main")
        #expect(loop.spanNs == 23_070_000 && loop.pollWaitNs == 3_000_000)
        #expect(abs(loop.utilization - 20_070_000.0 / 23_070_000.0) < 1e-9)
        // Iterations: 1,019,000; 1,020,000; 20,020,000; and the last until the final event: 1,011,000.
        #expect(loop.iterationNs.count == 4 && loop.iterationNs.maxNs == 20_020_000)
        #expect(loop.iterationNs.totalNs == 1_019_000 + 1_020_000 + 20_020_000 + 1_011_000)
        #expect(loop.iterationNs.p50Ns <= 1_019_000 && loop.iterationNs.p50Ns >= 1_019_000 * 31 / 32)
        #expect(loop.iterationNs.p99Ns == 20_020_000)
        let phases = Dictionary(uniqueKeysWithValues: loop.phases.map { ($0.phase, ($0.count, $0.totalNs)) })
        #expect(phases["poll"]! == (3, 1_009_000 + 1_010_000 + 1_001_000))
        #expect(phases["timers"]! == (1, 20_012_000))

        // Callbacks by type
        let types = Dictionary(uniqueKeysWithValues: a.resources.map { ($0.type, $0) })
        #expect(types["Timeout"]!.created == 1 && types["Timeout"]!.destroyed == 1)
        #expect(types["Timeout"]!.callbacks.count == 1 && types["Timeout"]!.callbacks.maxNs == 20_009_000)
        #expect(types["TCPWRAP"]!.callbacks.totalNs == 7_500 && types["TCPSERVERWRAP"]!.callbacks.totalNs == 7_000)
        #expect(a.resources.map(\.type) == ["Timeout", "TCPWRAP", "TCPSERVERWRAP"])

        // Slowest, with causal chains
        #expect(a.slowestCallbacks.map(\.asyncID) == [4, 3])
        #expect(a.slowestCallbacks[0].causalChain == ["TCPSERVERWRAP", "TCPWRAP", "Timeout"])
        #expect(a.slowestCallbacks[1].causalChain == ["TCPSERVERWRAP", "TCPWRAP"])
        #expect(a.slowestCallbacks[1].syscalls.map(\.name) == ["write", "read"])
        #expect(a.slowestCallbacks[1].syscalls[1].count == 2 && a.slowestCallbacks[1].syscalls[1].ns == 1_500)

        // Blocking: the timer, with the read it made
        #expect(a.blocking.count == 1 && a.blocking.totalNs == 20_009_000)
        let b = try #require(a.blocking.longest.first)
        #expect(b.asyncID == 4 && b.type == "Timeout" && b.durationNs == 20_009_000 && b.startNs == T + 2_041_000)
        #expect(b.syscalls.count == 1 && b.syscalls[0].name == "read" && b.syscalls[0].fd == 9)
        #expect(b.syscalls[0].ns == 20_000_000 && b.syscalls[0].bytes == 4_096 && b.kernelNs == 20_000_000)

        // Syscalls and attribution
        let sys = Dictionary(uniqueKeysWithValues: a.io.syscalls.map { ($0.name, $0) })
        #expect(sys["read"]!.count == 3 && sys["read"]!.bytes == 4_196 && sys["read"]!.errors == 1 && sys["read"]!.attributed == 3)
        #expect(sys["read"]!.totalNs == 1_000 + 500 + 20_000_000)
        #expect(sys["write"]!.count == 2 && sys["write"]!.bytes == 105 && sys["write"]!.attributed == 1)
        #expect(sys["accept4"]!.count == 1 && sys["accept4"]!.attributed == 1)
        #expect(sys["epoll_wait"]!.count == 3 && sys["epoll_wait"]!.attributed == 0 && sys["epoll_wait"]!.totalNs == 3_000_000)
        #expect(a.io.readWriteSyscalls == 5 && a.io.readWriteAttributed == 4 && a.io.readWriteAttributedToOwner == 3)
        // fd 7 belongs to TCPWRAP 3 from its resourceFD on: its 3 reads/writes ran in that resource's callback.
        #expect(a.io.readWriteOnResourceFDs == 3 && a.io.readWriteOnResourceFDsByOwner == 3)

        // Per fd
        let fds = Dictionary(uniqueKeysWithValues: a.io.fds.map { ($0.fd, $0) })
        #expect(Set(fds.keys) == [1, 3, 5, 7, 9])
        let f7 = fds[7]!
        #expect(f7.resourceType == "TCPWRAP" && f7.reads == 2 && f7.writes == 1 && f7.bytesRead == 100 && f7.bytesWritten == 100)
        #expect(f7.eagain == 1 && f7.syscalls == 3 && f7.kernelNs == 3_500)
        #expect(f7.readyToCallbackNs.count == 1 && f7.readyToCallbackNs.p50Ns == 2_048 && f7.readyToCallbackNs.p99Ns == 2_048)
        #expect(fds[5]!.resourceType == "TCPSERVERWRAP" && fds[5]!.readyToCallbackNs.p50Ns == 1_024 && fds[5]!.syscalls == 1)
        #expect(fds[9]!.reads == 1 && fds[9]!.bytesRead == 4_096 && fds[9]!.resourceType == nil)
        #expect(fds[1]!.writes == 1 && fds[1]!.bytesWritten == 5)
        #expect(fds[3]!.syscalls == 3 && fds[3]!.kernelNs == 3_000_000)

        // Open at exit: the server and its connection
        #expect(a.openAtExit.count == 2)
        let open = Dictionary(uniqueKeysWithValues: a.openAtExit.map { ($0.type, $0) })
        #expect(open["TCPSERVERWRAP"]!.count == 1 && open["TCPSERVERWRAP"]!.createdBy == [])
        #expect(open["TCPWRAP"]!.count == 1 && open["TCPWRAP"]!.createdBy == ["TCPSERVERWRAP"])
        #expect(open["TCPWRAP"]!.oldestInitNs == T + 1_004_000)
    }

    @Test func thresholdDecidesWhatIsBlocking() throws {
        let path = scriptedServerTrace()
        defer { removeTrace(path) }
        var options = AnalysisOptions()
        options.blockingThresholdNs = 7_000
        let a = analyzeTrace(try TraceReader(path: path), options: options)
        #expect(a.blocking.count == 3 && a.blocking.longest.map(\.asyncID) == [4, 3, 2])
        options.blockingThresholdNs = 30_000_000
        #expect(analyzeTrace(try TraceReader(path: path), options: options).blocking.count == 0)
    }

    /// An unmodified program: only the kernel stream. Loop view from its epoll waits.
    @Test func kernelOnlyTrace() throws {
        var k = StreamScript(pid: 200, tid: 0, kernel: true, startNs: 0)
        k.epollWait(pid: 200, tid: 201, epfd: 4, ret: 1, enter: 0, exit: 1_000_000, ready: [6])
        k.syscall(pid: 200, tid: 201, nr: 1, fd: 1, size: 10, ret: 10, enter: 1_100_000, exit: 1_200_000)
        k.epollWait(pid: 200, tid: 201, epfd: 4, ret: 1, enter: 1_524_288, exit: 2_000_000, ready: [6])
        k.syscall(pid: 200, tid: 201, nr: 1, fd: 1, size: 10, ret: 10, enter: 2_100_000, exit: 2_200_000)
        k.syscall(pid: 200, tid: 201, nr: 0, fd: 6, size: 512, ret: -11, enter: 2_300_000, exit: 2_300_100)
        k.epollWait(pid: 200, tid: 201, epfd: 4, ret: 0, enter: 5_145_728, exit: 6_000_000, ready: [])
        let path = writeTrace([k], pid: 200, startNs: 0, program: "python3 -c ...")
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        #expect(!a.overview.hasUserEvents && a.overview.hasKernelEvents && a.loop == nil)
        let kl = try #require(a.kernelLoop)
        #expect(kl.threads.count == 1)
        let t = kl.threads[0]
        #expect(t.pid == 200 && t.tid == 201 && t.waits == 3 && t.spanNs == 6_000_000)
        #expect(t.waitNs == 1_000_000 + 475_712 + 854_272)
        #expect(t.busyNs.count == 2 && t.busyNs.p50Ns == 524_288 && t.busyNs.maxNs == 3_145_728)
        #expect(kl.longestGaps.map(\.durationNs) == [3_145_728, 524_288])
        #expect(kl.longestGaps[0].startNs == 2_000_000)
        let sys = Dictionary(uniqueKeysWithValues: a.io.syscalls.map { ($0.name, $0) })
        #expect(sys["write"]!.count == 2 && sys["write"]!.bytes == 20 && sys["write"]!.attributed == 0)
        #expect(sys["read"]!.errors == 1)
        #expect(a.io.readWriteSyscalls == 3 && a.io.readWriteAttributed == 0)
        let fd6 = try #require(a.io.fds.first { $0.fd == 6 })
        #expect(fd6.eagain == 1 && fd6.reads == 1)
        let text = TextReport.render(a)
        #expect(text.contains("kernel-only trace"))
        #expect(text.contains("none; the longest was 3.15 ms on tid 201 pid 200"))
        let json = try JSONSerialization.jsonObject(with: Data(JSONReport.render(a).utf8)) as! [String: Any]
        let loop = json["loop"] as! [String: Any]
        #expect(loop["source"] as? String == "kernel_epoll_waits" && loop["iterations"] as? Int == 3)
        #expect((json["trace"] as! [String: Any])["kind"] as? String == "kernel-only")
    }

    /// The recorder's folded loop events: a phaseStart ends the open phase and may begin an iteration;
    /// a phase still open at the stream's end ends at its last event.
    @Test func foldedPhaseStartsGiveTheSameLoopSummary() throws {
        let T: UInt64 = 1_000_000_000
        var m = StreamScript(pid: 7, tid: 7, startNs: T)
        m.threadName("main", at: T)
        m.phaseStart(.timers, startsIteration: true, at: T + 1_000)
        m.phaseStart(.poll, startsIteration: false, at: T + 2_000)
        m.pollStart(timeoutMs: 3, at: T + 2_000)
        m.pollEnd(fds: [], at: T + 5_000)
        m.phaseStart(.check, startsIteration: false, at: T + 6_000)
        m.phaseStart(.timers, startsIteration: true, at: T + 10_000)
        m.phaseLeave(.timers, at: T + 12_000)
        m.phaseStart(.check, startsIteration: false, at: T + 15_000)
        m.initResource(9, "Timeout", trigger: 1, at: T + 20_000)
        let path = writeTrace([m], pid: 7, startNs: T)
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        // Event counts are of the file's events; iterations come from the loop analysis.
        #expect(a.overview.count("phaseStart") == 5 && a.overview.count("loopIteration") == 0)
        let loop = try #require(a.loop)
        #expect(loop.iterations == 2 && loop.spanNs == 19_000 && loop.pollWaitNs == 3_000)
        #expect(loop.iterationNs.count == 2 && loop.iterationNs.totalNs == 9_000 + 10_000)
        let phases = Dictionary(uniqueKeysWithValues: loop.phases.map { ($0.phase, ($0.count, $0.totalNs)) })
        #expect(phases["timers"]! == (2, 1_000 + 2_000))
        #expect(phases["poll"]! == (1, 4_000))
        #expect(phases["check"]! == (2, 4_000 + 5_000))
    }

    /// A chunk lost in the middle of a thread takes an after() with it: the open callback is abandoned when
    /// the loop polls again, so the syscalls that follow are not pinned on it.
    @Test func lostChunkDoesNotLeaveACallbackRunningForever() throws {
        var first = StreamScript(pid: 1, tid: 1, startNs: 0)
        first.initResource(5, "Timeout", trigger: 1, at: 0)
        first.loopIteration(1, at: 10)
        first.before(5, at: 20)
        // chunk 1 (with after(5)) is missing from the file
        var third = StreamScript(pid: 1, tid: 1, startNs: 1_000)
        third.sequence = 2
        third.loopIteration(3, at: 1_000)
        third.pollStart(timeoutMs: 0, at: 1_010)
        third.pollEnd(fds: [], at: 1_020)
        var k = StreamScript(pid: 1, tid: 0, kernel: true, startNs: 0)
        k.syscall(pid: 1, tid: 1, nr: 1, fd: 1, ret: 3, enter: 30, exit: 40)  // inside Timeout 5
        k.syscall(pid: 1, tid: 1, nr: 1, fd: 1, ret: 3, enter: 1_100, exit: 1_200)  // after the loop moved on
        let path = writeTrace([first, third, k], pid: 1, startNs: 0)
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        #expect(a.overview.damage.map(\.kind) == [.missingChunks])
        #expect(a.abandonedCallbacks == 1 && a.unmatchedAfters == 0)
        #expect(a.io.readWriteSyscalls == 2 && a.io.readWriteAttributed == 1)
        #expect(TextReport.render(a).contains("0 after() without a before() and 1 before() never closed"))
    }

    /// A program that exits while a worker thread is inside a callback (a Swift task's job still running when
    /// main returns): the after() never comes. That callback is the longest blocker, so it is listed, marked
    /// unfinished, with its duration up to the process's last event, not silently left out.
    @Test func callbackStillRunningAtExitIsListedAsUnfinished() throws {
        let T: UInt64 = 1_000_000_000
        var main = StreamScript(pid: 3, tid: 3, startNs: T)
        main.initResource(7, "SwiftTask", trigger: 1, at: T)
        main.initResource(8, "SwiftTask", trigger: 1, at: T + 1_000)
        var worker = StreamScript(pid: 3, tid: 4, startNs: T + 1_000_000)
        worker.before(7, at: T + 1_000_000)  // never ends: the process exits inside it
        main.before(8, at: T + 2_000_000)
        main.after(8, at: T + 22_000_000)
        main.destroy(8, at: T + 50_000_000)
        var k = StreamScript(pid: 3, tid: 0, kernel: true, startNs: T)
        k.syscall(pid: 3, tid: 4, nr: 0, fd: 9, size: 4096, ret: 4096, enter: T + 5_000_000, exit: T + 15_000_000)
        let path = writeTrace([main, worker, k], pid: 3, startNs: T)
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        #expect(a.blocking.count == 2)
        let open = try #require(a.blocking.longest.first)
        #expect(open.asyncID == 7 && open.unfinished && open.tid == 4)
        #expect(open.durationNs == 49_000_000)  // to the process's last event
        #expect(open.syscalls.map(\.name) == ["read"] && open.kernelNs == 10_000_000)
        #expect(a.blocking.longest.last.map { $0.asyncID == 8 && !$0.unfinished && $0.durationNs == 20_000_000 } == true)
        #expect(a.slowestCallbacks.first?.asyncID == 7 && a.abandonedCallbacks == 0)
        let text = TextReport.render(a)
        #expect(text.contains("for at least 49.0 ms") && text.contains("still running when its process's events end"))
        #expect(text.contains("≥ 49.0 ms"))
        let json = try JSONSerialization.jsonObject(with: Data(JSONReport.render(a).utf8)) as! [String: Any]
        let blocking = (json["blocking"] as! [[String: Any]])
        #expect(blocking.first?["unfinished"] as? Bool == true && blocking.last?["unfinished"] as? Bool == false)
    }

    @Test func histogramPercentilesAreWithinABucket() {
        var h = LogHistogram()
        for v in 1...10_000 { h.record(UInt64(v) * 1_000) }
        #expect(h.count == 10_000 && h.max == 10_000_000 && h.min == 1_000)
        for (p, exact) in [(0.5, 5_000_000.0), (0.99, 9_900_000.0)] {
            let got = Double(h.percentile(p))
            #expect(got <= exact && got >= exact * 31 / 32, "p\(p): \(got)")
        }
        var small = LogHistogram()
        for v: UInt64 in [3, 3, 7, 31] { small.record(v) }
        #expect(small.p50 == 3 && small.p99 == 31)
    }

    @Test func resourceTableForgetsDestroyedResourcesButKeepsRecentAncestors() {
        var t = ResourceTable(maxLive: 3, recentlyDestroyedKept: 2)
        let type = t.intern("X")
        for id: UInt64 in 2...4 { t.initResource(ResourceKey(pid: 1, asyncID: id), type: type, trigger: id - 1, ns: 0) }
        t.initResource(ResourceKey(pid: 1, asyncID: 5), type: type, trigger: 4, ns: 0)
        #expect(t.untracked == 1 && t.live.count == 3)
        t.destroy(ResourceKey(pid: 1, asyncID: 2))
        #expect(t.causalChain(ResourceKey(pid: 1, asyncID: 4)) == ["X", "X", "X"])
        t.destroy(ResourceKey(pid: 1, asyncID: 3))
        t.destroy(ResourceKey(pid: 1, asyncID: 4))
        // The ring keeps two destroyed entries: 2 fell out, so the chain ends in "?".
        #expect(t.live.isEmpty)
        #expect(t.causalChain(ResourceKey(pid: 1, asyncID: 4)) == ["?", "X", "X"])
    }
}

@Suite struct FastMapTests {
    /// `peek` reads a value in place, for keys and values of mixed sizes and alignments.
    @Test func peekReadsTheValueInPlace() {
        struct Small: FastHashable {
            var a: UInt8
            var fastHash: UInt64 { UInt64(a) }
        }
        struct Big {
            var n: UInt64
            var name: String?
            var list: [Int]
        }
        var m = FastMap<Small, Big>()
        for i in 0..<200 { m.set(Small(a: UInt8(i)), Big(n: UInt64(i) * 3, name: "v\(i)", list: [i])) }
        for i in 0..<200 {
            #expect(m.peek(Small(a: UInt8(i))) { $0.pointee.name } == "v\(i)")
            #expect(m.peek(Small(a: UInt8(i))) { $0.pointee.n } == UInt64(i) * 3)
            #expect(m.peek(Small(a: UInt8(i))) { $0.pointee.list } == [i])
        }
        #expect(m.peek(Small(a: 250)) { $0.pointee.n } == nil)
        var w = FastMap<UInt64, UInt8>()
        w.set(7, 9)
        #expect(w.peek(7) { $0.pointee } == 9)
    }

    /// Random inserts, updates and removals agree with Dictionary (removal shifts probe runs back).
    @Test func agreesWithDictionary() {
        var fast = FastMap<UInt64, Int>()
        var reference: [UInt64: Int] = [:]
        var rng = SystemRandomNumberGenerator()
        for step in 0..<200_000 {
            // A small key space forces collisions, long probe runs and wrap-around.
            let key = UInt64.random(in: 0..<3_000, using: &rng) &* 0x1_0000_0001
            switch Int.random(in: 0..<3, using: &rng) {
            case 0:
                fast.set(key, step)
                reference[key] = step
            case 1:
                #expect(fast.remove(key) == reference.removeValue(forKey: key))
            default:
                let changed = fast.modify(key) { $0 += 1 }
                #expect(changed == (reference[key] != nil))
                if changed { reference[key]! += 1 }
            }
            if step % 10_000 == 0 {
                #expect(fast.count == reference.count)
                for (k, v) in reference { #expect(fast[k] == v) }
            }
        }
        var seen = 0
        fast.forEach { k, v in
            seen += 1
            #expect(reference[k] == v)
        }
        #expect(seen == reference.count)
    }
}
