// Switching callbacks in place: a runtime whose next callback begins exactly where the current one
// ends (an await that continues without suspending) replaces the innermost entry of the execution
// stack instead of popping it and pushing another.

extension AsyncHooks {
    /// Ends the innermost callback, `current`, and begins a callback of `next` in its place: the
    /// events and the resulting context are those of `leaveCallback(current)`, `emitDestroy(current)`
    /// (when `destroyingCurrent`), then `enterCallback(next, triggerAsyncID:, frame:)` with the frame
    /// current now. Returns false, doing nothing, when `current` is not the innermost callback.
    /// With no hook enabled it is two stores: the saved outer context and the frame stay as they are.
    @_spi(Runtime) @inlinable
    public static func switchCallback(
        from current: AsyncID, destroyingCurrent: Bool,
        to next: AsyncID, triggerAsyncID: AsyncID
    ) -> Bool {
        let state = ExecutionState.current
        guard state.executionID == current, state.p.pointee.depth > 0 else { return false }
        if isActive {
            switchCallbackObserved(from: current, destroyingCurrent: destroyingCurrent, to: next, triggerAsyncID: triggerAsyncID)
        } else {
            state.p.pointee.executionID = next
            state.p.pointee.triggerID = triggerAsyncID
        }
        return true
    }

    /// Creates a resource of `type` — a fresh id, init with `triggerAsyncID`, the current frame, as
    /// `AsyncResourceContext(type:triggerAsyncID:)` — and switches the innermost callback, `current`,
    /// to it as `switchCallback(from:destroyingCurrent:to:triggerAsyncID:)` does. Returns the new id,
    /// or nil, having done nothing, when `current` is not the innermost callback. One look-up of
    /// the thread's state for all of it: this is the whole scope work of an await that needs no
    /// suspension.
    @_spi(Runtime) @inlinable
    public static func switchCallback(
        from current: AsyncID, destroyingCurrent: Bool,
        toNewResourceOf type: ResourceType, triggerAsyncID: AsyncID
    ) -> AsyncID? {
        let state = ExecutionState.current
        guard state.executionID == current, state.p.pointee.depth > 0 else { return nil }
        let next = state.allocateID()
        if isActive {
            switchToNewResourceObserved(
                state, from: current, destroyingCurrent: destroyingCurrent, to: next, type: type,
                triggerAsyncID: triggerAsyncID)
        } else {
            state.p.pointee.executionID = next
            state.p.pointee.triggerID = triggerAsyncID
        }
        return next
    }

    /// The init and the switch with hooks enabled; a sole hook with a fused fast path gets all four
    /// events (init, after, destroy, before) in one call.
    @usableFromInline @inline(never)
    static func switchToNewResourceObserved(
        _ state: ExecutionState, from current: AsyncID, destroyingCurrent: Bool,
        to next: AsyncID, type: ResourceType, triggerAsyncID: AsyncID
    ) {
        if destroyingCurrent, let f = activeFastPath, let fused = f.pointee.initAfterDestroyBefore {
            // The in-place switch first, so the call is the last thing done (a tail call): a fast path
            // reads no context, so it cannot tell.
            state.p.pointee.executionID = next
            state.p.pointee.triggerID = triggerAsyncID
            fused(next.rawValue, type.id, triggerAsyncID.rawValue, current.rawValue)
            return
        }
        activeInit(next, type, triggerAsyncID, nil)
        switchCallbackObserved(from: current, destroyingCurrent: destroyingCurrent, to: next, triggerAsyncID: triggerAsyncID)
    }

    /// The same with hooks enabled: the full leave and enter, so every hook sees the context it
    /// would see around each event (a sole hook with a fused fast path gets after, destroy and before
    /// in one call).
    @usableFromInline @inline(never)
    static func switchCallbackObserved(
        from current: AsyncID, destroyingCurrent: Bool,
        to next: AsyncID, triggerAsyncID: AsyncID
    ) {
        let state = ExecutionState.current
        if destroyingCurrent, let f = activeFastPath, let fused = f.pointee.afterDestroyBefore {
            // A fast path reads no context: the in-place switch of the hook-less case (the caller
            // checked that `current` is the innermost callback), then one call for the three events.
            state.p.pointee.executionID = next
            state.p.pointee.triggerID = triggerAsyncID
            fused(current.rawValue, next.rawValue)
            return
        }
        let frame = state.frame
        leaveCallback(current)
        if destroyingCurrent { emitDestroy(current) }
        enterCallback(next, triggerAsyncID: triggerAsyncID, frame: frame)
    }
}
