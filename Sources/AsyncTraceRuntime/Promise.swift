// Promise: Node/JS promise semantics on the loop. Each promise is a PROMISE resource: init when
// created (a derived promise's trigger is its parent, as in Node), promiseResolve when settled,
// before/after around its reaction job, destroy when it is freed (Node: when collected).
//
// Speed: the settling, reaction and hook machinery is untyped (PromiseBase); only the stored value
// is generic, and the typed entry points are @inlinable, so a caller's Promise<Int> is specialized in
// the caller's module and the hot paths never look up generic metadata at run time.
@_spi(Runtime) import AsyncHooks
import CRuntimeSystem

@usableFromInline
enum PromiseStatus: UInt8 {
    case pending, fulfilled, rejected
}

/// A promise's fields, in one struct: the class stores only this, at the start of the object, so a
/// promise can be built in memory the runtime owns (`PromiseBase.makePooled`). Every field is
/// trivial: what needs releasing (the frame, the outcome, the reactions) is retained by hand and
/// released in deinit only when present, so freeing a promise calls no release for nil fields.
@usableFromInline
struct PromiseState {
    /// Not retained: a loop lives until its thread exits, and a promise is confined to that thread
    /// (a retain and a release per promise are a measurable share of an await).
    @usableFromInline let unownedLoop: Unmanaged<EventLoop>
    // The PROMISE resource, as its parts: the type is always PROMISE.
    @usableFromInline let asyncID: AsyncID
    @usableFromInline let triggerAsyncID: AsyncID
    /// The AsyncLocal frame at creation, retained by hand.
    @usableFromInline let frameRef: Unmanaged<ContextFrame>?
    @usableFromInline var status: PromiseStatus
    /// A handler is attached (so a rejection is not unhandled).
    @usableFromInline var isHandled = false
    /// The memory came from the thread's promise pool (CRuntimeSystem/promise_pool.h): deinit gives it back.
    @usableFromInline let pooled: Bool
    /// The fulfilled value, when it is a trivial type of up to 8 bytes (Int, Double, Bool, Void, ...)...
    @usableFromInline var inlineValue: UInt64 = 0
    /// ...else a `PromiseValueBox<Value>`; when rejected, a `PromiseRejection` (retained by hand).
    /// The typed subclass stores no `Value?` of its own: destroying one in its (unspecializable)
    /// deinit would look up `Optional<Value>`'s metadata on every free.
    @usableFromInline var outcomeRef: Unmanaged<AnyObject>? = nil
    /// The reactions in the order they were added: the first if it is a promise (the common case,
    /// without an array; retained by hand), else all in the reaction list.
    var firstReaction: Unmanaged<PromiseBase>? = nil
    /// A `ContiguousArray<Reaction>`'s storage, retained by hand (see `PromiseBase.takeMoreReactions`).
    var moreReactionsRef: Unmanaged<AnyObject>? = nil

    /// A new PROMISE resource of `loop` (init emitted; with promiseResolve when `fulfilled`).
    @usableFromInline
    init(loop: Unmanaged<EventLoop>, trigger: AsyncID?, fulfilled: Bool, pooled: Bool) {
        let type = loop._withUnsafeGuaranteedRef { $0.promiseType }
        let parts = AsyncHooks.newResource(type: type, triggerAsyncID: trigger, resolvedOnCreation: fulfilled)
        self.unownedLoop = loop
        self.asyncID = parts.asyncID
        self.triggerAsyncID = parts.triggerAsyncID
        self.frameRef = parts.frame
        self.status = fulfilled ? .fulfilled : .pending
        self.pooled = pooled
    }
}

/// The untyped part of every promise: the resource, its outcome's status, the rejection, the reactions.
public class PromiseBase {
    // Promises are confined to their loop's thread: no dynamic exclusivity checks on the hot fields.
    // The fields are laid out small (88 bytes with the header): programs make promises by the
    // hundred thousand.
    @usableFromInline @exclusivity(unchecked) final var state: PromiseState

