// A thread running its own event loop (Node's worker threads, minus the messaging).
#if canImport(Glibc)
import Glibc
#endif

/// A thread running its own event loop (Node's worker threads, without the messaging).
public final class LoopThread: @unchecked Sendable {
    private var thread = pthread_t()
    private var joined = false

    private final class Start {
        let main: @Sendable () throws -> Void
        init(_ main: @escaping @Sendable () throws -> Void) { self.main = main }
    }

    /// Starts a thread that runs `main` as its main module, then its loop until nothing ref'd remains.
    public init(_ main: @escaping @Sendable () throws -> Void) throws(SystemError) {
        let start = Unmanaged.passRetained(Start(main)).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { arg in
                let start = Unmanaged<Start>.fromOpaque(arg!).takeRetainedValue()
                EventLoop.main { try start.main() }
                return nil
            }, start)
        if rc != 0 {
            Unmanaged<Start>.fromOpaque(start).release()
            throw SystemError(errno: rc, function: "pthread_create")
        }
    }

    /// Waits for the thread's loop to finish. Joining twice is harmless.
    public func join() {
        if joined { return }
        joined = true
        pthread_join(thread, nil)
    }
}
