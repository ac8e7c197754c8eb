import Testing
import TraceAnalyses
import TraceReader

@Suite struct BusiestSecondTests {
    @Test func scriptedServerIsBusiestInItsFirstSecond() throws {
        let path = scriptedServerTrace()
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path))
        let b = try #require(a.busiestSecond)
        // All three callbacks end within the first second after the first event (T).
        #expect(b.index == 0 && b.startNs == 1_000_000_000 && b.secondsWithCallbacks == 1)
        #expect(b.busyNs == 7_000 + 7_500 + 20_009_000 && b.measure == .callbacks)
    }

    /// Callbacks split at second boundaries, nested time counts once, threads add up.
    @Test func secondsSplitNestedOnceThreadsAdd() throws {
        let S: UInt64 = 1_000_000_000
        let T: UInt64 = 50 * S
        var main = StreamScript(pid: 7, tid: 7, startNs: T)
        var worker = StreamScript(pid: 7, tid: 8, startNs: T)
        main.initResource(2, "A", trigger: 1, at: T)
        main.initResource(3, "B", trigger: 1, at: T)
        // 0.5 s in second 0 and 0.5 s in second 1, with a nested callback inside that must not count twice.
        main.before(2, at: T + S / 2)
        main.before(3, at: T + S / 2 + 1_000)
        main.after(3, at: T + S / 2 + 300_000_000)
        main.after(2, at: T + 3 * S / 2)
        // 0.7 s in second 2.
        main.before(2, at: T + 2 * S + 200_000_000)
        main.after(2, at: T + 2 * S + 900_000_000)
        // Another thread: 0.3 s in second 1 makes it the busiest (0.5 + 0.3 > 0.7).
        worker.initResource(9, "W", trigger: 1, at: T)
        worker.before(9, at: T + S + 100_000_000)
        worker.after(9, at: T + S + 400_000_000)
        let path = writeTrace([main, worker], pid: 7, startNs: T)
        defer { removeTrace(path) }
        let b = try #require(analyzeTrace(try TraceReader(path: path)).busiestSecond)
        #expect(b.index == 1 && b.startNs == T + S && b.busyNs == 800_000_000 && b.secondsWithCallbacks == 3)
    }

    /// A callback whose after() carries a corrupt, huge timestamp: bounded work, no trap.
    @Test func corruptTimestampsStayBounded() throws {
        var main = StreamScript(pid: 7, tid: 7, startNs: 1_000)
        main.initResource(2, "A", trigger: 1, at: 1_000)
        main.before(2, at: 2_000)
        main.after(2, at: UInt64.max - 5)
        let path = writeTrace([main], pid: 7, startNs: 1_000)
        defer { removeTrace(path) }
        let b = try #require(analyzeTrace(try TraceReader(path: path)).busiestSecond)
        // Only the callback's first hour of seconds counts; each of its full seconds is busy throughout.
        #expect(b.secondsWithCallbacks == 3_600 && b.busyNs == 1_000_000_000)
    }

    /// An unmodified program (kernel events only): the time between one epoll wait returning and the
    /// thread's next wait is its loop's busy time; threads add up; time before a thread's first wait is not counted.
    @Test func kernelOnlyTraceCountsTimeBetweenEpollWaits() throws {
        let S: UInt64 = 1_000_000_000
        var k = StreamScript(pid: 200, tid: 0, kernel: true, startNs: 0)
        // Thread 200: waits end at 0.1 s and 1.2 s; busy 0.1→0.5 s and 1.2→1.9 s.
        k.epollWait(pid: 200, tid: 200, epfd: 3, ret: 1, enter: S / 20, exit: S / 10, ready: [5])
        // Thread 201: first wait at 0.9 s (its time before is not loop time), busy 1.0→1.25 s.
        k.epollWait(pid: 200, tid: 201, epfd: 4, ret: 1, enter: S * 9 / 10, exit: S, ready: [6])
        k.epollWait(pid: 200, tid: 200, epfd: 3, ret: 1, enter: S / 2, exit: S + S / 5, ready: [5])
        k.epollWait(pid: 200, tid: 201, epfd: 4, ret: 0, enter: S + S / 4, exit: S + S / 2, ready: [])
        k.epollWait(pid: 200, tid: 200, epfd: 3, ret: 0, enter: S + S * 9 / 10, exit: 2 * S, ready: [])
        let path = writeTrace([k], pid: 200, startNs: 0)
        defer { removeTrace(path) }
        let b = try #require(analyzeTrace(try TraceReader(path: path)).busiestSecond)
        #expect(b.measure == .betweenEpollWaits)
        // Seconds count from the first event (the first wait's return, 0.1 s): second 0 is 0.1–1.1 s
        // (0.4 s + 0.1 s busy), second 1 is 1.1–2.1 s (0.7 s + 0.15 s).
        #expect(b.index == 1 && b.startNs == S + S / 10 && b.busyNs == 700_000_000 + 150_000_000 && b.secondsWithCallbacks == 2)
    }

    @Test func noCallbacksNoBusiestSecond() throws {
        var k = StreamScript(pid: 200, tid: 0, kernel: true, startNs: 0)
        k.syscall(pid: 200, tid: 200, nr: 0, fd: 3, ret: 1, enter: 10, exit: 20)
        let path = writeTrace([k], pid: 200, startNs: 0)
        defer { removeTrace(path) }
        #expect(analyzeTrace(try TraceReader(path: path)).busiestSecond == nil)
    }
}
