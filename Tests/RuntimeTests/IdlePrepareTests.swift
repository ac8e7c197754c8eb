// Idle and prepare handles: where they run in the phase order, poll blocking, liveness, hooks, misuse.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime

/// Records phaseEnter events of its thread, with the loop iteration they belong to.
final class PhaseOrderHook: AsyncHook, @unchecked Sendable {
    let thread = pthread_self()
    let phases = LockedValue<[(UInt64, LoopPhase)]>([])
    let iteration = LockedValue<UInt64>(0)
    private var mine: Bool { pthread_equal(pthread_self(), thread) != 0 }
    func loopIteration(_ n: UInt64) { if mine { iteration.withLock { $0 = n } } }
    func phaseEnter(_ phase: LoopPhase) {
        guard mine else { return }
        let n = iteration.withLock { $0 }
        phases.withLock { $0.append((n, phase)) }
    }
}

@Suite("Idle and prepare handles", .serialized)
struct IdlePrepareTests {
    @Test("one iteration runs timers, pending, idle, prepare, poll, check, close in that order, and records those phases")
    func phaseOrder() {
        let phaseLog = LockedValue<[(UInt64, LoopPhase)]>([])
        let out = runScenario { log in
            let hook = PhaseOrderHook()
            AsyncHooks.enable(hook)
            let loop = EventLoop.current
            let (r, w) = try Sys.pipe()
            let pipeCtx = AsyncResourceContext(type: ResourceType("PIPEWRAP"))
            let idle = try Idle()
            let prepare = try Prepare()
            var watcher: FDWatcher!
            var firedIn: UInt64 = 0
            func note(_ phase: String) { if loop.iteration == firedIn { log(phase) } }
            try idle.start { note("idle") }
            try prepare.start { note("prepare") }
            watcher = try FDWatcher(fd: r, context: pipeCtx) { _ in
                note("poll")
                var buf = [UInt8](repeating: 0, count: 8)
                _ = try buf.withUnsafeMutableBytes { try Sys.read(r, $0) }
            }
            try watcher.start(.readable)
            setTimeout(2) {
                firedIn = loop.iteration
                log("timers")
                // Everything below is due in this same iteration, each in its own phase.
                loop.queuePending(AsyncResourceContext(type: ResourceType("TEST")), destroyAfter: true) { note("pending") }
                _ = try [UInt8(1)].withUnsafeBytes { try Sys.write(w, $0) }
                setImmediate { note("check") }
                loop.queueClose(AsyncResourceContext(type: ResourceType("TEST"))) {
                    note("close")
                    try idle.close()
                    try prepare.close()
                    try watcher.close()
                    pipeCtx.emitDestroy()
                    try Sys.close(r)
                    try Sys.close(w)
                    AsyncHooks.disable(hook)
                    phaseLog.withLock { $0 = hook.phases.withLock { $0 } }
                }
            }
        }
        #expect(out == ["timers", "pending", "idle", "prepare", "poll", "check", "close"])
        let all = phaseLog.withLock { $0 }
        let fired = all.first { $0.1 == .timers }?.0
        let inThatIteration = all.filter { $0.0 == fired }.map(\.1)
        #expect(inThatIteration == [.timers, .pending, .idle, .prepare, .poll, .check, .close])
        // Before the timer, only idle and prepare ran something (poll had no ready fd and no block:
        // no syscall is skipped here because a watcher is registered, so poll is recorded too).
        let before = Set(all.filter { fired != nil && $0.0 < fired! }.map(\.1))
        #expect(before.isSubset(of: [.idle, .prepare, .poll]))
        #expect(before.contains(.idle) && before.contains(.prepare))
    }

