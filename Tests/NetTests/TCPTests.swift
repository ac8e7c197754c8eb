// TCP over loopback: echo, hooks (types, triggers, scopes, balance), half-open, backpressure, errors.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime

@Suite("TCP")
struct TCPTests {
    @Test("echo round trips; accepted socket's trigger is the server; connect runs under TCPCONNECTWRAP; balanced")
    func echo() throws {
        let connectScope = LockedValue<(AsyncID, AsyncID)>((.none, .none))
        let (lines, hook) = runTraced { log in
            let server = Server { socket in
                socket.onData { socket.write($0) }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let port = server.address()!.port
                var received: [UInt8] = []
                var rounds = 0
                let client = Socket.connect(port: port, host: "127.0.0.1")
                client.onConnect {
                    connectScope.withLock { $0 = (executionAsyncID(), triggerAsyncID()) }
                    log("connected from \(client.address()!.host) to \(client.remoteAddress!.port == port)")
                    client.write("ping0")
                }
                client.onData { data in
                    received += data
                    if received.count == 5 {
                        log(String(decoding: received, as: UTF8.self))
                        received = []
                        rounds += 1
                        if rounds == 10 { client.end(); return }
                        client.write("ping\(rounds)")
                    }
                }
                client.onClose { hadError in
                    log("client closed \(hadError) read \(client.bytesRead) wrote \(client.bytesWritten)")
                    server.close { _ in log("server closed") }
                }
            }
        }
        #expect(lines.first == "connected from 127.0.0.1 to true")
        #expect(lines.dropFirst().prefix(10) == ArraySlice((0..<10).map { "ping\($0)" }))
        #expect(lines.suffix(2) == ["client closed false read 50 wrote 50", "server closed"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
        let servers = hook.ids(of: "TCPSERVERWRAP")
        let sockets = hook.ids(of: "TCPWRAP")
        let connects = hook.ids(of: "TCPCONNECTWRAP")
        #expect(servers.count == 1 && sockets.count == 2 && connects.count == 1)
        // sockets[0] is the client (created first), sockets[1] the accepted one.
        if sockets.count == 2, servers.count == 1, connects.count == 1 {
            #expect(hook.resource(sockets[1])?.trigger == servers[0])
            #expect(hook.resource(connects[0])?.trigger == sockets[0])
            #expect(connectScope.withLock { $0.0 } == connects[0])
            #expect(hook.resource(sockets[0])?.fds.first ?? -1 >= 0)
            #expect(hook.resource(servers[0])?.fds.first ?? -1 >= 0)
            #expect(hook.callbackCount(sockets[1]) >= 10)  // each data event under the accepted socket
        }
    }

