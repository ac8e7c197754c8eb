// The fast path: a sole enabled hook that offers C-convention functions gets its events through
// them; with another hook enabled, both get every event through the dispatch loop.
import Synchronization
import Testing
@_spi(Recorder) @_spi(Runtime) @testable import AsyncHooks
#if canImport(Glibc)
import Glibc
import AsyncHooks
#endif

let fastPathLog = LockedValue<[String]>([])
let fastPathOwner = Atomic<UInt>(0)

private func logFast(_ s: String) {
    guard pthread_self() == fastPathOwner.load(ordering: .relaxed) else { return }
    fastPathLog.withLock { $0.append("fast " + s) }
}

final class FastPathHook: AsyncHookFastPathProvider, @unchecked Sendable {
    private func slow(_ s: String) {
        guard pthread_self() == fastPathOwner.load(ordering: .relaxed) else { return }
        fastPathLog.withLock { $0.append("slow " + s) }
    }
    func initResource(_ id: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {
        slow("init \(id) \(type.id) \(triggerAsyncID)")
    }
    func before(_ id: AsyncID) { slow("before \(id)") }
    func after(_ id: AsyncID) { slow("after \(id)") }
    func destroy(_ id: AsyncID) { slow("destroy \(id)") }
    func promiseResolve(_ id: AsyncID) { slow("resolve \(id)") }
    func loopIteration(_ n: UInt64) { slow("iteration \(n)") }
    func phaseEnter(_ p: LoopPhase) { slow("enter \(p.rawValue)") }
    func phaseLeave(_ p: LoopPhase) { slow("leave \(p.rawValue)") }
    var fastPath: AsyncHookFastPath? {
        AsyncHookFastPath(
            initResource: { id, type, trigger in logFast("init \(id) \(type) \(trigger)") },
            before: { logFast("before \($0)") }, after: { logFast("after \($0)") },
            destroy: { logFast("destroy \($0)") }, promiseResolve: { logFast("resolve \($0)") },
            loopIteration: { logFast("iteration \($0)") }, phaseEnter: { logFast("enter \($0)") },
            phaseLeave: { logFast("leave \($0)") })
    }
}

// Both suites below log into the one global the C-convention fast path can reach, so they must never
// run at the same time (two FastPathHooks enabled at once would each log the owner thread's events).
@Suite(.serialized) struct FastPathSuites {
    @Suite struct FastPathTests {
        func emitAll() -> [String] {
            let r = AsyncResource("FastPathTest")
            r.runInScope { AsyncHooks.emitPromiseResolve(r.asyncID) }
            AsyncHooks.emitLoopIteration(7)
            AsyncHooks.emitPhaseEnter(.check)
            AsyncHooks.emitPhaseLeave(.check)
            r.emitDestroy()
            let id = r.asyncID
            return [
                "init \(id) \(r.type.id) \(AsyncID.root)", "before \(id)", "resolve \(id)", "after \(id)",
                "iteration 7", "enter 5", "leave 5", "destroy \(id)",
            ]
        }

        @Test func aSoleHookGetsEveryEventOnceThroughItsFastPath() {
            fastPathOwner.store(pthread_self(), ordering: .relaxed)
            fastPathLog.withLock { $0 = [] }
            let hook = FastPathHook()
            AsyncHooks.enable(hook)
            let alone = activeHookCount == 1
            let expected = emitAll()
            let aloneAfter = activeHookCount == 1
            AsyncHooks.disable(hook)
            let log = fastPathLog.withLock { $0 }
            // Tests of other suites may enable hooks meanwhile; then the loop delivers (the "slow" path).
            #expect(log.map { String($0.dropFirst(5)) } == expected)
            if alone && aloneAfter { #expect(log.allSatisfy { $0.hasPrefix("fast ") }) }
        }

        @Test func withASecondHookBothGetEveryEvent() {
            fastPathOwner.store(pthread_self(), ordering: .relaxed)
            fastPathLog.withLock { $0 = [] }
            let hook = FastPathHook()
            let other = RecordingHook()
            AsyncHooks.enable(hook)
            AsyncHooks.enable(other)
            let expected = emitAll()
            AsyncHooks.disable(hook)
            AsyncHooks.disable(other)
            #expect(fastPathLog.withLock { $0 } == expected.map { "slow " + $0 })
            #expect(other.events.count == 5)  // init, before, resolve, after, destroy (it ignores loop events)
        }
    }

