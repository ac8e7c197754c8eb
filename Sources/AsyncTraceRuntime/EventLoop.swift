// The event loop: Node's phase order on epoll, one loop per thread, every callback traced.
//
//   timers -> pending -> idle -> prepare -> poll (epoll_wait) -> check (immediates) -> close
//
// Every phase is recorded (phaseEnter/phaseLeave) only when it runs something.
//
// After every callback the nextTick queue and then the microtask queue are drained (nextTick first),
// as Node does. The loop runs while ref'd handles or requests remain.
#if canImport(Glibc)
import Glibc
import CRuntimeSystem
#endif
@_spi(Runtime) import AsyncHooks
import Synchronization

/// A callback the loop runs; a thrown error is an uncaught error of the resource it belongs to.
public typealias Callback = () throws -> Void

/// A callback queued for a phase, with the resource it runs as (nil: the caller scopes it itself).
struct QueuedCallback {
    var context: AsyncResourceContext?
    var body: Callback
    /// Emit destroy after it ran (one-shot requests such as TickObject).
    var destroyAfter: Bool
}

/// A microtask: a closure in a resource's scope, or a Swift job resumed on the loop.
enum Microtask {
    case callback(AsyncResourceContext, Callback)
    /// A promise reaction job: runs as a callback of the reacting (derived) promise.
    case reaction(PromiseBase)
    /// A task awaiting a promise: resumed, and run at once, inside the await's PROMISE resource.
    case resume(UnsafeContinuation<Void, Never>, AsyncResourceContext)
    /// One input's reaction of a combinator (Promise.all), with that input.
    case combinator(CombinatorStep, PromiseBase)
    /// A Swift task resumed on the loop thread outside a promise reaction.
    case job(LoopJob, AsyncResourceContext)
    /// V8's NewPromiseResolveThenableJob: a promise resolved with another promise subscribes to it
    /// one microtask later, inside the resolved promise's before/after.
    case resolveThenable(PromiseBase, () -> Void)
}

/// A libuv/Node-style event loop on epoll, one per thread: timers, pending, idle, prepare, poll, check and
/// close phases, nextTick and microtask queues, a thread pool; every callback runs as an async-hooks callback.
public final class EventLoop: @unchecked Sendable {
    // Thread confinement: everything below `remote` is touched only on `thread`, so the hot state
    // skips dynamic exclusivity checks (@exclusivity(unchecked); the package uses no unsafe flags).
    let thread: pthread_t
    let epollFD: Int32
    /// eventfd other threads write to wake the poll phase (thread-pool completions, executor jobs).
    let wakeFD: Int32

    /// Cached CLOCK_MONOTONIC ns (libuv's loop time), updated at the start of each iteration and after
    /// poll while timers are active.
    @exclusivity(unchecked) public private(set) var now: UInt64
    /// Iterations run so far.
    @exclusivity(unchecked) public private(set) var iteration: UInt64 = 0
    /// Ref'd active handles + in-flight requests + queued ref'd immediates + pending close callbacks.
    @exclusivity(unchecked) var refCount = 0
    @exclusivity(unchecked) var stopRequested = false
    @exclusivity(unchecked) var isRunning = false

