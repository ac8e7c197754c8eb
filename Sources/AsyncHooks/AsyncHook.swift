// Hooks: what a listener implements, how it is enabled, and how emission sites reach it.
import CAsyncHooksSupport
import Synchronization

/// Loop phases in Node's order (the trace format uses the same codes).
public enum LoopPhase: UInt8, Sendable, CaseIterable {
    /// Node's phases, in loop order.
    case timers = 0, pending = 1, idle = 2, prepare = 3, poll = 4, check = 5, close = 6
}

/// A listener for async events. Every method has an empty default, so a hook implements
/// any subset. Methods are called on the thread where the event happened.
public protocol AsyncHook: AnyObject, Sendable {
    /// A resource was created: its id, type, the resource whose callback (or the top level) created it,
    /// and the runtime's object for it where it passes one.
    func initResource(_ asyncID: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?)
    /// A callback of resource `asyncID` is about to run on this thread.
    func before(_ asyncID: AsyncID)
    /// The callback of `asyncID` that `before` announced has returned.
    func after(_ asyncID: AsyncID)
    /// The resource was freed: it will have no more callbacks.
    func destroy(_ asyncID: AsyncID)
    /// A promise resource resolved (its continuations may now run).
    func promiseResolve(_ asyncID: AsyncID)

    /// The resource owns `fd` from now on (-1: it no longer owns one), so kernel I/O on it can be attributed.
    func resourceFD(_ asyncID: AsyncID, fd: Int32)
    /// A user-named instant.
    func mark(_ name: String, executionAsyncID: AsyncID)
    /// A user-named span begins (`AsyncHooks.beginSpan`) in the execution context `executionAsyncID`.
    func spanBegin(_ spanID: UInt64, name: String, executionAsyncID: AsyncID)
    /// The span `spanID` ends.
    func spanEnd(_ spanID: UInt64)
    /// A named value describing a resource (a Swift task's kind or priority), recorded once.
    func resourceAttribute(_ asyncID: AsyncID, attribute: ResourceAttribute)
    /// A named value describing a span (distributed tracing: trace and span ids, parent, attributes).
    func spanAttribute(_ spanID: UInt64, key: String, value: String)
    /// Event-loop structure, from a runtime.
    func loopIteration(_ iteration: UInt64)
    /// The loop enters `phase`.
    func phaseEnter(_ phase: LoopPhase)
    /// The loop leaves `phase`.
    func phaseLeave(_ phase: LoopPhase)
    /// The loop is about to wait for I/O (`timeoutMs` -1: no timeout).
    func pollStart(timeoutMs: Int64)
    /// The wait returned; `readyFDs` (valid only during the call) are the fds that are ready.
    func pollEnd(readyFDs: UnsafeBufferPointer<Int32>)
    /// after() named a resource other than the innermost before().
    func nestingError(expected: AsyncID, actual: AsyncID)
    /// A callback of `asyncID` threw and nothing caught it; `message` describes the error.
    func uncaughtError(_ asyncID: AsyncID, message: String)
}

/// A hook that also offers its events as plain functions, for a recorder: while it is the only hook
/// enabled, emission sites call them directly (no dispatch loop, no protocol witness). For the
/// recorder only (`@_spi(Recorder) import AsyncHooks`): not part of the public API.
@_spi(Recorder) public protocol AsyncHookFastPathProvider: AsyncHook {
    var fastPath: AsyncHookFastPath? { get }
}

/// A hook's hottest events as C-convention functions (no context: they reach their state through
/// thread-locals or globals). `initResource` gets no `resource` object: a hook that needs it must
/// not offer a fast path.
@_spi(Recorder) public struct AsyncHookFastPath: Sendable {
    public typealias IDFunction = @convention(c) (UInt64) -> Void
    public typealias PhaseFunction = @convention(c) (UInt8) -> Void
    /// (asyncID, type id, triggerAsyncID)
    public var initResource: @convention(c) (UInt64, UInt32, UInt64) -> Void
    public var before: IDFunction
    public var after: IDFunction
    public var destroy: IDFunction
    public var promiseResolve: IDFunction
    public var loopIteration: IDFunction
    public var phaseEnter: PhaseFunction
    public var phaseLeave: PhaseFunction

    // Fused events (optional): where a runtime emits several events in a row, one call instead of
    // several, so a recorder looks its buffer up once. Where nil, AsyncHooks calls the single-event
    // functions above in the same order.