    @inlinable final var unownedLoop: Unmanaged<EventLoop> { state.unownedLoop }
    @usableFromInline final var loop: EventLoop { unownedLoop.takeUnretainedValue() }
    /// Runs `body` with the loop borrowed: no retain and release on the hot paths.
    @inline(__always)
    final func withLoop<R>(_ body: (EventLoop) -> R) -> R { unownedLoop._withUnsafeGuaranteedRef(body) }
    /// The promise's async id (a PROMISE resource).
    public final var asyncID: AsyncID { state.asyncID }
    @inlinable final var triggerAsyncID: AsyncID { state.triggerAsyncID }
    @usableFromInline final var frame: ContextFrame? { state.frameRef?.takeUnretainedValue() }
    @inlinable final var status: PromiseStatus {
        get { state.status }
        set { state.status = newValue }
    }
    @inlinable final var isHandled: Bool {
        get { state.isHandled }
        set { state.isHandled = newValue }
    }
    @inlinable final var inlineValue: UInt64 {
        get { state.inlineValue }
        set { state.inlineValue = newValue }
    }
    @inlinable final var outcomeRef: Unmanaged<AnyObject>? {
        get { state.outcomeRef }
        set { state.outcomeRef = newValue }
    }
    @inlinable final var outcomeBox: AnyObject { state.outcomeRef.unsafelyUnwrapped.takeUnretainedValue() }
    private final var firstReaction: Unmanaged<PromiseBase>? {
        get { state.firstReaction }
        set { state.firstReaction = newValue }
    }
    private final var moreReactionsRef: Unmanaged<AnyObject>? {
        get { state.moreReactionsRef }
        set { state.moreReactionsRef = newValue }
    }

    /// Moves the reaction list out (nil if there is none); `putMoreReactions` puts one back.
    private final func takeMoreReactions() -> ContiguousArray<Reaction>? {
        guard let r = moreReactionsRef else { return nil }
        moreReactionsRef = nil
        return unsafeBitCast(r.takeRetainedValue(), to: ContiguousArray<Reaction>.self)
    }

    private final func putMoreReactions(_ list: ContiguousArray<Reaction>) {
        moreReactionsRef = Unmanaged.passRetained(unsafeBitCast(list, to: AnyObject.self))
    }

    /// Appends to the reaction list (the list is uniquely owned here: no copy).
    private final func appendReaction(_ r: Reaction) {
        var list = takeMoreReactions() ?? []
        list.append(r)
        putMoreReactions(list)
    }

    /// The rejection, once rejected.
    @usableFromInline
    final var rejection: (any Error)? {
        status == .rejected ? unsafeDowncast(outcomeBox, to: PromiseRejection.self).error : nil
    }

    @usableFromInline
    init(loop: EventLoop, trigger: AsyncID?) {
        state = PromiseState(loop: Unmanaged.passUnretained(loop), trigger: trigger, fulfilled: false, pooled: false)
    }

    /// A promise of this thread's loop (no retain and release of the loop).
    @usableFromInline
    init(onCurrentLoopWithTrigger trigger: AsyncID?) {
        state = PromiseState(loop: EventLoop.currentUnretained, trigger: trigger, fulfilled: false, pooled: false)
    }

    /// A promise of this thread's loop, fulfilled as it is created (its value is stored next): init
    /// and promiseResolve in one emission.
    @usableFromInline
    init(onCurrentLoopFulfilled: ()) {
        state = PromiseState(loop: EventLoop.currentUnretained, trigger: nil, fulfilled: true, pooled: false)
    }

    /// Memory from this thread's promise pool holding a new object of class `metadata` (an exact
    /// `Promise<Value>`, which adds no fields) with its state initialised: a PROMISE resource of
    /// this thread's loop, pending, or fulfilled (init and promiseResolve in one emission; the
    /// caller stores the value next). Returned at +1; nil, having done nothing, when the pool's
    /// budget is in use (the caller makes an ordinary promise). See CRuntimeSystem/promise_pool.h.
    @usableFromInline
    static func makePooled(metadata: UnsafeRawPointer, fulfilled: Bool) -> UnsafeMutableRawPointer? {
        guard let object = rt_promise_pool_take(metadata, pooledObjectSize) else { return nil }
        (object + storedPropertiesOffset).initializeMemory(
            as: PromiseState.self,
            repeating: PromiseState(loop: EventLoop.currentUnretained, trigger: nil, fulfilled: fulfilled, pooled: true),
            count: 1)
        return object
    }

