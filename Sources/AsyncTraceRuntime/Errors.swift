// Misuse errors, process warnings, and the uncaught-error policy.
#if canImport(Glibc)
import Glibc
import CRuntimeSystem
#endif
@_spi(Runtime) import AsyncHooks
import Synchronization

/// Misuse of a handle or of the loop. Every case names the resource so the message is actionable.
public enum RuntimeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `close()` on a handle that is already closed.
    case alreadyClosed(type: String, asyncID: AsyncID)
    /// Any other operation on a closed handle.
    case handleClosed(type: String, asyncID: AsyncID, operation: String)
    /// An fd that is negative, or already watched on this loop.
    case invalidFD(Int32, reason: String)
    /// A loop used from a thread other than its own.
    case wrongThread(operation: String)
    /// An argument out of range (e.g. a negative size).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .alreadyClosed(type, id): return "ERR_HANDLE_CLOSED: \(type) (async id \(id)) is already closed"
        case let .handleClosed(type, id, op): return "ERR_HANDLE_CLOSED: cannot \(op): \(type) (async id \(id)) is closed"
        case let .invalidFD(fd, reason): return "ERR_INVALID_FD: fd \(fd): \(reason)"
        case let .wrongThread(op): return "ERR_WRONG_THREAD: \(op) must run on the loop's own thread"
        case let .invalidArgument(s): return "ERR_INVALID_ARG_VALUE: \(s)"
        }
    }
}

/// An error no callback caught, with the resource whose callback threw.
public struct UncaughtError: Sendable, CustomStringConvertible {
    /// What was thrown.
    public let error: any Error
    /// The resource whose callback threw (`.root` for the main module).
    public let asyncID: AsyncID
    /// That resource's type, when known.
    public let type: ResourceType?

    public var description: String {
        "Uncaught error in \(type?.name ?? "callback") (async id \(asyncID)): \(error)"
    }
}

/// Node's `process`, for what the runtime needs of it (named so it does not clash with Foundation.Process).
public enum RuntimeProcess {
    /// What happens to an error a callback threw. Node's default ends the process; so does ours.
    public enum UncaughtErrorPolicy: Sendable {
        /// Print the error with its async id and type to stderr, then `exit(1)` (atexit handlers run,
        /// so the recorder flushes). Node's behaviour.
        case exit
        /// Call the handler and keep the loop running (Node's `process.on('uncaughtException')`).
        case handler(@Sendable (UncaughtError) -> Void)
    }

    static let policy = LockedValue<UncaughtErrorPolicy>(.exit)
    static let exitCodeStorage = Atomic<Int32>(0)

    /// Node's `process.exitCode`: the status `EventLoop.main` ends the process with, passed to
    /// 'beforeExit' and 'exit' listeners.
    public static var exitCode: Int32 {
        get { exitCodeStorage.load(ordering: .relaxed) }
        set { exitCodeStorage.store(newValue, ordering: .relaxed) }
    }

    /// Node's `process.exit(code)`: emits 'exit' on the calling thread's loop (its `onExit`
    /// listeners; no 'beforeExit'), then ends the process (atexit handlers run, so a recorder
    /// flushes). Without `code`, `exitCode`.
    public static func exit(_ code: Int32? = nil) -> Never {
        if let code { exitCode = code }
        let c = exitCode
        if let p = rt_current_loop() {
            Unmanaged<EventLoop>.fromOpaque(p).takeUnretainedValue().emitExit(c)
        }
        Glibc.exit(c)
    }
    static let warningSink = LockedValue<(@Sendable (String) -> Void)?>(nil)

    /// Installs the process-wide policy (a loop may override it with `EventLoop.onUncaughtError`).
    public static func setUncaughtErrorPolicy(_ p: UncaughtErrorPolicy) { policy.withLock { $0 = p } }

    /// Routes process warnings (e.g. TimeoutNegativeWarning) to `sink` instead of stderr; nil restores stderr.
    public static func setWarningHandler(_ sink: (@Sendable (String) -> Void)?) { warningSink.withLock { $0 = sink } }

    /// Emits a warning as Node's `process.emitWarning`: "(asynctrace) Name: message" on stderr by default.
    public static func emitWarning(_ name: String, _ message: String) {
        let line = "\(name): \(message)"
        if let sink = warningSink.withLock({ $0 }) { sink(line); return }
        writeStderr("(asynctrace) \(line)\n")
    }

    static func writeStderr(_ s: String) {
        var bytes = Array(s.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// Reports `e` to the hooks (uncaughtError event), then applies the loop's or the process's policy.
    static func reportUncaught(_ e: UncaughtError, loopHandler: ((UncaughtError) -> Void)?) {
        AsyncHooks.emitUncaughtError(e.asyncID, message: "\(e.type?.name ?? "callback"): \(e.error)")
        if let loopHandler { loopHandler(e); return }
        switch policy.withLock({ $0 }) {
        case .exit:
            // Node: 'exit' (code 1) on this thread's loop, then the error is printed.
            exitCode = 1
            if let p = rt_current_loop() {
                Unmanaged<EventLoop>.fromOpaque(p).takeUnretainedValue().emitExit(1)
            }
            writeStderr("asynctrace: \(e)\n")
            Glibc.exit(1)
        case .handler(let h):
            h(e)
        }
    }
}
