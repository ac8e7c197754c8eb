// SwiftNIO as async hooks: every channel a resource (type per channel kind, its fd recorded so the kernel's
// reads and writes on it are attributed to it), each pipeline event that runs user handlers a before/after
// of the channel, the socket reads themselves inside the channel's scope, and loop iterations from the
// event loop's metrics delegate.
//
//     // Hummingbird: one line in the server builder
//     server: .http1(additionalChannelHandlers: [AsyncTraceChannelHandler()])
//     // plain NIO: one line in a bootstrap's (child) channel initializer
//     try channel.pipeline.syncOperations.addHandler(AsyncTraceChannelHandler())
//
// Wherever it is added, the handler puts the channel's scope handler at the head of the pipeline (so its
// before/after encloses every other handler) and takes itself out. How each piece is observed, and what NIO
// does not let us see, is in docs/nio.md.
import AsyncHooks
import NIOCore
import NIOPosix

/// SwiftNIO as async hooks: every channel a resource (its fd recorded, so the kernel's reads and writes
/// on it are attributed to it), each pipeline event that runs handlers a before/after of the channel, and
/// loop iterations from the event loop's metrics delegate. docs/nio.md says what NIO lets us see.
public enum AsyncTraceNIO {
    /// The resource type of a channel: "NIO" + the channel's class ("NIOSocketChannel",
    /// "NIOServerSocketChannel", "NIODatagramChannel", "NIOPipeChannel", ...).
    public static func resourceType(of channel: any Channel) -> ResourceType {
        ChannelTypes.type(of: channel)
    }

    /// Instruments `channel` (on its event loop): a resource for it (and for its parent, a server channel,
    /// the first time a child of it is seen), the scope handler at the head of its pipeline, the read scope
    /// around its socket reads. Idempotent. `AsyncTraceChannelHandler` calls it; use it directly where a
    /// pipeline is at hand but adding a handler is not convenient.
    public static func instrument(_ channel: any Channel) throws {
        channel.eventLoop.preconditionInEventLoop()
        let ops = channel.pipeline.syncOperations
        if (try? ops.handler(type: ChannelScopeHandler.self)) != nil { return }
        let trace = ChannelTrace(channel: channel, trigger: ParentChannels.trigger(for: channel))
        try ops.addHandler(ChannelScopeHandler(trace: trace), position: .first)
        trace.wrapReceiveAllocator(of: channel)
    }

    /// An event-loop group whose loops report each iteration (`loopIteration`, and the time the loop waits
    /// between iterations as `pollStart`/`pollEnd`). Loop threads keep NIO's names (`NIO-ELT-0-#1`).
    /// Hummingbird: `eventLoopGroupProvider: .shared(AsyncTraceNIO.makeEventLoopGroup())`.
    public static func makeEventLoopGroup(numberOfThreads: Int = System.coreCount) -> MultiThreadedEventLoopGroup {
        MultiThreadedEventLoopGroup(numberOfThreads: numberOfThreads, metricsDelegate: AsyncTraceLoopMetrics())
    }
}

/// Add it anywhere in a channel's pipeline (Hummingbird's `additionalChannelHandlers`, a bootstrap's
/// channel initializer): it instruments the channel (`AsyncTraceNIO.instrument`) and removes itself.
public final class AsyncTraceChannelHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    /// Any inbound data (the handler removes itself before any arrives).
    public typealias InboundIn = NIOAny

    /// A handler; add a new one to each channel's pipeline.
    public init() {}

    /// Instruments the channel (`AsyncTraceNIO.instrument`) and removes this handler; a channel whose
    /// pipeline refuses the scope handler (closing) is left untraced.
    public func handlerAdded(context: ChannelHandlerContext) {
        do {
            try AsyncTraceNIO.instrument(context.channel)
        } catch {
            // The pipeline refused a handler (the channel is closing): nothing to trace.
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
