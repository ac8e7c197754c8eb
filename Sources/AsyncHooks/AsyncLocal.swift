// AsyncLocal: Node's AsyncLocalStorage. Values live in an immutable frame; a resource captures
// the frame current at its creation and its callbacks run with it, whether or not any hook is on.
import Synchronization

/// An immutable set of AsyncLocal values. Frames are small (one entry per live AsyncLocal).
public final class ContextFrame: @unchecked Sendable {
    @usableFromInline let keys: [UInt64]
    @usableFromInline let values: [any Sendable]

    init(keys: [UInt64], values: [any Sendable]) {
        self.keys = keys
        self.values = values
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
}

let asyncLocalKeyCounter = Atomic<UInt64>(1)

/// A value that follows the async flow: set it with `run`, and every callback of every resource
/// created inside (timers, I/O, promises, awaits) sees it; concurrent runs never see each other's.
public final class AsyncLocal<Value: Sendable>: Sendable {
    let key: UInt64

    public init() { key = asyncLocalKeyCounter.add(1, ordering: .relaxed).oldValue }

    /// The value in the current context, or nil outside any `run`.
    public var current: Value? {
        ExecutionState.current.frame?.value(for: key) as? Value
    }

    /// Runs `body` with the value set to `value`; the previous context is restored afterwards.
    public func run<R>(_ value: Value, _ body: () throws -> R) rethrows -> R {
        try withFrame(ContextFrame.setting(key, value, in: ExecutionState.current.frame), body)
    }

    /// Runs `body` outside this store (the value is nil inside).
    public func exit<R>(_ body: () throws -> R) rethrows -> R {
        try withFrame(ContextFrame.setting(key, nil, in: ExecutionState.current.frame), body)
    }

    /// Sets the value for the rest of the current synchronous execution (until the running callback returns).
    public func enterWith(_ value: Value) {
        let s = ExecutionState.current
        s.frame = ContextFrame.setting(key, value, in: s.frame)
    }

    /// Captures every AsyncLocal's value now, as Node's `AsyncLocalStorage.snapshot()`.
    public static func snapshot() -> AsyncLocalSnapshot { AsyncLocalSnapshot(frame: ExecutionState.current.frame) }

    private func withFrame<R>(_ f: ContextFrame?, _ body: () throws -> R) rethrows -> R {
        let s = ExecutionState.current
        let saved = s.frame
        s.frame = f
        defer { ExecutionState.current.frame = saved }
        return try body()
    }
}

/// Every AsyncLocal's values at one moment; `run` executes code in that context.
public struct AsyncLocalSnapshot: Sendable {
    public let frame: ContextFrame?

    public func run<R>(_ body: () throws -> R) rethrows -> R {
        let s = ExecutionState.current
        let saved = s.frame
        s.frame = frame
        defer { ExecutionState.current.frame = saved }
        return try body()
    }
}
