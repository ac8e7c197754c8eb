// The NIO servers the adapter's tests and benchmark record: a TCP echo server and an HTTP/1.1 server
// answering every request, on 127.0.0.1. Used by asynctrace-nio-demo (records itself, or bare) and
// asynctrace-nio-oneline (the one asynctrace line only, recorded by `asynctrace record`).
import AsyncTraceNIO
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

public func say(_ s: String) {
    var line = Array((s + "\n").utf8)
    _ = line.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

/// `--exit-on-stdin-eof`: the benchmark stops a server by closing its stdin.
public func exitOnStdinEOF() {
    DispatchQueue.global().async {
        var c: UInt8 = 0
        while read(0, &c, 1) > 0 {}
        exit(0)
    }
}

public enum DemoServer {
    /// Serves until `connectionLimit` connections closed (0: forever); prints "PORT n" once listening.
    /// `traceChannels`: the one line of asynctrace, `AsyncTraceChannelHandler()` in the child channel
    /// initializer.
    public static func serve(
        http: Bool, group: MultiThreadedEventLoopGroup, traceChannels: Bool, port: Int,
        connectionLimit: Int
    ) throws -> Never {
        let closed = NIOLockedCounter()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if traceChannels { try channel.pipeline.syncOperations.addHandler(AsyncTraceChannelHandler()) }  // the one line
                    if http {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(HTTPHandler())
                    } else {
                        try channel.pipeline.syncOperations.addHandler(EchoHandler())
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        CloseCounter {
                            if closed.increment() == connectionLimit { exit(0) }
                        })
                }
            }
        let server = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
        say("PORT \(server.localAddress?.port ?? 0)")
        try server.closeFuture.wait()
        exit(0)
    }
}

/// Echoes every byte.
final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
}

/// Counts closed connections (the last handler of every child pipeline). Counted when the closed channel's
/// pipeline is torn down (NIO removes handlers from the head on, so the channel's resource is destroyed by
/// then: a server that exits at the last one keeps that destroy).
final class CloseCounter: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    let onClose: @Sendable () -> Void
    init(onClose: @escaping @Sendable () -> Void) { self.onClose = onClose }
    func handlerRemoved(context: ChannelHandlerContext) { onClose() }
}

final class HTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-length", value: "12")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "hello world\n")))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

final class NIOLockedCounter: Sendable {
    private let box = NIOLockedValueBox(0)
    func increment() -> Int {
        box.withLockedValue {
            $0 += 1; return $0
        }
    }
}
