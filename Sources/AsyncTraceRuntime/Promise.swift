// Promise: Node/JS promise semantics on the loop. Each promise is a PROMISE resource: init when
// created (a derived promise's trigger is its parent, as in Node), promiseResolve when settled,
// before/after around its reaction job, destroy when it is freed (Node: when collected).
import AsyncHooks

/// The untyped part of every promise: the resource and the reaction-job entry point.
public class PromiseBase {
    let loop: EventLoop
    public let context: AsyncResourceContext
    /// A handler is attached (so a rejection is not unhandled).
    var isHandled = false

    init(loop: EventLoop, trigger: AsyncID?) {
        self.loop = loop
        self.context = AsyncResourceContext(type: .promise, triggerAsyncID: trigger)
    }

    deinit { context.emitDestroy() }

    public var asyncID: AsyncID { context.asyncID }

    /// The job run when the promise this one reacts to settles (derived promises override it).
    func runReaction() {}

    /// The rejection reason if rejected and nobody handled it.
    var unhandledReason: (any Error)? { nil }
}

/// What runs when a promise settles: a derived promise's job, or an awaiting task's resumption
/// (the await's PROMISE resource is a context, not an object, so an await allocates nothing here).
enum Reaction {
    case promise(PromiseBase)
    case resume(UnsafeContinuation<Void, Never>, AsyncResourceContext)

    var microtask: Microtask {
        switch self {
        case .promise(let p): return .reaction(p)
        case .resume(let c, let ctx): return .resume(c, ctx)
        }
    }
}

public enum PromiseSettledResult<Value> {
    case fulfilled(Value)
    case rejected(any Error)
}

/// Promise.any rejects with this when every input rejected.
public struct AggregateError: Error, CustomStringConvertible {
    public let errors: [any Error]
    public var description: String { "AggregateError: All promises were rejected (\(errors.count))" }
}

/// Lets an executor settle its promise (JS's resolve/reject functions, without allocating them).
public struct PromiseResolver<Value> {
    let promise: Promise<Value>
    public func resolve(_ value: Value) { promise.settle(.fulfilled(value)) }
    public func reject(_ error: any Error) { promise.settle(.rejected(error)) }
    /// Adopts `other`'s outcome (resolving with a promise).
    public func resolve(with other: Promise<Value>) { promise.adopt(other) }
}

public class Promise<Value>: PromiseBase {
    enum State {
        case pending
        case fulfilled(Value)
        case rejected(any Error)
    }
    var state: State = .pending
    private var firstReaction: Reaction?
    private var moreReactions: ContiguousArray<Reaction>?

    init(loop: EventLoop, parent: PromiseBase?) {
        super.init(loop: loop, trigger: parent?.asyncID)
    }

    /// `new Promise((resolve, reject) => ...)`: the executor runs now; a throw rejects.
    public convenience init(_ executor: (PromiseResolver<Value>) throws -> Void) {
        self.init(loop: .current, parent: nil)
        do { try executor(PromiseResolver(promise: self)) } catch { settle(.rejected(error)) }
    }

    /// A pending promise and its resolver (Promise.withResolvers()).
    public static func withResolver() -> (Promise<Value>, PromiseResolver<Value>) {
        let p = Promise<Value>(loop: .current, parent: nil)
        return (p, PromiseResolver(promise: p))
    }

    public static func resolve(_ value: Value) -> Promise<Value> {
        let p = Promise<Value>(loop: .current, parent: nil)
        p.settle(.fulfilled(value))
        return p
    }

    public static func reject(_ error: any Error) -> Promise<Value> {
        let p = Promise<Value>(loop: .current, parent: nil)
        p.settle(.rejected(error))
        return p
    }

    public var isPending: Bool { if case .pending = state { return true } else { return false } }

    // MARK: settling

    func settle(_ outcome: State) {
        guard case .pending = state else { return }  // resolving twice is ignored, as in JS
        state = outcome
        context.emitPromiseResolve()
        if let r = firstReaction {
            firstReaction = nil
            loop.microtasks.push(r.microtask)
            if let more = moreReactions {
                moreReactions = nil
                for r in more { loop.microtasks.push(r.microtask) }
            }
        } else if case .rejected = outcome, !isHandled {
            loop.unhandledRejections.append(self)
        }
    }

    func adopt(_ other: Promise<Value>) {
        other.addReaction(ClosureReaction(parent: other) { [self] in settle(other.state) })
    }

    override var unhandledReason: (any Error)? {
        if !isHandled, case .rejected(let e) = state { return e }
        return nil
    }

    func addReaction(_ r: PromiseBase) { addReaction(.promise(r)) }

    func addReaction(_ r: Reaction) {
        isHandled = true
        if case .pending = state {
            if firstReaction == nil { firstReaction = r } else { moreReactions = (moreReactions ?? []) + [r] }
        } else {
            loop.microtasks.push(r.microtask)
        }
    }

    // MARK: reactions

    /// `then(onFulfilled, onRejected)`. A throw in a handler rejects the returned promise.
    @discardableResult
    public func then<U>(_ onFulfilled: @escaping (Value) throws -> U,
                        _ onRejected: ((any Error) throws -> U)? = nil) -> Promise<U> {
        let d = DerivedPromise<Value, U>(parent: self, onFulfilled: onFulfilled, onRejected: onRejected)
        addReaction(d)
        return d
    }

    /// `then` with a handler returning a promise: the result adopts it.
    @discardableResult
    public func then<U>(_ onFulfilled: @escaping (Value) throws -> Promise<U>) -> Promise<U> {
        let d = DerivedPromise<Value, U>(parent: self, chained: onFulfilled, onRejected: nil)
        addReaction(d)
        return d
    }