    @Test("connection refused: error event with errno and the socket's id, then close; nothing leaks")
    func refused() {
        let (lines, hook) = runTraced { log in
            // Find a free port, then close it so nothing listens there.
            let probe = Server()
            probe.listen(port: 0, host: "127.0.0.1") {
                let port = probe.address()!.port
                probe.close()
                let s = Socket.connect(port: port, host: "127.0.0.1") { log("connected?!") }
                s.onError { e in log("error \(e.code) \(e.errno == ECONNREFUSED) \(e.syscall) \(e.asyncID == s.asyncID) \(e.address!.port == port)") }
                s.onClose { log("close \($0)") }
            }
        }
        #expect(lines == ["error ECONNREFUSED true connect true true", "close true"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("connect by host name resolves with dns.lookup (GETADDRINFOREQWRAP); an unknown name is ENOTFOUND")
    func hostNames() {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let (lines, hook) = runTraced { log in
            let server = Server { s in s.end() }
            server.listen(port: 0, host: "0.0.0.0") {
                let port = server.address()!.port
                let bad = Socket.connect(port: port, host: "nonexistent.invalid")
                bad.onError { e in log("bad: \(e.code) \(e.syscall)") }
                let c = Socket.connect(port: port, host: host)
                c.write("queued while resolving")
                c.onConnect { log("connected by name") }
                c.onClose { _ in server.close() }
            }
        }
        #expect(Set(lines) == ["bad: ENOTFOUND getaddrinfo", "connected by name"])
        #expect(hook.ids(of: "GETADDRINFOREQWRAP").count == 2)
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("EADDRINUSE is an error event on the second server, which is destroyed")
    func addressInUse() {
        let (lines, hook) = runTraced { log in
            let a = Server()
            a.listen(port: 0, host: "127.0.0.1") {
                let b = Server()
                b.onError { e in
                    log("error \(e.code) \(e.errno == EADDRINUSE) \(e.syscall) \(e.asyncID == b.asyncID)")
                    a.close()
                }
                b.listen(port: a.address()!.port, host: "127.0.0.1") { log("listening?!") }
            }
        }
        #expect(lines == ["error EADDRINUSE true listen true"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("half-open: with allowHalfOpen the server still writes after the client ended")
    func halfOpen() {
        let (lines, hook) = runTraced { log in
            let server = Server(allowHalfOpen: true) { socket in
                var got: [UInt8] = []
                socket.onData { got += $0 }
                socket.onEnd {
                    log("server end after \(got.count) bytes")
                    // Our side is still open: reply, then end.
                    setTimeout(10) {
                        socket.write("reply after your end")
                        socket.end()
                    }
                }
                socket.onFinish { log("server finish") }
                socket.onClose { _ in log("server socket close") }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                var reply: [UInt8] = []
                c.onConnect { c.end(Array("request".utf8)) }
                c.onData { reply += $0 }
                c.onEnd { log("client got: \(String(decoding: reply, as: UTF8.self))") }
                c.onClose { _ in
                    log("client close"); server.close()
                }
            }
        }
        #expect(lines.first == "server end after 7 bytes")
        #expect(lines.contains("client got: reply after your end"))
        #expect(lines.contains("server finish"))
        #expect(lines.contains("server socket close"))
        #expect(lines.last == "client close" || lines.last == "server socket close")
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
        #expect(hook.ids(of: "SHUTDOWNWRAP").count == 2)
    }

    @Test("without allowHalfOpen the server's side ends by itself after the peer's end")
    func noHalfOpen() {
        let (lines, hook) = runTraced { log in
            let server = Server { socket in
                socket.onEnd { log("server end") }
                socket.onClose { _ in log("server socket close") }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1") {}
                c.onConnect { c.end() }
                c.onEnd { log("client end") }
                c.onClose { _ in
                    log("client close"); server.close()
                }
            }
        }
        #expect(Set(lines) == ["server end", "server socket close", "client end", "client close"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("backpressure: write returns false past highWaterMark, drain follows, every byte arrives")
    func backpressure() {
        let total = 8 * 1024 * 1024
        let (lines, hook) = runTraced { log in
            var received = 0
            let server = Server(pauseOnConnect: true) { socket in
                socket.onData { received += $0.count }
                socket.onEnd { log("server received \(received)") }
                // Let the client fill the kernel buffers and its queue first.
                setTimeout(50) { socket.resume() }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                let chunk = [UInt8](repeating: 7, count: 256 * 1024)
                var sent = 0
                var sawFalse = false
                var drains = 0
                func pump() {
                    while sent < total {
                        sent += chunk.count
                        if !c.write(chunk) {
                            sawFalse = true
                            return
                        }
                    }
                    log("false seen \(sawFalse) drains \(drains > 0) queue \(c.writableLength > 0)")
                    c.end()
                }
                c.onConnect { pump() }
                c.onDrain {
                    drains += 1
                    pump()
                }
                c.onClose { _ in server.close() }
            }
        }
        #expect(
            lines == ["false seen true drains true queue true", "server received \(total)"]
                || lines == ["false seen true drains true queue false", "server received \(total)"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
        #expect(hook.ids(of: "WRITEWRAP").count > 0)
    }

    @Test("the peer closing mid-write: EPIPE or ECONNRESET on the writer, no crash, nothing leaks")
    func peerClosesMidWrite() {
        let (lines, hook) = runTraced { log in
            // Closing with unread data sends RST (the peer sees ECONNRESET or EPIPE, not a clean end).
            let server = Server { socket in socket.onData { _ in socket.destroy() } }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                let chunk = [UInt8](repeating: 1, count: 64 * 1024)
                var timer: Timeout?
                c.onConnect {
                    timer = setInterval(1) { for _ in 0..<8 { c.write(chunk) } }
                }
                c.onError { e in log("error \(e.code == "EPIPE" || e.code == "ECONNRESET") \(e.errno != 0) \(e.asyncID == c.asyncID)") }
                c.onClose { had in
                    timer?.clear()
                    log("close \(had)")
                    server.close()
                }
            }
        }
        #expect(lines == ["error true true true", "close true"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("setTimeout fires on an idle socket; the listener destroys it")
    func idleTimeout() {
        let (lines, hook) = runTraced { log in
            let server = Server { socket in
                socket.setTimeout(30) {
                    log("timeout")
                    socket.destroy()
                }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                c.onEnd { log("client end") }
                c.onClose { _ in
                    log("client close"); server.close()
                }
            }
        }
        #expect(lines == ["timeout", "client end", "client close"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("activity postpones the idle timeout; it fires once the traffic stops")
    func timeoutPostponedByActivity() {
        let (lines, hook) = runTraced { log in
            var received = 0
            let server = Server { socket in
                socket.onData { received += $0.count }
                // The traffic (12 writes, 10 ms apart) lasts longer than the timeout; margins for a loaded machine.
                socket.setTimeout(100) {
                    log("timeout after \(received) bytes")
                    socket.destroy()
                }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                var sent = 0
                var ticker: Timeout?
                c.onConnect {
                    ticker = setInterval(10) {
                        c.write("x")
                        sent += 1
                        if sent == 12 { ticker?.clear() }  // >= 120 ms of traffic, then silence
                    }
                }
                c.onClose { _ in
                    ticker?.clear(); server.close()
                }
            }
        }
        #expect(lines == ["timeout after 12 bytes"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("maxConnections drops the extra connection; getConnections counts; unref'd server lets the loop end")
    func maxConnectionsAndUnref() {
        let (lines, hook) = runTraced { log in
            let server = Server { socket in socket.onData { _ in } }
            server.maxConnections = 1
            server.listen(port: 0, host: "127.0.0.1") {
                let port = server.address()!.port
                let a = Socket.connect(port: port, host: "127.0.0.1")
                a.onConnect {
                    let b = Socket.connect(port: port, host: "127.0.0.1")
                    b.onEnd { log("b dropped") }
                    b.onError { log("b error \($0.code)") }
                    b.onClose { _ in
                        server.getConnections { n in
                            log("connections \(n)")
                            a.destroy()
                            server.unref()  // the server alone no longer keeps the loop running
                        }
                    }
                }
            }
        }
        #expect(lines.first == "b dropped" || lines.first == "b error ECONNRESET")
        #expect(lines.last == "connections 1")
        #expect(hook.problems == [])
        // The unref'd server was never closed: its resource is the only one alive, as in Node.
        #expect(hook.undestroyed == ["TCPSERVERWRAP"])
    }
}
