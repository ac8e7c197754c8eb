// AsyncResource: how a runtime or a library makes its own work traceable.

/// What a resource keeps from its creation: its id, what triggered it, and the AsyncLocal frame.
/// A value type so runtimes can embed it in their handles without another allocation.
public struct AsyncResourceContext: Sendable {
    /// The resource's id, unique in the process.
    public let asyncID: AsyncID
    /// The resource whose callback (or the top level) created it.
    public let triggerAsyncID: AsyncID
    /// The resource's type.
    public let type: ResourceType
    /// The AsyncLocal values current at its creation, restored in its callbacks (nil: none).
    public let frame: ContextFrame?

    /// Creates a resource: takes a fresh id, captures the current frame, emits init. The trigger
    /// defaults to the current execution id, as in Node. Always inlined: it is a handful of loads
    /// and stores, and a call would cost as much again at every resource a runtime creates.
    @inlinable @inline(__always)
    public init(type: ResourceType, triggerAsyncID: AsyncID? = nil, resource: AnyObject? = nil) {
        self.init(unannounced: type, triggerAsyncID: triggerAsyncID)
        AsyncHooks.emitInit(asyncID, type: type, triggerAsyncID: self.triggerAsyncID, resource: resource)
    }

    /// Creates a resource that is settled as it is created (`Promise.resolve(value)`): as
    /// `init(type:triggerAsyncID:)`, then its promiseResolve, in one call to a recorder.
    @inlinable @inline(__always)
    public init(resolvedOnCreation type: ResourceType, triggerAsyncID: AsyncID? = nil) {
        self.init(unannounced: type, triggerAsyncID: triggerAsyncID)
        if AsyncHooks.isActive { AsyncHooks.activeInitAndPromiseResolve(asyncID, type, self.triggerAsyncID) }
    }

    /// A fresh id, the trigger (default: the current execution id) and the current frame; no event.
    @inlinable @inline(__always)
    init(unannounced type: ResourceType, triggerAsyncID: AsyncID?) {
        let state = ExecutionState.current
        self.asyncID = state.allocateID()
        self.triggerAsyncID = triggerAsyncID ?? state.executionID
        self.type = type
        self.frame = state.frame
    }

    /// The context of a resource created earlier, from the parts a runtime stored separately (a
    /// promise keeps no type: it is always PROMISE). Creates nothing and emits nothing.
    @inlinable
    public init(existing asyncID: AsyncID, triggerAsyncID: AsyncID, type: ResourceType, frame: ContextFrame?) {
        self.asyncID = asyncID
        self.triggerAsyncID = triggerAsyncID
        self.type = type
        self.frame = frame
    }

    /// Runs `body` as a callback of this resource: before, the resource's context, after.
    @inlinable
    public func runInScope<R>(_ body: () throws -> R) rethrows -> R {
        AsyncHooks.enterCallback(asyncID, triggerAsyncID: triggerAsyncID, frame: frame)
        defer { AsyncHooks.leaveCallback(asyncID) }
        return try body()
    }

    /// Emits destroy: the resource will have no more callbacks.
    @inlinable public func emitDestroy() { AsyncHooks.emitDestroy(asyncID) }
    /// Emits promiseResolve for the resource (a promise that resolved).
    @inlinable public func emitPromiseResolve() { AsyncHooks.emitPromiseResolve(asyncID) }
    /// Emits resourceFD: the resource owns `fd` from now on (-1: it no longer owns one).
    @inlinable public func setFD(_ fd: Int32) { AsyncHooks.emitResourceFD(asyncID, fd: fd) }
}

/// A new resource's parts for a runtime that stores them in its own object (a promise): the frame
/// is retained by hand, so an object made where no AsyncLocal frame is set (the common case) pays
/// no retain when created and no release when freed — the owner releases `frame` if it is non-nil.
@_spi(Runtime) public struct UnmanagedResourceParts {
    public let asyncID: AsyncID
    public let triggerAsyncID: AsyncID
    public let frame: Unmanaged<ContextFrame>?
    @inlinable init(asyncID: AsyncID, triggerAsyncID: AsyncID, frame: Unmanaged<ContextFrame>?) {
        self.asyncID = asyncID
        self.triggerAsyncID = triggerAsyncID
        self.frame = frame
    }
}

