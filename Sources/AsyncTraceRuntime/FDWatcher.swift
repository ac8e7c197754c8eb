// FD watchers: the loop's only way to wait on a file descriptor (libuv's uv_poll / uv__io_t).
// Sockets, pipes, signalfd and other fd-backed handles are built on this.
//
// epoll contract: the watcher's fd is registered level-triggered with `epoll_event.data.u64 = fd`,
// so kernel-side epoll_wait events list ready fds, and the loop finds the watcher by indexing with it.
#if canImport(Glibc)
import Glibc
import CRuntimeSystem
#endif
@_spi(Runtime) import AsyncHooks

/// Readiness bits, the epoll ones.
public struct FDEvents: OptionSet, Sendable, CustomStringConvertible {
    /// The epoll bits.
    public let rawValue: UInt32
    /// Events from epoll bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The fd is readable (EPOLLIN).
    public static let readable = FDEvents(rawValue: EPOLLIN.rawValue)
    /// The fd is writable (EPOLLOUT).
    public static let writable = FDEvents(rawValue: EPOLLOUT.rawValue)
    /// Out-of-band / priority data.
    public static let priority = FDEvents(rawValue: EPOLLPRI.rawValue)
    /// The peer shut down its writing side (reported only when watching `.readable`).
    public static let peerClosed = FDEvents(rawValue: EPOLLRDHUP.rawValue)
    /// Hang-up: both directions are done. Always reported.
    public static let hangup = FDEvents(rawValue: EPOLLHUP.rawValue)
    /// An error is pending on the fd (read it with SO_ERROR). Always reported.
    public static let error = FDEvents(rawValue: EPOLLERR.rawValue)

    public var description: String {
        var parts: [String] = []
        if contains(.readable) { parts.append("readable") }
        if contains(.writable) { parts.append("writable") }
        if contains(.priority) { parts.append("priority") }
        if contains(.peerClosed) { parts.append("peerClosed") }
        if contains(.hangup) { parts.append("hangup") }
        if contains(.error) { parts.append("error") }
        return "[" + parts.joined(separator: ", ") + "]"
    }
}

/// Watches one fd for readiness and calls back on the loop in the poll phase.
///
/// - One watcher per fd per loop (as libuv). Change what is watched with `start(_:)`; `stop()` keeps
///   the watcher for a later `start`.
/// - The watcher never closes the fd: its owner does, after `close()` on the watcher.
/// - With a `context`, each callback runs as a callback of that resource (before/after) and the fd is
///   recorded as the resource's (`resourceFD`). Without one, the callback runs unscoped and is
///   expected to enter its own resource (e.g. a socket that scopes some events differently).
/// - Ticks and microtasks are drained after each callback, as after any loop callback.
/// - A started, ref'd watcher keeps the loop alive.
public final class FDWatcher {
    /// The watched fd (not owned: the watcher never closes it).
    public let fd: Int32
    let loop: EventLoop
    /// The resource each callback runs as (nil: callbacks run unscoped).
    public let context: AsyncResourceContext?
    var callback: ((FDEvents) throws -> Void)?
    /// What is being watched now (empty: stopped).
    public private(set) var interest: FDEvents = []
    /// Whether a started watcher keeps the loop alive.
    public private(set) var hasRef = true
    /// Whether `close()` was called.
    public private(set) var isClosed = false
    var isRegistered = false

    /// Creates a stopped watcher for `fd` on `loop`. Throws `RuntimeError.invalidFD` for a negative fd or
    /// one already watched on this loop.
    public init(
        fd: Int32, loop: EventLoop = .current, context: AsyncResourceContext? = nil,
        _ callback: @escaping (FDEvents) throws -> Void
    ) throws(RuntimeError) {
        guard fd >= 0 else { throw .invalidFD(fd, reason: "negative") }
        if Int(fd) < loop.watchers.count, loop.watchers[Int(fd)] != nil {
            throw .invalidFD(fd, reason: "already watched on this loop")
        }
        if fd == loop.wakeFD || fd == loop.epollFD { throw .invalidFD(fd, reason: "the loop's own fd") }
        self.fd = fd
        self.loop = loop
        self.context = context
        self.callback = callback
        while loop.watchers.count <= Int(fd) { loop.watchers.append(nil) }
        loop.watchers[Int(fd)] = self
        context?.setFD(fd)
    }

    var isActive: Bool { !interest.isEmpty }

    /// Watches `events` (replacing what was watched); an empty set stops. Errors from epoll_ctl
    /// (e.g. EPERM for a regular file, EBADF for a closed fd) are thrown as `SystemError`.
    public func start(_ events: FDEvents) throws {
        guard !isClosed else { throw RuntimeError.handleClosed(type: typeName, asyncID: asyncID, operation: "start") }
        let wanted = events.intersection([.readable, .writable, .priority, .peerClosed])
        if wanted.isEmpty { try stop(); return }
        if isRegistered {
            if wanted == interest { return }
            try Sys.epollControl(loop.epollFD, EPOLL_CTL_MOD, fd, events: wanted.rawValue)
        } else {
            try Sys.epollControl(loop.epollFD, EPOLL_CTL_ADD, fd, events: wanted.rawValue)
            isRegistered = true
            loop.registeredFDCount += 1
        }
        if !isActive && hasRef { loop.refCount += 1 }
        interest = wanted
    }

    /// Stops watching (the watcher stays usable).
    public func stop() throws {
        guard !isClosed else { throw RuntimeError.handleClosed(type: typeName, asyncID: asyncID, operation: "stop") }
        try unregister()
    }

    private func unregister() throws(SystemError) {
        if isActive && hasRef { loop.refCount -= 1 }
        interest = []
        if isRegistered {
            isRegistered = false
            loop.registeredFDCount -= 1
            loop.invalidateBatchEvents(fd: fd)
            // ENOENT/EBADF: the fd was closed behind our back, so the kernel already dropped it.
            do { try Sys.epollControl(loop.epollFD, EPOLL_CTL_DEL, fd, events: 0) } catch {
                if error.errno != ENOENT && error.errno != EBADF { throw error }
            }
        }
    }

    /// Stops and releases the watcher (the fd stays open). Closing twice throws `RuntimeError.alreadyClosed`.
    /// The owner emits destroy for its resource (the watcher does not own the context's lifetime).
    public func close() throws {
        guard !isClosed else { throw RuntimeError.alreadyClosed(type: typeName, asyncID: asyncID) }
        defer {
            isClosed = true
            callback = nil
            if Int(fd) < loop.watchers.count, loop.watchers[Int(fd)] === self { loop.watchers[Int(fd)] = nil }
        }
        try unregister()
    }

    /// The watcher no longer keeps the loop alive.
    @discardableResult
    public func unref() -> FDWatcher {
        if hasRef && isActive { loop.refCount -= 1 }
        hasRef = false
        return self
    }

    /// A started watcher keeps the loop alive again (the default).
    @discardableResult
    public func ref() -> FDWatcher {
        if !hasRef && isActive { loop.refCount += 1 }
        hasRef = true
        return self
    }

    var typeName: String { context?.type.name ?? "FDWatcher" }
    var asyncID: AsyncID { context?.asyncID ?? .none }

    func dispatch(_ events: FDEvents) {
        guard let cb = callback else { return }
        if let ctx = context {
            loop.invoke(ctx) { try cb(events) }
        } else {
            loop.invokeUnscoped { try cb(events) }
        }
    }
}
