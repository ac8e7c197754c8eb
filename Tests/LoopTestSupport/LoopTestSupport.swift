// What the runtime and networking tests share: a log of printed lines, and running a scenario on its
// own loop thread under a watchdog, so a liveness bug fails the run with a message instead of hanging it.
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import AsyncTraceRuntime
import AsyncHooks

/// Lines printed by a scenario (console.log), in order.
public final class Log: Sendable {
    private let storage = LockedValue<[String]>([])
    public init() {}
    public func callAsFunction(_ s: String) { storage.withLock { $0.append(s) } }
    public var lines: [String] { storage.withLock { $0 } }
}

/// Runs `main` as the main module of a fresh loop on its own thread and waits until the loop ends,
/// at most `seconds` (see Watchdog).
public func runLoopThread(seconds: Int = 120, _ main: @escaping @Sendable () throws -> Void) {
    let t = try! LoopThread(main)
    let watchdog = Watchdog(seconds: seconds)
    t.join()
    watchdog.finish()
}

/// A loop that never ends (a liveness bug: poll blocking forever, a handle that keeps the loop
/// alive, a peer that never answers) would hang the whole test run until CI's timeout. After
/// `seconds` this says so and ends the test process with a failure instead.
public final class Watchdog: Sendable {
    private let finished = Atomic<Bool>(false)
    private let seconds: Int

    public init(seconds: Int) {
        self.seconds = seconds
        var thread = pthread_t()
        pthread_create(
            &thread, nil,
            { p in
                let dog = Unmanaged<Watchdog>.fromOpaque(p!).takeRetainedValue()
                for _ in 0..<(dog.seconds * 10) {
                    if dog.finished.load(ordering: .acquiring) { return nil }
                    usleep(100_000)
                }
                let msg =
                    "test watchdog: the loop did not end within \(dog.seconds) s (a liveness bug: poll blocked forever or a handle kept the loop alive); ending the test process\n"
                _ = msg.withCString { write(2, $0, strlen($0)) }
                _exit(70)
            }, Unmanaged.passRetained(self).toOpaque())
        pthread_detach(thread)  // it ends by itself within 0.1 s of finish()
    }

    public func finish() { finished.store(true, ordering: .releasing) }
}
