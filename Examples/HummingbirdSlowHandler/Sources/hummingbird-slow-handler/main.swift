// A Hummingbird server as people write it (a router, TracingMiddleware, async handlers), with one slow
// handler: GET /report reads a whole file with a blocking read(2) on the cooperative pool. The asynctrace
// line is marked (with its import); everything else is the application. Nothing starts a recorder here:
// `asynctrace record` injects one, with the Swift task observation, and the hooks of this program's adapters
// reach it (docs/nio.md, "Recording").
//
//   hummingbird-slow-handler <file to read in /report>     (prints "PORT n" when it listens)
import AsyncTraceServer  // asynctrace
import Hummingbird
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

let router = Router()
router.middlewares.add(TracingMiddleware())
router.get("/hello") { _, _ in "hello\n" }
router.get("/report") { _, _ -> String in
    "report of \(readWholeFile(bigFile)) bytes\n"
}

let app = Application(
    router: router,
    server: .http1(configuration: .init(additionalChannelHandlers: [AsyncTraceBridges.channelHandler()])),  // asynctrace
    configuration: .init(address: .hostname("127.0.0.1", port: 0)),
    onServerRunning: { channel in
        let line = Array("PORT \(channel.localAddress?.port ?? 0)\n".utf8)
        _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }
)
try await app.runService()