extension AsyncHooks {
    /// Creates a resource as `AsyncResourceContext(type:triggerAsyncID:)` does (or, when
    /// `resolvedOnCreation`, as `AsyncResourceContext(resolvedOnCreation:triggerAsyncID:)`: init and
    /// promiseResolve in one call to a recorder), returning its parts with the frame unmanaged.
    @_spi(Runtime) @inlinable @inline(__always)
    public static func newResource(type: ResourceType, triggerAsyncID: AsyncID?, resolvedOnCreation: Bool) -> UnmanagedResourceParts {
        let state = ExecutionState.current
        let id = state.allocateID()
        let trigger = triggerAsyncID ?? state.executionID
        let frame = state.retainedFrame
        if isActive {
            if resolvedOnCreation { activeInitAndPromiseResolve(id, type, trigger) } else { activeInit(id, type, trigger, nil) }
        }
        return UnmanagedResourceParts(asyncID: id, triggerAsyncID: trigger, frame: frame)
    }
}

/// A traceable resource for library code, as Node's `AsyncResource`.
public final class AsyncResource: Sendable {
    /// The resource's id, trigger, type and creation context.
    public let context: AsyncResourceContext
    /// The resource's id.
    public var asyncID: AsyncID { context.asyncID }
    /// The resource whose callback created it.
    public var triggerAsyncID: AsyncID { context.triggerAsyncID }
    /// The resource's type.
    public var type: ResourceType { context.type }

    /// Creates the resource and emits init; the trigger defaults to the current execution id.
    public init(type: ResourceType, triggerAsyncID: AsyncID? = nil) {
        context = AsyncResourceContext(type: type, triggerAsyncID: triggerAsyncID)
    }

    /// `init(type: ResourceType(typeName), triggerAsyncID:)`.
    public convenience init(_ typeName: String, triggerAsyncID: AsyncID? = nil) {
        self.init(type: ResourceType(typeName), triggerAsyncID: triggerAsyncID)
    }

    /// Runs `body` as a callback of this resource (before, its context, after).
    public func runInScope<R>(_ body: () throws -> R) rethrows -> R { try context.runInScope(body) }

    /// Runs the async `body` in this resource's scope, across its awaits: its AsyncLocal values (the
    /// resource's creation context) hold throughout, in the tasks it creates too, and the scope is
    /// recorded as a span named after the resource's type (attribute `asyncID`: this resource) from the
    /// start to the end of `body`, whichever threads its pieces ran on. (A before/after pair belongs to
    /// one thread, so an async scope cannot be one.)
    public func runInScope<R>(_ body: () async throws -> R) async rethrows -> R {
        let span = AsyncHooks.beginSpan(type.name)
        AsyncHooks.setSpanAttribute(span, key: "asyncID", value: String(asyncID.rawValue))
        defer { AsyncHooks.endSpan(span) }
        return try await TaskFrameBinding.$bound.withValue(TaskFrameBinding.binding(context.frame)) { try await body() }
    }

    /// Emits destroy: the resource will have no more callbacks.
    public func emitDestroy() { context.emitDestroy() }

    /// A closure that always runs in this resource's scope.
    public func bind<each A, R>(_ fn: @escaping @Sendable (repeat each A) -> R) -> @Sendable (repeat each A) -> R {
        { (args: repeat each A) in self.context.runInScope { fn(repeat each args) } }
    }

    /// Wraps `fn` in a new resource of `type` created now, as Node's `AsyncResource.bind`.
    public static func bind<each A, R>(
        type: ResourceType = ResourceType("bound-anonymous-fn"),
        _ fn: @escaping @Sendable (repeat each A) -> R
    ) -> @Sendable (repeat each A) -> R {
        AsyncResource(type: type).bind(fn)
    }
}
