// Swift async/await on the loop. The loop is a SerialExecutor and a TaskExecutor: a task started
// with `runAsync` (or `EventLoop.main { async }`) runs on the loop thread, and every resumption is a
// loop callback — an awaited promise resumes the task inside that await's PROMISE resource
// (before/after), exactly where Node runs the rest of an async function.
@_spi(Runtime) import AsyncHooks

/// A job the loop runs: nonisolated task code (the loop as TaskExecutor) or code isolated to an actor
/// whose executor is the loop (`loop.serialExecutor`). The runtime must be told which, or it would
/// hop again.
struct LoopJob {
    let job: UnownedJob
    let isolated: Bool
    /// The job's address: a task is enqueued as itself each time it resumes, so this names the task.
    var key: UnsafeRawPointer { unsafeBitCast(job, to: UnsafeRawPointer.self) }
}

extension EventLoop: TaskExecutor {
    /// Runs `job` on the loop's thread (as a task executor: `Task(executorPreference: loop)`).
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
                let job = box.value
                let resource = AsyncResourceContext(type: .swiftJob)
                let frame = suspendedTaskFrames.isEmpty ? nil : suspendedTaskFrames.removeValue(forKey: job.key)
                invoke(
                    AsyncResourceContext(
                        existing: resource.asyncID, triggerAsyncID: resource.triggerAsyncID,
                        type: resource.type, frame: frame)
                ) { runJob(job) }
            }
        }
    }

    /// Keeps the AsyncLocal frame a task had when its job ended (it suspended, or ended). A task resumed
    /// by the loop's own primitives (an awaited promise, `sleep`, `yieldToImmediate`, a job queued on the
    /// loop thread) continues in the frame its resumer captured; one resumed from another thread (by
    /// Task.sleep's timer, an actor on another executor, a continuation resumed elsewhere) continues in
    /// this one, so AsyncLocal values follow Swift's own suspension points too. A load and a branch per
    /// job while no task has a frame.
    @inline(__always)
    private func rememberFrame(of job: LoopJob) {
        let frame = ContextFrame.current
        if frame == nil && suspendedTaskFrames.isEmpty { return }
        rememberFrameSlowly(frame, job)
    }

    @inline(never)
    private func rememberFrameSlowly(_ frame: ContextFrame?, _ job: LoopJob) {
        if let frame, !taskEnding {
            // Tasks that end without telling (not started by runAsync) leave entries behind: bounded.
            if suspendedTaskFrames.count >= 65_536 { suspendedTaskFrames.removeAll() }
            suspendedTaskFrames[job.key] = frame
        } else {
            suspendedTaskFrames.removeValue(forKey: job.key)
        }
        taskEnding = false
    }

    /// The loop as an unowned task executor.
    public func asUnownedTaskExecutor() -> UnownedTaskExecutor { UnownedTaskExecutor(ordinary: self) }

    @inline(__always)
    private func runJobNow(_ job: LoopJob) {
        if job.isolated {
            job.job.runSynchronously(isolatedTo: serialExecutor.asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
        } else {
            job.job.runSynchronously(on: asUnownedTaskExecutor())
        }
        rememberFrame(of: job)
    }

    /// Runs `job` where nothing may continue an await without suspending (it is not the last thing
    /// its microtask does, or not run from the microtask queue at all).
    func runJob(_ job: LoopJob) {
        let saved = awaitScopeID
        awaitScopeID = .none
        runJobNow(job)
        awaitScopeID = saved
    }

    /// Runs `job` as the rest of the microtask whose resource is `scope`, entered by the caller. An
    /// await in it on a settled promise may continue without suspending (`continueWithoutSuspending`),
    /// which moves the task into that await's resource; returns the resource current when the job
    /// ended, which the caller leaves and destroys.
    @inline(__always)
    private func runJob(_ job: LoopJob, asMicrotaskIn scope: AsyncID) -> AsyncID {
        let saved = awaitScopeID
        awaitScopeID = scope
        runJobNow(job)
        let current = awaitScopeID
        awaitScopeID = saved
        return current
    }

    /// The microtask that resumes a task awaiting a promise: resumes it and runs it at once, inside the
    /// await's PROMISE resource.
    func runAwaitResumption(_ c: UnsafeContinuation<Void, Never>, _ scope: AsyncResourceContext) {
        AsyncHooks.enterCallback(scope.asyncID, triggerAsyncID: scope.triggerAsyncID, frame: scope.frame)
        let saved = capturingJob
        capturingJob = true
        c.resume()
        capturingJob = saved
        var current = scope.asyncID
        if let job = capturedJob {
            capturedJob = nil
            current = runJob(job, asMicrotaskIn: current)
        }
        leaveAndDestroy(current)
    }

    /// after then destroy of the scope a job ended in: one call to a recorder.
    @inline(__always)
    private func leaveAndDestroy(_ current: AsyncID) {
        if AsyncHooks.isActive {
            AsyncHooks.leaveCallbackAndDestroy(current)
        } else {
            AsyncHooks.leaveCallback(current)
        }
    }

    /// The microtask that runs a Swift job queued on the loop thread (a `SwiftJob` resource).
    func runQueuedJob(_ job: LoopJob, _ scope: AsyncResourceContext) {
        AsyncHooks.enterCallback(scope.asyncID, triggerAsyncID: scope.triggerAsyncID, frame: scope.frame)
        let current = runJob(job, asMicrotaskIn: scope.asyncID)
        leaveAndDestroy(current)
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
                promise.fulfil(v)
            } catch {
                promise.reject(error)
            }
            if loop.isOnLoopThread { loop.taskEnding = true }
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
    /// `await promise`: continues, once it settled, as a callback of the await's own PROMISE resource
    /// (trigger: this promise), like the rest of a JS async function. As in JS the continuation runs
    /// after everything already queued before it; see `continueWithoutSuspending` for when that is now.
    @inlinable
    public var value: Value {
        get async throws {
            if !continueWithoutSuspending() { await suspendUntilSettled() }
            return try settledValue()
        }
    }
}