    @discardableResult
    public func `catch`(_ onRejected: @escaping (any Error) throws -> Value) -> Promise<Value> {
        then({ $0 }, onRejected)
    }

    /// Runs `body` on either outcome; the result keeps this promise's outcome (or rejects if `body` throws).
    @discardableResult
    public func finally(_ body: @escaping () throws -> Void) -> Promise<Value> {
        then({ v in try body(); return v }, { e in try body(); throw e })
    }
}

/// The promise returned by `then`: reacts to its parent by running a handler.
final class DerivedPromise<In, Out>: Promise<Out> {
    let parent: Promise<In>
    var onFulfilled: ((In) throws -> Out)?
    var onFulfilledChained: ((In) throws -> Promise<Out>)?
    var onRejected: ((any Error) throws -> Out)?

    init(parent: Promise<In>, onFulfilled: @escaping (In) throws -> Out, onRejected: ((any Error) throws -> Out)?) {
        self.parent = parent
        self.onFulfilled = onFulfilled
        self.onRejected = onRejected
        super.init(loop: parent.loop, parent: parent)
    }

    init(parent: Promise<In>, chained: @escaping (In) throws -> Promise<Out>, onRejected: ((any Error) throws -> Out)?) {
        self.parent = parent
        self.onFulfilledChained = chained
        self.onRejected = onRejected
        super.init(loop: parent.loop, parent: parent)
    }

    override func runReaction() {
        do {
            switch parent.state {
            case .fulfilled(let v):
                if let f = onFulfilled {
                    settle(.fulfilled(try f(v)))
                } else if let f = onFulfilledChained {
                    adopt(try f(v))
                } else if let v = v as? Out {
                    settle(.fulfilled(v))
                }
            case .rejected(let e):
                if let r = onRejected { settle(.fulfilled(try r(e))) } else { settle(.rejected(e)) }
            case .pending:
                break
            }
        } catch {
            settle(.rejected(error))
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
    public let reason: any Error
    public var description: String { "Unhandled promise rejection: \(reason)" }
}

// MARK: combinators

extension Promise {
    /// Fulfils with all values in order, or rejects with the first rejection.
    public static func all(_ promises: [Promise<Value>]) -> Promise<[Value]> {
        let result = Promise<[Value]>(loop: .current, parent: nil)
        if promises.isEmpty { result.settle(.fulfilled([])); return result }
        let state = AllState<Value>(result: result, count: promises.count)
        for (i, p) in promises.enumerated() {
            p.addReaction(AllReaction(state: state, input: p, index: i))
        }
        return result
    }

    /// Settles like the first input to settle.
    public static func race(_ promises: [Promise<Value>]) -> Promise<Value> {
        let result = Promise<Value>(loop: .current, parent: nil)
        for p in promises {
            p.addReaction(ClosureReaction(parent: p) { result.settle(p.state) })
        }
        return result
    }

    /// Fulfils with every input's outcome once all settled.
    public static func allSettled(_ promises: [Promise<Value>]) -> Promise<[PromiseSettledResult<Value>]> {
        let result = Promise<[PromiseSettledResult<Value>]>(loop: .current, parent: nil)
        if promises.isEmpty { result.settle(.fulfilled([])); return result }
        var outcomes = [PromiseSettledResult<Value>?](repeating: nil, count: promises.count)
        var remaining = promises.count
        for (i, p) in promises.enumerated() {
            p.addReaction(ClosureReaction(parent: p) {
                switch p.state {
                case .fulfilled(let v): outcomes[i] = .fulfilled(v)
                case .rejected(let e): outcomes[i] = .rejected(e)
                case .pending: return
                }
                remaining -= 1
                if remaining == 0 { result.settle(.fulfilled(outcomes.map { $0! })) }
            })
        }
        return result
    }

    /// Fulfils with the first fulfilment; rejects with AggregateError when all rejected.
    public static func any(_ promises: [Promise<Value>]) -> Promise<Value> {
        let result = Promise<Value>(loop: .current, parent: nil)
        if promises.isEmpty { result.settle(.rejected(AggregateError(errors: []))); return result }
        var errors = [(any Error)?](repeating: nil, count: promises.count)
        var remaining = promises.count
        for (i, p) in promises.enumerated() {
            p.addReaction(ClosureReaction(parent: p) {
                switch p.state {
                case .fulfilled(let v): result.settle(.fulfilled(v))
                case .rejected(let e):
                    errors[i] = e
                    remaining -= 1
                    if remaining == 0 { result.settle(.rejected(AggregateError(errors: errors.map { $0! }))) }
                case .pending: break
                }
            })
        }
        return result
    }
}

/// Promise.all's shared progress.
final class AllState<Value> {
    let result: Promise<[Value]>
    var values: [Value?]
    var remaining: Int
    init(result: Promise<[Value]>, count: Int) {
        self.result = result
        self.values = [Value?](repeating: nil, count: count)
        self.remaining = count
    }
}

/// Promise.all's reaction to one input: one object per input (a PROMISE resource, as Node's internal
/// `then`), no closure.
final class AllReaction<Value>: PromiseBase {
    let state: AllState<Value>
    let input: Promise<Value>
    let index: Int
    init(state: AllState<Value>, input: Promise<Value>, index: Int) {
        self.state = state
        self.input = input
        self.index = index
        super.init(loop: input.loop, trigger: input.asyncID)
    }
    override func runReaction() {
        switch input.state {
        case .fulfilled(let v):
            state.values[index] = v
            state.remaining -= 1
            if state.remaining == 0 {
                let values = state.values.map { $0! }
                state.values = []
                state.result.settle(.fulfilled(values))
            }
        case .rejected(let e):
            state.result.settle(.rejected(e))
        case .pending:
            break
        }
    }
}
