// Immediate handles: setImmediate / clearImmediate, run in the check phase after poll.
@_spi(Runtime) import AsyncHooks

/// Node's `Immediate`: runs once in the next check phase. Immediates queued during a check phase
/// run in the next iteration's, as in Node.
public final class Immediate {
    let loop: EventLoop
    /// The Immediate resource.
    public let context: AsyncResourceContext
    @exclusivity(unchecked) var callback: Callback?  // loop-thread only: no dynamic exclusivity checks
    /// Whether it keeps the loop alive while queued.
    @exclusivity(unchecked) public private(set) var hasRef = true

    init(loop: EventLoop, callback: @escaping Callback) {
        self.loop = loop
        self.callback = callback
        self.context = AsyncResourceContext(type: .immediate)
        loop.immediateQueue.append(self)
        loop.refCount += 1
    }

    /// Still queued.
    public var isPending: Bool { callback != nil }

    /// Returns whether it ran (a cleared one is skipped). `following`: see `EventLoop.outsideWork`.
    @inline(__always)
    func run(following: Bool) -> Bool {
        guard let cb = callback else { return false }  // cleared
        callback = nil
        if hasRef { loop.refCount -= 1 }
        if !loop.invoke(context, following: following, cb, endsAfter: { true }) { context.emitDestroy() }
        return true
    }

    /// clearImmediate. Clearing twice, or after it ran, is harmless, as in Node.
    public func clear() {
        guard callback != nil else { return }
        callback = nil
        if hasRef { loop.refCount -= 1 }
        context.emitDestroy()
        // It stays in the queue as a tombstone; `run` skips it.
    }

    /// It no longer keeps the loop alive.
    @discardableResult
    public func unref() -> Immediate {
        if hasRef && callback != nil { loop.refCount -= 1 }
        hasRef = false
        return self
    }

    /// It keeps the loop alive again (the default).
    @discardableResult
    public func ref() -> Immediate {
        if !hasRef && callback != nil { loop.refCount += 1 }
        hasRef = true
        return self
    }

    /// The Immediate's async id.
    public var asyncID: AsyncID { context.asyncID }
}

extension EventLoop {
    /// Queues `callback` for this loop's next check phase (an Immediate resource).
    @discardableResult
    public func setImmediate(_ callback: @escaping Callback) -> Immediate {
        Immediate(loop: self, callback: callback)
    }
}