    /// after(id), then destroy(id).
    public var afterAndDestroy: IDFunction?
    /// before(id) of a callback that follows the thread's previous callback with nothing but the
    /// runtime's queue bookkeeping in between (no system call, no user code): a recorder may stamp it
    /// with the time of the thread's previous event instead of reading the clock.
    public var beforeFollowing: IDFunction?
    /// after(leaving), destroy(leaving), before(entering), with nothing in between (an await that
    /// continues without suspending).
    public var afterDestroyBefore: (@convention(c) (_ leaving: UInt64, _ entering: UInt64) -> Void)?
    /// initResource(entering, type, trigger), then `afterDestroyBefore(leaving, entering)` (an await
    /// that continues without suspending, with its new PROMISE resource).
    /// phaseEnter(phase) of a phase that follows the thread's previous callback with nothing but the
    /// loop's bookkeeping in between (no system call, no user code): a recorder may stamp it with the
    /// thread's previous event's time.
    public var phaseEnterFollowing: PhaseFunction?
    public var initAfterDestroyBefore: (@convention(c) (_ entering: UInt64, _ type: UInt32, _ trigger: UInt64, _ leaving: UInt64) -> Void)?
    /// initResource(id, type, trigger), then promiseResolve(id): a resource settled as it is created
    /// (`Promise.resolve(value)`).
    public var initResolved: (@convention(c) (UInt64, UInt32, UInt64) -> Void)?
    /// loopIteration(iteration), then phaseEnter(phase) — or, when `following` is 1,
    /// `phaseEnterFollowing(phase)` — with nothing in between (an iteration's first phase).
    public var iterationAndPhaseEnter: (@convention(c) (_ iteration: UInt64, _ phase: UInt8, _ following: UInt8) -> Void)?
    /// phaseLeave(leaving), then `iterationAndPhaseEnter(iteration, phase, following)` (a phase that
    /// ends an iteration, then the next iteration's first phase, with only loop bookkeeping between).
    public var leaveIterationAndPhaseEnter: (@convention(c) (_ leaving: UInt8, _ iteration: UInt64, _ phase: UInt8, _ following: UInt8) -> Void)?

    public init(
        initResource: @escaping @convention(c) (UInt64, UInt32, UInt64) -> Void, before: IDFunction,
        after: IDFunction, destroy: IDFunction, promiseResolve: IDFunction, loopIteration: IDFunction,
        phaseEnter: PhaseFunction, phaseLeave: PhaseFunction, afterAndDestroy: IDFunction? = nil,
        beforeFollowing: IDFunction? = nil,
        afterDestroyBefore: (@convention(c) (UInt64, UInt64) -> Void)? = nil,
        initAfterDestroyBefore: (@convention(c) (UInt64, UInt32, UInt64, UInt64) -> Void)? = nil,
        phaseEnterFollowing: PhaseFunction? = nil,
        initResolved: (@convention(c) (UInt64, UInt32, UInt64) -> Void)? = nil,
        iterationAndPhaseEnter: (@convention(c) (UInt64, UInt8, UInt8) -> Void)? = nil,
        leaveIterationAndPhaseEnter: (@convention(c) (UInt8, UInt64, UInt8, UInt8) -> Void)? = nil
    ) {
        self.initResource = initResource
        self.before = before
        self.after = after
        self.destroy = destroy
        self.promiseResolve = promiseResolve
        self.loopIteration = loopIteration
        self.phaseEnter = phaseEnter
        self.phaseLeave = phaseLeave
        self.afterAndDestroy = afterAndDestroy
        self.beforeFollowing = beforeFollowing
        self.afterDestroyBefore = afterDestroyBefore
        self.initAfterDestroyBefore = initAfterDestroyBefore
        self.phaseEnterFollowing = phaseEnterFollowing
        self.initResolved = initResolved
        self.iterationAndPhaseEnter = iterationAndPhaseEnter
        self.leaveIterationAndPhaseEnter = leaveIterationAndPhaseEnter
    }
}

