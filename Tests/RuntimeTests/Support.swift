// Test support: run a scenario on its own loop thread and collect what it prints; count hook events.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import LoopTestSupport
@testable import AsyncTraceRuntime

/// Runs `main` as the main module of a fresh loop on its own thread, until the loop ends.
func runScenario(_ main: @escaping @Sendable (Log) throws -> Void) -> [String] {
    let log = Log()
    runLoopThread {
        // An uncaught error would end the test process (the default policy): log it instead, so the
        // test's expectations show it.
        EventLoop.current.onUncaughtError = { e in log("UNCAUGHT \(e)") }
        try main(log)
    }
    return log.lines
}

func monotonicMs() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
}

/// Blocks the thread (a long synchronous stretch, as a CPU-heavy main module).
func busyWait(ms: Double) {
    let end = monotonicMs() + ms
    while monotonicMs() < end {}
}

/// Counts hook events on one thread and checks their shape: every before has its after (LIFO),
/// nothing runs or is destroyed without an init, nothing is destroyed twice.
final class BalanceHook: AsyncHook, @unchecked Sendable {
    struct State {
        var types: [AsyncID: String] = [:]
        var destroyed: Set<AsyncID> = []
        var stack: [AsyncID] = []
        var befores = 0
        var afters = 0
        var problems: [String] = []
        var uncaught: [(AsyncID, String)] = []
        var phases: [String] = []
    }
    let thread: pthread_t
    let state = LockedValue(State())
    let recordPhases: Bool

    init(recordPhases: Bool = false) {
        thread = pthread_self()
        self.recordPhases = recordPhases
    }
    private var mine: Bool { pthread_equal(pthread_self(), thread) != 0 }

    func initResource(_ id: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {
        guard mine else { return }
        let name = type.name
        state.withLock { s in
            if s.types[id] != nil { s.problems.append("init twice \(id)") }
            s.types[id] = name
        }
    }
    func before(_ id: AsyncID) {
        guard mine else { return }
        state.withLock { s in
            if s.types[id] == nil { s.problems.append("before without init \(id)") }
            if s.destroyed.contains(id) { s.problems.append("before after destroy \(id)") }
            s.stack.append(id)
            s.befores += 1
        }
    }
    func after(_ id: AsyncID) {
        guard mine else { return }
        state.withLock { s in
            if s.stack.last != id { s.problems.append("after \(id) but innermost is \(String(describing: s.stack.last))") }
            _ = s.stack.popLast()
            s.afters += 1
        }
    }
    func destroy(_ id: AsyncID) {
        guard mine else { return }
        state.withLock { s in
            if s.types[id] == nil { s.problems.append("destroy without init \(id)") }
            if !s.destroyed.insert(id).inserted { s.problems.append("destroy twice \(id)") }
        }
    }
    func uncaughtError(_ id: AsyncID, message: String) {
        guard mine else { return }
        state.withLock { $0.uncaught.append((id, message)) }
    }
    func phaseEnter(_ phase: LoopPhase) {
        guard mine, recordPhases else { return }
        state.withLock { $0.phases.append("\(phase)") }
    }

    /// Resources with an init and no destroy, by type name.
    var undestroyed: [String] {
        state.withLock { s in s.types.filter { !s.destroyed.contains($0.key) }.map(\.value).sorted() }
    }
}

/// init/before/after/destroy of one thread, in order, as plain values a test can compare.
final class HookEventLog: Sendable {
    struct Event: Equatable { let kind: String; let id: AsyncID; let trigger: AsyncID }
    private let storage = LockedValue<[Event]>([])
    var events: [Event] { storage.withLock { $0 } }

    /// A hook (not yet enabled) that logs the calling thread's events only.
    func hookForThisThread() -> ClosureHook {
        let thread = pthread_self()
        @Sendable func record(_ kind: String, _ id: AsyncID, _ trigger: AsyncID = .none) {
            if pthread_equal(pthread_self(), thread) != 0 { storage.withLock { $0.append(Event(kind: kind, id: id, trigger: trigger)) } }
        }
        return AsyncHooks.createHook(
            init: { id, _, trigger, _ in record("init", id, trigger) },
            before: { record("before", $0) }, after: { record("after", $0) },
            destroy: { record("destroy", $0) })
    }
}
