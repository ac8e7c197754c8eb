// Timeout handles: setTimeout / setInterval with clear, ref/unref and refresh, as Node's `Timeout`.
#if canImport(Glibc)
import Glibc
#endif
@_spi(Runtime) import AsyncHooks

/// A timer (Node's `Timeout` class). One resource per activation: init when scheduled, before/after
/// around each run, destroy when it finished (one-shot), or when cleared.
public final class Timeout {
    let loop: EventLoop
    // The fields the loop touches per run skip dynamic exclusivity checks (loop-thread only).
    /// The timer's Timeout resource (a new one when a timer that ran and was destroyed is refreshed).
    @exclusivity(unchecked) public private(set) var context: AsyncResourceContext
    @exclusivity(unchecked) var callback: Callback
    /// The delay in ms (a negative or too large request became 1, with a warning, as in Node).
    public let delayMs: Int
    let delayNs: UInt64
    /// Whether it repeats (`setInterval`).
    public let isRepeating: Bool
    @exclusivity(unchecked) var dueNs: UInt64 = 0
    @exclusivity(unchecked) var sequence: UInt64 = 0
    /// Links in its delay's list (see TimerHeap); `list` is nil while inactive.
    @exclusivity(unchecked) var list: TimerList?
    @exclusivity(unchecked) var next: Timeout?
    unowned(unsafe) var prev: Timeout?
    /// Whether an active timer keeps the loop alive.
    @exclusivity(unchecked) public private(set) var hasRef = true
    /// destroy was emitted for the current context.
    @exclusivity(unchecked) var isDestroyed = false
    /// clearTimeout ran: refresh no longer revives it.
    public private(set) var isCleared = false

    init(loop: EventLoop, delayMs requested: Int, repeating: Bool, callback: @escaping Callback) {
        self.loop = loop
        self.callback = callback
        self.isRepeating = repeating
        let delay = Timeout.validatedDelay(requested)
        self.delayMs = delay
        self.delayNs = UInt64(delay) * 1_000_000
        self.context = AsyncResourceContext(type: .timeout)
        start()
    }

    /// Node's rules: below 1 (or above 2^31-1) becomes 1, with a warning for negative and overflowing values.
    static func validatedDelay(_ ms: Int) -> Int {
        if ms < 0 {
            RuntimeProcess.emitWarning("TimeoutNegativeWarning", "\(ms) is a negative number.\nTimeout duration was set to 1.")
            return 1
        }
        if ms > Int(Int32.max) {
            RuntimeProcess.emitWarning("TimeoutOverflowWarning", "\(ms) does not fit into a 32-bit signed integer.\nTimeout duration was set to 1.")
            return 1
        }
        return max(ms, 1)
    }

    /// True while scheduled.
    public var isActive: Bool { list != nil }

    func start() {
        // Fresh time, not the loop's cached one: a timer set after a long synchronous stretch
        // counts from when it was set (Node updates the loop time here too).
        // libuv's clock: whole milliseconds, so a timer is due at the start of a millisecond and may
        // fire up to 1 ms "early" in real time, exactly as in Node.
        dueNs = (Sys.monotonicNanoseconds() / 1_000_000) * 1_000_000 &+ delayNs
        sequence = loop.nextTimerSequence()
        loop.timers.insert(self)
        if hasRef { loop.refCount += 1 }
    }

    /// Called by the timers phase after removing it from the heap.
    /// `following`: see `EventLoop.outsideWork`.
    func fire(following: Bool) {
        if hasRef { loop.refCount -= 1 }
        // A one-shot timer neither cleared nor refreshed in its callback ends with it.
        if loop.invoke(context, following: following, callback, endsAfter: { !isRepeating && !isDestroyed && !isActive }) {
            isDestroyed = true
            return
        }
        if isDestroyed || isActive { return }  // cleared, or refreshed, inside its callback
        if isRepeating {
            start()
        } else {
            isDestroyed = true
            context.emitDestroy()
        }
    }

    /// clearTimeout / clearInterval. Clearing twice is harmless, as in Node.
    public func clear() {
        isCleared = true
        if isActive {
            loop.timers.remove(self)
            if hasRef { loop.refCount -= 1 }
        }
        if !isDestroyed {
            isDestroyed = true
            context.emitDestroy()
        }
    }

    /// Restarts the countdown from now with the same delay; revives a one-shot timer that already
    /// fired (as a new resource). No effect on a cleared timer, as in Node.
    @discardableResult
    public func refresh() -> Timeout {
        if isCleared { return self }
        if isActive {
            loop.timers.remove(self)
            if hasRef { loop.refCount -= 1 }
        } else if isDestroyed {
            context = AsyncResourceContext(type: .timeout)
            isDestroyed = false
        }
        start()
        return self
    }

    /// An unref'd timer does not keep the loop alive.
    @discardableResult
    public func unref() -> Timeout {
        if hasRef {
            hasRef = false
            if isActive { loop.refCount -= 1 }
        }
        return self
    }

    /// An active timer keeps the loop alive again (the default).
    @discardableResult
    public func ref() -> Timeout {
        if !hasRef {
            hasRef = true
            if isActive { loop.refCount += 1 }
        }
        return self
    }

    /// The timer's current async id.
    public var asyncID: AsyncID { context.asyncID }
}

extension EventLoop {
    /// A one-shot timer on this loop: `callback` runs once after at least `delayMs` ms.
    @discardableResult
    public func setTimeout(_ delayMs: Int, _ callback: @escaping Callback) -> Timeout {
        Timeout(loop: self, delayMs: delayMs, repeating: false, callback: callback)
    }

    /// A repeating timer on this loop: `callback` runs every `delayMs` ms until cleared.
    @discardableResult
    public func setInterval(_ delayMs: Int, _ callback: @escaping Callback) -> Timeout {
        Timeout(loop: self, delayMs: delayMs, repeating: true, callback: callback)
    }
}