extension AsyncHook {
    public func initResource(_ asyncID: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {}
    public func before(_ asyncID: AsyncID) {}
    public func after(_ asyncID: AsyncID) {}
    public func destroy(_ asyncID: AsyncID) {}
    public func promiseResolve(_ asyncID: AsyncID) {}
    public func resourceFD(_ asyncID: AsyncID, fd: Int32) {}
    public func mark(_ name: String, executionAsyncID: AsyncID) {}
    public func spanBegin(_ spanID: UInt64, name: String, executionAsyncID: AsyncID) {}
    public func spanEnd(_ spanID: UInt64) {}
    public func resourceAttribute(_ asyncID: AsyncID, attribute: ResourceAttribute) {}
    public func spanAttribute(_ spanID: UInt64, key: String, value: String) {}
    public func loopIteration(_ iteration: UInt64) {}
    public func phaseEnter(_ phase: LoopPhase) {}
    public func phaseLeave(_ phase: LoopPhase) {}
    public func pollStart(timeoutMs: Int64) {}
    public func pollEnd(readyFDs: UnsafeBufferPointer<Int32>) {}
    public func nestingError(expected: AsyncID, actual: AsyncID) {}
    public func uncaughtError(_ asyncID: AsyncID, message: String) {}
}

/// A hook made of closures, in the shape of Node's `createHook({ init, before, ... })`.
public final class ClosureHook: AsyncHook, @unchecked Sendable {
    /// `init`: (asyncID, type, triggerAsyncID, resource object or nil).
    public typealias InitFn = @Sendable (AsyncID, ResourceType, AsyncID, AnyObject?) -> Void
    /// `before`, `after`, `destroy`, `promiseResolve`: the resource's id.
    public typealias IDFn = @Sendable (AsyncID) -> Void
    let onInit: InitFn?
    let onBefore: IDFn?
    let onAfter: IDFn?
    let onDestroy: IDFn?
    let onPromiseResolve: IDFn?

    /// A hook calling the given closures (nil: that event is ignored); not enabled yet.
    public init(
        init onInit: InitFn? = nil, before: IDFn? = nil, after: IDFn? = nil, destroy: IDFn? = nil,
        promiseResolve: IDFn? = nil
    ) {
        self.onInit = onInit
        self.onBefore = before
        self.onAfter = after
        self.onDestroy = destroy
        self.onPromiseResolve = promiseResolve
    }

    public func initResource(_ asyncID: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {
        onInit?(asyncID, type, triggerAsyncID, resource)
    }
    public func before(_ asyncID: AsyncID) { onBefore?(asyncID) }
    public func after(_ asyncID: AsyncID) { onAfter?(asyncID) }
    public func destroy(_ asyncID: AsyncID) { onDestroy?(asyncID) }
    public func promiseResolve(_ asyncID: AsyncID) { onPromiseResolve?(asyncID) }

    /// `AsyncHooks.enable(self)`; returns self.
    @discardableResult public func enable() -> Self { AsyncHooks.enable(self); return self }
    /// `AsyncHooks.disable(self)`; returns self.
    @discardableResult public func disable() -> Self { AsyncHooks.disable(self); return self }
}

/// The enabled hooks, as an immutable snapshot. Snapshots are never freed (enabling and
/// disabling is rare), so emitters read one with a single load and borrow its elements
/// in place: no reference counting on the emission path.
@usableFromInline
final class HookList: @unchecked Sendable {
    @usableFromInline let hooks: ContiguousArray<any AsyncHook>
    /// The registry generation this list was built for (see `asynchooks_generation`).
    @usableFromInline let generation: UInt
    init(_ hooks: ContiguousArray<any AsyncHook>, generation: UInt) {
        self.hooks = hooks
        self.generation = generation
    }
}

/// How many hooks are enabled, in every copy of AsyncHooks in the process (a C global: no
/// lazy-initialisation check on the emission path).
@inlinable
var activeHookCount: Int { @inline(__always) get { asynchooks_active_count() } }
/// What this copy's emission sites call: its own hooks, then one forwarder per other copy with hooks.
@usableFromInline
let activeHookList = Atomic<Unmanaged<HookList>?>(nil)
/// This copy's own hooks, for the other copies' forwarders (they must not see each other's).
let localHookList = Atomic<Unmanaged<HookList>?>(nil)
/// The sole enabled hook's fast path (in whichever copy it was enabled), or nil (no hook, several hooks,
/// or one without a fast path). Leaked like the snapshots, so a reader may keep using one it loaded.
/// Read only out of line (the table's type is the recorder's SPI, not inlinable API).
var activeFastPath: UnsafeMutablePointer<AsyncHookFastPath>? {
    @inline(__always) get { asynchooks_fast_path()?.assumingMemoryBound(to: AsyncHookFastPath.self) }
}
/// This copy's own hooks, in the order they were enabled. Guarded by the registry's lock
/// (`asynchooks_lock`), which every copy in the process shares.
nonisolated(unsafe) var localHooks = ContiguousArray<any AsyncHook>()

/// Runs `body` with the registry's lock held.
func withRegistryLock<R>(_ body: () throws -> R) rethrows -> R {
    asynchooks_lock()
    defer { asynchooks_unlock() }
    return try body()
}

/// The process's hooks: enabling and disabling them, emitting events to them, and the current
/// execution context, as Node's `async_hooks` module.
public enum AsyncHooks {
    /// Enables `hook` (no effect if it is enabled already). Several hooks may be enabled at once;
    /// they are called in the order they were enabled. A hook receives the events of every copy of
    /// AsyncHooks in the process (an application's own and the one `asynctrace record` injects).
    public static func enable(_ hook: any AsyncHook) {
        withRegistryLock {
            guard !localHooks.contains(where: { $0 === hook }) else { return }
            localHooks.append(hook)
            publish()
        }
    }

