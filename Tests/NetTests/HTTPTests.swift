// HTTP/1.1 over loopback: Content-Length and chunked bodies both ways, keep-alive reuse, malformed
// requests, hooks (HTTPINCOMINGMESSAGE per connection, HTTPCLIENTREQUEST per request), balance.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Testing
@testable import AsyncTraceRuntime
@testable import AsyncTraceHTTP

@Suite("HTTP")
struct HTTPTests {
    @Test("GET and chunked POST on one keep-alive connection; response callbacks under HTTPCLIENTREQUEST; balanced")
    func keepAliveAndBodies() {
        let scopes = LockedValue<[AsyncID]>([])
        let (lines, hook) = runTraced { log in
            let agent = Agent()
            let server = HTTPServer { req, res in
                req.readBody { body in
                    res.setHeader("Content-Type", "text/plain")
                    if req.method == "POST" {
                        res.write("got ")  // streamed: chunked
                        res.end(body)
                    } else {
                        res.end("hello \(req.url)")
                    }
                }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let port = server.address()!.port
                HTTP.get(port: port, path: "/a", agent: agent) { res in
                    scopes.withLock { $0.append(executionAsyncID()) }
                    log("status \(res.statusCode) length \(res.header("content-length") ?? "-") keep-alive \(res.header("connection") ?? "-")")
                    res.readBody { body in
                        log(String(decoding: body, as: UTF8.self))
                        // Second request: reuses the idle connection (after this callback returns).
                        setImmediate {
                            let post = HTTP.request(method: "POST", port: port, path: "/b", agent: agent) { res in
                                scopes.withLock { $0.append(executionAsyncID()) }
                                log("status \(res.statusCode) te \(res.header("transfer-encoding") ?? "-")")
                                res.readBody { body in log(String(decoding: body, as: UTF8.self)) }
                                // As in Node, the connection is back in the agent's idle list by the response's
                                // 'close' (after 'end', where it was not yet: the server's 5 s idle timeout waited).
                                res.onClose {
                                    agent.destroy()
                                    server.close()
                                }
                            }
                            post.write("part1,")
                            post.write("part2")
                            post.end()
                        }
                    }
                }
            }
        }
        #expect(lines == ["status 200 length 8 keep-alive keep-alive", "hello /a", "status 200 te chunked", "got part1,part2"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
        let requests = hook.ids(of: "HTTPCLIENTREQUEST")
        #expect(requests.count == 2)
        #expect(scopes.withLock { $0 } == requests)
        #expect(hook.ids(of: "HTTPINCOMINGMESSAGE").count == 1)  // one connection, reused
        #expect(hook.ids(of: "TCPWRAP").count == 2)
    }

    @Test("a malformed request gets 400 and a clientError with the HPE code and the parser's id; the server survives")
    func malformed() {
        let errorID = LockedValue<AsyncID>(.none)
        let (lines, hook) = runTraced { log in
            let server = HTTPServer { _, res in res.end("ok") }
            server.onClientError { e, socket in
                errorID.withLock { $0 = e.asyncID }
                log("clientError \(e.code)")
                socket.end(Array("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n".utf8))
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let port = server.address()!.port
                let raw = Socket.connect(port: port, host: "127.0.0.1")
                var reply: [UInt8] = []
                raw.onConnect { raw.write("GET / HTTP/1.1\r\nBad Header Line\r\n\r\n") }
                raw.onData { reply += $0 }
                raw.onClose { _ in
                    log(String(decoding: reply, as: UTF8.self).split(separator: "\r\n").first.map(String.init) ?? "")
                    // The server still answers well-formed requests.
                    HTTP.get(port: port, agent: Agent(keepAlive: false)) { res in
                        res.readBody {
                            log("then \(res.statusCode) \(String(decoding: $0, as: UTF8.self))"); server.close()
                        }
                    }
                }
            }
        }
        #expect(hook.resource(errorID.withLock { $0 })?.type == "HTTPINCOMINGMESSAGE")
        #expect(lines == ["clientError HPE_INVALID_HEADER_TOKEN", "HTTP/1.1 400 Bad Request", "then 200 ok"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("connection refused reaches the request's error listener with its id")
    func refused() {
        let (lines, hook) = runTraced { log in
            let probe = Server()
            probe.listen(port: 0, host: "127.0.0.1") {
                let port = probe.address()!.port
                probe.close()
                let req = HTTP.get(port: port) { _ in log("response?!") }
                req.onError { e in log("error \(e.code) \(e.asyncID == req.asyncID)") }
            }
        }
        #expect(lines == ["error ECONNREFUSED true"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }
}

@Suite("HTTP header names")
struct HTTPHeaderNameTests {
    @Test("names and tokens compare without ASCII case, nothing else folded")
    func caseInsensitive() {
        #expect("Content-Length".equalsIgnoringASCIICase("content-length"))
        #expect("CONNECTION".equalsIgnoringASCIICase("connection"))
        #expect("close".equalsIgnoringASCIICase("Close"))
        #expect(!"close".equalsIgnoringASCIICase("closed"))
        #expect(!"a-b".equalsIgnoringASCIICase("a\rb"))  // '-' and CR differ only in bit 0x20
        #expect(!"[".equalsIgnoringASCIICase("{"))  // neither is a letter
        #expect(!"É".equalsIgnoringASCIICase("é"))  // ASCII only, as header tokens are
        var head = HTTPHead()
        head.headers = [("Host", "x"), ("CONTENT-length", "5"), ("content-length", "6")]
        #expect(head.header("content-length") == "5")
        #expect(head.header("Transfer-Encoding") == nil)
    }
}

@Suite("HTTP keep-alive timeout")
struct HTTPKeepAliveTimeoutTests {
    @Test("an idle keep-alive connection is closed by the server after keepAliveTimeoutMs")
    func idleClose() {
        let (lines, hook) = runTraced { log in
            let server = HTTPServer { _, res in res.end("ok") }
            server.keepAliveTimeoutMs = 50
            server.listen(port: 0, host: "127.0.0.1") {
                let agent = Agent()
                let start = monotonicMilliseconds()
                HTTP.get(port: server.address()!.port, agent: agent) { res in
                    res.readBody { _ in
                        let socket = res.socket
                        socket.onClose { _ in
                            let waited = monotonicMilliseconds() - start
                            log("closed by the server after idle: \(waited >= 45)")
                            server.close()
                        }
                    }
                }
            }
        }
        #expect(lines == ["closed by the server after idle: true"])
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }
}

func monotonicMilliseconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
}
