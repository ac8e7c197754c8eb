// Awaits of settled promises continue without suspending when nothing else would run first
// (Promise.value). These programs pin down that this changes neither Node's order nor the trace:
// each expected order was printed by node v20 for the equivalent script (quoted above each test).
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime

@Suite("Awaits of settled promises")
struct AwaitOrderTests {
    /// (async () => { await null; queueMicrotask(() => log('m')); Promise.resolve().then(() => log('p'));
    ///   await Promise.resolve(1); log('after'); process.nextTick(() => log('tick'));
    ///   await Promise.resolve(2); log('after2'); await Promise.resolve(3); log('after3'); })();
    /// setTimeout(() => { (async () => { process.nextTick(() => log('tick-in-timer')); log('timer task');
    ///   await Promise.resolve(4); log('after4'); })(); }, 1);
    @Test("queued microtasks run before the continuation; ticks queued in a microtask wait for the awaits")
    func microtasksQueuedBeforeTheAwaitRunFirst() {
        let out = runScenario { log in
            let loop = EventLoop.current
            loop.runAsync {
                _ = try await Promise<Int?>.resolve(nil).value
                loop.queueMicrotask { log("m") }
                Promise<Void>.resolve(()).then { log("p") }
                _ = try await Promise.resolve(1).value
                log("after")
                nextTick { log("tick") }
                _ = try await Promise.resolve(2).value
                log("after2")
                _ = try await Promise.resolve(3).value
                log("after3")
            }
            setTimeout(1) {
                loop.runAsync {
                    nextTick { log("tick-in-timer") }
                    log("timer task")
                    _ = try await Promise.resolve(4).value
                    log("after4")
                }
            }
        }
        #expect(out == ["m", "p", "after", "after2", "after3", "tick", "timer task", "tick-in-timer", "after4"])
    }

    /// (async () => { await null;
    ///   (async () => { log('inner start'); await Promise.resolve(1); log('inner after'); await null; log('inner after2'); })();
    ///   log('outer continues'); await null; log('outer after'); })();
    @Test("an async function called from a microtask returns to its caller at its first await")
    func nestedTaskReturnsToItsCaller() {
        let out = runScenario { log in
            let loop = EventLoop.current
            loop.runAsync {
                _ = try await Promise<Int?>.resolve(nil).value
                loop.runAsync {
                    log("inner start")
                    _ = try await Promise.resolve(1).value
                    log("inner after")
                    _ = try await Promise<Int?>.resolve(nil).value
                    log("inner after2")
                }
                log("outer continues")
                _ = try await Promise<Int?>.resolve(nil).value
                log("outer after")
            }
        }
        #expect(out == ["inner start", "outer continues", "inner after", "outer after", "inner after2"])
    }

    @Test("a rejected settled promise throws at the await and counts as handled")
    func rejectedSettledPromise() {
        let out = runScenario { log in
            let loop = EventLoop.current
            loop.runAsync {
                _ = try await Promise<Int?>.resolve(nil).value
                do {
                    _ = try await Promise<Int>.reject(TestError(name: "boom")).value
                } catch {
                    log("caught \(error)")
                }
                log("done")
            }
        }
        #expect(out == ["caught boom", "done"])
    }

    /// let r1; const p1 = new Promise(res => r1 = res); p1.then(() => log('a1'));
    /// (async () => { await p1; log('await1'); })(); p1.then(() => log('b1'));
    /// let r2; const p2 = new Promise(res => r2 = res); (async () => { await p2; log('await2'); })();
    /// p2.then(() => log('a2')); (async () => { await p2; log('await2b'); })();
    /// setTimeout(() => { r1(1); r2(2); }, 1);
    @Test("awaits and then-handlers of a pending promise run in the order they were added")
    func reactionsRunInOrderAdded() {
        let out = runScenario { log in
            let loop = EventLoop.current
            let (p1, r1) = Promise<Int>.withResolver()
            p1.then { _ in log("a1") }
            loop.runAsync {
                _ = try await p1.value; log("await1")
            }
            p1.then { _ in log("b1") }
            let (p2, r2) = Promise<Int>.withResolver()
            loop.runAsync {
                _ = try await p2.value; log("await2")
            }
            p2.then { _ in log("a2") }
            loop.runAsync {
                _ = try await p2.value; log("await2b")
            }
            setTimeout(1) {
                r1.resolve(1); r2.resolve(2)
            }
        }
        #expect(out == ["a1", "await1", "b1", "await2", "a2", "await2b"])
    }

    @Test("each await is its own PROMISE resource (trigger: the awaited promise), entered after the previous scope left")
    func awaitEventsDescribeTheContinuations() {
        typealias Event = HookEventLog.Event
        let hookLog = HookEventLog()
        let seen = LockedValue<[(awaited: AsyncID, scope: AsyncID)]>([])
        let out = runScenario { log in
            let hook = hookLog.hookForThisThread()
            hook.enable()
            let loop = EventLoop.current
            loop.runAsync {
                for i in 0..<4 {
                    let p = Promise.resolve(i)
                    let awaited = p.asyncID
                    _ = try await p.value
                    seen.withLock { $0.append((awaited, executionAsyncID())) }
                }
                log("done")
            }
            setTimeout(1) { hook.disable() }
        }
        #expect(out == ["done"])
        let evs = hookLog.events
        let scopes = seen.withLock { $0 }
        #expect(scopes.count == 4)
        var previousAfter = -1
        for (awaited, scope) in scopes {
            // The code after the await ran in a resource created for this await, triggered by the awaited promise...
            #expect(evs.contains(Event(kind: "init", id: scope, trigger: awaited)))
            // ...that was initialized, entered, left and destroyed once each, in that order...
            let mine = evs.enumerated().filter { $0.element.id == scope }
            #expect(mine.map(\.element.kind) == ["init", "before", "after", "destroy"])
            // ...and entered only after the previous await's scope was left (no nesting, no overlap).
            if let before = mine.first(where: { $0.element.kind == "before" })?.offset {
                #expect(before > previousAfter)
            }
            previousAfter = mine.first(where: { $0.element.kind == "after" })?.offset ?? Int.max
        }
        #expect(Set(scopes.map(\.scope)).count == 4)
    }
}
