// Scenarios on sockets: echo over TCP and Unix sockets, and a callback that blocks the loop.
import AsyncTraceHTTP
import AsyncTraceRuntime
import AsyncTraceTLS
#if canImport(Glibc)
import Glibc
#endif

/// An echo server plus a client doing `rounds` request/response round trips, then both close.
func echo(
    rounds: Int, listen: (Server, @escaping () -> Void) -> Void, connect: @escaping (Server) -> Socket,
    paceMs: Int = 0, onRound: ((Int) -> Void)? = nil
) {
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
    echo(
        rounds: rounds,
        listen: { server, ready in
            server.listen(port: 0, host: "127.0.0.1") {
                log("listening on \(server.address()!)")
                ready()
            }
        }, connect: { server in Socket.connect(port: server.address()!.port, host: "127.0.0.1") })
}

func unixEchoScenario(_ args: [String]) throws {
    let rounds = args.first.flatMap(Int.init) ?? 200
    let path = "/tmp/asynctrace-examples-\(getpid()).sock"
    echo(
        rounds: rounds,
        listen: { server, ready in
            server.listen(path: path) {
                log("listening on \(path)")
                ready()
            }
        }, connect: { _ in Socket.connect(path: path) })
}

/// TCP echo traffic where, half-way, a data callback does a synchronous read that takes 200 ms
/// (from a pipe another thread fills 200 ms later, as a slow disk or NFS read would): the report
/// must show that callback (TCPWRAP) blocking the loop, the read(2) inside it, and the traffic
/// stalling behind it.
func blockingScenario(_ args: [String]) throws {
    let rounds = 100
    var ticks = 0
    let heartbeat = setInterval(20) { ticks += 1 }
    echo(
        rounds: rounds,
        listen: { server, ready in
            server.listen(port: 0, host: "127.0.0.1") { ready() }
        }, connect: { server in Socket.connect(port: server.address()!.port, host: "127.0.0.1") },
        paceMs: 4,
        onRound: { n in
            if n == rounds / 2 {
                log("round \(n): blocking the loop for 200 ms (synchronous read)")
                blockingRead(milliseconds: 200)
            }
            if n == rounds { heartbeat.clear(); log("heartbeat ticks: \(ticks)") }
        })
}

/// A UDP echo server and a client sending N datagrams one after another.
func udpEchoScenario(_ args: [String]) throws {
    let rounds = args.first.flatMap(Int.init) ?? 100
    let server = UDPSocket()
    server.onMessage { data, rinfo in server.send(data, port: rinfo.port, host: rinfo.address) }
    server.onError { fail("server: \($0)") }
    server.bind(port: 0, host: "127.0.0.1") {
        let port = server.address()!.port
        log("udp server on 127.0.0.1:\(port)")
        let client = UDPSocket()
        var n = 0
        client.onMessage { data, rinfo in
            n += 1
            if n == 1 { log("first reply: \(String(decoding: data, as: UTF8.self)) from \(rinfo)") }
            if n == rounds {
                log("\(rounds) datagrams echoed")
                client.close()
                server.close { log("server closed") }
                return
            }
            client.send("datagram \(n)", port: port)
        }
        client.onError { fail("client: \($0)") }
        client.send("datagram 0", port: port)
    }
}

/// Spawns children: a pipeline through `cat` over stdio pipes, an exec-style helper, and a killed sleeper.
func childScenario(_ args: [String]) throws {
    let cat = ChildProcess.spawn("cat")
    var echoed: [UInt8] = []
    cat.stdout!.onData { echoed += $0 }
    cat.onClose { code, _ in log("cat exited \(code ?? -1) and echoed \(echoed.count) bytes") }
    for i in 0..<5 { cat.stdin!.write("line \(i)\n") }
    cat.stdin!.end()

    ChildProcess.execFile("uname", ["-s"]) { r in
        log("uname -s: \(r.stdoutString.split(separator: "\n").first ?? "") (exit \(r.exitCode ?? -1))")
    }

    let sleeper = ChildProcess.spawn("sleep", ["5"], stdio: [.ignore, .ignore, .ignore])
    sleeper.onExit { _, signal in log("sleep ended by \(signal ?? "exit")") }
    setTimeout(50) { sleeper.kill() }
}

