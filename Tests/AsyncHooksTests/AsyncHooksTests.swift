import Testing
@testable import AsyncHooks
#if canImport(Glibc)
import Glibc
#endif

/// Collects, as text, the events of the thread that made it (tests in other suites run
/// concurrently and emit too).
final class RecordingHook: AsyncHook, @unchecked Sendable {
    let owner = pthread_self()
    let log = LockedValue<[String]>([])
    func initResource(_ id: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {
        own { $0.append("init \(id) \(type) \(triggerAsyncID)") }
    }
    func before(_ id: AsyncID) { own { $0.append("before \(id)") } }
    func after(_ id: AsyncID) { own { $0.append("after \(id)") } }
    func destroy(_ id: AsyncID) { own { $0.append("destroy \(id)") } }
    func promiseResolve(_ id: AsyncID) { own { $0.append("resolve \(id)") } }
    func nestingError(expected: AsyncID, actual: AsyncID) { own { $0.append("nesting \(expected) \(actual)") } }
    func mark(_ name: String, executionAsyncID: AsyncID) { own { $0.append("mark \(name) \(executionAsyncID)") } }
    var events: [String] { log.withLock { $0 } }
    private func own(_ body: (inout [String]) -> Void) {
        guard pthread_equal(pthread_self(), owner) != 0 else { return }
        log.withLock { body(&$0) }
    }
}

/// Runs `body` on `n` threads at once and waits for all.
func onThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Box: @unchecked Sendable {
        let body: (Int) -> Void; let i: Int; init(_ b: @escaping (Int) -> Void, _ i: Int) { body = b; self.i = i }
    }
    var threads: [pthread_t] = []
    for i in 0..<n {
        var t = pthread_t()
        let box = Unmanaged.passRetained(Box(body, i)).toOpaque()
        pthread_create(
            &t, nil,
            { p in
                let b = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
                b.body(b.i)
                return nil
            }, box)
        threads.append(t)
    }
    for t in threads { pthread_join(t, nil) }
}

// Hooks are process-global: these tests run one at a time.
@Suite(.serialized) struct AsyncHooksTests {
    @Test func idsAreUniqueAcrossThreads() {
        let perThread = 50_000
        let all = LockedValue<[UInt64]>([])
        onThreads(4) { _ in
            var mine: [UInt64] = []
            mine.reserveCapacity(perThread)
            for _ in 0..<perThread { mine.append(AsyncID.next().rawValue) }
            all.withLock { $0.append(contentsOf: mine) }
        }
        let ids = all.withLock { $0 }
        #expect(ids.count == 4 * perThread)
        #expect(Set(ids).count == ids.count)
        #expect(!ids.contains(0) && !ids.contains(1))
    }

    @Test func topLevelContext() {
        // Node: executionAsyncId() is 1 and triggerAsyncId() 0 at the top level.
        onThreads(1) { _ in
            #expect(executionAsyncID() == .root)
            #expect(triggerAsyncID() == .none)
        }
    }

