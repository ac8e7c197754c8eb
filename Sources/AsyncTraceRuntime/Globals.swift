// Node's global functions, on this thread's loop.
@_spi(Runtime) import AsyncHooks

/// Node's `setTimeout` on this thread's loop: `callback` runs once after at least `delayMs` ms.
@discardableResult
public func setTimeout(_ delayMs: Int, _ callback: @escaping Callback) -> Timeout {
    EventLoop.current.setTimeout(delayMs, callback)
}

/// Node's `setInterval` on this thread's loop: `callback` runs every `delayMs` ms until cleared.
@discardableResult
public func setInterval(_ delayMs: Int, _ callback: @escaping Callback) -> Timeout {
    EventLoop.current.setInterval(delayMs, callback)
}

/// Node's `clearTimeout`: cancels the timer (nil, or a timer that ran or was cleared: no effect).
public func clearTimeout(_ t: Timeout?) { t?.clear() }
/// Node's `clearInterval`: cancels the timer (nil: no effect).
public func clearInterval(_ t: Timeout?) { t?.clear() }

/// Node's `setImmediate` on this thread's loop: `callback` runs in the next check phase.
@discardableResult
public func setImmediate(_ callback: @escaping Callback) -> Immediate {
    EventLoop.current.setImmediate(callback)
}

/// Node's `clearImmediate` (nil, or an immediate that ran or was cleared: no effect).
public func clearImmediate(_ i: Immediate?) { i?.clear() }

/// process.nextTick.
public func nextTick(_ callback: @escaping Callback) { EventLoop.current.nextTick(callback) }

/// Node's `queueMicrotask`: runs after the current callback, before the next one (after nextTicks).
public func queueMicrotask(_ callback: @escaping Callback) { EventLoop.current.queueMicrotask(callback) }
