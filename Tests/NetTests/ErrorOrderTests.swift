// Issue 13 item 9 for the protocol handles over the runtime's sockets: TLS and the HTTP client report a
// failure as Node v20 does — 'error' on a nextTick right after it, 'close' later in the close phase (after
// the immediates) — and a socket's 'end', an HTTP request's and response's 'close', 'aborted' and 'end'
// come when Node's do; checked line for line against the lines node itself prints for the same script.
// The event lines also name the async resource they ran in and its trigger (`@TYPE<TRIGGERTYPE`, from an
// async hook: executionAsyncId's init), which node must print too.
#if canImport(Glibc)
import Glibc
#endif
import AsyncHooks
import Foundation
import LoopTestSupport
import Testing
@testable import AsyncTraceHTTP
@testable import AsyncTraceRuntime
@testable import AsyncTraceTLS

/// What ran when after a failure: a nextTick, a promise reaction, an immediate and a 0 ms timer (as the
/// lessons' markers, Benchmarks/node/lessons.js; the timer only where its order is deterministic: set from
/// an I/O callback or its ticks, whose loop goes on to the check phase before the next timers phase).
private func markers(_ log: Log, _ tag: String, timer: Bool = true) {
    setImmediate { log("\(tag) immediate") }
    nextTick { log("\(tag) nextTick") }
    Promise<Void>.resolve(()).then { log("\(tag) promise") }
    if timer { setTimeout(0) { log("\(tag) timeout") } }
}

/// A port nothing listens on: listened on, then closed (the scenario runs in its close callback).
private func withFreePort(_ body: @escaping (Int) throws -> Void) {
    let probe = Server()
    probe.listen(port: 0, host: "127.0.0.1") {
        let port = probe.address()!.port
        probe.close { _ in try body(port) }
    }
}

