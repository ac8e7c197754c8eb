// AsyncLocal: Node's AsyncLocalStorage. Values live in an immutable frame; a resource captures
// the frame current at its creation and its callbacks run with it, whether or not any hook is on.
// Swift tasks carry the frame too: `run` also binds it as a task-local value, so child tasks, async let
// and group tasks inherit it as they inherit @TaskLocal values, and an `async` run covers its awaits.
import CAsyncHooksSupport
import Synchronization


/// An immutable set of AsyncLocal values. Frames are small (one entry per live AsyncLocal).
public final class ContextFrame: @unchecked Sendable {
    @usableFromInline let keys: [UInt64]
    @usableFromInline let values: [any Sendable]
    /// Creation order: of a thread's frame and a task's bound frame, the newer one is current.
    let sequence: UInt64

    init(keys: [UInt64], values: [any Sendable]) {
        self.keys = keys
        self.values = values
        sequence = asynchooks_next_frame_sequence()
    }

    @usableFromInline
    func value(for key: UInt64) -> (any Sendable)? {
        for i in keys.indices where keys[i] == key { return values[i] }
        return nil
    }

    static func setting(_ key: UInt64, _ value: (any Sendable)?, in frame: ContextFrame?) -> ContextFrame? {
        var k = frame?.keys ?? []
        var v = frame?.values ?? []
        if let i = k.firstIndex(of: key) {
            k.remove(at: i)
            v.remove(at: i)
        }
        if let value {
            k.append(key)
            v.append(value)
        }
        return k.isEmpty ? nil : ContextFrame(keys: k, values: v)
    }

    /// The frame current on this thread.
    @inlinable public static var current: ContextFrame? { ExecutionState.current.frame }

    /// The frame AsyncLocal reads: the thread's, or the one bound to the running task by a `run` (see
    /// `TaskFrameBinding`), whichever applies here.
    public static var effective: ContextFrame? {
        let state = ExecutionState.current
        guard let b = TaskFrameBinding.bound else { return state.frame }
        let threadSequence = state.frame?.sequence ?? 0
        if b.state == UInt(bitPattern: state.p) && state.depth > b.depth {
            return state.frame  // a callback entered inside the run runs in its resource's context
        }
        return threadSequence > b.sequence ? state.frame : b.frame
    }
}

/// A frame bound to the running task (a task-local value, so Swift copies it into child tasks, async let
/// and group tasks, and keeps it across awaits). The thread and callback depth where it was bound tell a
/// callback entered inside the run (whose resource's context applies) from the run's own code.
struct TaskFrameBinding: Sendable {
    let frame: ContextFrame?
    let sequence: UInt64
    let state: UInt
    let depth: Int

    @TaskLocal static var bound: TaskFrameBinding?

    static func binding(_ frame: ContextFrame?) -> TaskFrameBinding {
        let state = ExecutionState.current
        return TaskFrameBinding(
            frame: frame, sequence: frame?.sequence ?? asynchooks_next_frame_sequence(),
            state: UInt(bitPattern: state.p), depth: state.depth)
    }
}


/// A value that follows the async flow: set it with `run`, and every callback of every resource
/// created inside (timers, I/O, promises, awaits) sees it; concurrent runs never see each other's.
public final class AsyncLocal<Value: Sendable>: Sendable {
    let key: UInt64

    /// A new store, distinct from every other (its value is nil everywhere until `run`).
    public init() { key = asynchooks_next_local_key() }

    /// The value in the current context, or nil outside any `run`.
    public var current: Value? {
        ContextFrame.effective?.value(for: key) as? Value
    }

    /// Runs `body` with the value set to `value`; the previous context is restored afterwards. Tasks
    /// created inside (child tasks, async let, group tasks, `Task {}`) see the value, as with @TaskLocal.
    public func run<R>(_ value: Value, _ body: () throws -> R) rethrows -> R {
        try withFrame(ContextFrame.setting(key, value, in: ContextFrame.effective), body)
    }

    /// Runs the async `body` with the value set to `value`, across its awaits and in the tasks it creates.
    public func run<R>(_ value: Value, _ body: () async throws -> R) async rethrows -> R {
        let frame = ContextFrame.setting(key, value, in: ContextFrame.effective)
        return try await TaskFrameBinding.$bound.withValue(TaskFrameBinding.binding(frame)) { try await body() }
    }

    /// Runs `body` outside this store (the value is nil inside).
    public func exit<R>(_ body: () throws -> R) rethrows -> R {
        try withFrame(ContextFrame.setting(key, nil, in: ContextFrame.effective), body)
    }

    /// Sets the value for the rest of the current synchronous execution (until the running callback returns).
    public func enterWith(_ value: Value) {
        let s = ExecutionState.current
        s.frame = ContextFrame.setting(key, value, in: ContextFrame.effective) ?? ContextFrame(keys: [], values: [])
    }

    /// Captures every AsyncLocal's value now, as Node's `AsyncLocalStorage.snapshot()`.
    public static func snapshot() -> AsyncLocalSnapshot { AsyncLocalSnapshot(frame: ContextFrame.effective) }

    private func withFrame<R>(_ f: ContextFrame?, _ body: () throws -> R) rethrows -> R {
        let s = ExecutionState.current
        let saved = s.frame
        s.frame = f
        defer { ExecutionState.current.frame = saved }
        return try TaskFrameBinding.$bound.withValue(TaskFrameBinding.binding(f)) { try body() }
    }
}

/// Every AsyncLocal's values at one moment; `run` executes code in that context.
public struct AsyncLocalSnapshot: Sendable {
    /// The captured values (nil: none were set).
    public let frame: ContextFrame?

    /// Runs `body` in the captured context; the previous context is restored afterwards.
    public func run<R>(_ body: () throws -> R) rethrows -> R {
        let s = ExecutionState.current
        let saved = s.frame
        s.frame = frame
        defer { ExecutionState.current.frame = saved }
        return try TaskFrameBinding.$bound.withValue(TaskFrameBinding.binding(frame)) { try body() }
    }

    /// Runs the async `body` in the captured context, across its awaits.
    public func run<R>(_ body: () async throws -> R) async rethrows -> R {
        try await TaskFrameBinding.$bound.withValue(TaskFrameBinding.binding(frame)) { try await body() }
    }
}
