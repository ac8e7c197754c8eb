// The per-thread execution stack: which resource's callback is running on this thread,
// what triggered it, and which AsyncLocal frame is current.
// The state sits in manually managed memory found through a C `__thread` pointer (a pthread key
// only runs the thread-exit destructor): every callback touches it, and raw memory avoids the
// reference counting and exclusivity checks a class would cost.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import CAsyncHooksSupport

@usableFromInline
struct SavedContext {
    @usableFromInline var executionID: AsyncID
    @usableFromInline var triggerID: AsyncID
    @usableFromInline var frame: ContextFrame?
    @usableFromInline init(executionID: AsyncID, triggerID: AsyncID, frame: ContextFrame?) {
        self.executionID = executionID
        self.triggerID = triggerID
        self.frame = frame
    }
}

@usableFromInline
struct ExecutionStateData {
    @usableFromInline var executionID: AsyncID = .root
    @usableFromInline var triggerID: AsyncID = .none
    @usableFromInline var frame: ContextFrame? = nil
    @usableFromInline var nextID: UInt64 = 0
    @usableFromInline var idLimit: UInt64 = 0
    @usableFromInline var stack: UnsafeMutablePointer<SavedContext>
    @usableFromInline var depth: Int = 0
    @usableFromInline var capacity: Int

    init() {
        capacity = 32
        stack = .allocate(capacity: capacity)
    }
}

/// One thread's execution context (a handle to it; cheap to copy, never shared between threads).
@usableFromInline struct ExecutionState {
    @usableFromInline let p: UnsafeMutablePointer<ExecutionStateData>

    @usableFromInline init(_ p: UnsafeMutablePointer<ExecutionStateData>) { self.p = p }

    @inlinable
    static var current: ExecutionState {
        if let raw = asynchooks_state() {
            return ExecutionState(raw.assumingMemoryBound(to: ExecutionStateData.self))
        }
        return makeCurrent()
    }

    /// The thread's first use in this copy: the state the process's other copies use, if one of them
    /// makes the thread states (so every copy sees the same current callback), else a new one.
    @usableFromInline
    static func makeCurrent() -> ExecutionState {
        if let shared = asynchooks_shared_thread_state(ownThreadStateMaker) {
            asynchooks_set_state(shared)
            return ExecutionState(shared.assumingMemoryBound(to: ExecutionStateData.self))
        }
        return makeOwn()
    }

    static func makeOwn() -> ExecutionState {
        let p = UnsafeMutablePointer<ExecutionStateData>.allocate(capacity: 1)
        p.initialize(to: ExecutionStateData())
        pthread_setspecific(executionStateKey, p)  // only for the thread-exit destructor
        asynchooks_set_state(p)
        return ExecutionState(p)
    }

    @inlinable var executionID: AsyncID { p.pointee.executionID }
    @inlinable var triggerID: AsyncID { p.pointee.triggerID }
    @inlinable var frame: ContextFrame? {
        get { p.pointee.frame }
        nonmutating set { p.pointee.frame = newValue }
    }
    var depth: Int { p.pointee.depth }

    /// The current frame, retained by hand: with no frame (the common case) nothing is called, where
    /// copying the `ContextFrame?` would call swift_retain on nil (see `AsyncHooks.newResource`).
    @inlinable var retainedFrame: Unmanaged<ContextFrame>? {
        let raw = withUnsafePointer(to: &p.pointee.frame) { UnsafeRawPointer($0).load(as: UnsafeRawPointer?.self) }
        guard let raw else { return nil }
        return Unmanaged<ContextFrame>.fromOpaque(raw).retain()
    }

    @inlinable
    func allocateID() -> AsyncID {
        if p.pointee.nextID == p.pointee.idLimit { refillIDs() }
        let id = p.pointee.nextID
        p.pointee.nextID = id &+ 1
        return AsyncID(id)
    }

