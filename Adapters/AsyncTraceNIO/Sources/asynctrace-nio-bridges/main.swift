// A NIO HTTP/1.1 server as a traced application is written (every request in a span, through whatever
// tracer the process has: `InstrumentationSystem.tracer.withSpan`), changed for asynctrace by one line:
// `AsyncTraceBridges.channelHandler()` in the child channel initializer, which also installs the tracer.
// No recorder: `asynctrace record` injects one.
//
//   asynctrace-nio-bridges [--connections N] [--own-tracer]
//
// `--own-tracer`: the application bootstraps a tracer of its own first (swift-distributed-tracing's
// NoOpTracer); the bridges leave it, so no span is recorded.
import AsyncTraceServer  // asynctrace
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Tracing
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
let connectionLimit = arguments.firstIndex(of: "--connections").flatMap { Int(arguments[$0 + 1]) } ?? 0
if arguments.contains("--own-tracer") { InstrumentationSystem.bootstrap(NoOpTracer()) }

func say(_ s: String) {
    let line = Array((s + "\n").utf8)
    _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

final class SpanPerRequest: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let uri = NIOLockedValueBox("")

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): uri.withLockedValue { $0 = head.uri }
        case .body: break
        case .end:
            InstrumentationSystem.tracer.withSpan("GET \(uri.withLockedValue { $0 })", ofKind: .server) { span in
                span.attributes["http.request.method"] = "GET"
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: "12")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "hello world\n")))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

final class CloseCounter: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    static let closed = NIOLockedValueBox(0)
    func handlerRemoved(context: ChannelHandlerContext) {
        if Self.closed.withLockedValue({
            $0 += 1; return $0
        }) == connectionLimit {
            exit(0)
        }
    }
}

let server = try ServerBootstrap(group: MultiThreadedEventLoopGroup(numberOfThreads: 2))
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(AsyncTraceBridges.channelHandler())  // asynctrace
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            try channel.pipeline.syncOperations.addHandler(SpanPerRequest())
            try channel.pipeline.syncOperations.addHandler(CloseCounter())
        }
    }
    .bind(host: "127.0.0.1", port: 0).wait()
say("PORT \(server.localAddress?.port ?? 0)")
try server.closeFuture.wait()