    /// Where a root Swift class's first stored property starts: after the object header (metadata
    /// and reference counts). `PromiseTests` checks it against `_getUnsafePointerToStoredProperties`.
    static var storedPropertiesOffset: Int { 2 * MemoryLayout<UnsafeRawPointer>.size }
    /// A pooled promise's size: the header and the state.
    static var pooledObjectSize: Int { storedPropertiesOffset + MemoryLayout<PromiseState>.size }

    deinit {
        AsyncHooks.emitDestroy(asyncID)
        if status == .pending { dropUnrunReactions() }
        // The fields retained by hand (the others are trivial: nothing to release).
        if let r = outcomeRef { r.release() }
        if let r = state.frameRef { r.release() }
        if let r = moreReactionsRef { r.release() }
        // Last: the memory is reused only after this object's deallocation finished.
        if state.pooled { rt_promise_pool_give(Unmanaged.passUnretained(self).toOpaque()) }
    }

    /// A promise freed before it settled: its reactions never ran and go with it. A combinator's
    /// reaction is a resource without an object, so it is destroyed here (as a reaction object
    /// would be when freed; Node: when collected).
    @inline(never)
    private final func dropUnrunReactions() {
        firstReaction?.release()
        firstReaction = nil
        for case .combinator(let step) in takeMoreReactions() ?? [] { AsyncHooks.emitDestroy(step.asyncID) }
    }

    /// The promise's resource (id, trigger, PROMISE type, creation context).
    public final var context: AsyncResourceContext {
        AsyncResourceContext(existing: asyncID, triggerAsyncID: triggerAsyncID, type: loop.promiseType, frame: frame)
    }

    /// Whether it is neither fulfilled nor rejected yet.
    public final var isPending: Bool { status == .pending }

    /// The job run when the promise this one reacts to settles (derived promises override it).
    func runReaction() {}

    /// The rejection reason if rejected and nobody handled it.
    var unhandledReason: (any Error)? { !isHandled && status == .rejected ? rejection : nil }

    // MARK: settling

    /// Completes a fulfilment whose value the typed subclass has just stored.
    @usableFromInline
    final func didFulfil() {
        status = .fulfilled
        didSettle()
    }

    /// Rejects (ignored once settled, as in JS).
    @usableFromInline
    final func reject(_ error: any Error) {
        guard status == .pending else { return }
        outcomeRef = Unmanaged.passRetained(PromiseRejection(error))
        status = .rejected
        didSettle()
    }

    private final func didSettle() {
        AsyncHooks.emitPromiseResolve(asyncID)
        if let r = firstReaction {
            firstReaction = nil
            withLoop { $0.microtasks.push(.reaction(r.takeRetainedValue())) }
        }
        if let more = takeMoreReactions() {
            withLoop { loop in for r in more { loop.microtasks.push(r.microtask(reactingTo: self)) } }
        }
        if status == .rejected, !isHandled {
            loop.unhandledRejections.append(self)
        }
    }

    @usableFromInline
    final func addReaction(_ r: PromiseBase) {
        if status == .pending && firstReaction == nil && moreReactionsRef == nil {
            isHandled = true
            firstReaction = Unmanaged.passRetained(r)
        } else {
            addReaction(.promise(r))
        }
    }

    final func addReaction(_ r: Reaction) {
        isHandled = true
        if status == .pending {
            appendReaction(r)
        } else {
            withLoop { $0.microtasks.push(r.microtask(reactingTo: self)) }
        }
    }

    /// Adds one input's reaction of a combinator: a PROMISE resource (trigger: this promise), as
    /// Node's internal `then` per element, carried in the reaction itself instead of an object.
    @usableFromInline
    final func addCombinatorReaction(_ progress: CombinatorProgress, index: Int, loop: EventLoop) {
        let context = AsyncResourceContext(type: loop.promiseType, triggerAsyncID: asyncID)
        let step = CombinatorStep(
            progress: progress, index: index, asyncID: context.asyncID,
            triggerAsyncID: context.triggerAsyncID, frame: context.frame)
        isHandled = true
        if status == .pending {
            appendReaction(.combinator(step))
        } else {
            loop.microtasks.push(.combinator(step, self))
        }
    }
}

