// Emission sites. Each costs one relaxed load and a branch when no hook is enabled; the enabled
// case is out of line so callers stay small: with one hook that offers a fast path (the
// recorder), one more load and a direct call; otherwise the dispatch loop.

extension AsyncHooks {
    /// Reports a new resource to the enabled hooks (one load and a branch when none is). `AsyncResourceContext`
    /// takes an id and reports it in one step; this is for ids a runtime takes itself (`AsyncID.next()`).
    @inlinable @inline(__always)
    public static func emitInit(
        _ asyncID: AsyncID, type: ResourceType, triggerAsyncID: AsyncID,
        resource: AnyObject? = nil
    ) {
        if isActive { activeInit(asyncID, type, triggerAsyncID, resource) }
    }

    /// Reports that resource `asyncID` was freed.
    @inlinable @inline(__always)
    public static func emitDestroy(_ asyncID: AsyncID) {
        if isActive { activeDestroy(asyncID) }
    }

    /// Reports that promise resource `asyncID` resolved.
    @inlinable @inline(__always)
    public static func emitPromiseResolve(_ asyncID: AsyncID) {
        if isActive { activePromiseResolve(asyncID) }
    }

    /// `emitInit`, then `emitPromiseResolve` of the same resource (one settled as it is created):
    /// the same events, one call to a recorder.
    @_spi(Runtime) @inlinable @inline(__always)
    public static func emitInitAndPromiseResolve(_ asyncID: AsyncID, type: ResourceType, triggerAsyncID: AsyncID) {
        if isActive { activeInitAndPromiseResolve(asyncID, type, triggerAsyncID) }
    }

    /// Reports that resource `asyncID` owns `fd` from now on (-1: it no longer owns one).
    @inlinable @inline(__always)
    public static func emitResourceFD(_ asyncID: AsyncID, fd: Int32) {
        if isActive { forEachHook { $0.resourceFD(asyncID, fd: fd) } }
    }

    /// Describes resource `asyncID` (an attribute interned once, e.g. a task's priority).
    @inlinable @inline(__always)
    public static func emitResourceAttribute(_ asyncID: AsyncID, _ attribute: ResourceAttribute) {
        if isActive { forEachHook { $0.resourceAttribute(asyncID, attribute: attribute) } }
    }

    /// Enters a callback of `asyncID` on this thread: sets the execution context, then emits before.
    /// Prefer `AsyncResourceContext.runInScope`; this pair is for runtimes that cannot use a closure.
    @inlinable
    public static func enterCallback(_ asyncID: AsyncID, triggerAsyncID: AsyncID, frame: ContextFrame?) {
        ExecutionState.current.enter(asyncID, trigger: triggerAsyncID, frame: frame)
        if isActive { activeBefore(asyncID) }
    }

    /// `enterCallback`; `following`: this callback follows the thread's previous callback with nothing
    /// but the runtime's queue bookkeeping in between — no system call and no user code since that
    /// callback's after (consecutive timers of one timers phase, immediates of one check phase, ticks
    /// and microtasks of one drain). Hooks see the same events either way; a recorder may stamp such a
    /// before with the thread's previous event's time (docs/trace-format.md, "Timestamps").
    @_spi(Runtime) @inlinable
    public static func enterCallback(_ asyncID: AsyncID, triggerAsyncID: AsyncID, frame: ContextFrame?, following: Bool) {
        ExecutionState.current.enter(asyncID, trigger: triggerAsyncID, frame: frame)
        if isActive {
            if following { activeBeforeFollowing(asyncID) } else { activeBefore(asyncID) }
        }
    }

    /// Leaves a callback of `asyncID`: emits after, then restores the context. A mismatch with the
    /// innermost entered callback is reported (both ids) to every hook and to `nestingErrorHandler`.
    @inlinable
    public static func leaveCallback(_ asyncID: AsyncID) {
        if isActive { activeAfter(asyncID) }
        let state = ExecutionState.current
        let expected = state.executionID
        if !state.leave(asyncID) { reportNestingError(expected: expected, actual: asyncID) }
    }

    /// `leaveCallback(asyncID)`, then `emitDestroy(asyncID)`: the same events, one call to a recorder.
    /// Always a call: where nothing listens, the inlined `leaveCallback` is cheaper, so hot paths
    /// test `isActive` first.
    @_spi(Runtime) @inlinable
    public static func leaveCallbackAndDestroy(_ asyncID: AsyncID) {
        activeLeaveAndDestroy(asyncID)
    }