    @usableFromInline
    func refillIDs() {
        let base = asynchooks_take_ids(asyncIDBlockSize)
        p.pointee.nextID = base
        p.pointee.idLimit = base + asyncIDBlockSize
    }

    /// Enters a callback of `asyncID`: saves the current context and installs the resource's.
    @inlinable
    func enter(_ asyncID: AsyncID, trigger: AsyncID, frame newFrame: ContextFrame?) {
        let d = p.pointee.depth
        if d == p.pointee.capacity { grow() }
        (p.pointee.stack + d).initialize(
            to: SavedContext(
                executionID: p.pointee.executionID,
                triggerID: p.pointee.triggerID, frame: p.pointee.frame))
        p.pointee.depth = d + 1
        p.pointee.executionID = asyncID
        p.pointee.triggerID = trigger
        p.pointee.frame = newFrame
    }

    @usableFromInline
    func grow() {
        let cap = p.pointee.capacity * 2
        let s = UnsafeMutablePointer<SavedContext>.allocate(capacity: cap)
        s.moveInitialize(from: p.pointee.stack, count: p.pointee.depth)
        p.pointee.stack.deallocate()
        p.pointee.stack = s
        p.pointee.capacity = cap
    }

    /// Leaves the callback of `asyncID`. Returns false on a mismatch, which the caller reports;
    /// then, if `asyncID` is deeper in the stack, the inner callbacks that never left are unwound.
    @inlinable
    func leave(_ asyncID: AsyncID) -> Bool {
        let d = p.pointee.depth
        if p.pointee.executionID == asyncID && d > 0 {
            restore(to: d - 1)
            return true
        }
        return leaveMismatched(asyncID)
    }

    /// Pops saved contexts down to depth `d`, installing the one saved at `d`.
    @inlinable
    func restore(to d: Int) {
        let saved = (p.pointee.stack + d).move()
        for i in stride(from: p.pointee.depth - 1, to: d, by: -1) { (p.pointee.stack + i).deinitialize(count: 1) }
        p.pointee.depth = d
        p.pointee.executionID = saved.executionID
        p.pointee.triggerID = saved.triggerID
        p.pointee.frame = saved.frame
    }

    /// Leaves the innermost callback (the caller checked there is one): `restore(to: depth - 1)`
    /// without the unwinding loop.
    @inlinable @inline(__always)
    func popInnermost() {
        let d = p.pointee.depth - 1
        let saved = (p.pointee.stack + d).move()
        p.pointee.depth = d
        p.pointee.executionID = saved.executionID
        p.pointee.triggerID = saved.triggerID
        p.pointee.frame = saved.frame
    }

    @usableFromInline
    func leaveMismatched(_ asyncID: AsyncID) -> Bool {
        // Entry i saved the context that was current when the callback at depth i+1 began;
        // that callback's id is entry i+1's saved id, or the current id for the innermost.
        let d = p.pointee.depth
        var i = d - 2
        while i >= 0 {
            if p.pointee.stack[i + 1].executionID == asyncID {
                restore(to: i)
                return false
            }
            i -= 1
        }
        return false
    }
}

@usableFromInline
let executionStateKey: pthread_key_t = {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key) { raw in
        guard let raw else { return }
        let p = raw.assumingMemoryBound(to: ExecutionStateData.self)
        asynchooks_clear_thread_states()  // in every copy that uses it
        p.pointee.stack.deinitialize(count: p.pointee.depth)
        p.pointee.stack.deallocate()
        p.deinitialize(count: 1)
        p.deallocate()
    }
    precondition(rc == 0, "pthread_key_create failed: \(rc)")
    return key
}()

/// The async id whose callback is running on this thread (`AsyncID.root` at top level).
@inlinable
public func executionAsyncID() -> AsyncID { ExecutionState.current.executionID }

/// The id of the resource that caused the running callback to be scheduled (`none` at top level).
@inlinable
public func triggerAsyncID() -> AsyncID { ExecutionState.current.triggerID }
