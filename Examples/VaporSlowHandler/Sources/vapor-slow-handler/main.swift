// A Vapor 4 server as people write it (routes, TracingMiddleware, async handlers), with one slow handler:
// GET /report reads a whole file with a blocking read(2). The asynctrace lines are marked.
//
//   vapor-slow-handler <file to read in /report>     (prints "PORT n" when it listens)
import AsyncTraceNIO  // asynctrace
import AsyncTraceTracing  // asynctrace
import Tracing
import Vapor
#if canImport(Glibc)
import Glibc
#endif

let bigFile = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "/tmp/big.bin"

// asynctrace: the tracing bridge (an application with tracing already bootstraps its own tracer here).
InstrumentationSystem.bootstrap(AsyncTraceTracer())

/// Reads the whole file with plain read(2) calls: blocks the thread it runs on.
func readWholeFile(_ path: String) -> Int {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var total = 0
    var buffer = [UInt8](repeating: 0, count: 64 << 20)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        total += n
    }
    return total
}

var env = Environment(name: "production", arguments: ["vapor-slow-handler"])
let app = try await Application.make(env, .shared(AsyncTraceNIO.makeEventLoopGroup()))  // asynctrace: loop iterations
app.middleware.use(TracingMiddleware())
app.http.server.configuration.hostname = "127.0.0.1"
app.http.server.configuration.port = 0
app.get("hello") { _ in "hello\n" }
app.get("report") { _ async -> String in
    "report of \(readWholeFile(bigFile)) bytes\n"
}

// Vapor's `app.execute()`, in its two halves (start the server; wait until it is told to stop), with the
// asynctrace line between them: Vapor builds its channels' pipelines itself, so they are instrumented from the
// server channel (docs/nio.md, "Vapor").
try await app.startup()
try await AsyncTraceNIO.instrumentAcceptedChannels(ofServersIn: app.http.server.shared)  // asynctrace: Vapor's channels
let line = Array("PORT \(app.http.server.shared.localAddress?.port ?? 0)\n".utf8)
_ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
try await app.running?.onStop.get()
try await app.asyncShutdown()