    // The enabled case, out of line: call sites stay one load and a branch when nothing listens.
    // With a fast path each is a load and a tail call; the dispatch loop is out of line again, so
    // these need no stack frame.
    @usableFromInline @inline(never)
    static func activeInit(_ id: AsyncID, _ type: ResourceType, _ trigger: AsyncID, _ resource: AnyObject?) {
        if let f = activeFastPath {
            f.pointee.initResource(id.rawValue, type.id, trigger.rawValue)
        } else {
            dispatchInit(id, type, trigger, resource)
        }
    }
    @usableFromInline @inline(never)
    static func activeInitAndPromiseResolve(_ id: AsyncID, _ type: ResourceType, _ trigger: AsyncID) {
        if let f = activeFastPath {
            if let fused = f.pointee.initResolved {
                fused(id.rawValue, type.id, trigger.rawValue)
            } else {
                f.pointee.initResource(id.rawValue, type.id, trigger.rawValue)
                f.pointee.promiseResolve(id.rawValue)
            }
        } else {
            dispatchInit(id, type, trigger, nil)
            dispatchPromiseResolve(id)
        }
    }
    @usableFromInline @inline(never)
    static func activeBefore(_ id: AsyncID) {
        if let f = activeFastPath { f.pointee.before(id.rawValue) } else { dispatchBefore(id) }
    }
    @usableFromInline @inline(never)
    static func activeBeforeFollowing(_ id: AsyncID) {
        if let f = activeFastPath { (f.pointee.beforeFollowing ?? f.pointee.before)(id.rawValue) } else { dispatchBefore(id) }
    }
    @usableFromInline @inline(never)
    static func activeAfter(_ id: AsyncID) {
        if let f = activeFastPath { f.pointee.after(id.rawValue) } else { dispatchAfter(id) }
    }
    @usableFromInline @inline(never)
    static func activeDestroy(_ id: AsyncID) {
        if let f = activeFastPath { f.pointee.destroy(id.rawValue) } else { dispatchDestroy(id) }
    }
    @usableFromInline @inline(never)
    static func activePromiseResolve(_ id: AsyncID) {
        if let f = activeFastPath { f.pointee.promiseResolve(id.rawValue) } else { dispatchPromiseResolve(id) }
    }

    // Correct with or without a hook (it falls back to the separate calls).
    @usableFromInline @inline(never)
    static func activeLeaveAndDestroy(_ id: AsyncID) {
        let state = ExecutionState.current
        // A fused call only where leaving matches (a mismatch reports a nesting error in between).
        if let f = activeFastPath, state.executionID == id, state.p.pointee.depth > 0 {
            if let fused = f.pointee.afterAndDestroy {
                fused(id.rawValue)
            } else {
                f.pointee.after(id.rawValue)
                f.pointee.destroy(id.rawValue)
            }
            state.popInnermost()
        } else {
            leaveCallback(id)
            emitDestroy(id)
        }
    }

    @usableFromInline @inline(never)
    static func dispatchInit(_ id: AsyncID, _ type: ResourceType, _ trigger: AsyncID, _ resource: AnyObject?) {
        forEachHook { $0.initResource(id, type: type, triggerAsyncID: trigger, resource: resource) }
    }
    @usableFromInline @inline(never) static func dispatchBefore(_ id: AsyncID) { forEachHook { $0.before(id) } }
    @usableFromInline @inline(never) static func dispatchAfter(_ id: AsyncID) { forEachHook { $0.after(id) } }
    @usableFromInline @inline(never) static func dispatchDestroy(_ id: AsyncID) { forEachHook { $0.destroy(id) } }
    @usableFromInline @inline(never) static func dispatchPromiseResolve(_ id: AsyncID) { forEachHook { $0.promiseResolve(id) } }

    @usableFromInline
    static func reportNestingError(expected: AsyncID, actual: AsyncID) {
        forEachHook { $0.nestingError(expected: expected, actual: actual) }
        nestingErrorHandler.withLock { $0 }(expected, actual)
    }

    /// Called on every before/after mismatch. The default writes one line to stderr; Node aborts
    /// here, which a program can reproduce by installing a handler that does.
    public static func setNestingErrorHandler(_ handler: @escaping @Sendable (_ expected: AsyncID, _ actual: AsyncID) -> Void) {
        nestingErrorHandler.withLock { $0 = handler }
    }

    // MARK: loop structure (runtimes)

