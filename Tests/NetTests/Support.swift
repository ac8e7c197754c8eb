// Test support: run a scenario on its own loop thread; record hook events of that thread only.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import LoopTestSupport
@testable import AsyncTraceRuntime

/// Records every hook event of one loop thread and checks the shape: before/after nest, nothing
/// runs or is destroyed without an init, nothing is destroyed twice, every init gets its destroy.
final class TraceHook: AsyncHook, @unchecked Sendable {
    struct Resource { var type: String; var trigger: AsyncID; var fds: [Int32] = [] }
    struct State {
        var resources: [AsyncID: Resource] = [:]
        var order: [AsyncID] = []
        var destroyed: Set<AsyncID> = []
        var stack: [AsyncID] = []
        var callbacks: [AsyncID: Int] = [:]
        var problems: [String] = []
        var uncaught: [String] = []
    }
    let state = LockedValue(State())
    let thread = LockedValue<pthread_t?>(nil)

    private var mine: Bool {
        guard let t = thread.withLock({ $0 }) else { return false }
        return pthread_equal(pthread_self(), t) != 0
    }
    func attachToCurrentThread() { thread.withLock { $0 = pthread_self() } }

    func initResource(_ id: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {
        guard mine else { return }
        let name = type.name
        state.withLock { s in
            if s.resources[id] != nil { s.problems.append("init twice \(id)") }
            s.resources[id] = Resource(type: name, trigger: triggerAsyncID)
            s.order.append(id)
        }
    }
    func before(_ id: AsyncID) {
        guard mine else { return }
        state.withLock { s in
            if s.resources[id] == nil { s.problems.append("before without init \(id)") }
            if s.destroyed.contains(id) { s.problems.append("before after destroy \(id) \(s.resources[id]?.type ?? "")") }
            s.stack.append(id)
            s.callbacks[id, default: 0] += 1
        }
    }
    func after(_ id: AsyncID) {
        guard mine else { return }
        state.withLock { s in
            if s.stack.last != id { s.problems.append("after \(id) but innermost is \(String(describing: s.stack.last))") }
            _ = s.stack.popLast()
        }
    }
    func destroy(_ id: AsyncID) {
        guard mine else { return }
        state.withLock { s in
            if s.resources[id] == nil { s.problems.append("destroy without init \(id)") }
            if !s.destroyed.insert(id).inserted { s.problems.append("destroy twice \(id) \(s.resources[id]?.type ?? "")") }
        }
    }
    func resourceFD(_ id: AsyncID, fd: Int32) {
        guard mine else { return }
        state.withLock { $0.resources[id]?.fds.append(fd) }
    }
    func uncaughtError(_ id: AsyncID, message: String) {
        guard mine else { return }
        state.withLock { $0.uncaught.append("\(id) \(message)") }
    }

    var problems: [String] { state.withLock { $0.problems } }
    /// Types of resources with an init and no destroy.
    var undestroyed: [String] {
        state.withLock { s in s.resources.filter { !s.destroyed.contains($0.key) }.map(\.value.type).sorted() }
    }
    func ids(of type: String) -> [AsyncID] {
        state.withLock { s in s.order.filter { s.resources[$0]?.type == type } }
    }
    func resource(_ id: AsyncID) -> Resource? { state.withLock { $0.resources[id] } }
    func callbackCount(_ id: AsyncID) -> Int { state.withLock { $0.callbacks[id] ?? 0 } }
    var typeCounts: [String: Int] {
        state.withLock { s in s.resources.values.reduce(into: [:]) { $0[$1.type, default: 0] += 1 } }
    }
}

/// Runs `main` as the main module of a fresh loop thread with a TraceHook enabled for that thread.
/// The loop's uncaught errors are logged ("uncaught: ...") instead of ending the process.
func runTraced(_ main: @escaping @Sendable (Log) throws -> Void) -> (lines: [String], hook: TraceHook) {
    runTraced { log, _ in try main(log) }
}

/// `runTraced` whose `main` also gets the hook (to ask, say, the type of the running resource).
func runTraced(_ main: @escaping @Sendable (Log, TraceHook) throws -> Void) -> (lines: [String], hook: TraceHook) {
    let log = Log()
    let hook = TraceHook()
    AsyncHooks.enable(hook)
    defer { AsyncHooks.disable(hook) }
    runLoopThread {
        hook.attachToCurrentThread()
        EventLoop.current.onUncaughtError = { e in log("uncaught: \(e.error)") }
        try main(log, hook)
    }
    return (log.lines, hook)
}

/// A path for a Unix socket in /tmp, unique per test.
func tempSocketPath(_ name: String) -> String {
    "/tmp/asynctrace-net-\(getpid())-\(name).sock"
}