    @exclusivity(unchecked) var timers = TimerHeap()
    @exclusivity(unchecked) var timerSequence: UInt64 = 0
    @exclusivity(unchecked) var immediateQueue = ContiguousArray<Immediate>()
    @exclusivity(unchecked) var runningImmediates = ContiguousArray<Immediate>()
    // The queues and flags below are touched by every callback and await; they are confined to the
    // loop's thread, so they skip dynamic exclusivity checks.
    @exclusivity(unchecked) var ticks = RingQueue<QueuedCallback>()
    @exclusivity(unchecked) var microtasks = RingQueue<Microtask>()
    @exclusivity(unchecked) var pendingCallbacks = RingQueue<QueuedCallback>()
    @exclusivity(unchecked) var closeCallbacks = RingQueue<QueuedCallback>()
    /// Started `Idle` and `Prepare` handles, in start order.
    @exclusivity(unchecked) var idleHandles = ContiguousArray<LoopPhaseHandle>()
    @exclusivity(unchecked) var prepareHandles = ContiguousArray<LoopPhaseHandle>()
    @exclusivity(unchecked) var drainingTicks = false
    /// Bumped whenever the loop does more than bookkeeping between two callbacks (reporting an uncaught
    /// error or unhandled rejection: user handlers, writes to stderr). A loop that runs callbacks back to
    /// back (timers of one phase, immediates, a drain) compares it around each: unchanged, the next
    /// callback follows the previous one with nothing but bookkeeping in between
    /// (`AsyncHooks.enterCallback(…, following: true)`).
    @exclusivity(unchecked) var outsideWork: UInt64 = 0
    /// The last phase that ran was a check phase that ended with a callback, ran at most
    /// `quietCheckLimit` immediates (releasing them is the bookkeeping after it) and reported no error
    /// after its last one; cleared by every other phase that runs (and by a poll that waits). While
    /// set, the next check phase follows that callback with only bookkeeping in between.
    @exclusivity(unchecked) var quietCheckEnd = false
    /// This iteration's loopIteration is not emitted yet: it goes with the iteration's first phase
    /// enter (one call to a recorder), or alone at the iteration's end when no phase ran. No hook
    /// event can come between the loop's top and the first phase enter, so hooks see the same order.
    @exclusivity(unchecked) var iterationUnannounced = false
    /// A check phase ended and its phaseLeave is not emitted yet: it goes with the next phase enter
    /// (and the next iteration's announcement) in one call, or alone before the next iteration's
    /// loopIteration when no phase runs, or when `run` returns. Nothing between the check phase's end
    /// and the next phase enter emits a hook event.
    @exclusivity(unchecked) var checkLeaveUnannounced = false
    let quietCheckLimit = 8
    /// Rejected promises without a handler, checked once the microtask queue is empty (as Node).
    @exclusivity(unchecked) var unhandledRejections = ContiguousArray<PromiseBase>()
    /// While set, a job enqueued on this thread is kept here instead of queued, so the resumer
    /// can run it at once in its own scope (see `resumeInline`).
    @exclusivity(unchecked) var capturingJob = false
    @exclusivity(unchecked) var capturedJob: LoopJob?
    /// Set while a Swift job runs as the rest of a drained microtask: the id of that microtask's
    /// resource (`.none` otherwise), which an await may replace by its own when it continues without
    /// suspending (Promise.value). An id, not a context: nothing to retain or release per await.
    @exclusivity(unchecked) var awaitScopeID: AsyncID = .none
    /// The AsyncLocal frame each task on this loop had when it last suspended with one, by job (a
    /// task is its own job): a task resumed from outside the loop (Task.sleep, an actor elsewhere)
    /// continues in it. See `EventLoop.rememberFrame`.
    @exclusivity(unchecked) var suspendedTaskFrames: [UnsafeRawPointer: ContextFrame] = [:]
    /// Set by a `runAsync` task as its body ends: its last job leaves no frame behind.
    @exclusivity(unchecked) var taskEnding = false
    /// `ResourceType.promise`, read without the lazy global's once-check (several per await).
    let promiseType = ResourceType.promise
    /// This loop as a SerialExecutor (for actors pinned to the loop).
    public private(set) lazy var serialExecutor = LoopSerialExecutor(loop: self)

    /// Watchers indexed by fd (the fd is also what epoll_event.data.u64 carries).
    @exclusivity(unchecked) var watchers = ContiguousArray<FDWatcher?>()
    /// fds registered in epoll besides wakeFD; when 0 a zero-timeout poll skips the syscall.
    @exclusivity(unchecked) var registeredFDCount = 0
    let maxEvents: Int32 = 1024
    let events: UnsafeMutablePointer<epoll_event>
    let readyFDs: UnsafeMutablePointer<Int32>
    /// The batch being dispatched, so closing a watcher can invalidate its later events.
    @exclusivity(unchecked) var batchIndex = 0
    @exclusivity(unchecked) var batchCount = 0

    /// Work posted from other threads; run in the poll phase.
    let remote = LockedValue<[@Sendable () -> Void]>([])
    let remotePending = Atomic<Bool>(false)

    /// Overrides the process's uncaught-error policy for this loop (tests, embedders).
    public var onUncaughtError: ((UncaughtError) -> Void)?

