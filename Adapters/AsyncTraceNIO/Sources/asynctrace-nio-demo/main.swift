// NIO servers for the adapter's tests and benchmark, and the benchmark's driver.
//
//   asynctrace-nio-demo echo [--untraced] [--connections N]   TCP echo server on 127.0.0.1 (port printed)
//   asynctrace-nio-demo http [--untraced]                     HTTP/1.1 server answering every request
//   asynctrace-nio-demo bench [--seconds S] [--runs N]         HTTP requests/s: bare, traced, traced + kernel probes
//
// A traced server records itself when ASYNCTRACE_OUTPUT is set (`asynctrace record` sets it): the recorder,
// Swift Concurrency observation and the NIO bridge (a handler in the child channel initializer, the loop
// metrics delegate). `--untraced` runs the same server with none of it.
import AsyncHooks
import AsyncTraceConcurrency
import AsyncTraceNIO
import AsyncTraceRecorder
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}
let traced = !arguments.contains("--untraced")

func say(_ s: String) {
    var line = Array((s + "\n").utf8)
    _ = line.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

func makeGroup() -> MultiThreadedEventLoopGroup {
    let threads = Int(option("--threads") ?? "1") ?? 1
    if traced {
        TraceRecorder.startFromEnvironment()
        try? AsyncTraceConcurrency.install()
        return AsyncTraceNIO.makeEventLoopGroup(numberOfThreads: threads)
    }
    return MultiThreadedEventLoopGroup(numberOfThreads: threads)
}

/// Echoes every byte; counts closed connections and exits after `limit` of them.
final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let onClose: @Sendable () -> Void
    init(onClose: @escaping @Sendable () -> Void) { self.onClose = onClose }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    func channelInactive(context: ChannelHandlerContext) {
        onClose()
        context.fireChannelInactive()
    }
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

func serve(http: Bool) throws -> Never {
    if arguments.contains("--exit-on-stdin-eof") { exitOnStdinEOF() }
    let group = makeGroup()
    let limit = Int(option("--connections") ?? "0") ?? 0
    let closed = NIOLockedCounter()
    let bootstrap = ServerBootstrap(group: group)
        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if traced { try channel.pipeline.syncOperations.addHandler(AsyncTraceChannelHandler()) }  // the one line
                if http {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler())
                } else {
                    try channel.pipeline.syncOperations.addHandler(
                        EchoHandler {
                            if closed.increment() == limit { exit(0) }
                        })
                }
            }
        }
    let server = try bootstrap.bind(host: "127.0.0.1", port: Int(option("--port") ?? "0") ?? 0).wait()
    say("PORT \(server.localAddress?.port ?? 0)")
    try server.closeFuture.wait()
    exit(0)
}

final class NIOLockedCounter: Sendable {
    private let box = NIOLockedValueBox(0)
    func increment() -> Int {
        box.withLockedValue {
            $0 += 1; return $0
        }
    }
}

switch arguments.first {
case "echo": try serve(http: false)
case "http": try serve(http: true)
case "bench": HTTPBench.run()
default:
    say("usage: asynctrace-nio-demo echo|http [--untraced] [--connections N] [--threads N] | bench [--seconds S] [--runs N]")
    exit(64)
}
