// The demo's NIO servers changed by one line for asynctrace (`AsyncTraceChannelHandler()` in the child
// channel initializer) and nothing else: no recorder, no Concurrency install. `asynctrace record` injects its
// library, whose recorder receives the channels' events through the registry the copies of AsyncHooks share.
//
//   asynctrace-nio-oneline echo|http [--connections N] [--loop-metrics] [--exit-on-stdin-eof]
//
// `--loop-metrics`: the optional second line, `AsyncTraceNIO.makeEventLoopGroup()` (loop iterations).
import AsyncTraceNIO
import NIODemoServers
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}
guard let mode = arguments.first, mode == "echo" || mode == "http" else {
    say("usage: asynctrace-nio-oneline echo|http [--connections N] [--loop-metrics] [--exit-on-stdin-eof]")
    exit(64)
}
if arguments.contains("--exit-on-stdin-eof") { exitOnStdinEOF() }
let group =
    arguments.contains("--loop-metrics")
    ? AsyncTraceNIO.makeEventLoopGroup(numberOfThreads: 1)
    : MultiThreadedEventLoopGroup(numberOfThreads: 1)
try DemoServer.serve(
    http: mode == "http", group: group, traceChannels: true, port: Int(option("--port") ?? "0") ?? 0,
    connectionLimit: Int(option("--connections") ?? "0") ?? 0)