    /// Node's process 'beforeExit' and 'exit' listeners, on this loop (see `onBeforeExit`, `onExit`).
    @exclusivity(unchecked) var beforeExitHandlers: [(Int32) throws -> Void] = []
    @exclusivity(unchecked) var exitHandlers: [(Int32) throws -> Void] = []
    @exclusivity(unchecked) var exitEmitted = false

    init() throws(SystemError) {
        thread = pthread_self()
        epollFD = try Sys.epollCreate()
        do {
            wakeFD = try Sys.eventFD()
        } catch {
            try? Sys.close(epollFD)
            throw error
        }
        try Sys.epollControl(epollFD, EPOLL_CTL_ADD, wakeFD, events: EPOLLIN.rawValue)
        events = .allocate(capacity: Int(maxEvents))
        readyFDs = .allocate(capacity: Int(maxEvents))
        now = Sys.monotonicNanoseconds()
    }

    deinit {
        try? Sys.close(wakeFD)
        try? Sys.close(epollFD)
        events.deallocate()
        readyFDs.deallocate()
    }

    // MARK: the loop of this thread

    /// This thread's loop, created on first use. Several threads may each run one.
    public static var current: EventLoop {
        if let p = rt_current_loop() {
            return Unmanaged<EventLoop>.fromOpaque(p).takeUnretainedValue()
        }
        return makeCurrent()
    }

    /// `current` at +0, for references that don't own it (a promise's unowned(unsafe) `loop`).
    static var currentUnretained: Unmanaged<EventLoop> {
        if let p = rt_current_loop() { return Unmanaged.fromOpaque(p) }
        return Unmanaged.passUnretained(makeCurrent())
    }

    static func makeCurrent() -> EventLoop {
        let loop: EventLoop
        do {
            loop = try EventLoop()
        } catch {
            fatalError("asynctrace: cannot create the event loop: \(error)")
        }
        let p = Unmanaged.passRetained(loop).toOpaque()
        pthread_setspecific(loopKey, p)  // owns the loop: releases it at thread exit
        rt_set_current_loop(p)
        return loop
    }

    /// This thread's loop is this one (one TLS load: `current` is set on the loop's thread only).
    var isOnLoopThread: Bool { rt_current_loop() == Unmanaged.passUnretained(self).toOpaque() }

    /// Runs `main` as the program's main module on this thread's loop (execution id root), drains
    /// nextTicks and microtasks, then runs the loop until nothing ref'd remains.
    /// Then, as Node's process: 'beforeExit' each time the loop runs out of work (its listeners may
    /// queue more, and the loop goes on), then 'exit' with `RuntimeProcess.exitCode`. A non-zero exit
    /// code ends the process with it (atexit handlers run); zero returns to the caller.
    public static func main(_ main: Callback) {
        let loop = current
        loop.runMainModule(main)
        do { try loop.run() } catch { fatalError("\(error)") }  // unreachable: `current` is this thread's loop
        if loop.stopRequested { return }  // stop(): not the end of the program
        let code = RuntimeProcess.exitCode
        loop.emitExit(code)
        if code != 0 { exit(code) }
    }

    func runMainModule(_ main: Callback) {
        do { try main() } catch {
            reportUncaught(error, AsyncResourceContext?.none)
        }
        drainTicksAndMicrotasks()
    }

    // MARK: running

    /// Runs until no ref'd handle or request remains, or `stop()`.
    public func run() throws(RuntimeError) {
        guard isOnLoopThread else { throw .wrongThread(operation: "EventLoop.run") }
        isRunning = true
        stopRequested = false
        quietCheckEnd = false  // the program ran since
        defer { isRunning = false }
        drainTicksAndMicrotasks()
        updateTime()
        repeat {  // the loop, then 'beforeExit' while its listeners give it more work
            while isAlive && !stopRequested {
                iteration &+= 1
                iterationUnannounced = true
                runTimers()
                runQueue(.pending)
                if !idleHandles.isEmpty { runPhaseHandles(.idle) }
                if !prepareHandles.isEmpty { runPhaseHandles(.prepare) }
                poll()
                runImmediates()
                runQueue(.close)
                if iterationUnannounced {
                    iterationUnannounced = false
                    announceCheckLeave()
                    AsyncHooks.emitLoopIteration(iteration)
                }
                updateTime()
            }
        } while !stopRequested && emitBeforeExit()
        announceCheckLeave()
    }

