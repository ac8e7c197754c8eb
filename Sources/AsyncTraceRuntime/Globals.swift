// Node's global functions, on this thread's loop.
@_spi(Runtime) import AsyncHooks

@discardableResult
public func setTimeout(_ delayMs: Int, _ callback: @escaping Callback) -> Timeout {
    EventLoop.current.setTimeout(delayMs, callback)
}

@discardableResult
public func setInterval(_ delayMs: Int, _ callback: @escaping Callback) -> Timeout {
    EventLoop.current.setInterval(delayMs, callback)
}

public func clearTimeout(_ t: Timeout?) { t?.clear() }
public func clearInterval(_ t: Timeout?) { t?.clear() }

@discardableResult
public func setImmediate(_ callback: @escaping Callback) -> Immediate {
    EventLoop.current.setImmediate(callback)
}

public func clearImmediate(_ i: Immediate?) { i?.clear() }

/// process.nextTick.
public func nextTick(_ callback: @escaping Callback) { EventLoop.current.nextTick(callback) }

public func queueMicrotask(_ callback: @escaping Callback) { EventLoop.current.queueMicrotask(callback) }