/// The same scenarios for node (console.log lines), run by `nodeAgrees`.
private let nodeScript = """
    const net = require('net'), tls = require('tls'), http = require('http'), ah = require('async_hooks');
    const types = new Map([[1, 'ROOT']]), triggers = new Map();
    ah.createHook({ init(id, type, trigger) { types.set(id, type); triggers.set(id, trigger); } }).enable();
    const log = (s) => console.log(s);
    const at = () => ' @' + types.get(ah.executionAsyncId()) + '<' + types.get(triggers.get(ah.executionAsyncId()));
    const markers = (tag, timer = true) => {
      setImmediate(() => log(tag + ' immediate'));
      process.nextTick(() => log(tag + ' nextTick'));
      Promise.resolve().then(() => log(tag + ' promise'));
      if (timer) setTimeout(() => log(tag + ' timeout'), 0);
    };
    const withFreePort = (f) => { const p = net.createServer(); p.listen(0, '127.0.0.1', () => { const port = p.address().port; p.close(() => f(port)); }); };
    const scenarios = {
      'tls-refused'() { withFreePort((port) => {
        const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
        s.on('error', (e) => { log('error ' + e.code + ' ' + e.syscall + at()); markers('in error'); });
        s.on('close', (hadError) => log('close ' + hadError + at()));
      }); },
      'tls-destroy'() { withFreePort((port) => {
        const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
        s.on('error', (e) => log('error ' + e.message + at()));
        s.on('close', (hadError) => log('close ' + hadError + at()));
        s.destroy(new Error('boom'));
        markers('after destroy', false);  // set in the close phase: a timer's order would be a race
      }); },
      'tcp-end'() {
        const server = net.createServer((c) => c.end('bye'));
        server.listen(0, '127.0.0.1', () => {
          const s = net.connect(server.address().port, '127.0.0.1');
          s.on('data', (d) => log('data ' + d.length + at()));
          s.on('end', () => { log('end' + at()); markers('in end', false); });
          s.on('close', (hadError) => { log('close ' + hadError + at()); server.close(); });
        });
      },
      'http-refused'() { withFreePort((port) => {
        const r = http.request({ port, host: '127.0.0.1', path: '/' });
        r.on('error', (e) => { log('error ' + e.code + ' ' + e.syscall + at()); markers('in error'); });
        r.on('close', () => log('close' + at()));
        r.end();
      }); },
      'http-destroy'() { withFreePort((port) => {
        const r = http.request({ port, host: '127.0.0.1', path: '/' });
        r.on('error', (e) => log('error ' + e.message + at()));
        r.on('close', () => log('close' + at()));
        r.destroy(new Error('boom'));
        markers('after destroy', false);
      }); },
      'http-destroy-ended'() { withFreePort((port) => {
        const r = http.request({ port, host: '127.0.0.1', path: '/' });
        r.on('error', (e) => log('error ' + e.code + ' ' + e.message + at()));
        r.on('close', () => log('close' + at()));
        r.end();
        r.destroy();
        markers('after destroy', false);
      }); },
      'http-response-keepalive'() {
        const server = http.createServer((req, res) => res.end('hello'));
        server.listen(0, '127.0.0.1', () => {
          const agent = new http.Agent({ keepAlive: true });
          const r = http.request({ port: server.address().port, host: '127.0.0.1', path: '/', agent }, (res) => {
            log('response ' + res.statusCode + at());
            res.on('data', (d) => log('data ' + d.length));
            res.on('end', () => { log('end'); markers('in end'); });
            res.on('close', () => { log('res close' + at()); agent.destroy(); server.close(); });
          });
          r.on('close', () => log('req close' + at()));
          r.end();
        });
      },
      'http-response-close'() {
        const server = http.createServer((req, res) => res.end('hello'));
        server.listen(0, '127.0.0.1', () => {
          const agent = new http.Agent({ keepAlive: false });
          const r = http.request({ port: server.address().port, host: '127.0.0.1', path: '/', agent }, (res) => {
            log('response ' + res.statusCode + at());
            res.on('data', (d) => log('data ' + d.length));
            // (no timer: the socket closes in the next iteration, which a 0 ms timer would race)
            res.on('end', () => { log('end'); markers('in end', false); });
            res.on('close', () => { log('res close' + at()); server.close(); });
          });
          r.on('close', () => log('req close' + at()));
          r.end();
        });
      },
      'http-response-ticks'() {
        // 'end' on a nextTick: a 'data' listener's tick runs before it.
        const server = http.createServer((req, res) => { res.write('a'); setTimeout(() => res.end('bc'), 20); });
        server.listen(0, '127.0.0.1', () => {
          const agent = new http.Agent({ keepAlive: true });
          const r = http.request({ port: server.address().port, host: '127.0.0.1', path: '/', agent }, (res) => {
            res.on('data', (d) => {
              log('data ' + d.length + at());
              process.nextTick(() => log('data ' + d.length + ' nextTick'));
              Promise.resolve().then(() => log('data ' + d.length + ' promise'));
            });
            res.on('end', () => log('end' + at()));
            res.on('close', () => { log('res close' + at()); agent.destroy(); server.close(); });
          });
          r.on('close', () => log('req close' + at()));
          r.end();
        });
      },
      'http-server-keeps-open'() {
        // A server that answers 'Connection: close' but keeps its side open (half-open, it never ends):
        // the client's socket ends and is destroyed once its end is written (destroySoon), so its
        // 'close' does not wait for the server, which is closed from there.
        let conn;
        const server = net.createServer({ allowHalfOpen: true }, (c) => {
          conn = c;
          c.once('data', () => c.write('HTTP/1.1 200 OK\\r\\nConnection: close\\r\\nContent-Length: 2\\r\\n\\r\\nok'));
        });
        server.listen(0, '127.0.0.1', () => {
          const r = http.request({ port: server.address().port, host: '127.0.0.1', path: '/' }, (res) => {
            log('response ' + res.statusCode + at());
            res.on('data', (d) => log('data ' + d.length));
            res.on('end', () => log('end'));
            res.on('close', () => log('res close' + at()));
          });
          r.on('close', () => { log('req close' + at()); conn.destroy(); server.close(); });
          r.end();
        });
      },
      'http-server-cut'() {
        const server = http.createServer((req, res) => {
          res.writeHead(200, { 'content-length': '10' });
          res.write('hel');
          setTimeout(() => res.socket.destroy(), 20);
        });
        server.listen(0, '127.0.0.1', () => {
          const r = http.request({ port: server.address().port, host: '127.0.0.1', path: '/' }, (res) => {
            log('response ' + res.statusCode + at());
            res.on('data', (d) => log('data ' + d.length));
            res.on('end', () => log('end (never)'));
            res.on('aborted', () => { log('aborted' + at()); markers('in aborted', false); });
            res.on('error', (e) => log('res error ' + e.code + ' ' + e.message + at()));
            res.on('close', () => { log('res close' + at()); server.close(); });
          });
          r.on('error', (e) => log('req error (never) ' + e.code));
          r.on('close', () => log('req close' + at()));
          r.end();
        });
      },
      'http-server-hangup'() {
        const server = http.createServer((req, res) => req.socket.destroy());
        server.listen(0, '127.0.0.1', () => {
          const r = http.request({ port: server.address().port, host: '127.0.0.1', path: '/' }, () => log('response (never)'));
          r.on('error', (e) => { log('error ' + e.code + ' ' + e.message + at()); markers('in error'); });
          r.on('close', () => { log('close' + at()); server.close(); });
          r.end();
        });
      },
      'http-response-destroy'() {
        const server = http.createServer((req, res) => { res.writeHead(200, { 'content-length': '10' }); res.write('hel'); });
        server.listen(0, '127.0.0.1', () => {
          const r = http.request({ port: server.address().port, host: '127.0.0.1', path: '/' }, (res) => {
            log('response ' + res.statusCode + at());
            res.on('data', (d) => {
              log('data ' + d.length);
              res.destroy(new Error('gone'));
              markers('after destroy', false);
            });
            res.on('aborted', () => log('aborted' + at()));
            res.on('error', (e) => log('res error ' + e.message + at()));
            res.on('close', () => { log('res close' + at()); server.close(); });
          });
          r.on('error', (e) => log('req error ' + e.message + at()));
          r.on('close', () => log('req close' + at()));
          r.end();
        });
      },
    };
    scenarios[process.argv[1]]();
    """