    // MARK: process events (Node's 'beforeExit' / 'exit')

    /// Node's `process.on('beforeExit', code => ...)`: runs each time this loop runs out of work
    /// (not after `stop()`), outside any callback (execution id of the loop's top level), then the
    /// ticks and microtasks it queued; when it made the loop alive again, the loop goes on and it runs
    /// again at the next end. `code` is `RuntimeProcess.exitCode`. Not after `RuntimeProcess.exit`
    /// nor an uncaught error (as in Node).
    public func onBeforeExit(_ handler: @escaping (Int32) throws -> Void) {
        beforeExitHandlers.append(handler)
    }

    /// Node's `process.on('exit', code => ...)`: runs once, when `EventLoop.main`'s loop has ended,
    /// on `RuntimeProcess.exit`, or before an uncaught error ends the process (code 1). Synchronous
    /// work only: ticks, timers and promises queued here never run.
    public func onExit(_ handler: @escaping (Int32) throws -> Void) {
        exitHandlers.append(handler)
    }

    /// Emits 'beforeExit'; true when its listeners left the loop alive.
    func emitBeforeExit() -> Bool {
        if beforeExitHandlers.isEmpty || exitEmitted { return false }
        let code = RuntimeProcess.exitCode
        // One emit: every listener, then the drain (Node's process.emit inside one callback scope).
        invokeUnscoped { [beforeExitHandlers] in
            for h in beforeExitHandlers { try h(code) }
        }
        quietCheckEnd = false
        updateTime()
        return isAlive && !stopRequested
    }

    /// Emits 'exit' once. A listener that throws is reported as uncaught (the rest do not run).
    func emitExit(_ code: Int32) {
        if exitEmitted { return }
        exitEmitted = true
        let handlers = exitHandlers
        exitHandlers = []
        beforeExitHandlers = []
        do {
            for h in handlers { try h(code) }
        } catch {
            reportUncaught(error, AsyncResourceContext?.none)
        }
    }

    @inline(__always)
    func announceCheckLeave() {
        if checkLeaveUnannounced {
            checkLeaveUnannounced = false
            AsyncHooks.emitPhaseLeave(.check)
        }
    }

    /// Makes `run()` return after the current iteration.
    public func stop() { stopRequested = true }

    /// True while something ref'd remains.
    public var isAlive: Bool { refCount > 0 }

    /// Reads the clock only when a timer is waiting: nothing else uses the loop time, and a
    /// clock read per iteration is a measurable share of a short iteration.
    @inline(__always)
    func updateTime() { if timers.count > 0 { now = Sys.monotonicNanoseconds() } }

    /// Keeps the loop alive while a request (e.g. thread-pool work) is in flight; balance with `releaseRequest`.
    public func retainRequest() { refCount += 1 }
    /// Balances a `retainRequest`.
    public func releaseRequest() { refCount -= 1 }

    // MARK: callbacks

    /// Runs `body` as a callback of `context`: before, body, after, then the tick and microtask queues.
    @inline(__always)
    public func invoke(_ context: AsyncResourceContext, _ body: Callback) {
        invoke(context, following: false, body)
    }

    /// `invoke`; `following`: this callback follows the thread's previous callback with nothing but
    /// the loop's bookkeeping in between (see `outsideWork`).
    @inline(__always)
    func invoke(_ context: AsyncResourceContext, following: Bool, _ body: Callback) {
        _ = invoke(context, following: following, body, endsAfter: { false })
    }

