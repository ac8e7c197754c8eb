// The per-thread execution stack: which resource's callback is running on this thread,
// what triggered it, and which AsyncLocal frame is current.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// One thread's execution context. Reached through a pthread key (a few ns), never shared.
public final class ExecutionState {
    @usableFromInline var executionID: AsyncID = .root
    @usableFromInline var triggerID: AsyncID = .none
    @usableFromInline var frame: ContextFrame? = nil
    @usableFromInline var stack: [Saved] = []
    @usableFromInline var nextID: UInt64 = 0
    @usableFromInline var idLimit: UInt64 = 0

    @usableFromInline
    struct Saved {
        @usableFromInline var executionID: AsyncID
        @usableFromInline var triggerID: AsyncID
        @usableFromInline var frame: ContextFrame?
        @usableFromInline init(executionID: AsyncID, triggerID: AsyncID, frame: ContextFrame?) {
            self.executionID = executionID
            self.triggerID = triggerID
            self.frame = frame
        }
    }

    init() { stack.reserveCapacity(16) }

    @inlinable
    static var current: ExecutionState {
        if let p = pthread_getspecific(executionStateKey) {
            return Unmanaged<ExecutionState>.fromOpaque(p).takeUnretainedValue()
        }
        return makeCurrent()
    }

    @usableFromInline
    static func makeCurrent() -> ExecutionState {
        let s = ExecutionState()
        pthread_setspecific(executionStateKey, Unmanaged.passRetained(s).toOpaque())
        return s
    }

    @inlinable
    func allocateID() -> AsyncID {
        if nextID == idLimit {
            let base = asyncIDBlockCounter.add(asyncIDBlockSize, ordering: .relaxed).oldValue
            nextID = base
            idLimit = base + asyncIDBlockSize
        }
        let id = nextID
        nextID += 1
        return AsyncID(id)
    }

    /// Enters a callback of `asyncID`: saves the current context and installs the resource's.
    @inlinable
    func enter(_ asyncID: AsyncID, trigger: AsyncID, frame newFrame: ContextFrame?) {
        stack.append(Saved(executionID: executionID, triggerID: triggerID, frame: frame))
        executionID = asyncID
        triggerID = trigger
        frame = newFrame
    }

    /// Leaves the callback of `asyncID`. Returns false (and leaves the stack as it was when
    /// `asyncID` is not on it) on a mismatch, which the caller reports.
    @inlinable
    func leave(_ asyncID: AsyncID) -> Bool {
        if executionID == asyncID, let s = stack.popLast() {
            executionID = s.executionID
            triggerID = s.triggerID
            frame = s.frame
            return true
        }
        return leaveMismatched(asyncID)
    }

    @usableFromInline
    func leaveMismatched(_ asyncID: AsyncID) -> Bool {
        // Unwind to the entry of asyncID if it is deeper in the stack (the inner callbacks never
        // said after); otherwise leave everything as is.
        if let i = stack.indices.reversed().first(where: { $0 + 1 < stack.count ? stack[$0 + 1].executionID == asyncID : executionID == asyncID }) {
            let s = stack[i]
            stack.removeSubrange(i...)
            executionID = s.executionID
            triggerID = s.triggerID
            frame = s.frame
        }
        return false
    }

    var depth: Int { stack.count }
}

@usableFromInline
let executionStateKey: pthread_key_t = {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key) { p in
        Unmanaged<ExecutionState>.fromOpaque(p!).release()
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