/// What runs when a promise settles: a derived promise's job, or an awaiting task's resumption
/// (the await's PROMISE resource is a context, not an object, so an await allocates nothing here).
enum Reaction {
    case promise(PromiseBase)
    case resume(UnsafeContinuation<Void, Never>, AsyncResourceContext)
    case combinator(CombinatorStep)

    /// The microtask that runs this reaction to `input`'s outcome.
    func microtask(reactingTo input: PromiseBase) -> Microtask {
        switch self {
        case .promise(let p): return .reaction(p)
        case .resume(let c, let ctx): return .resume(c, ctx)
        case .combinator(let step): return .combinator(step, input)
        }
    }
}

/// One input's reaction of a combinator (Promise.all): its progress, the input's index, and the
/// reaction's PROMISE resource — run as a callback of that resource and destroyed once it ran
/// (it is unreachable then, which is when Node's internal promise is collected).
struct CombinatorStep {
    let progress: CombinatorProgress
    let index: Int
    let asyncID: AsyncID
    let triggerAsyncID: AsyncID
    let frame: ContextFrame?

    /// `following`: see `EventLoop.outsideWork`.
    func run(input: PromiseBase, following: Bool) {
        AsyncHooks.enterCallback(asyncID, triggerAsyncID: triggerAsyncID, frame: frame, following: following)
        progress.onSettled(progress, input, index)
        if AsyncHooks.isActive { AsyncHooks.leaveCallbackAndDestroy(asyncID) } else { AsyncHooks.leaveCallback(asyncID) }
    }
}

/// One outcome of `Promise.allSettled`.
public enum PromiseSettledResult<Value> {
    /// Fulfilled with this value.
    case fulfilled(Value)
    /// Rejected with this error.
    case rejected(any Error)
}

/// Promise.any rejects with this when every input rejected.
public struct AggregateError: Error, CustomStringConvertible {
    /// Every input's rejection, in input order.
    public let errors: [any Error]
    public var description: String { "AggregateError: All promises were rejected (\(errors.count))" }
}

/// Lets an executor settle its promise (JS's resolve/reject functions, without allocating them).
public struct PromiseResolver<Value> {
    @usableFromInline let promise: Promise<Value>
    @inlinable init(promise: Promise<Value>) { self.promise = promise }
    /// Fulfils the promise with `value` (no effect once it is settled).
    @inlinable public func resolve(_ value: Value) { promise.fulfil(value) }
    /// Rejects the promise with `error` (no effect once it is settled).
    public func reject(_ error: any Error) { promise.reject(error) }
    /// Adopts `other`'s outcome (resolving with a promise).
    public func resolve(with other: Promise<Value>) { promise.adopt(other) }
}

/// A promise's rejection (in the same slot as a boxed value: a promise has one outcome).
@usableFromInline
final class PromiseRejection {
    @usableFromInline let error: any Error
    init(_ error: any Error) { self.error = error }
}

/// A fulfilled value that is not stored inline in its promise.
@usableFromInline
final class PromiseValueBox<Value> {
    @usableFromInline let value: Value
    @inlinable init(_ value: Value) { self.value = value }
}

/// A JavaScript-style promise on the loop (a PROMISE resource): reactions run as microtasks, each as a
/// callback of the promise `then` returned (triggered by the promise it reacts to), as in Node's async hooks.
public class Promise<Value>: PromiseBase {
    /// Whether a value of this type fits `inlineValue`.
    @inlinable
    static var storesValueInline: Bool {
        _isPOD(Value.self) && MemoryLayout<Value>.size <= 8
    }

    /// The value once fulfilled (only then).
    @inlinable
    final var fulfilledValue: Value {
        if Self.storesValueInline {
            return withUnsafeBytes(of: inlineValue) { $0.loadUnaligned(as: Value.self) }
        }
        return unsafeDowncast(outcomeBox, to: PromiseValueBox<Value>.self).value
    }

    @inlinable
    final func storeValue(_ value: Value) {
        if Self.storesValueInline {
            withUnsafeMutableBytes(of: &inlineValue) { $0.storeBytes(of: value, as: Value.self) }
        } else {
            outcomeRef = Unmanaged.passRetained(PromiseValueBox(value))
        }
    }

    @usableFromInline
    init(loop: EventLoop, parent: PromiseBase?) {
        super.init(loop: loop, trigger: parent?.asyncID)
    }