    /// `invoke` for a callback after which its resource may end. When `ends()` is true right after the
    /// body and no tick or microtask is queued (so nothing runs between the after and the destroy),
    /// both are emitted in one call and this returns true; else it returns false and the caller emits
    /// the destroy where it always did.
    @inline(__always)
    func invoke(_ context: AsyncResourceContext, following: Bool, _ body: Callback, endsAfter ends: () -> Bool) -> Bool {
        AsyncHooks.enterCallback(context.asyncID, triggerAsyncID: context.triggerAsyncID, frame: context.frame, following: following)
        var thrown: (any Error)? = nil
        do { try body() } catch { thrown = error }
        if thrown == nil && AsyncHooks.isActive && ticks.isEmpty && microtasks.isEmpty && ends() {
            AsyncHooks.leaveCallbackAndDestroy(context.asyncID)
            return true
        }
        AsyncHooks.leaveCallback(context.asyncID)  // one inlined copy: this is the path when nothing listens
        if let thrown {
            reportUncaught(thrown, context)
            drainTicksAndMicrotasks()
        } else {
            drainTicksAndMicrotasks(followingCallback: true)
        }
        return false
    }

    /// Runs `body` unscoped (the body enters its own resources), then drains the queues.
    @inline(__always)
    public func invokeUnscoped(_ body: Callback) {
        do { try body() } catch { reportUncaught(error, AsyncResourceContext?.none) }
        drainTicksAndMicrotasks()
    }

    func reportUncaught(_ error: any Error, _ context: AsyncResourceContext?) {
        outsideWork &+= 1
        let e = UncaughtError(error: error, asyncID: context?.asyncID ?? executionAsyncID(), type: context?.type)
        RuntimeProcess.reportUncaught(e, loopHandler: onUncaughtError)
    }

    /// Runs `body` as a callback of the one-shot `context` (no drain: the caller is the drain), then
    /// its destroy.
    @inline(__always)
    func runScopedThenDestroy(_ context: AsyncResourceContext, following: Bool, _ body: Callback) {
        AsyncHooks.enterCallback(context.asyncID, triggerAsyncID: context.triggerAsyncID, frame: context.frame, following: following)
        do {
            try body()
            if AsyncHooks.isActive {
                AsyncHooks.leaveCallbackAndDestroy(context.asyncID)
            } else {
                AsyncHooks.leaveCallback(context.asyncID)  // (and its destroy would emit nothing)
            }
        } catch {
            AsyncHooks.leaveCallback(context.asyncID)
            reportUncaught(error, context)
            context.emitDestroy()
        }
    }

    /// Node's processTicksAndRejections: all ticks, then all microtasks, until both are empty.
    /// `followingCallback`: called right after a callback ended, with only bookkeeping since.
    @inline(__always)
    func drainTicksAndMicrotasks(followingCallback: Bool = false) {
        if ticks.isEmpty && microtasks.isEmpty { return }
        drainSlow(followingCallback)
    }

    func drainSlow(_ followingCallback: Bool) {
        if drainingTicks { return }  // a nested invoke (e.g. from a sync API) leaves it to the outer drain
        drainingTicks = true
        defer { drainingTicks = false }
        var follows = followingCallback
        repeat {
            while let t = ticks.pop() {
                let work = outsideWork
                runScopedThenDestroy(t.context!, following: follows, t.body)
                follows = work == outsideWork
            }
            while let m = microtasks.pop() {
                let work = outsideWork
                switch m {
                case .callback(let ctx, let body):
                    runScopedThenDestroy(ctx, following: follows, body)
                case .reaction(let r):
                    AsyncHooks.enterCallback(r.asyncID, triggerAsyncID: r.triggerAsyncID, frame: r.frame)
                    r.runReaction()
                    AsyncHooks.leaveCallback(r.asyncID)
                case .combinator(let step, let input):
                    step.run(input: input, following: follows)
                case .resume(let c, let ctx):
                    runAwaitResumption(c, ctx)
                case .job(let job, let ctx):
                    runQueuedJob(job, ctx)
                case .resolveThenable(let p, let subscribe):
                    AsyncHooks.enterCallback(p.asyncID, triggerAsyncID: p.triggerAsyncID, frame: p.frame)
                    subscribe()
                    AsyncHooks.leaveCallback(p.asyncID)
                }
                follows = work == outsideWork
            }
            if !unhandledRejections.isEmpty && ticks.isEmpty {
                processUnhandledRejections()
                follows = false
            }
        } while !ticks.isEmpty
    }

    /// process.nextTick: runs after the current callback, before promise callbacks.
    public func nextTick(_ body: @escaping Callback) {
        ticks.push(QueuedCallback(context: AsyncResourceContext(type: .tickObject), body: body, destroyAfter: true))
    }