    /// The fused emissions (one call to a recorder) deliver the same events, in the same order, as the
    /// separate calls they stand for, and leave the execution context as those would.
    @Suite struct FusedEmissionTests {
        func emitFused() -> [String] {
            let a = AsyncResource("FusedA"), b = AsyncResource("FusedB"), c = AsyncResource("FusedC")
            let outer = executionAsyncID()
            AsyncHooks.enterCallback(a.asyncID, triggerAsyncID: a.triggerAsyncID, frame: nil)
            let switched = AsyncHooks.switchCallback(from: a.asyncID, destroyingCurrent: true, to: b.asyncID, triggerAsyncID: b.triggerAsyncID)
            let inB = executionAsyncID()
            AsyncHooks.leaveCallbackAndDestroy(b.asyncID)
            AsyncHooks.enterCallback(c.asyncID, triggerAsyncID: c.triggerAsyncID, frame: nil, following: true)
            let inC = executionAsyncID()
            AsyncHooks.leaveCallbackAndDestroy(c.asyncID)
            #expect(switched && inB == b.asyncID && inC == c.asyncID && executionAsyncID() == outer)
            AsyncHooks.emitLoopIterationAndPhaseEnter(9, .check, following: true)
            AsyncHooks.emitLoopIterationAndPhaseEnter(10, .timers, following: false)
            AsyncHooks.emitPhaseLeaveLoopIterationAndPhaseEnter(.check, 11, .check, following: true)
            let r = AsyncResourceContext(resolvedOnCreation: ResourceType("FusedResolved"))
            #expect(r.triggerAsyncID == outer)
            let (x, y, z) = (a.asyncID, b.asyncID, c.asyncID)
            return [
                "init \(x) \(a.type.id) \(outer)", "init \(y) \(b.type.id) \(outer)", "init \(z) \(c.type.id) \(outer)",
                "before \(x)", "after \(x)", "destroy \(x)", "before \(y)", "after \(y)", "destroy \(y)",
                "before \(z)", "after \(z)", "destroy \(z)", "iteration 9", "enter 5", "iteration 10", "enter 0",
                "leave 5", "iteration 11", "enter 5",
                "init \(r.asyncID) \(r.type.id) \(outer)",
                "resolve \(r.asyncID)",
            ]
        }

        @Test func aSoleHookWithoutFusedFunctionsGetsTheSeparateEvents() {
            fastPathOwner.store(pthread_self(), ordering: .relaxed)
            fastPathLog.withLock { $0 = [] }
            let hook = FastPathHook()
            AsyncHooks.enable(hook)
            let expected = emitFused()
            AsyncHooks.disable(hook)
            #expect(fastPathLog.withLock { $0 }.map { String($0.dropFirst(5)) } == expected)
        }

        @Test func severalHooksGetTheSeparateEvents() {
            fastPathOwner.store(pthread_self(), ordering: .relaxed)
            fastPathLog.withLock { $0 = [] }
            let hook = FastPathHook()
            let other = RecordingHook()
            AsyncHooks.enable(hook)
            AsyncHooks.enable(other)
            let expected = emitFused()
            AsyncHooks.disable(hook)
            AsyncHooks.disable(other)
            #expect(fastPathLog.withLock { $0 } == expected.map { "slow " + $0 })
        }

        @Test func aMismatchedLeaveStillReportsTheNestingError() {
            let a = AsyncResource("FusedMismatch"), b = AsyncResource("FusedOther")
            let hook = RecordingHook()
            AsyncHooks.enable(hook)
            let outer = executionAsyncID()
            AsyncHooks.enterCallback(a.asyncID, triggerAsyncID: a.triggerAsyncID, frame: nil)
            AsyncHooks.leaveCallbackAndDestroy(b.asyncID)  // not the innermost: a nesting error, then b's destroy
            AsyncHooks.leaveCallback(a.asyncID)
            AsyncHooks.disable(hook)
            #expect(executionAsyncID() == outer)
            #expect(hook.events.contains { $0.contains("nesting") })
        }
    }
}
