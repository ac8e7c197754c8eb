// The loop core: phase order, nextTick/microtask draining, timers, immediates, liveness, errors.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime

@Suite("Event loop")
struct LoopTests {
    @Test("the main module runs to completion before any timer")
    func mainBeforeTimers() {
        let out = runScenario { log in
            setTimeout(1) { log("Should run in 1ms") }
            busyWait(ms: 5)
            log("Will this be printed first?")
        }
        #expect(out == ["Will this be printed first?", "Should run in 1ms"])
    }

    @Test("nextTick runs before promise callbacks (microtasks), and both before timers and immediates")
    func nextTickBeforeMicrotasks() {
        let out = runScenario { log in
            setTimeout(0) { log("timeout") }
            setImmediate { log("immediate") }
            queueMicrotask {
                log("microtask 1")
                nextTick { log("tick queued by microtask") }
                queueMicrotask { log("microtask 2") }
            }
            nextTick {
                log("tick 1")
                nextTick { log("tick 2") }
            }
            log("main")
        }
        #expect(Array(out.prefix(6)) == ["main", "tick 1", "tick 2", "microtask 1", "microtask 2", "tick queued by microtask"])
        #expect(Set(out.suffix(2)) == ["timeout", "immediate"])
    }

    @Test("inside an I/O callback, setImmediate runs before setTimeout(0)")
    func immediateBeforeTimeoutAfterIO() throws {
        let out = runScenario { log in
            let (r, w) = try Sys.pipe()
            var fired = false
            let w2 = try FDWatcher(fd: r) { _ in
                guard !fired else { return }
                fired = true
                setTimeout(0) { log("timeout") }
                setImmediate { log("immediate") }
            }
            try w2.start(.readable)
            _ = try [UInt8(1)].withUnsafeBytes { try Sys.write(w, $0) }
            setImmediate {
                // After one iteration the readable event has been delivered; stop watching.
                setTimeout(5) {
                    try w2.close()
                    try Sys.close(r)
                    try Sys.close(w)
                }
            }
        }
        #expect(out == ["immediate", "timeout"])
    }

    @Test("timers delayed by a long initial phase run in order of their due time")
    func timersInDueOrder() {
        let out = runScenario { log in
            // Wide margins: a loaded machine may preempt the thread between the two calls.
            setTimeout(100) { log("A (100 ms)") }
            setTimeout(10) { log("B (10 ms)") }
            busyWait(ms: 150)
            setTimeout(1) { log("C (1 ms, set after the block)") }
        }
        #expect(out == ["B (10 ms)", "A (100 ms)", "C (1 ms, set after the block)"])

        let out2 = runScenario { log in
            setTimeout(20) { log("first: due at 20 ms") }
            busyWait(ms: 40)
            setTimeout(5) { log("second: due at 45 ms") }
        }
        #expect(out2 == ["first: due at 20 ms", "second: due at 45 ms"])
    }

    @Test("timers with equal due times run in the order they were set")
    func equalDueTimes() {
        let out = runScenario { log in
            for i in 0..<50 { setTimeout(0) { log("\(i)") } }
            busyWait(ms: 3)
        }
        #expect(out == (0..<50).map { "\($0)" })
    }

    @Test("an unref'd timer does not keep the loop alive")
    func unrefTimer() {
        let start = monotonicMs()
        let out = runScenario { log in
            setTimeout(2000) { log("unref'd timer fired") }.unref()
            setTimeout(5) { log("ref'd timer fired") }
        }
        #expect(out == ["ref'd timer fired"])
        #expect(monotonicMs() - start < 1500)

        // ...but it still runs if the loop is alive anyway.
        let out2 = runScenario { log in
            setTimeout(5) { log("unref'd 5 ms") }.unref()
            setTimeout(30) { log("ref'd 30 ms") }
        }
        #expect(out2 == ["unref'd 5 ms", "ref'd 30 ms"])

        // ref() again keeps it alive.
        let out3 = runScenario { log in
            let t = setTimeout(5) { log("re-ref'd") }
            t.unref()
            t.ref()
        }
        #expect(out3 == ["re-ref'd"])
    }

