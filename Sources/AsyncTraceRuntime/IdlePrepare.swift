// Idle and prepare handles (libuv's uv_idle_t and uv_prepare_t): a callback run once per loop
// iteration, in the idle or the prepare phase (both after pending, before poll), while started.
// An active idle handle makes poll not block; a prepare callback is the last thing before epoll_wait.
@_spi(Runtime) import AsyncHooks

/// What `Idle` and `Prepare` share: start/stop, ref/unref, close. Each is one resource: init when
/// created, before/after around each run, destroy in the close phase after `close()`.
public class LoopPhaseHandle {
    let loop: EventLoop
    let phase: LoopPhase
    /// The handle's resource (IDLEWRAP or PREPAREWRAP).
    public let context: AsyncResourceContext
    var callback: Callback?
    /// Started and not stopped.
    public private(set) var isActive = false
    /// Whether an active handle keeps the loop alive.
    public private(set) var hasRef = true
    /// Whether `close()` was called.
    public private(set) var isClosed = false

    init(loop: EventLoop, phase: LoopPhase, type: ResourceType) throws(RuntimeError) {
        guard loop.isOnLoopThread else { throw .wrongThread(operation: "\(type.name) init") }
        self.loop = loop
        self.phase = phase
        self.context = AsyncResourceContext(type: type)
    }

    /// Runs `callback` once in every iteration's phase from the next one on (a handle started during
    /// its own phase first runs in the next iteration). Starting a started handle replaces its callback.
    public func start(_ callback: @escaping Callback) throws(RuntimeError) {
        guard !isClosed else {
            throw .handleClosed(type: context.type.name, asyncID: context.asyncID, operation: "start")
        }
        self.callback = callback
        if isActive { return }
        isActive = true
        loop.addPhaseHandle(self)
        if hasRef { loop.refCount += 1 }
    }

    /// Stops calling back; a later `start` resumes. Stopping a stopped handle does nothing.
    public func stop() {
        guard isActive else { return }
        isActive = false
        loop.removePhaseHandle(self)
        if hasRef { loop.refCount -= 1 }
    }

    /// Stops it; `onClose` runs in the close phase (as a callback of this resource), then destroy.
    /// Closing twice throws `RuntimeError.alreadyClosed`.
    public func close(_ onClose: Callback? = nil) throws(RuntimeError) {
        guard !isClosed else { throw .alreadyClosed(type: context.type.name, asyncID: context.asyncID) }
        stop()
        isClosed = true
        callback = nil
        loop.queueClose(context) { try onClose?() }
    }

    /// An unref'd handle does not keep the loop alive (an active unref'd idle handle still keeps
    /// poll from blocking while the loop runs, as in libuv).
    @discardableResult
    public func unref() -> Self {
        if hasRef {
            hasRef = false
            if isActive { loop.refCount -= 1 }
        }
        return self
    }

    /// An active handle keeps the loop alive again (the default).
    @discardableResult
    public func ref() -> Self {
        if !hasRef {
            hasRef = true
            if isActive { loop.refCount += 1 }
        }
        return self
    }

    /// The handle's async id.
    public var asyncID: AsyncID { context.asyncID }

    func run() {
        guard isActive, let cb = callback else { return }  // stopped earlier in this phase
        loop.invoke(context, cb)
    }
}

/// libuv's idle handle: runs once per iteration in the idle phase; while one is active, poll does not block.
public final class Idle: LoopPhaseHandle {
    /// An idle handle on `loop` (an IDLEWRAP resource), not started; throws off the loop's thread.
    public init(loop: EventLoop = .current) throws(RuntimeError) {
        try super.init(loop: loop, phase: .idle, type: .idleWrap)
    }
}

/// libuv's prepare handle: runs once per iteration in the prepare phase, right before poll.
public final class Prepare: LoopPhaseHandle {
    /// A prepare handle on `loop` (a PREPAREWRAP resource), not started; throws off the loop's thread.
    public init(loop: EventLoop = .current) throws(RuntimeError) {
        try super.init(loop: loop, phase: .prepare, type: .prepareWrap)
    }
}

extension ResourceType {
    /// An `Idle` handle (libuv's uv_idle_t; Node has no public counterpart, the name follows its *WRAP types).
    public static let idleWrap = ResourceType("IDLEWRAP")
    /// A `Prepare` handle (libuv's uv_prepare_t).
    public static let prepareWrap = ResourceType("PREPAREWRAP")
}

extension EventLoop {
    func addPhaseHandle(_ h: LoopPhaseHandle) {
        if h.phase == .idle { idleHandles.append(h) } else { prepareHandles.append(h) }
    }

    func removePhaseHandle(_ h: LoopPhaseHandle) {
        if h.phase == .idle {
            if let i = idleHandles.firstIndex(where: { $0 === h }) { idleHandles.remove(at: i) }
        } else {
            if let i = prepareHandles.firstIndex(where: { $0 === h }) { prepareHandles.remove(at: i) }
        }
    }

    /// The idle or prepare phase: each handle active when the phase began, in start order.
    func runPhaseHandles(_ phase: LoopPhase) {
        let handles = phase == .idle ? idleHandles : prepareHandles  // a snapshot: callbacks may start or stop handles
        enterPhase(phase)
        for h in handles { h.run() }
        AsyncHooks.emitPhaseLeave(phase)
    }
}
