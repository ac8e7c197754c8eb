// UDP over loopback: echo with sender info, connected sends, send callbacks on a nextTick, errors.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime

@Suite("UDP")
struct UDPTests {
    @Test("echo: messages carry the sender's address; a send that completes at once calls back on a nextTick (as Node); balanced")
    func echo() {
        let sendScope = LockedValue<[AsyncID]>([])
        let (lines, hook) = runTraced { log in
            let server = UDPSocket()
            server.onMessage { data, rinfo in
                server.send(data, port: rinfo.port, host: rinfo.address)
            }
            server.bind(port: 0, host: "127.0.0.1") {
                let port = server.address()!.port
                let client = UDPSocket()
                var got = 0
                client.onMessage { data, rinfo in
                    got += 1
                    log("reply \(String(decoding: data, as: UTF8.self)) from \(rinfo.address) \(rinfo.port == port) \(rinfo.family) \(rinfo.size)")
                    if got == 3 {
                        client.close { log("client closed") }
                        server.close { log("server closed") }
                    }
                }
                for i in 0..<3 {
                    client.send("m\(i)", port: port, host: "127.0.0.1") { err in
                        sendScope.withLock { $0.append(executionAsyncID()) }
                        if let err { log("send error \(err)") }
                    }
                }
            }
        }
        #expect(
            lines.prefix(3) == ["reply m0 from 127.0.0.1 true IPv4 2", "reply m1 from 127.0.0.1 true IPv4 2", "reply m2 from 127.0.0.1 true IPv4 2"])
        #expect(Set(lines.suffix(2)) == ["client closed", "server closed"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
        let sends = hook.ids(of: "UDPSENDWRAP")
        #expect(sends.count == 6)
        // Node's doSend: `process.nextTick(callback)` for a send that completed at once, queued from
        // the address lookup's tick: each callback runs in a TickObject, not under its UDPSENDWRAP.
        let ticks = Set(hook.ids(of: "TickObject"))
        #expect(sendScope.withLock { $0 }.count == 3)
        #expect(sendScope.withLock { $0 }.allSatisfy { ticks.contains($0) })
        #expect(hook.ids(of: "UDPWRAP").count == 2)
    }

    @Test("connect: send without an address goes to the peer; disconnect; options; EADDRINUSE on bind")
    func connectAndErrors() {
        let (lines, hook) = runTraced { log in
            let a = UDPSocket()
            a.bind(port: 0, host: "127.0.0.1") {
                let port = a.address()!.port
                let b = UDPSocket()
                b.onError { e in log("bind error \(e.code) \(e.errno == EADDRINUSE) \(e.asyncID == b.asyncID)") }
                b.bind(port: port, host: "127.0.0.1")
                let c = UDPSocket()
                a.onMessage { data, _ in
                    log("a got \(String(decoding: data, as: UTF8.self))")
                    c.disconnect()
                    c.send("no peer") { e in
                        log("unconnected send: \(e?.code ?? "ok")")
                        try c.setBroadcast(true)
                        try c.setTTL(8)
                        a.close(); b.close(); c.close()
                    }
                }
                c.connect(port: port, host: "127.0.0.1") {
                    log("connected to \(c.remoteAddress()!.port == port)")
                    c.send("via connect")
                }
            }
        }
        #expect(
            lines == [
                "bind error EADDRINUSE true true", "connected to true", "a got via connect",
                "unconnected send: ERR_SOCKET_DGRAM_NOT_CONNECTED",
            ])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }
}