/// An HTTP server plus a client load: 8 keep-alive request loops for about 2 s (seconds as argument).
func httpScenario(_ args: [String]) throws {
    let seconds = args.first.flatMap(Double.init) ?? 2
    let server = HTTPServer { req, res in
        req.onEnd {
            res.setHeader("Content-Type", "text/plain")
            res.end("hello from \(req.url)\n")
        }
    }
    server.onError { fail("server: \($0)") }
    server.listen(port: 0, host: "127.0.0.1") {
        let port = server.address()!.port
        log("http server on 127.0.0.1:\(port)")
        let agent = Agent()
        var completed = 0
        var stopping = false
        var running = 8
        func loop(_ worker: Int) {
            if stopping {
                running -= 1
                if running == 0 {
                    log("\(completed) requests in \(seconds) s")
                    agent.destroy()
                    server.close { _ in log("server closed") }
                }
                return
            }
            let req = HTTP.get(port: port, path: "/w\(worker)", agent: agent) { res in
                res.readBody { _ in
                    completed += 1
                    loop(worker)
                }
            }
            req.onError { fail("request: \($0)") }
        }
        for w in 0..<8 { loop(w) }
        setTimeout(Int(seconds * 1000)) { stopping = true }
    }
}

/// Reads one byte from a pipe that a helper thread writes to after `milliseconds`: a synchronous
/// read(2) the kernel probes see, taking as long as a slow disk would.
func blockingRead(milliseconds: Int) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { fail("pipe: errno \(errno)") }
    let writeEnd = fds[1]
    var thread = pthread_t()
    let arg = UnsafeMutablePointer<Int32>.allocate(capacity: 2)
    arg[0] = writeEnd
    arg[1] = Int32(milliseconds)
    pthread_create(
        &thread, nil,
        { raw in
            let a = raw!.assumingMemoryBound(to: Int32.self)
            usleep(UInt32(a[1]) * 1000)
            var byte: UInt8 = 1
            _ = write(a[0], &byte, 1)
            return nil
        }, arg)
    var byte: UInt8 = 0
    while read(fds[0], &byte, 1) < 0 && errno == EINTR {}
    pthread_join(thread, nil)
    arg.deallocate()
    close(fds[0])
    close(fds[1])
}

/// A TLS echo server and client (test-only certificate, verified against its test CA), N round trips.
func tlsEchoScenario(_ args: [String]) throws {
    let rounds = args.first.flatMap(Int.init) ?? 100
    let serverOptions = TLSOptions(
        certificatePEM: TestIdentity.serverCertificatePEM, privateKeyPEM: TestIdentity.serverKeyPEM,
        alpnProtocols: ["echo"])
    let server = try TLSServer(options: serverOptions) { tls in
        tls.onData { tls.write($0) }
    }
    server.onTLSClientError { e, _ in log("tlsClientError: \(e)") }
    server.listen(port: 0, host: "127.0.0.1") {
        let port = server.address()!.port
        log("tls server on 127.0.0.1:\(port)")
        let client = try TLS.connect(
            port: port, host: "127.0.0.1",
            options: TLSOptions(caPEM: TestIdentity.caPEM, servername: "localhost", alpnProtocols: ["echo"]))
        let message = Array("secret ping".utf8)
        var pending = 0
        var done = 0
        client.onSecureConnect {
            log("secureConnect: \(client.protocolVersion ?? "?"), authorized \(client.authorized), alpn \(client.alpnProtocol ?? "-")")
            pending = message.count
            client.write(message)
        }
        client.onData { data in
            pending -= data.count
            if pending > 0 { return }
            done += 1
            if done == rounds {
                log("\(rounds) round trips over TLS")
                client.end()
                return
            }
            pending = message.count
            client.write(message)
        }
        client.onError { fail("client: \($0)") }
        client.onClose { _ in server.close { _ in log("server closed") } }
    }
}
