// NIO servers for the adapter's tests and benchmark, and the benchmark's driver.
//
//   asynctrace-nio-demo echo [--untraced] [--connections N]   TCP echo server on 127.0.0.1 (port printed)
//   asynctrace-nio-demo http [--untraced]                     HTTP/1.1 server answering every request
//   asynctrace-nio-demo bench [--seconds S] [--runs N]         HTTP requests/s: bare, traced, traced + kernel probes
//
// A traced server records itself when ASYNCTRACE_OUTPUT is set (`asynctrace record` sets it): the recorder,
// Swift Concurrency observation and the NIO bridge (a handler in the child channel initializer, the loop
// metrics delegate). `--untraced` runs the same server with none of it. (asynctrace-nio-oneline is the same
// servers with the one line only.)
import AsyncTraceConcurrency
import AsyncTraceNIO
import AsyncTraceRecorder
import NIODemoServers
import NIOPosix

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}
let traced = !arguments.contains("--untraced")

func makeGroup() -> MultiThreadedEventLoopGroup {
    let threads = Int(option("--threads") ?? "1") ?? 1
    if traced {
        TraceRecorder.startFromEnvironment()
        try? AsyncTraceConcurrency.install()
        return AsyncTraceNIO.makeEventLoopGroup(numberOfThreads: threads)
    }
    return MultiThreadedEventLoopGroup(numberOfThreads: threads)
}

func serve(http: Bool) throws -> Never {
    if arguments.contains("--exit-on-stdin-eof") { exitOnStdinEOF() }
    try DemoServer.serve(
        http: http, group: makeGroup(), traceChannels: traced, port: Int(option("--port") ?? "0") ?? 0,
        connectionLimit: Int(option("--connections") ?? "0") ?? 0)
}

switch arguments.first {
case "echo": try serve(http: false)
case "http": try serve(http: true)
case "bench": HTTPBench.run()
default:
    say("usage: asynctrace-nio-demo echo|http [--untraced] [--connections N] [--threads N] | bench [--seconds S] [--runs N]")
    exit(64)
}