    /// A promise of this thread's loop with no parent (trigger: the current execution).
    @usableFromInline
    init() {
        super.init(onCurrentLoopWithTrigger: nil)
    }

    /// Fulfilled with `value` from the start (`Promise.resolve` when the pool's budget is in use).
    @usableFromInline
    init(fulfilledWith value: Value) {
        super.init(onCurrentLoopFulfilled: ())
        storeValue(value)
    }

    /// A pending promise of this thread's loop with no parent, in pooled memory if it can (`Promise()`).
    @inlinable
    static func makePending() -> Promise<Value> {
        let metadata = unsafeBitCast(Promise<Value>.self, to: UnsafeRawPointer.self)
        guard let object = PromiseBase.makePooled(metadata: metadata, fulfilled: false) else { return Promise<Value>() }
        return Unmanaged<Promise<Value>>.fromOpaque(object).takeRetainedValue()
    }

    /// `new Promise((resolve, reject) => ...)`: the executor runs now; a throw rejects.
    @inlinable
    public convenience init(_ executor: (PromiseResolver<Value>) throws -> Void) {
        self.init()
        do { try executor(PromiseResolver(promise: self)) } catch { reject(error) }
    }

    /// A pending promise and its resolver (Promise.withResolvers()).
    @inlinable
    public static func withResolver() -> (Promise<Value>, PromiseResolver<Value>) {
        let p = Promise<Value>.makePending()
        return (p, PromiseResolver(promise: p))
    }

    /// A promise fulfilled with `value` now (init and promiseResolve in one step).
    @inlinable
    public static func resolve(_ value: Value) -> Promise<Value> {
        let metadata = unsafeBitCast(Promise<Value>.self, to: UnsafeRawPointer.self)
        guard let object = PromiseBase.makePooled(metadata: metadata, fulfilled: true) else { return Promise<Value>(fulfilledWith: value) }
        let p = Unmanaged<Promise<Value>>.fromOpaque(object).takeRetainedValue()
        p.storeValue(value)
        return p
    }

    /// A promise rejected with `error` now.
    @inlinable
    public static func reject(_ error: any Error) -> Promise<Value> {
        let p = Promise<Value>.makePending()
        p.reject(error)
        return p
    }

    // MARK: settling

    /// Fulfils (ignored once settled, as in JS).
    @inlinable
    final func fulfil(_ value: Value) {
        guard status == .pending else { return }
        storeValue(value)
        didFulfil()
    }

    /// Settles as `other` did (other must be settled).
    final func settle(like other: Promise<Value>) {
        switch other.status {
        case .fulfilled: fulfil(other.fulfilledValue)
        case .rejected: reject(other.rejection!)
        case .pending: break
        }
    }

    /// Resolves with `other`, as JS does: a NewPromiseResolveThenableJob microtask subscribes to it
    /// (`other.then(resolve, reject)`, a PROMISE resource triggered by `other`), and that reaction
    /// settles this promise: two microtasks more than settling with a value.
    func adopt(_ other: Promise<Value>) {
        withLoop { loop in
            loop.microtasks.push(
                .resolveThenable(self) { [self] in
                    other.addReaction(ClosureReaction(parent: other) { [self] in settle(like: other) })
                })
        }
    }

    /// The outcome of a settled promise: its value, or its rejection thrown.
    @inlinable
    final func settledValue() throws -> Value {
        if status == .fulfilled { return fulfilledValue }
        throw rejection ?? PromiseNotSettled()
    }

    // MARK: reactions

    /// `then(onFulfilled, onRejected)`. A throw in a handler rejects the returned promise.
    @inlinable @discardableResult
    public func then<U>(
        _ onFulfilled: @escaping (Value) throws -> U,
        _ onRejected: ((any Error) throws -> U)? = nil
    ) -> Promise<U> {
        let d = DerivedPromise<Value, U>(parent: self, onFulfilled: onFulfilled, onRejected: onRejected)
        addReaction(d)
        return d
    }

    /// `then` with a handler returning a promise: the result adopts it.
    @inlinable @discardableResult
    public func then<U>(_ onFulfilled: @escaping (Value) throws -> Promise<U>) -> Promise<U> {
        let d = DerivedPromise<Value, U>(parent: self, chained: onFulfilled, onRejected: nil)
        addReaction(d)
        return d
    }