extension PromiseBase {
    /// Suspends the task until this promise settles; it is resumed by a microtask in the await's scope.
    @usableFromInline
    final func suspendUntilSettled() async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            addReaction(.resume(c, AsyncResourceContext(type: loop.promiseType, triggerAsyncID: asyncID)))
        }
    }

    /// An await of this promise that can take effect without suspending: JS queues the continuation
    /// as a microtask, and it runs after everything queued before it. When the promise is settled, the
    /// microtask queue is empty, and the task is the rest of a microtask being drained (so after it
    /// suspended, the drain would run the next microtask at once: ticks wait until the microtask queue
    /// is empty), the continuation is the very next thing that would run. Then the await does here what
    /// the queued microtask would do — leave and destroy the current scope, create the await's PROMISE
    /// resource and enter it — and the task goes on without a Swift task switch. The events are the
    /// ones a suspension would emit, in the same order, and each describes code that really ran there.
    ///
    /// Speed: this is the whole cost of such an await besides the promise itself — no context object,
    /// no reference counting, and with no hook enabled the scope switch is two stores.
    @usableFromInline
    final func continueWithoutSuspending() -> Bool {
        guard status != .pending else { return false }
        // This thread's loop, borrowed (no retain): it must be this promise's loop.
        guard EventLoop.currentUnretained.toOpaque() == unownedLoop.toOpaque() else { return false }
        unowned(unsafe) let loop = unownedLoop.takeUnretainedValue()
        let scope = loop.awaitScopeID
        guard scope.rawValue != 0, loop.microtasks.isEmpty else { return false }
        // The await's resource (PROMISE, trigger: this promise), init emitted while the scope
        // still runs, then the scope left and destroyed and the await's entered; the frame stays.
        guard
            let awaitID = AsyncHooks.switchCallback(
                from: scope, destroyingCurrent: true,
                toNewResourceOf: loop.promiseType, triggerAsyncID: asyncID)
        else { return false }
        isHandled = true
        loop.awaitScopeID = awaitID
        return true
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

    /// Runs `job` on the loop's thread, isolated to the actors that use this executor.
    public func enqueue(_ job: consuming ExecutorJob) {
        loop.enqueueLoopJob(LoopJob(job: UnownedJob(job), isolated: true))
    }
    /// The executor as an actor's `unownedExecutor`.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }
    /// Traps unless called on the loop's thread.
    public func checkIsolated() {
        precondition(loop.isOnLoopThread, "asynctrace: expected to run on the event loop's thread")
    }
}
