// Event-loop tasks through `loop.traced`: each a resource whose trigger is the callback that queued it,
// run as its callback on the loop thread, destroyed when it ran or was cancelled.
import AsyncHooks
import AsyncTraceNIO
import NIOCore
import NIOPosix
import Testing

final class CountingCallback: NIOScheduledCallbackHandler, Sendable {
    let ran: @Sendable (AsyncID) -> Void
    init(ran: @escaping @Sendable (AsyncID) -> Void) { self.ran = ran }
    func handleScheduledCallback(eventLoop: some EventLoop) { ran(executionAsyncID()) }
}

@Suite(.serialized) struct EventLoopTaskTests {
    @Test func tracedTasksAreResourcesTriggeredByTheirCreator() throws {
        let hook = CollectingHook()
        AsyncHooks.enable(hook)
        defer { AsyncHooks.disable(hook) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let seen = NIOLockedIDs()

        // Queued from a resource's callback (as from a channel's handler): that resource is the trigger.
        let creator = AsyncResourceContext(type: ResourceType("TaskCreator"))
        let (executed, submitted, scheduled, cancelled, callback):
            (EventLoopFuture<Void>, EventLoopFuture<Int>, Scheduled<Int>, Scheduled<Int>, EventLoopPromise<Void>) =
                creator.runInScope {
                    let executedPromise = loop.makePromise(of: Void.self)
                    loop.traced.execute {
                        seen.add(executionAsyncID()); executedPromise.succeed()
                    }
                    let submitted = loop.traced.submit {
                        seen.add(executionAsyncID()); return 1
                    }
                    let scheduled = loop.traced.scheduleTask(in: .milliseconds(5)) {
                        seen.add(executionAsyncID()); return 2
                    }
                    let cancelled = loop.traced.scheduleTask(in: .seconds(60)) { 3 }
                    let callbackPromise = loop.makePromise(of: Void.self)
                    _ = try? loop.traced.scheduleCallback(
                        in: .milliseconds(5),
                        handler: CountingCallback { id in
                            seen.add(id)
                            callbackPromise.succeed()
                        })
                    return (executedPromise.futureResult, submitted, scheduled, cancelled, callbackPromise)
                }
        creator.emitDestroy()
        cancelled.cancel()
        try executed.wait()
        #expect(try submitted.wait() == 1)
        #expect(try scheduled.futureResult.wait() == 2)
        try callback.futureResult.wait()
        #expect(throws: (any Error).self) { try cancelled.futureResult.wait() }
        try loop.submit {}.wait()  // the destroys queued after the futures completed have run

        let events = hook.events
        let tasks = events.compactMap { e -> (UInt64, String, UInt64)? in
            // Only the task types: the other suites' channels may be recorded by this hook meanwhile.
            if case .initResource(let id, let type, let trigger) = e, type == "NIOTask" || type == "NIOScheduledTask" {
                return (id, type, trigger)
            }
            return nil
        }
        #expect(
            tasks.map(\.1).sorted() == ["NIOScheduledTask", "NIOScheduledTask", "NIOScheduledTask", "NIOTask", "NIOTask"],
            "\(tasks)")
        #expect(tasks.allSatisfy { $0.2 == creator.asyncID.rawValue }, "every task's trigger is the callback that queued it")
        // The four that ran did so as their own callbacks (the ids the tasks saw), one before/after each.
        let ran = Set(seen.all.map(\.rawValue))
        #expect(ran.count == 4 && ran.isSubset(of: Set(tasks.map(\.0))), "\(seen.all) vs \(tasks)")
        for id in tasks.map(\.0) {
            let befores = events.filter { $0 == .before(id) }.count
            #expect(befores == (ran.contains(id) ? 1 : 0))
            #expect(events.filter { $0 == .after(id) }.count == befores)
            #expect(events.filter { $0 == .destroy(id) }.count == 1, "task \(id) destroyed once (ran or cancelled)")
        }
    }
}
