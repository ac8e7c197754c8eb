// Signal handles (Node's process.on('SIGINT', ...)), on signalfd. The signal is blocked on the
// loop's thread and read from a signalfd watched by the loop; a small process-wide handler
// forwards a signal that lands on another thread to the watching loop's thread.
#if canImport(Glibc)
import Glibc
#endif
@_spi(Runtime) import AsyncHooks

/// Node's `process.on(signal)`: a SIGNALWRAP resource whose callback runs on the loop when `signal`
/// arrives (blocked on the loop's thread and read from a signalfd).
public final class SignalHandle {
    /// The signal watched (SIGINT, ...).
    public let signal: Int32
    /// The SIGNALWRAP resource.
    public let context: AsyncResourceContext
    let loop: EventLoop
    let fd: Int32
    var watcher: FDWatcher!
    /// Whether `close()` was called.
    public private(set) var isClosed = false

    static let handlesPerSignal = LockedValue<[Int32: Int]>([:])

    /// Calls `callback` on the loop (a SIGNALWRAP callback) each time `signal` arrives.
    public init(_ signal: Int32, loop: EventLoop = .current, _ callback: @escaping (Int32) throws -> Void) throws {
        guard signal > 0, signal < 65, signal != SIGKILL, signal != SIGSTOP else {
            throw RuntimeError.invalidArgument("cannot watch signal \(signal)")
        }
        guard loop.isOnLoopThread else { throw RuntimeError.wrongThread(operation: "SignalHandle.init") }
        self.signal = signal
        self.loop = loop
        try Sys.blockSignals([signal], true)
        let fd = try Sys.signalFD([signal])
        self.fd = fd
        self.context = AsyncResourceContext(type: .signalWrap)
        try SignalHandle.handlesPerSignal.withLock { (m: inout [Int32: Int]) throws(SystemError) in
            m[signal, default: 0] += 1
            try Sys.setSignalForwarding(signal, to: loop.thread)
        }
        watcher = try FDWatcher(fd: fd, loop: loop, context: context) { [self] _ in  // the handle stays alive while open (the cycle ends in close)
            while !isClosed, let s = try Sys.readSignal(fd) { try callback(s) }
        }
        try watcher.start(.readable)
    }

    /// Stops watching; destroy follows in the close phase. Closing twice throws `RuntimeError.alreadyClosed`.
    public func close() throws {
        guard !isClosed else { throw RuntimeError.alreadyClosed(type: "SIGNALWRAP", asyncID: context.asyncID) }
        isClosed = true
        try watcher.close()
        watcher = nil
        try Sys.close(fd)
        try SignalHandle.handlesPerSignal.withLock { (m: inout [Int32: Int]) throws(SystemError) in
            m[signal, default: 1] -= 1
            if m[signal] == 0 {
                m[signal] = nil
                try Sys.setSignalForwarding(signal, to: nil)
            }
        }
        loop.queueClose(context) {}
    }

    /// The handle no longer keeps the loop alive.
    @discardableResult public func unref() -> SignalHandle { watcher.unref(); return self }
    /// The handle keeps the loop alive again (the default).
    @discardableResult public func ref() -> SignalHandle { watcher.ref(); return self }
}

extension EventLoop {
    /// process.on(signal, callback).
    public func onSignal(_ signal: Int32, _ callback: @escaping (Int32) throws -> Void) throws -> SignalHandle {
        try SignalHandle(signal, loop: self, callback)
    }
}
