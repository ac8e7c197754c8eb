// asynctrace-examples: small async programs on the runtime, each ending by itself within a few
// seconds, for demos (`asynctrace record -- asynctrace-examples tcp-echo`) and tests.
import AsyncTraceRecorder
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
#endif

struct Scenario: Sendable {
    let name: String
    let summary: String
    let run: @Sendable ([String]) throws -> Void
}

func allScenarios() -> [Scenario] {
    [
        Scenario(name: "timers", summary: "setTimeout, setInterval, setImmediate and nextTick in Node's order", run: timersScenario),
        Scenario(name: "tcp-echo", summary: "TCP echo server and client in one process: N round trips (default 200)", run: tcpEchoScenario),
        Scenario(name: "unix-echo", summary: "the same echo over a Unix-domain socket", run: unixEchoScenario),
        Scenario(name: "udp-echo", summary: "UDP echo server and client: N datagrams (default 100)", run: udpEchoScenario),
        Scenario(name: "tls-echo", summary: "TLS echo server and client (test-only certificate, verified): N round trips", run: tlsEchoScenario),
        Scenario(name: "http", summary: "HTTP server plus a client load (8 keep-alive loops) for about 2 s", run: httpScenario),
        Scenario(name: "child", summary: "child processes: cat over stdio pipes, execFile, kill", run: childScenario),
        Scenario(
            name: "blocking", summary: "TCP traffic with a callback that blocks the loop for 200 ms (a synchronous read)", run: blockingScenario),
        Scenario(
            name: "stalls", summary: "runs N s (default 3): a 10 ms timer, and every 1 s a callback blocking the loop for 200 ms", run: stallsScenario
        ),
    ] + moreScenarios()
}

func usage() -> String {
    let scenarios = allScenarios()
    var s = "usage: asynctrace-examples <scenario> [args]\n\nscenarios:\n"
    let width = scenarios.map(\.name.count).max() ?? 0
    for sc in scenarios { s += "  \(sc.name + String(repeating: " ", count: width + 2 - sc.name.count))\(sc.summary)\n" }
    s += "\nWith ASYNCTRACE_OUTPUT=<file> set, the run is recorded (or use `asynctrace record`).\n"
    return s
}

/// console.log: one line to stdout, unbuffered (the loop may end the process with exit()).
func log(_ s: String) {
    var b = Array((s + "\n").utf8)
    _ = b.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

func fail(_ s: String) -> Never {
    var b = Array(("asynctrace-examples: " + s + "\n").utf8)
    _ = b.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

let args = Array(CommandLine.arguments.dropFirst())
guard let name = args.first, name != "--help", name != "-h", name != "help" else {
    print(usage(), terminator: "")
    exit(args.isEmpty ? 2 : 0)
}
guard let scenario = allScenarios().first(where: { $0.name == name }) else {
    fail("unknown scenario '\(name)'\n\n" + usage())
}
TraceRecorder.startFromEnvironment()
EventLoop.main { try scenario.run(Array(args.dropFirst())) }
