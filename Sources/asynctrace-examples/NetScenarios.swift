// Scenarios on sockets: echo over TCP and Unix sockets, and a callback that blocks the loop.
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
#endif

/// An echo server plus a client doing `rounds` request/response round trips, then both close.
func echo(rounds: Int, listen: (Server, @escaping () -> Void) -> Void, connect: @escaping (Server) -> Socket,
          paceMs: Int = 0, onRound: ((Int) -> Void)? = nil) {
    let server = Server { socket in
        socket.onData { socket.write($0) }
    }
    server.onError { fail("server: \($0)") }
    listen(server) {
        let client = connect(server)
        let message = Array("ping ".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 59)  // 64 bytes
        var pending = 0
        var done = 0
        client.onConnect {
            log("connected to \(client.remoteAddress.map { "\($0)" } ?? "?")")
            pending = message.count
            client.write(message)
        }
        client.onData { data in
            pending -= data.count
            if pending > 0 { return }
            done += 1
            onRound?(done)
            if done == rounds {
                log("\(rounds) round trips, \(client.bytesWritten) bytes each way")
                client.end()
                return
            }
            pending = message.count
            if paceMs > 0 {
                setTimeout(paceMs) { client.write(message) }
            } else {
                client.write(message)
            }
        }
        client.onError { fail("client: \($0)") }
        client.onClose { _ in
            server.close { _ in log("server closed") }
        }
    }
}

func tcpEchoScenario(_ args: [String]) throws {
    let rounds = args.first.flatMap(Int.init) ?? 200
    echo(rounds: rounds, listen: { server, ready in
        server.listen(port: 0, host: "127.0.0.1") {
            log("listening on \(server.address()!)")
            ready()
        }
    }, connect: { server in Socket.connect(port: server.address()!.port, host: "127.0.0.1") })
}

func unixEchoScenario(_ args: [String]) throws {
    let rounds = args.first.flatMap(Int.init) ?? 200
    let path = "/tmp/asynctrace-examples-\(getpid()).sock"
    echo(rounds: rounds, listen: { server, ready in
        server.listen(path: path) {
            log("listening on \(path)")
            ready()
        }
    }, connect: { _ in Socket.connect(path: path) })
}

/// TCP echo traffic where, half-way, a data callback sleeps synchronously for 200 ms: the report
/// must show that callback (TCPWRAP) blocking the loop and the traffic stalling behind it.
func blockingScenario(_ args: [String]) throws {
    let rounds = 100
    var ticks = 0
    let heartbeat = setInterval(20) { ticks += 1 }
    echo(rounds: rounds, listen: { server, ready in
        server.listen(port: 0, host: "127.0.0.1") { ready() }
    }, connect: { server in Socket.connect(port: server.address()!.port, host: "127.0.0.1") },
    paceMs: 4, onRound: { n in
        if n == rounds / 2 {
            log("round \(n): blocking the loop for 200 ms (synchronous sleep)")
            var req = timespec(tv_sec: 0, tv_nsec: 200_000_000)
            var rem = timespec()
            while nanosleep(&req, &rem) != 0 { req = rem }
        }
        if n == rounds { heartbeat.clear(); log("heartbeat ticks: \(ticks)") }
    })
}
