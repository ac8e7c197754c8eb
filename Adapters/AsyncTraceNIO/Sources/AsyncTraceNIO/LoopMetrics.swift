// Loop iterations from NIO's metrics delegate, which the loop calls on its own thread at the end of every
// tick (after the tick's I/O events and tasks). The iteration that follows begins there, with a wait for
// events: `loopIteration`, `phaseEnter(.poll)` (NIO's iteration has no phases of Node's kind: it is one
// poll phase here) and `pollStart` are written then. NIO gives no call when the wait ends, so
// `pollEnd` is written at this thread's next channel event (a read, a handler event) or the next tick's end,
// whichever comes first: tasks that touch no channel (a channel's flush or close ends the wait) count as
// waiting.
// With kernel probes the exact epoll waits are in the kernel stream as well.
import AsyncHooks
import CAsyncTraceNIO
import NIOPosix

/// A `NIOEventLoopMetricsDelegate` that records each loop iteration (`AsyncTraceNIO.makeEventLoopGroup()`
/// uses it). `next`: a delegate of the application's own, called after it.
public struct AsyncTraceLoopMetrics: NIOEventLoopMetricsDelegate {
    let next: (any NIOEventLoopMetricsDelegate)?

    /// A delegate that records iterations, then calls `next` (nil: none) with each tick.
    public init(next: (any NIOEventLoopMetricsDelegate)? = nil) { self.next = next }

    /// Called by the loop at the end of each tick: ends the open wait and records the next iteration's
    /// `loopIteration`, its poll phase and `pollStart` (its `pollEnd` comes at the thread's next channel event).
    public func processedTick(info: NIOEventLoopTickInfo) {
        ChannelTrace.closeAnyReadScope()
        LoopPoll.endIfWaiting()
        AsyncHooks.emitLoopIteration(atn_next_iteration())
        AsyncHooks.emitPhaseEnter(.poll)  // NIO's iteration is one phase: wait, I/O events, tasks
        AsyncHooks.emitPollStart(timeoutMs: -1)
        atn_set_poll_open(1)
        next?.processedTick(info: info)
    }
}

enum LoopPoll {
    /// Writes the pending `pollEnd` of this thread's loop, if one is pending (one thread-local load otherwise).
    @inline(__always)
    static func endIfWaiting() {
        if atn_poll_open() != 0 { end() }
    }

    @inline(never)
    static func end() {
        atn_set_poll_open(0)
        AsyncHooks.emitPollEnd(readyFDs: UnsafeBufferPointer(start: nil, count: 0))
    }
}