    /// Handles a rejection: the result fulfils with `onRejected`'s value (or rejects if it throws).
    @inlinable @discardableResult
    public func `catch`(_ onRejected: @escaping (any Error) throws -> Value) -> Promise<Value> {
        then({ $0 }, onRejected)
    }

    /// Runs `body` on either outcome; the result keeps this promise's outcome (or rejects if `body` throws).
    @inlinable @discardableResult
    public func finally(_ body: @escaping () throws -> Void) -> Promise<Value> {
        then(
            { v in
                try body(); return v
            },
            { e in
                try body(); throw e
            })
    }
}

/// Thrown if a pending promise's outcome is read (a runtime bug; never expected).
public struct PromiseNotSettled: Error, CustomStringConvertible {
    /// The error.
    @inlinable public init() {}
    public var description: String { "asynctrace: a pending promise's outcome was read" }
}

/// The promise returned by `then`: reacts to its parent by running a handler.
@usableFromInline
final class DerivedPromise<In, Out>: Promise<Out> {
    let parent: Promise<In>
    var onFulfilled: ((In) throws -> Out)?
    var onFulfilledChained: ((In) throws -> Promise<Out>)?
    var onRejected: ((any Error) throws -> Out)?

    @usableFromInline
    init(parent: Promise<In>, onFulfilled: @escaping (In) throws -> Out, onRejected: ((any Error) throws -> Out)?) {
        self.parent = parent
        self.onFulfilled = onFulfilled
        self.onRejected = onRejected
        super.init(loop: parent.loop, parent: parent)
    }

    @usableFromInline
    init(parent: Promise<In>, chained: @escaping (In) throws -> Promise<Out>, onRejected: ((any Error) throws -> Out)?) {
        self.parent = parent
        self.onFulfilledChained = chained
        self.onRejected = onRejected
        super.init(loop: parent.loop, parent: parent)
    }

    override func runReaction() {
        do {
            switch parent.status {
            case .fulfilled:
                let v = parent.fulfilledValue
                if let f = onFulfilled {
                    fulfil(try f(v))
                } else if let f = onFulfilledChained {
                    adopt(try f(v))
                } else if let v = v as? Out {
                    fulfil(v)
                }
            case .rejected:
                let e = parent.rejection!
                if let r = onRejected { fulfil(try r(e)) } else { reject(e) }
            case .pending:
                break
            }
        } catch {
            reject(error)
        }
        onFulfilled = nil
        onFulfilledChained = nil
        onRejected = nil
    }
}

/// An internal reaction running a closure (combinators, adoption). A PROMISE resource like Node's
/// internal `then` promises.
final class ClosureReaction: PromiseBase {
    var body: (() -> Void)?
    init(parent: PromiseBase, _ body: @escaping () -> Void) {
        self.body = body
        super.init(loop: parent.loop, trigger: parent.asyncID)
    }
    override func runReaction() {
        body?()
        body = nil
    }
}

extension EventLoop {
    /// Reports rejected promises that still have no handler once the microtask queue is empty.
    func processUnhandledRejections() {
        let list = unhandledRejections
        unhandledRejections.removeAll(keepingCapacity: true)
        for p in list {
            if let e = p.unhandledReason {
                reportUncaught(UnhandledRejection(reason: e), p.context)
            }
        }
    }
}

/// The error reported for a rejected promise no handler caught (Node: unhandled rejections end the process).
public struct UnhandledRejection: Error, CustomStringConvertible {
    /// What the promise was rejected with.
    public let reason: any Error
    public var description: String { "Unhandled promise rejection: \(reason)" }
}

// MARK: combinators

extension Promise {
    /// Fulfils with all values in order, or rejects with the first rejection.
    @inlinable
    public static func all(_ promises: [Promise<Value>]) -> Promise<[Value]> {
        let result = Promise<[Value]>()
        if promises.isEmpty { result.fulfil([]); return result }
        let progress = AllProgress<Value>(result: result, count: promises.count)
        let loop = result.loop
        for i in promises.indices {
            promises[i].addCombinatorReaction(progress, index: i, loop: loop)
        }
        return result
    }

    /// Settles like the first input to settle.
    public static func race(_ promises: [Promise<Value>]) -> Promise<Value> {
        let result = Promise<Value>()
        for p in promises {
            p.addReaction(ClosureReaction(parent: p) { result.settle(like: p) })
        }
        return result
    }

