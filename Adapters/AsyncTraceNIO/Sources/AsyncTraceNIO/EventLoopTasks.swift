// Event-loop tasks as resources, where the application asks for it: `loop.traced.execute { }`,
// `.submit`, `.flatSubmit`, `.scheduleTask`, `.flatScheduleTask`, `.scheduleCallback`. NIO runs the tasks
// of `execute`/`scheduleTask` from a private queue inside its loop and offers no hook around them (the
// metrics delegate gives a count per tick), so tasks queued by NIO itself or by a framework are not seen;
// docs/nio.md says why in detail.
//
// A traced task is a resource of type `NIOTask` (execute, submit, flatSubmit) or `NIOScheduledTask`
// (scheduleTask, flatScheduleTask, scheduleCallback); its trigger is the callback that queued it (a
// channel's event, a Swift task, another task); it runs as its callback; it is destroyed when it ran or
// was cancelled.
import AsyncHooks
import NIOCore

/// The resource types of traced event-loop tasks.
public enum NIOTaskTypes {
    /// `execute`, `submit`, `flatSubmit`.
    public static let task = ResourceType("NIOTask")
    /// `scheduleTask`, `flatScheduleTask`, `scheduleCallback`.
    public static let scheduledTask = ResourceType("NIOScheduledTask")
}

extension EventLoop {
    /// This loop's task API, with each task recorded as a resource.
    public var traced: TracedEventLoop { TracedEventLoop(loop: self) }
}

/// An event loop's task API whose tasks are resources (see `EventLoop.traced`).
public struct TracedEventLoop: Sendable {
    /// The loop the tasks run on.
    public let loop: any EventLoop

    /// `EventLoop.execute`, the task a `NIOTask` resource: triggered by the current callback, run as its
    /// callback, destroyed after it ran.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        let resource = AsyncResourceContext(type: NIOTaskTypes.task)
        loop.execute {
            resource.runTask(task)
            resource.emitDestroy()
        }
    }

    /// `EventLoop.submit`, the task a `NIOTask` resource destroyed after it ran (or threw).
    public func submit<T>(_ task: @escaping @Sendable () throws -> T) -> EventLoopFuture<T> {
        let resource = AsyncResourceContext(type: NIOTaskTypes.task)
        return loop.submit {
            defer { resource.emitDestroy() }
            return try resource.runTask(task)
        }
    }

    /// `EventLoop.flatSubmit`, the task a `NIOTask` resource destroyed after it ran (its future's completion is not part of it).
    public func flatSubmit<T: Sendable>(_ task: @escaping @Sendable () -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        let resource = AsyncResourceContext(type: NIOTaskTypes.task)
        return loop.flatSubmit {
            defer { resource.emitDestroy() }
            return resource.runTask(task)
        }
    }

    /// `scheduleTask(deadline:_:)` at now + `delay`.
    @discardableResult
    public func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: .now() + delay, task)
    }

    /// `EventLoop.scheduleTask`, the task a `NIOScheduledTask` resource destroyed when it ran, failed or was cancelled.
    @discardableResult
    public func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let resource = AsyncResourceContext(type: NIOTaskTypes.scheduledTask)
        let scheduled = loop.scheduleTask(deadline: deadline) { try resource.runTask(task) }
        scheduled.futureResult.whenComplete { _ in resource.emitDestroy() }  // ran, failed or cancelled
        return scheduled
    }

    /// `flatScheduleTask(deadline:_:)` at now + `delay`.
    @discardableResult
    public func flatScheduleTask<T: Sendable>(
        in delay: TimeAmount,
        _ task: @escaping @Sendable () throws -> EventLoopFuture<T>
    ) -> Scheduled<T> {
        flatScheduleTask(deadline: .now() + delay, task)
    }

    /// `EventLoop.flatScheduleTask`, the task a `NIOScheduledTask` resource destroyed when its result completes
    /// (ran, failed or cancelled).
    @discardableResult
    public func flatScheduleTask<T: Sendable>(
        deadline: NIODeadline,
        _ task: @escaping @Sendable () throws -> EventLoopFuture<T>
    ) -> Scheduled<T> {
        let resource = AsyncResourceContext(type: NIOTaskTypes.scheduledTask)
        let scheduled = loop.flatScheduleTask(deadline: deadline) { try resource.runTask(task) }
        scheduled.futureResult.whenComplete { _ in resource.emitDestroy() }
        return scheduled
    }

    /// `scheduleCallback(in:handler:)`: the handler's `handleScheduledCallback` runs as the resource's
    /// callback; the resource is destroyed after it, or when the callback is cancelled.
    @discardableResult
    public func scheduleCallback(
        in delay: TimeAmount,
        handler: some (NIOScheduledCallbackHandler & Sendable)
    ) throws -> NIOScheduledCallback {
        try loop.scheduleCallback(in: delay, handler: TracedCallbackHandler(handler))
    }

    /// `scheduleCallback(at:handler:)`: as `scheduleCallback(in:handler:)`, at a deadline.
    @discardableResult
    public func scheduleCallback(
        at deadline: NIODeadline,
        handler: some (NIOScheduledCallbackHandler & Sendable)
    ) throws -> NIOScheduledCallback {
        try loop.scheduleCallback(at: deadline, handler: TracedCallbackHandler(handler))
    }
}

struct TracedCallbackHandler<Handler: NIOScheduledCallbackHandler & Sendable>: NIOScheduledCallbackHandler, Sendable {
    let handler: Handler
    let resource: AsyncResourceContext

    init(_ handler: Handler) {
        self.handler = handler
        resource = AsyncResourceContext(type: NIOTaskTypes.scheduledTask)
    }

    func handleScheduledCallback(eventLoop: some EventLoop) {
        resource.runTask { handler.handleScheduledCallback(eventLoop: eventLoop) }
        resource.emitDestroy()
    }

    func didCancelScheduledCallback(eventLoop: some EventLoop) {
        handler.didCancelScheduledCallback(eventLoop: eventLoop)
        resource.emitDestroy()
    }
}

extension AsyncResourceContext {
    /// Runs a task as this resource's callback; on a loop thread, the loop's wait ended before it.
    @inline(__always)
    func runTask<R>(_ body: () throws -> R) rethrows -> R {
        LoopPoll.endIfWaiting()
        return try runInScope(body)
    }
}