    /// Disables `hook` (no effect if it is not enabled); it gets no events after this returns.
    public static func disable(_ hook: any AsyncHook) {
        withRegistryLock {
            guard let i = localHooks.firstIndex(where: { $0 === hook }) else { return }
            localHooks.remove(at: i)
            publish()
        }
    }

    /// Whether `hook` is enabled (in this copy of AsyncHooks).
    public static func isEnabled(_ hook: any AsyncHook) -> Bool {
        withRegistryLock { localHooks.contains(where: { $0 === hook }) }
    }

    /// Creates a closure hook (not yet enabled), as Node's `async_hooks.createHook`.
    public static func createHook(
        init onInit: ClosureHook.InitFn? = nil, before: ClosureHook.IDFn? = nil,
        after: ClosureHook.IDFn? = nil, destroy: ClosureHook.IDFn? = nil,
        promiseResolve: ClosureHook.IDFn? = nil
    ) -> ClosureHook {
        ClosureHook(init: onInit, before: before, after: after, destroy: destroy, promiseResolve: promiseResolve)
    }

    /// (Lock held.) This copy's hooks changed: tell the registry (which rewrites every copy's count,
    /// fast path and generation), then rebuild this copy's dispatch list.
    private static func publish() {
        let list = localHooks
        localHookList.store(
            list.isEmpty ? nil : Unmanaged.passRetained(HookList(list, generation: 0)),  // leaked on purpose
            ordering: .releasing)
        var fast: UnsafeMutablePointer<AsyncHookFastPath>? = nil
        if list.count == 1, let f = (list[0] as? any AsyncHookFastPathProvider)?.fastPath {
            fast = .allocate(capacity: 1)  // leaked on purpose
            fast!.initialize(to: f)
        }
        asynchooks_publish_local(list.count, fast, list.isEmpty ? nil : UnsafePointer(localEvents))
        rebuildHookList()
    }

    /// (Lock held.) This copy's hooks and a forwarder for each other copy with hooks.
    @discardableResult
    static func rebuildHookList() -> Unmanaged<HookList>? {
        let generation = asynchooks_generation()
        var hooks = localHooks
        for i in 0..<asynchooks_foreign_count() {
            if let events = asynchooks_foreign_events(i) { hooks.append(ForeignHooks(events)) }
        }
        let snapshot = Unmanaged.passRetained(HookList(hooks, generation: generation))  // leaked on purpose
        activeHookList.store(snapshot, ordering: .releasing)
        return snapshot
    }

    /// The dispatch list, rebuilt if another copy changed its hooks since it was made.
    @inlinable @inline(__always)
    static func currentHookList() -> Unmanaged<HookList>? {
        if let list = activeHookList.load(ordering: .acquiring),
            list._withUnsafeGuaranteedRef({ $0.generation }) == asynchooks_generation()
        {
            return list
        }
        return refreshHookList()
    }

    @usableFromInline @inline(never)
    static func refreshHookList() -> Unmanaged<HookList>? {
        withRegistryLock { rebuildHookList() }
    }

    /// True when at least one hook is enabled: one relaxed load. Emission sites test this
    /// before building anything.
    @inlinable @inline(__always)
    public static var isActive: Bool { activeHookCount != 0 }

    /// Calls `body` for each enabled hook. Always inlined: as a call, its closure's captures (a span's
    /// name, the hooks) are retained and released at every event.
    @inlinable @inline(__always)
    public static func forEachHook(_ body: (any AsyncHook) -> Void) {
        guard let list = currentHookList() else { return }
        list._withUnsafeGuaranteedRef { l in
            // Indexing (not `for h in`) borrows each element instead of copying it.
            for i in 0..<l.hooks.count { body(l.hooks[i]) }
        }
    }
}
