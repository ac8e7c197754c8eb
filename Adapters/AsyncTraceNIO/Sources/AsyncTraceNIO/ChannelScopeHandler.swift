// The handler at the head of an instrumented pipeline: every inbound event (which then runs the user's
// handlers) is a before/after of the channel, and so are the outbound events that make system calls
// (flush: the write(2)/writev(2); close; bind; connect). Writes only queue bytes and pass straight through.
import AsyncHooks
import NIOCore

final class ChannelScopeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    let trace: ChannelTrace

    init(trace: ChannelTrace) { self.trace = trace }

    func handlerRemoved(context: ChannelHandlerContext) { trace.destroy() }

    // MARK: inbound

    func channelRegistered(context: ChannelHandlerContext) { trace.inScope { context.fireChannelRegistered() } }
    func channelUnregistered(context: ChannelHandlerContext) { trace.inScope { context.fireChannelUnregistered() } }
    func channelActive(context: ChannelHandlerContext) { trace.inScope { context.fireChannelActive() } }

    func channelInactive(context: ChannelHandlerContext) {
        trace.inScope { context.fireChannelInactive() }
        trace.closeReadScope()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { trace.inScope { context.fireChannelRead(data) } }

    /// Ends a read batch: the read scope (opened before the batch's first read) closes after the handlers ran.
    func channelReadComplete(context: ChannelHandlerContext) {
        trace.inScope { context.fireChannelReadComplete() }
        trace.closeReadScope()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        trace.inScope { context.fireChannelWritabilityChanged() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        trace.inScope { context.fireUserInboundEventTriggered(event) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        trace.inScope { context.fireErrorCaught(error) }
        trace.closeReadScope()
    }

    // MARK: outbound

    func flush(context: ChannelHandlerContext) { trace.inScope { context.flush() } }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        trace.inScope { context.close(mode: mode, promise: promise) }
    }

    func bind(context: ChannelHandlerContext, to address: SocketAddress, promise: EventLoopPromise<Void>?) {
        trace.inScope { context.bind(to: address, promise: promise) }
    }

    func connect(context: ChannelHandlerContext, to address: SocketAddress, promise: EventLoopPromise<Void>?) {
        trace.inScope { context.connect(to: address, promise: promise) }
    }

    /// NIO asks for more reads after a read batch: the batch is over.
    func read(context: ChannelHandlerContext) {
        trace.closeReadScope()
        context.read()
    }
}