    @Test("an active idle handle keeps poll from blocking; a prepare handle alone does not")
    func idleKeepsPollFromBlocking() {
        let out = runScenario { log in
            var idleRuns = 0
            let idle = try Idle()
            try idle.start { idleRuns += 1 }
            setTimeout(30) {
                log("idle ran more than 10 times before a 30 ms timer: \(idleRuns > 10)")
                try idle.close()
            }
        }
        #expect(out == ["idle ran more than 10 times before a 30 ms timer: true"])

        let out2 = runScenario { log in
            var prepareRuns = 0
            let prepare = try Prepare()
            try prepare.start { prepareRuns += 1 }
            setTimeout(30) {
                // Poll blocks until the timer is due: one or two iterations, not a spin.
                log("prepare ran at most 3 times before a 30 ms timer: \(prepareRuns <= 3), at least once: \(prepareRuns >= 1)")
                try prepare.close()
            }
        }
        #expect(out2 == ["prepare ran at most 3 times before a 30 ms timer: true, at least once: true"])
    }

    @Test("a started ref'd handle keeps the loop alive until stopped; an unref'd one does not")
    func liveness() {
        let out = runScenario { log in
            var runs = 0
            let idle = try Idle()
            try idle.start {
                runs += 1
                if runs == 5 { idle.stop(); log("stopped after \(runs)") }
            }
        }
        #expect(out == ["stopped after 5"])

        let out2 = runScenario { log in
            let prepare = try Prepare().unref()
            try prepare.start { log("prepare ran") }
            let idle = try Idle().unref()
            try idle.start { log("idle ran") }
            // Nothing ref'd: the loop ends before its first iteration.
        }
        #expect(out2 == [])

        let out3 = runScenario { log in
            var runs = 0
            let prepare = try Prepare().unref()
            try prepare.start { runs += 1 }
            setTimeout(5) { log("prepare ran while the timer kept the loop alive: \(runs >= 1)") }
        }
        #expect(out3 == ["prepare ran while the timer kept the loop alive: true"])
    }

    @Test("each run is a callback of the handle's resource; close runs its callback, then destroy; misuse throws")
    func hooksAndMisuse() {
        let hook = LockedValue<BalanceHook?>(nil)
        let ids = LockedValue<[AsyncID]>([])
        let out = runScenario { log in
            let h = BalanceHook()
            hook.withLock { $0 = h }
            AsyncHooks.enable(h)
            let idle = try Idle()
            let prepare = try Prepare()
            ids.withLock { $0 = [idle.asyncID, prepare.asyncID] }
            var runs = 0
            try prepare.start { log("prepare in \(executionAsyncID() == prepare.asyncID)") }
            try idle.start {
                runs += 1
                log("idle in \(executionAsyncID() == idle.asyncID)")
                if runs == 2 {
                    try prepare.close()
                    try idle.close { log("closed in \(executionAsyncID() == idle.asyncID)") }
                    do { try idle.close() } catch { log("\(error)") }
                    do { try idle.start {} } catch { log("\(error)") }
                }
            }
            setTimeout(20) { AsyncHooks.disable(h) }
        }
        let idleID = ids.withLock { $0 }[0]
        #expect(
            out == [
                "idle in true", "prepare in true", "idle in true",
                "ERR_HANDLE_CLOSED: IDLEWRAP (async id \(idleID)) is already closed",
                "ERR_HANDLE_CLOSED: cannot start: IDLEWRAP (async id \(idleID)) is closed",
                "closed in true",
            ])
        let h = hook.withLock { $0 }!
        h.state.withLock { s in
            #expect(s.problems == [])
            #expect(s.types[ids.withLock { $0 }[0]] == "IDLEWRAP")
            #expect(s.types[ids.withLock { $0 }[1]] == "PREPAREWRAP")
            #expect(s.destroyed.isSuperset(of: ids.withLock { $0 }))
        }
    }

    @Test("a handle belongs to its loop's thread")
    func wrongThread() {
        let loop = LockedValue<EventLoop?>(nil)
        let t = try! LoopThread { loop.withLock { $0 = EventLoop.current } }
        t.join()
        let other = loop.withLock { $0 }!
        #expect(throws: RuntimeError.wrongThread(operation: "IDLEWRAP init")) { try Idle(loop: other) }
    }
}