    /// nextTick with the TickObject's trigger given (Node's `defaultTriggerAsyncIdScope(handle, nextTick, ...)`:
    /// a handle's 'error' and 'close' ticks are triggered by the handle).
    package func nextTick(triggeredBy trigger: AsyncID, _ body: @escaping Callback) {
        ticks.push(QueuedCallback(context: AsyncResourceContext(type: .tickObject, triggerAsyncID: trigger), body: body, destroyAfter: true))
    }

    /// queueMicrotask: runs after the current callback and its nextTicks. Traced as a "Microtask" resource.
    public func queueMicrotask(_ body: @escaping Callback) {
        microtasks.push(.callback(AsyncResourceContext(type: .microtask), body))
    }

    /// Queues `body` for the pending phase of the next iteration (libuv's deferred I/O callbacks).
    public func queuePending(_ context: AsyncResourceContext?, destroyAfter: Bool = false, _ body: @escaping Callback) {
        pendingCallbacks.push(QueuedCallback(context: context, body: body, destroyAfter: destroyAfter))
    }

    /// Queues `body` for the close phase (a handle's close callback). Keeps the loop alive until it ran.
    public func queueClose(_ context: AsyncResourceContext?, destroyAfter: Bool = true, _ body: @escaping Callback) {
        refCount += 1
        closeCallbacks.push(QueuedCallback(context: context, body: body, destroyAfter: destroyAfter))
    }

    func runQueue(_ phase: LoopPhase) {
        // Each pop is its own short access: a callback may queue more (e.g. a close callback closing
        // another handle), which an inout access held across the callbacks would forbid.
        var n = phase == .close ? closeCallbacks.count : pendingCallbacks.count
        if n == 0 { return }
        enterPhase(phase)
        // Only what was queued before the phase began runs now (as libuv).
        while n > 0, let q = (phase == .close ? closeCallbacks.pop() : pendingCallbacks.pop()) {
            n -= 1
            if phase == .close { refCount -= 1 }
            if let ctx = q.context {
                invoke(ctx, q.body)
                if q.destroyAfter { ctx.emitDestroy() }
            } else {
                invokeUnscoped(q.body)
            }
        }
        AsyncHooks.emitPhaseLeave(phase)
    }

    // MARK: timers phase

    func runTimers() {
        guard let first = timers.first, first.dueNs <= now else { return }
        enterPhase(.timers)
        var follows = false  // the first timer's before shares the phase start's time anyway
        while let t = timers.first, t.dueNs <= now {
            timers.removeFirst()
            let work = outsideWork
            t.fire(following: follows)
            follows = work == outsideWork
        }
        AsyncHooks.emitPhaseLeave(.timers)
    }

    /// Every phase but check enters here: it ends a quiet stretch (`quietCheckEnd`).
    @inline(__always)
    func enterPhase(_ phase: LoopPhase) {
        quietCheckEnd = false
        announcePhase(phase, following: false)
    }

    /// The phase enter, with this iteration's loopIteration first when it is still unannounced.
    @inline(__always)
    func announcePhase(_ phase: LoopPhase, following: Bool) {
        if iterationUnannounced {
            iterationUnannounced = false
            if checkLeaveUnannounced {
                checkLeaveUnannounced = false
                AsyncHooks.emitPhaseLeaveLoopIterationAndPhaseEnter(.check, iteration, phase, following: following)
            } else {
                AsyncHooks.emitLoopIterationAndPhaseEnter(iteration, phase, following: following)
            }
        } else {
            announceCheckLeave()
            AsyncHooks.emitPhaseEnter(phase, following: following)
        }
    }

    func nextTimerSequence() -> UInt64 {
        timerSequence &+= 1
        return timerSequence
    }

    // MARK: check phase

    func runImmediates() {
        if immediateQueue.isEmpty { return }
        announcePhase(.check, following: quietCheckEnd)
        swap(&immediateQueue, &runningImmediates)
        var follows = false  // the first immediate's before shares the phase start's time anyway
        for imm in runningImmediates {
            let work = outsideWork
            follows = imm.run(following: follows) && work == outsideWork
        }
        quietCheckEnd = follows && runningImmediates.count <= quietCheckLimit
        runningImmediates.removeAll(keepingCapacity: true)
        checkLeaveUnannounced = true
    }