    /// Fulfils with every input's outcome once all settled.
    public static func allSettled(_ promises: [Promise<Value>]) -> Promise<[PromiseSettledResult<Value>]> {
        let result = Promise<[PromiseSettledResult<Value>]>(loop: .current, parent: nil)
        if promises.isEmpty { result.fulfil([]); return result }
        var outcomes = [PromiseSettledResult<Value>?](repeating: nil, count: promises.count)
        var remaining = promises.count
        for (i, p) in promises.enumerated() {
            p.addReaction(
                ClosureReaction(parent: p) {
                    switch p.status {
                    case .fulfilled: outcomes[i] = .fulfilled(p.fulfilledValue)
                    case .rejected: outcomes[i] = .rejected(p.rejection!)
                    case .pending: return
                    }
                    remaining -= 1
                    if remaining == 0 { result.fulfil(outcomes.map { $0! }) }
                })
        }
        return result
    }

    /// Fulfils with the first fulfilment; rejects with AggregateError when all rejected.
    public static func any(_ promises: [Promise<Value>]) -> Promise<Value> {
        let result = Promise<Value>()
        if promises.isEmpty { result.reject(AggregateError(errors: [])); return result }
        var errors = [(any Error)?](repeating: nil, count: promises.count)
        var remaining = promises.count
        for (i, p) in promises.enumerated() {
            p.addReaction(
                ClosureReaction(parent: p) {
                    switch p.status {
                    case .fulfilled: result.fulfil(p.fulfilledValue)
                    case .rejected:
                        errors[i] = p.rejection!
                        remaining -= 1
                        if remaining == 0 { result.reject(AggregateError(errors: errors.map { $0! })) }
                    case .pending: break
                    }
                })
        }
        return result
    }
}

/// A combinator's shared progress, untyped: `onSettled` handles one input's outcome. It is written
/// by the typed subclass's @inlinable initializer, so it is compiled for the caller's value type.
@usableFromInline
class CombinatorProgress {
    @usableFromInline @exclusivity(unchecked) final var remaining: Int
    @usableFromInline final let onSettled: (CombinatorProgress, PromiseBase, Int) -> Void

    @usableFromInline
    init(count: Int, onSettled: @escaping (CombinatorProgress, PromiseBase, Int) -> Void) {
        self.remaining = count
        self.onSettled = onSettled
    }
}

/// Promise.all's progress: the values so far.
@usableFromInline
final class AllProgress<Value>: CombinatorProgress {
    @usableFromInline let result: Promise<[Value]>
    @usableFromInline let count: Int
    /// The values so far, when `Value` is not trivial...
    @usableFromInline @exclusivity(unchecked) var values: [Value?]
    /// ...else written in place (no Optional per slot, no uniqueness check per write, one copy at
    /// the end); a slot is read only once every input fulfilled, so all were written.
    @usableFromInline let trivialValues: UnsafeMutablePointer<Value>?

    @inlinable
    init(result: Promise<[Value]>, count: Int) {
        self.result = result
        self.count = count
        if _isPOD(Value.self) {
            self.values = []
            self.trivialValues = .allocate(capacity: count)
        } else {
            self.values = [Value?](repeating: nil, count: count)
            self.trivialValues = nil
        }
        super.init(count: count) { progress, input, index in
            unsafeDowncast(progress, to: AllProgress<Value>.self).settled(unsafeDowncast(input, to: Promise<Value>.self), index)
        }
    }

    deinit { trivialValues?.deallocate() }

    @inlinable
    final func settled(_ input: Promise<Value>, _ index: Int) {
        switch input.status {
        case .fulfilled:
            if let slots = trivialValues {
                (slots + index).initialize(to: input.fulfilledValue)
            } else {
                values[index] = input.fulfilledValue
            }
            remaining -= 1
            if remaining == 0 {
                let all: [Value]
                if let slots = trivialValues {
                    all = Array(UnsafeBufferPointer(start: slots, count: count))
                } else {
                    all = values.map { $0! }
                    values = []
                }
                result.fulfil(all)
            }
        case .rejected:
            result.reject(input.rejection!)
        case .pending:
            break
        }
    }
}