    /// A runtime's loop begins iteration `n`.
    @inlinable public static func emitLoopIteration(_ n: UInt64) {
        if isActive { activeLoopIteration(n) }
    }
    @usableFromInline @inline(never)
    static func activeLoopIteration(_ n: UInt64) {
        if let f = activeFastPath { f.pointee.loopIteration(n) } else { forEachHook { $0.loopIteration(n) } }
    }
    /// A runtime's loop enters phase `p`.
    @inlinable public static func emitPhaseEnter(_ p: LoopPhase) {
        if isActive { activePhaseEnter(p, following: false) }
    }
    /// `emitPhaseEnter`; `following`: the phase follows this thread's previous callback with nothing
    /// but the runtime's bookkeeping in between (no system call, no user code; see `enterCallback`).
    @_spi(Runtime) @inlinable public static func emitPhaseEnter(_ p: LoopPhase, following: Bool) {
        if isActive { activePhaseEnter(p, following: following) }
    }
    @usableFromInline @inline(never)
    static func activePhaseEnter(_ p: LoopPhase, following: Bool) {
        if let f = activeFastPath {
            (following ? f.pointee.phaseEnterFollowing ?? f.pointee.phaseEnter : f.pointee.phaseEnter)(p.rawValue)
        } else {
            forEachHook { $0.phaseEnter(p) }
        }
    }
    /// `emitLoopIteration(n)`, then `emitPhaseEnter(p, following:)`: the same events, one call to a recorder.
    @_spi(Runtime) @inlinable public static func emitLoopIterationAndPhaseEnter(_ n: UInt64, _ p: LoopPhase, following: Bool) {
        if isActive { activeLoopIterationAndPhaseEnter(n, p, following) }
    }
    @usableFromInline @inline(never)
    static func activeLoopIterationAndPhaseEnter(_ n: UInt64, _ p: LoopPhase, _ following: Bool) {
        if let f = activeFastPath {
            if let fused = f.pointee.iterationAndPhaseEnter {
                fused(n, p.rawValue, following ? 1 : 0)
            } else {
                f.pointee.loopIteration(n)
                (following ? f.pointee.phaseEnterFollowing ?? f.pointee.phaseEnter : f.pointee.phaseEnter)(p.rawValue)
            }
        } else {
            forEachHook { $0.loopIteration(n) }
            forEachHook { $0.phaseEnter(p) }
        }
    }
    /// `emitPhaseLeave(leaving)`, `emitLoopIteration(n)`, then `emitPhaseEnter(p, following:)`: the
    /// same events, one call to a recorder.
    @_spi(Runtime) @inlinable public static func emitPhaseLeaveLoopIterationAndPhaseEnter(
        _ leaving: LoopPhase, _ n: UInt64, _ p: LoopPhase,
        following: Bool
    ) {
        if isActive { activePhaseLeaveLoopIterationAndPhaseEnter(leaving, n, p, following) }
    }
    @usableFromInline @inline(never)
    static func activePhaseLeaveLoopIterationAndPhaseEnter(_ leaving: LoopPhase, _ n: UInt64, _ p: LoopPhase, _ following: Bool) {
        if let f = activeFastPath {
            if let fused = f.pointee.leaveIterationAndPhaseEnter {
                fused(leaving.rawValue, n, p.rawValue, following ? 1 : 0)
            } else {
                f.pointee.phaseLeave(leaving.rawValue)
                activeLoopIterationAndPhaseEnter(n, p, following)
            }
        } else {
            forEachHook { $0.phaseLeave(leaving) }
            activeLoopIterationAndPhaseEnter(n, p, following)
        }
    }
    /// A runtime's loop leaves phase `p`.
    @inlinable public static func emitPhaseLeave(_ p: LoopPhase) {
        if isActive { activePhaseLeave(p) }
    }
    @usableFromInline @inline(never)
    static func activePhaseLeave(_ p: LoopPhase) {
        if let f = activeFastPath { f.pointee.phaseLeave(p.rawValue) } else { forEachHook { $0.phaseLeave(p) } }
    }
    /// A runtime's loop is about to wait for I/O (`timeoutMs` -1: no timeout).
    @inlinable public static func emitPollStart(timeoutMs: Int64) {
        if isActive { forEachHook { $0.pollStart(timeoutMs: timeoutMs) } }
    }
    /// The wait returned with these fds ready (the buffer need only live during the call).
    @inlinable public static func emitPollEnd(readyFDs: UnsafeBufferPointer<Int32>) {
        if isActive { forEachHook { $0.pollEnd(readyFDs: readyFDs) } }
    }

    /// Reports a callback that threw with nothing to catch it.
    public static func emitUncaughtError(_ asyncID: AsyncID, message: String) {
        if isActive { forEachHook { $0.uncaughtError(asyncID, message: message) } }
    }
}

#if canImport(Glibc)
import Glibc
#endif

let nestingErrorHandler = LockedValue<@Sendable (AsyncID, AsyncID) -> Void>({ expected, actual in
    let line = "asynctrace: async hook nesting error: after(\(actual)) but the innermost callback is \(expected)\n"
    var bytes = Array(line.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
})