    @Test func runInScopeSetsAndRestoresContext() {
        let hook = RecordingHook()
        AsyncHooks.enable(hook)
        defer { AsyncHooks.disable(hook) }
        let outer = AsyncResource("Outer")
        #expect(outer.triggerAsyncID == executionAsyncID())
        var inner: AsyncResource!
        outer.runInScope {
            #expect(executionAsyncID() == outer.asyncID)
            #expect(triggerAsyncID() == outer.triggerAsyncID)
            inner = AsyncResource("Inner")  // trigger = the running callback, as in Node
            inner.runInScope {
                #expect(executionAsyncID() == inner.asyncID)
                #expect(triggerAsyncID() == outer.asyncID)
            }
            #expect(executionAsyncID() == outer.asyncID)
        }
        #expect(inner.triggerAsyncID == outer.asyncID)
        inner.emitDestroy()
        outer.emitDestroy()
        let o = outer.asyncID, i = inner.asyncID, t = outer.triggerAsyncID
        #expect(
            hook.events == [
                "init \(o) Outer \(t)", "before \(o)", "init \(i) Inner \(o)", "before \(i)", "after \(i)",
                "after \(o)", "destroy \(i)", "destroy \(o)",
            ])
    }

    @Test func bindRunsInTheResourceScope() {
        let r = AsyncResource("Bound")
        let f = r.bind { (x: Int) -> (AsyncID, Int) in (executionAsyncID(), x * 2) }
        let (id, v) = f(21)
        #expect(id == r.asyncID && v == 42)
        #expect(executionAsyncID() != r.asyncID)
    }

    @Test func disabledHooksSeeNothingAndSeveralHooksSeeEverything() {
        let a = RecordingHook(), b = RecordingHook()
        AsyncHooks.enable(a)
        AsyncHooks.enable(b)
        AsyncHooks.enable(a)  // no double registration
        let r = AsyncResource("Two")
        r.runInScope {}
        AsyncHooks.disable(a)
        r.emitDestroy()
        AsyncHooks.disable(b)
        AsyncResource("Nobody").emitDestroy()
        #expect(a.events.count == 3)
        #expect(b.events.count == 4)
        #expect(!AsyncHooks.isEnabled(a) && !AsyncHooks.isEnabled(b))
    }

    @Test func closureHooksTakeAnySubset() {
        // Counts only this test's two resources: other suites emit concurrently.
        let first = AsyncResource("X"), second = AsyncResource("X")
        let ours: Set<AsyncID> = [first.asyncID, second.asyncID]
        let before = LockedValue(0)
        let hook = AsyncHooks.createHook(before: { id in if ours.contains(id) { before.withLock { $0 += 1 } } }).enable()
        first.runInScope {}
        hook.disable()
        second.runInScope {}
        #expect(before.withLock { $0 } == 1)
    }

    @Test func mismatchedAfterIsReportedWithBothIDs() {
        let hook = RecordingHook()
        AsyncHooks.enable(hook)
        defer { AsyncHooks.disable(hook) }
        let reported = LockedValue<[(AsyncID, AsyncID)]>([])
        AsyncHooks.setNestingErrorHandler { e, a in reported.withLock { $0.append((e, a)) } }
        let a = AsyncID.next(), b = AsyncID.next()
        let top = executionAsyncID()
        AsyncHooks.enterCallback(a, triggerAsyncID: .root, frame: nil)
        AsyncHooks.enterCallback(b, triggerAsyncID: a, frame: nil)
        AsyncHooks.leaveCallback(a)  // b never left: reported, and the stack unwinds past a
        #expect(executionAsyncID() == top)
        #expect(reported.withLock { $0.map { [$0.0, $0.1] } } == [[b, a]])
        #expect(hook.events.contains("nesting \(b) \(a)"))
        let bogus = AsyncID.next()
        AsyncHooks.leaveCallback(bogus)  // never entered: reported, nothing unwound
        #expect(executionAsyncID() == top)
        #expect(reported.withLock { $0.count } == 2)
        AsyncHooks.setNestingErrorHandler { _, _ in }
    }

    @Test func marksAndSpansCarryTheExecutionID() {
        let hook = RecordingHook()
        AsyncHooks.enable(hook)
        defer { AsyncHooks.disable(hook) }
        let r = AsyncResource("M")
        r.runInScope { AsyncHooks.mark("hello") }
        #expect(hook.events.contains("mark hello \(r.asyncID)"))
    }

    @Test func resourceTypesIntern() {
        #expect(ResourceType("Timeout") == ResourceType.timeout)
        #expect(ResourceType("Timeout").name == "Timeout")
        #expect(ResourceType("a-new-type") != ResourceType.timeout)
    }
}

extension AsyncHooksTests {
    @Suite struct AsyncLocalTests {
        @Test func runSetsValueAndRestores() {
            let store = AsyncLocal<String>()
            #expect(store.current == nil)
            store.run("a") {
                #expect(store.current == "a")
                store.run("b") { #expect(store.current == "b") }
                #expect(store.current == "a")
                store.exit { #expect(store.current == nil) }
            }
            #expect(store.current == nil)
        }

        @Test func resourcesCreatedInsideRunSeeTheValueInTheirCallbacks() {
            let store = AsyncLocal<Int>()
            let r: AsyncResource = store.run(7) { AsyncResource("Later") }
            #expect(store.current == nil)
            r.runInScope { #expect(store.current == 7) }
            // A resource created inside a callback inherits the callback's context.
            let nested: AsyncResource = r.runInScope { AsyncResource("Nested") }
            nested.runInScope { #expect(store.current == 7) }
        }

        @Test func propagationNeedsNoHook() {
            // Other suites may have hooks enabled; this suite runs serialized with the hook tests,
            // and none of them leaves a hook enabled.
            let store = AsyncLocal<String>()
            let r = store.run("x") { AsyncResource("NoHook") }
            r.runInScope { #expect(store.current == "x") }
        }

        @Test func concurrentRunsAreIsolated() {
            let store = AsyncLocal<Int>()
            let failures = LockedValue(0)
            onThreads(4) { i in
                for k in 0..<2_000 {
                    let v = i * 100_000 + k
                    let r = store.run(v) { AsyncResource("Iso") }
                    r.runInScope { if store.current != v { failures.withLock { $0 += 1 } } }
                    if store.current != nil { failures.withLock { $0 += 1 } }
                }
            }
            #expect(failures.withLock { $0 } == 0)
        }

        @Test func enterWithLastsUntilTheCallbackReturns() {
            let store = AsyncLocal<String>()
            let r = AsyncResource("E")
            r.runInScope {
                store.enterWith("inside")
                #expect(store.current == "inside")
            }
            #expect(store.current == nil)
        }

        @Test func snapshotRunsInTheCapturedContext() {
            let a = AsyncLocal<Int>(), b = AsyncLocal<String>()
            let snap = a.run(1) { b.run("s") { AsyncLocal<Int>.snapshot() } }
            #expect(a.current == nil)
            snap.run {
                #expect(a.current == 1)
                #expect(b.current == "s")
            }
        }
    }
}