/// " @TYPE<TRIGGERTYPE": the types of the async resource the current callback runs in and of its trigger
/// (node's `at()`).
typealias At = () -> String

private let scenarios: [(name: String, run: @Sendable (Log, @escaping At) throws -> Void, expected: [String])] = [
    (
        "tls-refused",
        { log, at in
            withFreePort { port in
                var o = TLSOptions()
                o.rejectUnauthorized = false
                let s = try TLS.connect(port: port, host: "127.0.0.1", options: o)
                s.onError { e in
                    log("error \(e.code) \(e.syscall)\(at())")
                    markers(log, "in error")
                }
                s.onClose { hadError in log("close \(hadError)\(at())") }
            }
        },
        [
            "error ECONNREFUSED connect @TickObject<TCPCONNECTWRAP", "in error nextTick", "in error promise", "in error immediate",
            "close true @TCPWRAP<TickObject", "in error timeout",
        ]
    ),
    (
        "tls-destroy",
        { log, at in
            withFreePort { port in
                var o = TLSOptions()
                o.rejectUnauthorized = false
                let s = try TLS.connect(port: port, host: "127.0.0.1", options: o)
                s.onError { e in log("error \(e.message)\(at())") }
                s.onClose { hadError in log("close \(hadError)\(at())") }
                s.destroy(NetError(code: "ERR_TEST", syscall: "destroy", asyncID: s.asyncID, message: "boom"))
                markers(log, "after destroy", timer: false)  // set in the close phase: a timer's order would be a race
            }
        },
        [
            "error boom @TickObject<TickObject", "after destroy nextTick", "after destroy promise", "after destroy immediate",
            "close true @TCPWRAP<TickObject",
        ]
    ),
    (
        // A socket's 'end' runs on a nextTick (Node's endReadableNT), not in the read callback.
        "tcp-end",
        { log, at in
            let server = Server()
            server.onConnection { c in c.end("bye") }
            server.listen(port: 0, host: "127.0.0.1") {
                let s = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                s.onData { log("data \($0.count)\(at())") }
                s.onEnd {
                    log("end\(at())")
                    markers(log, "in end", timer: false)
                }
                s.onClose { hadError in
                    log("close \(hadError)\(at())")
                    server.close()
                }
            }
        },
        [
            "data 3 @TCPWRAP<TickObject", "end @TickObject<TCPWRAP", "in end nextTick", "in end promise", "in end immediate",
            "close false @TCPWRAP<TickObject",
        ]
    ),
    (
        "http-refused",
        { log, at in
            withFreePort { port in
                let r = HTTP.request(host: "127.0.0.1", port: port, path: "/")
                r.onError { e in
                    log("error \(e.code) \(e.syscall)\(at())")
                    markers(log, "in error")
                }
                r.onClose { log("close\(at())") }
                r.end()
            }
        },
        [
            "error ECONNREFUSED connect @TickObject<TCPCONNECTWRAP", "in error nextTick", "in error promise", "in error immediate",
            "close @TCPWRAP<TickObject", "in error timeout",
        ]
    ),
    (
        "http-destroy",
        { log, at in
            withFreePort { port in
                let r = HTTP.request(host: "127.0.0.1", port: port, path: "/")
                r.onError { e in log("error \(e.message)\(at())") }
                r.onClose { log("close\(at())") }
                r.destroy(NetError(code: "ERR_TEST", syscall: "destroy", asyncID: r.asyncID, message: "boom"))
                markers(log, "after destroy", timer: false)
            }
        },
        [
            "error boom @TickObject<TickObject", "close @TickObject<TickObject", "after destroy nextTick", "after destroy promise",
            "after destroy immediate",
        ]
    ),
    (
        "http-destroy-ended",
        { log, at in
            withFreePort { port in
                let r = HTTP.request(host: "127.0.0.1", port: port, path: "/")
                r.onError { e in log("error \(e.code) \(e.message)\(at())") }
                r.onClose { log("close\(at())") }
                r.end()
                r.destroy()
                markers(log, "after destroy", timer: false)
            }
        },
        [
            "error ECONNRESET socket hang up @TickObject<TickObject", "close @TickObject<TickObject", "after destroy nextTick",
            "after destroy promise", "after destroy immediate",
        ]
    ),
    (
        "http-response-keepalive",
        { log, at in
            let server = HTTP.createServer { _, res in res.end("hello") }
            server.listen(port: 0, host: "127.0.0.1") {
                let agent = Agent(keepAlive: true)
                let r = HTTP.request(host: "127.0.0.1", port: server.address()!.port, path: "/", agent: agent) { res in
                    log("response \(res.statusCode)\(at())")
                    res.onData { log("data \($0.count)") }
                    res.onEnd {
                        log("end")
                        markers(log, "in end")
                    }
                    res.onClose {
                        log("res close\(at())")
                        agent.destroy()
                        server.close()
                    }
                }
                r.onClose { log("req close\(at())") }
                r.end()
            }
        },
        [
            "response 200 @HTTPCLIENTREQUEST<TickObject", "data 5", "end", "req close @TickObject<TCPWRAP", "in end nextTick",
            "res close @TickObject<TickObject", "in end promise", "in end immediate", "in end timeout",
        ]
    ),
    (
        "http-response-close",
        { log, at in
            let server = HTTP.createServer { _, res in res.end("hello") }
            server.listen(port: 0, host: "127.0.0.1") {
                let r = HTTP.request(host: "127.0.0.1", port: server.address()!.port, path: "/", agent: Agent(keepAlive: false)) { res in
                    log("response \(res.statusCode)\(at())")
                    res.onData { log("data \($0.count)") }
                    res.onEnd {
                        log("end")
                        markers(log, "in end", timer: false)  // the socket closes in the next iteration: a timer would race it
                    }
                    res.onClose {
                        log("res close\(at())")
                        server.close()
                    }
                }
                r.onClose { log("req close\(at())") }
                r.end()
            }
        },
        [
            "response 200 @HTTPCLIENTREQUEST<TickObject", "data 5", "end", "in end nextTick", "res close @TickObject<TickObject", "in end promise",
            "in end immediate", "req close @TCPWRAP<TickObject",
        ]
    ),
    (
        // 'end' on a nextTick: a 'data' listener's tick runs before it.
        "http-response-ticks",
        { log, at in
            let server = HTTP.createServer { _, res in
                res.write("a")
                setTimeout(20) { res.end("bc") }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let agent = Agent(keepAlive: true)
                let r = HTTP.request(host: "127.0.0.1", port: server.address()!.port, path: "/", agent: agent) { res in
                    res.onData { d in
                        log("data \(d.count)\(at())")
                        nextTick { log("data \(d.count) nextTick") }
                        Promise<Void>.resolve(()).then { log("data \(d.count) promise") }
                    }
                    res.onEnd { log("end\(at())") }
                    res.onClose {
                        log("res close\(at())")
                        agent.destroy()
                        server.close()
                    }
                }
                r.onClose { log("req close\(at())") }
                r.end()
            }
        },
        [
            "data 1 @TickObject<HTTPCLIENTREQUEST", "data 1 nextTick", "data 1 promise", "data 2 @HTTPCLIENTREQUEST<TickObject", "data 2 nextTick",
            "end @TickObject<HTTPCLIENTREQUEST", "req close @TickObject<TCPWRAP", "res close @TickObject<TickObject", "data 2 promise",
        ]
    ),
    (
        "http-server-keeps-open",
        { log, at in
            // A server that answers 'Connection: close' but keeps its side open (half-open, it never ends):
            // the client's socket ends and is destroyed once its end is written (destroySoon), so its
            // 'close' does not wait for the server, which is closed from there.
            let server = Server()
            let conn = LockedValue<Socket?>(nil)
            server.onConnection { c in
                c.allowHalfOpen = true
                conn.withLock { $0 = c }
                c.onData { _ in c.write("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok") }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let r = HTTP.request(host: "127.0.0.1", port: server.address()!.port, path: "/") { res in
                    log("response \(res.statusCode)\(at())")
                    res.onData { log("data \($0.count)") }
                    res.onEnd { log("end") }
                    res.onClose { log("res close\(at())") }
                }
                r.onClose {
                    log("req close\(at())")
                    conn.withLock { $0 }?.destroy()
                    server.close()
                }
                r.end()
            }
        },
        ["response 200 @HTTPCLIENTREQUEST<TickObject", "data 2", "end", "res close @TickObject<TickObject", "req close @TCPWRAP<TickObject"]
    ),
    (
        "http-server-cut",
        { log, at in
            let server = HTTP.createServer { _, res in
                res.writeHead(200, [("content-length", "10")])
                res.write("hel")
                setTimeout(20) { res.socket.destroy() }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let r = HTTP.request(host: "127.0.0.1", port: server.address()!.port, path: "/") { res in
                    log("response \(res.statusCode)\(at())")
                    res.onData { log("data \($0.count)") }
                    res.onEnd { log("end (never)") }
                    res.onAborted {
                        log("aborted\(at())")
                        markers(log, "in aborted", timer: false)
                    }
                    res.onError { e in log("res error \(e.code) \(e.message)\(at())") }
                    res.onClose {
                        log("res close\(at())")
                        server.close()
                    }
                }
                r.onError { e in log("req error (never) \(e.code)") }
                r.onClose { log("req close\(at())") }
                r.end()
            }
        },
        [
            "response 200 @HTTPCLIENTREQUEST<TickObject", "data 3", "aborted @TCPWRAP<TickObject", "req close @TCPWRAP<TickObject",
            "in aborted nextTick", "res error ECONNRESET aborted @TickObject<TickObject", "res close @TickObject<TickObject", "in aborted promise",
            "in aborted immediate",
        ]
    ),
    (
        "http-server-hangup",
        { log, at in
            let server = HTTP.createServer { req, _ in req.socket.destroy() }
            server.listen(port: 0, host: "127.0.0.1") {
                let r = HTTP.request(host: "127.0.0.1", port: server.address()!.port, path: "/") { _ in log("response (never)") }
                r.onError { e in
                    log("error \(e.code) \(e.message)\(at())")
                    markers(log, "in error")
                }
                r.onClose {
                    log("close\(at())")
                    server.close()
                }
                r.end()
            }
        },
        [
            "error ECONNRESET socket hang up @TickObject<TCPWRAP", "in error nextTick", "in error promise", "in error immediate",
            "close @TCPWRAP<TickObject", "in error timeout",
        ]
    ),
    (
        "http-response-destroy",
        { log, at in
            let server = HTTP.createServer { _, res in
                res.writeHead(200, [("content-length", "10")])
                res.write("hel")
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let r = HTTP.request(host: "127.0.0.1", port: server.address()!.port, path: "/") { res in
                    log("response \(res.statusCode)\(at())")
                    res.onData {
                        log("data \($0.count)")
                        res.destroy(NetError(code: "ERR_TEST", syscall: "destroy", asyncID: .none, message: "gone"))
                        markers(log, "after destroy", timer: false)
                    }
                    res.onAborted { log("aborted\(at())") }
                    res.onError { e in log("res error \(e.message)\(at())") }
                    res.onClose {
                        log("res close\(at())")
                        server.close()
                    }
                }
                r.onError { e in log("req error \(e.message)\(at())") }
                r.onClose { log("req close\(at())") }
                r.end()
            }
        },
        [
            "response 200 @HTTPCLIENTREQUEST<TickObject", "data 3", "aborted @TickObject<HTTPCLIENTREQUEST", "req error gone @TickObject<TickObject",
            "after destroy nextTick", "res error gone @TickObject<TickObject", "res close @TickObject<TickObject", "after destroy promise",
            "after destroy immediate", "req close @TCPWRAP<TickObject",
        ]
    ),
]

@Suite("Error order of TCP end, TLS and HTTP, as in Node")
struct ErrorOrderTests {
    @Test("each scenario prints Node's order", arguments: scenarios.map(\.name))
    func scenario(_ name: String) {
        let s = scenarios.first { $0.name == name }!
        let (lines, hook) = runTraced { log, hook in
            try s.run(log) {
                let r = hook.resource(executionAsyncID())
                return " @" + (r?.type ?? "?") + "<" + (r.flatMap { hook.resource($0.trigger)?.type } ?? "undefined")
            }
        }
        #expect(lines == s.expected)
        #expect(hook.problems == [])
        #expect(hook.undestroyed == [])
    }

    @Test("node v20 prints the same lines for each scenario")
    func nodeAgrees() throws {
        let node = try #require(
            (["/usr/bin/node", "/usr/local/bin/node"] as [String]).first { FileManager.default.isExecutableFile(atPath: $0) },
            "node is not installed (tools/install-deps.sh installs it)")
        for s in scenarios {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: node)
            p.arguments = ["-e", nodeScript, s.name]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            #expect(lines == s.expected, "node \(s.name)")
        }
    }
}