    @Test("setInterval repeats until cleared; clearTimeout cancels; refresh restarts the countdown")
    func intervalsAndClear() {
        let out = runScenario { log in
            var n = 0
            var interval: Timeout?
            interval = setInterval(2) {
                n += 1
                log("tick \(n)")
                if n == 3 { clearInterval(interval) }
            }
            let cancelled = setTimeout(1) { log("must not run") }
            clearTimeout(cancelled)
            clearTimeout(cancelled)  // harmless twice
            let imm = setImmediate { log("must not run either") }
            clearImmediate(imm)
        }
        #expect(out == ["tick 1", "tick 2", "tick 3"])

        let out2 = runScenario { log in
            let t0 = monotonicMs()
            let t = setTimeout(30) { log(monotonicMs() - t0 >= 45 ? "late enough" : "too early") }
            setTimeout(20) { t.refresh() }
        }
        #expect(out2 == ["late enough"])

        // refresh revives a one-shot timer that fired; a cleared one stays cleared.
        let out3 = runScenario { log in
            var count = 0
            let t = setTimeout(1) {
                count += 1; log("fired \(count)")
            }
            setTimeout(10) { t.refresh() }
            let c = setTimeout(1) { log("cleared one") }
            c.clear()
            c.refresh()
        }
        #expect(out3 == ["fired 1", "fired 2"])
    }

    @Test("a nextTick that reschedules itself starves the rest of the loop (bounded)")
    func nextTickStarvation() {
        let out = runScenario { log in
            var ticks = 0
            setTimeout(0) { log("timeout after \(ticks) ticks") }
            setImmediate { log("immediate after \(ticks) ticks") }
            func again() {
                ticks += 1
                if ticks < 20_000 { nextTick(again) }
            }
            nextTick(again)
            busyWait(ms: 2)
        }
        #expect(out.count == 2)
        #expect(out.allSatisfy { $0.hasSuffix("after 20000 ticks") })
    }

    @Test("phases run in Node's order: timers, poll, check, close")
    func phaseOrder() throws {
        let hook = BalanceHookBox()
        let out = runScenario { log in
            let h = BalanceHook(recordPhases: true)
            hook.set(h)
            AsyncHooks.enable(h)
            setTimeout(0) {
                log("timers")
                setImmediate { log("check") }
                EventLoop.current.queueClose(nil) { log("close") }
                EventLoop.current.queuePending(nil) { log("pending") }
                setTimeout(0) { log("timers again") }
            }
            busyWait(ms: 2)
        }
        AsyncHooks.disable(hook.get()!)
        #expect(out == ["timers", "pending", "check", "close", "timers again"])
        let phases = hook.get()!.state.withLock { $0.phases }
        #expect(Array(phases.prefix(4)) == ["timers", "pending", "check", "close"])
    }

    @Test("several threads each run their own loop")
    func loopsPerThread() throws {
        let results = LockedValue<[Int]>([])
        let threads = try (0..<4).map { i in
            try LoopThread {
                let loop = EventLoop.current
                var n = 0
                func step() throws {
                    n += 1
                    guard EventLoop.current === loop else { throw RuntimeError.invalidArgument("wrong loop") }
                    if n < 1000 { setImmediate(step) } else { results.withLock { $0.append(i) } }
                }
                setImmediate(step)
            }
        }
        for t in threads { t.join() }
        #expect(results.withLock { $0.sorted() } == [0, 1, 2, 3])
    }
}

final class BalanceHookBox: @unchecked Sendable {
    private let m = LockedValue<BalanceHook?>(nil)
    func set(_ h: BalanceHook) { m.withLock { $0 = h } }
    func get() -> BalanceHook? { m.withLock { $0 } }
}
