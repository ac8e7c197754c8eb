// The per-thread promise pool (CRuntimeSystem/promise_pool.h): a freed promise's memory is reused by
// the next promise made on the thread, its deinit still runs when it is freed (destroy is emitted
// then, as before), and memory something still refers to as `unowned` is never reused.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import CRuntimeSystem
import LoopTestSupport
import Testing
@testable import AsyncTraceRuntime

@Suite("Promise pool")
struct PromisePoolTests {
    @Test("a promise's state sits where a root class's stored properties start")
    func stateOffset() {
        runLoopThread {
            let p = Promise<Int>.resolve(7)
            let object = Unmanaged.passUnretained(p).toOpaque()
            #expect(_getUnsafePointerToStoredProperties(p) == object + PromiseBase.storedPropertiesOffset)
            #expect(p.state.pooled)
            #expect(try! p.settledValue() == 7)
            let normal = Promise<Int>(loop: .current, parent: nil)
            #expect(!normal.state.pooled)
        }
    }

    @Test("a freed promise's memory is reused by the next one, after its destroy was emitted")
    func reuse() {
        let log = Log()
        runLoopThread {
            // Hooks are process-wide: only this thread's events (other tests run in parallel).
            let me = pthread_self()
            let mine: @Sendable () -> Bool = { pthread_equal(pthread_self(), me) != 0 }
            let hook = AsyncHooks.createHook(
                init: { id, type, _, _ in if mine() && type == .promise { log("init \(id.rawValue)") } },
                destroy: { id in if mine() { log("destroy \(id.rawValue)") } })
            AsyncHooks.enable(hook)
            defer { AsyncHooks.disable(hook) }
            var first: Promise<String>? = Promise<String>.resolve("a")
            let id = first!.asyncID.rawValue
            let address = Unmanaged.passUnretained(first!).toOpaque()
            let pooledBefore = rt_promise_pool_count()
            first = nil
            #expect(rt_promise_pool_count() == pooledBefore + 1)
            #expect(log.lines.last == "destroy \(id)")
            let second = Promise<Int>.resolve(2)
            #expect(Unmanaged.passUnretained(second).toOpaque() == address)
            #expect(second.asyncID.rawValue != id)
            #expect(try! second.settledValue() == 2)
            #expect(rt_promise_pool_count() == pooledBefore)
        }
    }

    @Test("memory a dead promise's unowned reference still points to is not reused")
    func unownedKeepsMemory() {
        runLoopThread {
            var p: Promise<Int>? = Promise<Int>.resolve(1)
            let holder = UnownedHolder(p!)
            let address = Unmanaged.passUnretained(p!).toOpaque()
            p = nil
            withExtendedLifetime(holder) {  // (never read: that would trap, as for any freed object)
                for _ in 0..<8 {
                    let q = Promise<Int>.resolve(2)
                    #expect(Unmanaged.passUnretained(q).toOpaque() != address)
                }
            }
        }
    }

    @Test("an await chain on pooled promises destroys every promise it made")
    func awaitChainEvents() {
        let inits = LockedValue<Set<UInt64>>([]), destroys = LockedValue<Set<UInt64>>([])
        let log = Log()
        runLoopThread {
            let me = pthread_self()  // hooks are process-wide: only this thread's events
            let mine: @Sendable () -> Bool = { pthread_equal(pthread_self(), me) != 0 }
            let hook = AsyncHooks.createHook(
                init: { id, type, _, _ in if mine() && type == .promise { inits.withLock { _ = $0.insert(id.rawValue) } } },
                destroy: { id in if mine() { destroys.withLock { _ = $0.insert(id.rawValue) } } })
            AsyncHooks.enable(hook)
            EventLoop.current.runAsync {
                var s = 0
                for i in 0..<1000 { s += try await Promise.resolve(i).value }
                log("sum \(s)")
            }
            try EventLoop.current.run()
            AsyncHooks.disable(hook)
        }
        #expect(log.lines == ["sum 499500"])
        let made = inits.withLock { $0 }, freed = destroys.withLock { $0 }
        #expect(made.count >= 2000)  // each await: the awaited promise and the await's resource
        #expect(made.subtracting(freed).count <= 2)  // (the task's own promise may outlive the loop's run)
    }
}

final class UnownedHolder {
    unowned let promise: Promise<Int>
    init(_ promise: Promise<Int>) { self.promise = promise }
}

@Suite("Promise pool budget")
struct PromisePoolBudgetTests {
    @Test("beyond the pool's budget of live promises, promises are ordinary objects; all are freed alike")
    func budget() {
        let log = Log()
        runLoopThread {
            var live: [Promise<Int>] = (0..<1000).map { Promise.resolve($0) }
            let pooled = live.filter { $0.state.pooled }.count
            log("pooled \(pooled) of \(live.count)")
            var sum = 0
            for p in live { sum += try p.settledValue() }
            log("sum \(sum)")
            live = []
            log("kept \(rt_promise_pool_count() <= 256)")
            let again = Promise.resolve(1)
            log("reused \(again.state.pooled)")
        }
        #expect(log.lines == ["pooled 256 of 1000", "sum 499500", "kept true", "reused true"])
    }
}
