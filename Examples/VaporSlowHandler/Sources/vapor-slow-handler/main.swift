// A Vapor 4 server as people write it (routes, TracingMiddleware, async handlers), with one slow handler:
// GET /report reads a whole file with a blocking read(2). The asynctrace line is marked (with its import,
// and the optional loop-iterations group).
//
//   vapor-slow-handler <file to read in /report>     (Vapor logs "Server started on http://127.0.0.1:n")
import AsyncTraceServer  // asynctrace
import Vapor
#if canImport(Glibc)
import Glibc
#endif

let bigFile = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "/tmp/big.bin"

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

// Vapor builds its channels' pipelines itself: its server channel, once it listens, instruments the channels it
// accepts, and AsyncTraceTracer becomes the tracer of TracingMiddleware's spans (docs/nio.md, "Vapor").
AsyncTraceBridges.instrumentServers(whenListeningIn: app.http.server.shared)  // asynctrace
try await app.execute()
try await app.asyncShutdown()
