// Swift async/await on the loop. The loop is a SerialExecutor and a TaskExecutor: a task started
// with `runAsync` (or `EventLoop.main { async }`) runs on the loop thread, and every resumption is a
// loop callback — an awaited promise resumes the task inside that await's PROMISE resource
// (before/after), exactly where Node runs the rest of an async function.
import AsyncHooks

/// A job the loop runs: nonisolated task code (the loop as TaskExecutor) or code isolated to an actor
/// whose executor is the loop (`loop.serialExecutor`). The runtime must be told which, or it would
/// hop again.
struct LoopJob {
    let job: UnownedJob
    let isolated: Bool
}

extension EventLoop: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        enqueueLoopJob(LoopJob(job: UnownedJob(job), isolated: false))
    }

    func enqueueLoopJob(_ job: LoopJob) {
        if isOnLoopThread {
            if capturingJob && capturedJob == nil {
                capturedJob = job
            } else {
                microtasks.push(.job(job, AsyncResourceContext(type: .swiftJob)))
            }
        } else {
            let box = UncheckedBox(job)
            postRemote { [self] in
                invoke(AsyncResourceContext(type: .swiftJob)) { runJob(box.value) }
            }
        }
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor { UnownedTaskExecutor(ordinary: self) }

    @inline(__always)
    func runJob(_ job: LoopJob) {
        if job.isolated {
            job.job.runSynchronously(isolatedTo: serialExecutor.asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
        } else {
            job.job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }

    /// Calls `resume` (which resumes a continuation of a task on this loop) and runs the resumed job
    /// right away, in the current callback's scope, instead of queueing it: the task continues as
    /// part of this callback. `resume` must be the callback's last action.
    func resumeInline(_ resume: () -> Void) {
        let saved = capturingJob
        capturingJob = true
        resume()
        capturingJob = saved
        if let job = capturedJob {
            capturedJob = nil
            runJob(job)
        }
    }

    /// Starts `body` as a task on this loop, running synchronously up to its first suspension (as a
    /// JS async function does), and returns a promise of its result. The loop stays alive until the
    /// task ends (unlike Node, since a Swift task may be waiting on work the loop cannot see).
    @discardableResult
    public func runAsync<T>(_ body: @escaping () async throws -> T) -> Promise<T> {
        let promise = Promise<T>(loop: self, parent: nil)
        let box = UncheckedBox((promise, self, body))
        retainRequest()
        let saved = capturingJob
        capturingJob = true
        Task(executorPreference: self) {
            let (promise, loop, body) = box.value
            do {
                let v = try await body()
                promise.settle(.fulfilled(v))
            } catch {
                promise.settle(.rejected(error))
            }
            loop.releaseRequestAnywhere()
        }
        capturingJob = saved
        if let job = capturedJob {
            capturedJob = nil
            runJob(job)
        }
        return promise
    }

    /// Releases a request ref from any thread (a task's end may run off the loop after an actor hop).
    func releaseRequestAnywhere() {
        if isOnLoopThread { refCount -= 1 } else { postRemote { [self] in refCount -= 1 } }
    }

    /// Runs an async main module on this thread's loop: synchronously up to its first await, then the
    /// loop until nothing ref'd remains.
    public static func main(_ main: @escaping () async throws -> Void) {
        let loop = current
        loop.runMainModule { loop.runAsync(main).then({ _ in }, { e in loop.reportUncaught(e, AsyncResourceContext?.none) }) }
        do { try loop.run() } catch { fatalError("\(error)") }
    }
}

extension Promise {
    /// `await promise`: suspends until it settles, then continues as a callback of the await's own
    /// PROMISE resource (trigger: this promise), like the rest of a JS async function. Always
    /// suspends (one microtask), even when already settled, as JS does.
    public var value: Value {
        get async throws {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                addReaction(.resume(c, AsyncResourceContext(type: .promise, triggerAsyncID: asyncID)))
            }
            switch state {
            case .fulfilled(let v): return v
            case .rejected(let e): throw e
            case .pending: fatalError("asynctrace: resumed before the promise settled")  // unreachable
            }
        }
    }
}

/// Node's `timers/promises` setTimeout: resumes after `ms` as a callback of the Timeout.
public func sleep(ms: Int) async {
    let loop = EventLoop.current
    await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
        loop.setTimeout(ms) { loop.resumeInline { c.resume() } }
    }
}

/// Node's `timers/promises` setImmediate: resumes in the next check phase as a callback of the Immediate.
public func yieldToImmediate() async {
    let loop = EventLoop.current
    await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
        loop.setImmediate { loop.resumeInline { c.resume() } }
    }
}

/// The loop as a SerialExecutor, for actors that live on it:
/// `nonisolated var unownedExecutor: UnownedSerialExecutor { loop.serialExecutor.asUnownedSerialExecutor() }`.
public final class LoopSerialExecutor: SerialExecutor, @unchecked Sendable {
    unowned let loop: EventLoop
    init(loop: EventLoop) { self.loop = loop }

    public func enqueue(_ job: consuming ExecutorJob) {
        loop.enqueueLoopJob(LoopJob(job: UnownedJob(job), isolated: true))
    }
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }
    public func checkIsolated() {
        precondition(loop.isOnLoopThread, "asynctrace: expected to run on the event loop's thread")
    }
}