    // MARK: poll phase

    /// Milliseconds epoll may block: 0 when something is due now or an idle handle is active, else until
    /// the nearest timer, else forever.
    func pollTimeout() -> Int32 {
        if stopRequested || !immediateQueue.isEmpty || !pendingCallbacks.isEmpty || !closeCallbacks.isEmpty
            || !idleHandles.isEmpty || !isAlive
        {
            return 0
        }
        guard let t = timers.first else { return -1 }
        now = Sys.monotonicNanoseconds()  // the cached time may predate this timer (see updateTime)
        if t.dueNs <= now { return 0 }
        let ms = (t.dueNs - now + 999_999) / 1_000_000
        return Int32(min(ms, UInt64(Int32.max)))
    }

    func poll() {
        let timeout = pollTimeout()
        // A zero-timeout poll with no fd watched and no remote work cannot find anything: skip the syscall.
        if timeout == 0 && registeredFDCount == 0 && !remotePending.load(ordering: .acquiring) { return }
        enterPhase(.poll)
        AsyncHooks.emitPollStart(timeoutMs: Int64(timeout))
        let n: Int
        do {
            n = try Sys.epollWait(epollFD, events, maxEvents, timeoutMs: timeout)
        } catch {
            // EBADF/EINVAL here mean the loop's own epoll fd is broken: nothing sensible remains to do.
            fatalError("asynctrace: \(error)")
        }
        updateTime()
        if AsyncHooks.isActive {
            for i in 0..<n { readyFDs[i] = Int32(truncatingIfNeeded: events[i].data.u64) }
            AsyncHooks.emitPollEnd(readyFDs: UnsafeBufferPointer(start: readyFDs, count: n))
        }
        batchCount = n
        batchIndex = 0
        while batchIndex < batchCount {
            let ev = events[batchIndex]
            batchIndex += 1
            let data = ev.data.u64
            if data == UInt64.max { continue }  // invalidated: its watcher closed earlier in this batch
            let fd = Int32(truncatingIfNeeded: data)
            if fd == wakeFD {
                runRemoteWork()
            } else if Int(fd) < watchers.count, let w = watchers[Int(fd)] {
                w.dispatch(FDEvents(rawValue: ev.events))
            }
        }
        batchCount = 0
        AsyncHooks.emitPhaseLeave(.poll)
    }

    /// Marks later events of `fd` in the batch being dispatched as stale.
    func invalidateBatchEvents(fd: Int32) {
        var i = batchIndex
        while i < batchCount {
            if events[i].data.u64 == UInt64(UInt32(bitPattern: fd)) { events[i].data.u64 = UInt64.max }
            i += 1
        }
    }

    // MARK: cross-thread work

    /// Posts `work` from any thread; it runs on the loop in the poll phase. `work` scopes itself
    /// (normally through `invoke`). Does not keep the loop alive: the poster holds a request ref.
    func postRemote(_ work: @escaping @Sendable () -> Void) {
        remote.withLock { $0.append(work) }
        if !remotePending.exchange(true, ordering: .acquiringAndReleasing) { Sys.eventFDSignal(wakeFD) }
    }

    func runRemoteWork() {
        Sys.eventFDDrain(wakeFD)
        remotePending.store(false, ordering: .releasing)
        let batch = remote.withLock { q -> [@Sendable () -> Void] in
            let b = q
            q.removeAll(keepingCapacity: true)
            return b
        }
        for work in batch { work() }
    }
}

extension ResourceType {
    /// A `queueMicrotask` callback (Node reports these as "Microtask").
    public static let microtask = ResourceType("Microtask")
    /// One resumption of a Swift task on the loop (the job between two suspension points).
    public static let swiftJob = ResourceType("SwiftJob")
}

let loopKey: pthread_key_t = {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key) { p in
        rt_set_current_loop(nil)
        Unmanaged<EventLoop>.fromOpaque(p!).release()
    }
    precondition(rc == 0, "pthread_key_create failed: \(rc)")
    return key
}()

struct UncheckedBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
