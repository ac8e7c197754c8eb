// Issue 13 item 9: every handle type reports its failures and ends as Node v20 does — 'error' on a nextTick
// right after the failure, 'close' later (the close phase for sockets, a tick for servers and UDP, the
// callback completing a child's count) — and a socket's 'end', an HTTP request's and response's 'close',
// 'aborted' and 'end' come when Node's do: TCP, Unix sockets, servers, UDP, child processes, fs streams,
// TLS and HTTP, each checked line for line against the lines node itself prints for the same script. The
// event lines also name the async resource they ran in and its trigger (`@TYPE<TRIGGERTYPE`, from an async
// hook: executionAsyncId's init), which node must print too.
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

/// A server's request and response: every event a user handles, with where it ran (node's `watch`).
private func watch(_ log: Log, _ at: @escaping At, _ req: IncomingMessage, _ res: ServerResponse) {
    req.onData { log("req data \($0.count)\(at())") }
    req.onEnd { log("req end\(at())") }
    req.onAborted { log("req aborted\(at())") }
    req.onError { e in log("req error \(e.code) \(e.message)\(at())") }
    req.onClose { log("req close\(at())") }
    res.onFinish { log("res finish\(at())") }
    res.onClose { log("res close\(at())") }
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
    const dgram = require('dgram'), childProcess = require('child_process'), fs = require('fs');
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
    // A server's request and response: every event a user handles.
    const watch = (req, res) => {
      req.on('data', (d) => log('req data ' + d.length + at()));
      req.on('end', () => log('req end' + at()));
      req.on('aborted', () => log('req aborted' + at()));
      req.on('error', (e) => log('req error ' + e.code + ' ' + e.message + at()));
      req.on('close', () => log('req close' + at()));
      res.on('finish', () => log('res finish' + at()));
      res.on('close', () => log('res close' + at()));
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
      'net-refused'() { withFreePort((port) => {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', (e) => { log('error ' + e.code + ' ' + e.syscall + at()); markers('in error'); });
        s.on('close', (hadError) => log('close ' + hadError + at()));
      }); },
      'net-destroy'() {
        const server = net.createServer(() => {});
        server.listen(0, '127.0.0.1', () => {
          const s = net.connect(server.address().port, '127.0.0.1', () => {
            log('connect' + at());
            s.destroy(new Error('boom'));
            markers('after destroy');
            server.close();
          });
          s.on('error', (e) => log('error ' + e.message + at()));
          s.on('close', (hadError) => log('close ' + hadError + at()));
        });
      },
      'net-listen-inuse'() {
        const a = net.createServer();
        a.listen(0, () => {
          const b = net.createServer();
          b.on('error', (e) => { log('error ' + e.code + ' ' + e.syscall + at()); a.close(() => log('a close' + at())); });
          b.on('close', () => log('b close (never: it did not listen)'));
          b.listen(a.address().port);
          markers('after listen', false);
        });
      },
      'unix-enoent'() {
        const s = net.connect('/nonexistent-asynctrace-dir/missing.sock');
        s.on('error', (e) => log('error ' + e.code + ' ' + e.syscall + at()));
        s.on('close', (hadError) => log('close ' + hadError + at()));
        markers('after connect', false);
      },
      'udp-errors'() {
        const a = dgram.createSocket('udp4');
        a.bind(0, '127.0.0.1', () => {
          const b = dgram.createSocket('udp4');
          b.on('error', (e) => { log('bind error ' + e.code + ' ' + e.syscall + at()); b.close(() => log('b close' + at())); });
          b.bind(a.address().port, '127.0.0.1');
          markers('after bind', false);
          // Broadcast without SO_BROADCAST: EACCES from sendto.
          a.send('x', 9, '255.255.255.255', (e) => { log('send ' + (e && e.code) + at()); a.close(() => log('a close' + at())); });
        });
      },
      'spawn-enoent'() {
        const c = childProcess.spawn('/nonexistent/program');
        c.on('error', (e) => log('error ' + e.code + ' ' + e.syscall + at()));
        c.on('exit', () => log('exit (never)'));
        c.on('close', (code, signal) => {
          log('close ' + code + ' ' + signal + at());
          const d = childProcess.spawn('/nonexistent/program', [], { stdio: 'ignore' });
          d.on('error', (e) => log('no stdio: error ' + e.code + at()));
          d.on('close', (code, signal) => log('no stdio: close ' + code + ' ' + signal + at()));
          setImmediate(() => log('no stdio: immediate'));
        });
        markers('after spawn', false);
      },
      'spawn-exit-nostdio'() {
        // Without stdio pipes 'close' comes in the exit callback itself, right after 'exit'.
        const c = childProcess.spawn('/bin/sh', ['-c', 'exit 3'], { stdio: 'ignore' });
        c.on('exit', (code) => { log('exit ' + code + at()); markers('in exit'); });
        c.on('close', (code) => log('close ' + code + at()));
      },
      'fs-streams'() {
        const r = fs.createReadStream('/nonexistent-asynctrace-dir/missing.txt');
        r.on('error', (e) => { log('read error ' + e.code + at()); markers('in read error', false); });
        r.on('close', () => {
          log('read close' + at());
          const d = fs.createReadStream('/');  // opens; the first read fails (EISDIR), after the fd closed
          d.on('data', () => log('data (never)'));
          d.on('error', (e) => log('dir error ' + e.code + at()));
          d.on('close', () => {
            log('dir close' + at());
            const w = fs.createWriteStream('/dev/full');
            w.on('error', (e) => log('write error ' + e.code + at()));
            w.on('close', () => log('write close' + at()));
            w.write('x');
          });
        });
        process.nextTick(() => log('after create nextTick'));
      },
      'tcp-end'() {
        const server = net.createServer((c) => c.end('bye'));
        server.listen(0, '127.0.0.1', () => {
          const s = net.connect(server.address().port, '127.0.0.1');
          s.on('data', (d) => log('data ' + d.length + at()));
          s.on('end', () => { log('end' + at()); markers('in end', false); });
          s.on('close', (hadError) => { log('close ' + hadError + at()); server.close(); });
        });
      },
      'http-client-error'() {
        const server = http.createServer(() => log('request (never)'));
        server.on('clientError', (e, socket) => {
          log('clientError ' + e.code + at());
          markers('in clientError', false);  // (a timer would race the client's close)
          socket.end('HTTP/1.1 400 Bad Request\\r\\nConnection: close\\r\\n\\r\\n');
          server.close();
        });
        server.listen(0, '127.0.0.1', () => {
          const c = net.connect(server.address().port, '127.0.0.1', () => c.write('GET / HTTP/1.1\\r\\nBad Header Line\\r\\n\\r\\n'));
          c.on('data', () => {});
          c.on('close', () => log('client close' + at()));
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
      'http-server-request'() {
        const server = http.createServer((req, res) => {
          log('request ' + req.method + at());
          watch(req, res);
          req.on('end', () => { markers('in end', false); res.end('ok'); markers('after res end', false); });
        });
        server.listen(0, '127.0.0.1', () => {
          const c = net.connect(server.address().port, '127.0.0.1', () => c.write('POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\nConnection: close\\r\\n\\r\\nhello'));
          c.on('data', () => {});
          c.on('close', () => { log('client close' + at()); server.close(); });
        });
      },
      'http-server-body-pieces'() {
        const server = http.createServer((req, res) => {
          log('request' + at());
          watch(req, res);
          req.on('data', () => markers('in data', false));
          req.on('end', () => { res.end('ok'); server.close(); });
        });
        server.listen(0, '127.0.0.1', () => {
          const c = net.connect(server.address().port, '127.0.0.1', () => {
            c.write('POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\nConnection: close\\r\\n\\r\\nhel');
            setTimeout(() => c.write('lo'), 20);
          });
          c.on('data', () => {});
        });
      },
      'http-server-unread'() {
        const server = http.createServer((req, res) => {
          log('request' + at());
          req.on('end', () => log('req end' + at()));
          req.on('close', () => { log('req close' + at()); server.close(); });
          res.on('finish', () => log('res finish' + at()));
          res.on('close', () => log('res close' + at()));
          res.end('ok');
          markers('after res end', false);
        });
        server.listen(0, '127.0.0.1', () => {
          const c = net.connect(server.address().port, '127.0.0.1', () => c.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'));
          c.on('data', () => {});
        });
      },
      'http-server-keepalive'() {
        let n = 0;
        const server = http.createServer((req, res) => {
          const k = ++n;
          log('request ' + k + at());
          watch(req, res);
          req.on('end', () => res.end('ok' + k));
        });
        server.listen(0, '127.0.0.1', () => {
          const c = net.connect(server.address().port, '127.0.0.1', () => c.write('GET /1 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));
          let got = 0;
          c.on('data', () => { if (++got === 1) c.write('GET /2 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); else c.end(); });
          c.on('close', () => { log('client close' + at()); server.close(); });
        });
      },
      'http-server-cut-body'() {
        let client;
        const server = http.createServer((req, res) => {
          log('request' + at());
          watch(req, res);
          req.on('data', () => client.destroy());
          req.on('aborted', () => markers('in aborted', false));
          req.on('close', () => server.close());
        });
        server.listen(0, '127.0.0.1', () => {
          client = net.connect(server.address().port, '127.0.0.1', () => client.write('POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 10\\r\\n\\r\\nhel'));
        });
      },
      'http-server-cut-response'() {
        let client;
        const server = http.createServer((req, res) => {
          log('request' + at());
          watch(req, res);
          res.writeHead(200, { 'content-length': '10' });
          res.write('hel');
          res.on('close', () => { markers('in res close', false); server.close(); });
        });
        server.listen(0, '127.0.0.1', () => {
          client = net.connect(server.address().port, '127.0.0.1', () => client.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));
          client.on('data', () => client.destroy());
        });
      },
      'http-client-finish'() {
        // A request's 'finish' once its socket took the bytes: in the connect callback on a new
        // connection, on the write's tick after the socket-assigning tick on a reused one.
        const server = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('ok')); });
        server.listen(0, '127.0.0.1', () => {
          const agent = new http.Agent({ keepAlive: true });
          const go = (k, then) => {
            const r = http.request({ port: server.address().port, host: '127.0.0.1', path: '/', method: 'POST', agent }, (res) => {
              log(k + ' response' + at());
              res.resume();
              res.on('end', () => log(k + ' res end' + at()));
              res.on('close', () => { log(k + ' res close' + at()); then(); });
            });
            r.on('finish', () => log(k + ' finish' + at()));
            r.on('close', () => log(k + ' req close' + at()));
            r.end('body');
            markers(k + ' after end', false);
          };
          go('a', () => go('b', () => { agent.destroy(); server.close(); }));
        });
      },
      'http-client-resource'() {
        // HTTPCLIENTREQUEST is made on the tick that assigns the socket, not where the request is made.
        const server = http.createServer((req, res) => res.end('ok'));
        server.listen(0, '127.0.0.1', () => {
          setTimeout(() => {
            const r = http.request({ port: server.address().port, host: '127.0.0.1', path: '/' }, (res) => {
              log('response' + at());
              res.on('data', (d) => log('data ' + d.length + at()));
              res.on('end', () => log('end' + at()));
              res.on('close', () => { log('res close' + at()); server.close(); });
            });
            r.on('close', () => log('req close' + at()));
            r.end();
          }, 1);
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
        "net-refused",
        { log, at in
            withFreePort { port in
                let s = Socket.connect(port: port, host: "127.0.0.1")
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
        "net-destroy",
        { log, at in
            let server = Server { _ in }
            server.listen(port: 0, host: "127.0.0.1") {
                let s = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                s.onConnect {
                    log("connect\(at())")
                    s.destroy(NetError(code: "ERR_TEST", syscall: "destroy", asyncID: s.asyncID, message: "boom"))
                    markers(log, "after destroy")
                    server.close()
                }
                s.onError { e in log("error \(e.message)\(at())") }
                s.onClose { hadError in log("close \(hadError)\(at())") }
            }
        },
        [
            "connect @TCPCONNECTWRAP<TCPWRAP", "error boom @TickObject<TCPCONNECTWRAP", "after destroy nextTick", "after destroy promise",
            "after destroy immediate", "close true @TCPWRAP<TickObject", "after destroy timeout",
        ]
    ),
    (
        "net-listen-inuse",
        { log, at in
            let a = Server()
            a.listen(port: 0) {
                let b = Server()
                b.onError { e in
                    log("error \(e.code) \(e.syscall)\(at())")
                    a.close { _ in log("a close\(at())") }
                }
                b.onClose { log("b close (never: it did not listen)") }
                b.listen(port: a.address()!.port)
                markers(log, "after listen", timer: false)
            }
        },
        [
            "error EADDRINUSE listen @TickObject<TCPSERVERWRAP", "after listen nextTick", "a close @TickObject<TCPSERVERWRAP", "after listen promise",
            "after listen immediate",
        ]
    ),
    (
        "unix-enoent",
        { log, at in
            let s = Socket.connect(path: "/nonexistent-asynctrace-dir/missing.sock")
            s.onError { e in log("error \(e.code) \(e.syscall)\(at())") }
            s.onClose { hadError in log("close \(hadError)\(at())") }
            markers(log, "after connect", timer: false)
        },
        [
            "after connect nextTick", "after connect promise", "error ENOENT connect @TickObject<PIPECONNECTWRAP", "after connect immediate",
            "close true @PIPEWRAP<ROOT",
        ]
    ),
    (
        "udp-errors",
        { log, at in
            let a = UDPSocket(.udp4)
            a.bind(port: 0, host: "127.0.0.1") {
                let b = UDPSocket(.udp4)
                b.onError { e in
                    log("bind error \(e.code) \(e.syscall)\(at())")
                    b.close { log("b close\(at())") }
                }
                b.bind(port: a.address()!.port, host: "127.0.0.1")
                markers(log, "after bind", timer: false)
                // Broadcast without SO_BROADCAST: EACCES from sendto.
                a.send("x", port: 9, host: "255.255.255.255") { e in
                    log("send \(e?.code ?? "null")\(at())")
                    a.close { log("a close\(at())") }
                }
            }
        },
        [
            "bind error EADDRINUSE bind @TickObject<TickObject", "after bind nextTick", "b close @TickObject<UDPWRAP",
            "send EACCES @TickObject<UDPWRAP", "a close @TickObject<UDPWRAP", "after bind promise", "after bind immediate",
        ]
    ),
    (
        "spawn-enoent",
        { log, at in
            let c = ChildProcess.spawn("/nonexistent/program")
            c.onError { e in log("error \(e.code) \(e.syscall)\(at())") }
            c.onExit { _, _ in log("exit (never)") }
            c.onClose { code, signal in
                log("close \(code.map { "\($0)" } ?? "null") \(signal ?? "null")\(at())")
                let d = ChildProcess.spawn("/nonexistent/program", stdio: [.ignore, .ignore, .ignore])
                d.onError { e in log("no stdio: error \(e.code)\(at())") }
                d.onClose { code, signal in log("no stdio: close \(code.map { "\($0)" } ?? "null") \(signal ?? "null")\(at())") }
                setImmediate { log("no stdio: immediate") }
            }
            markers(log, "after spawn", timer: false)
        },
        [
            "error ENOENT spawn /nonexistent/program @TickObject<ROOT", "after spawn nextTick", "after spawn promise", "after spawn immediate",
            "close -2 null @PIPEWRAP<ROOT", "no stdio: error ENOENT @TickObject<PIPEWRAP", "no stdio: close -2 null @TickObject<PIPEWRAP",
            "no stdio: immediate",
        ]
    ),
    (
        "spawn-exit-nostdio",
        { log, at in
            // Without stdio pipes 'close' comes in the exit callback itself, right after 'exit'.
            let c = ChildProcess.spawn("/bin/sh", ["-c", "exit 3"], stdio: [.ignore, .ignore, .ignore])
            c.onExit { code, _ in
                log("exit \(code.map { "\($0)" } ?? "null")\(at())")
                markers(log, "in exit")
            }
            c.onClose { code, _ in log("close \(code.map { "\($0)" } ?? "null")\(at())") }
        },
        ["exit 3 @PROCESSWRAP<ROOT", "close 3 @PROCESSWRAP<ROOT", "in exit nextTick", "in exit promise", "in exit immediate", "in exit timeout"]
    ),
    (
        "fs-streams",
        { log, at in
            let code = { (e: any Error) in (e as? SystemError)?.code ?? "\(e)" }
            let r = FS.createReadStream("/nonexistent-asynctrace-dir/missing.txt")
            r.onError = { e in
                log("read error \(code(e))\(at())")
                markers(log, "in read error", timer: false)
            }
            r.onClose = {
                log("read close\(at())")
                let d = FS.createReadStream("/")  // opens; the first read fails (EISDIR), after the fd closed
                d.onData = { _ in log("data (never)") }
                d.onError = { e in log("dir error \(code(e))\(at())") }
                d.onClose = {
                    log("dir close\(at())")
                    let w = FS.createWriteStream("/dev/full")
                    w.onError = { e in log("write error \(code(e))\(at())") }
                    w.onClose = { log("write close\(at())") }
                    w.write(Array("x".utf8))
                }
            }
            nextTick { log("after create nextTick") }
        },
        [
            "after create nextTick", "read error ENOENT @TickObject<TickObject", "read close @TickObject<TickObject", "in read error nextTick",
            "in read error promise", "in read error immediate", "dir error EISDIR @TickObject<FSREQCALLBACK", "dir close @TickObject<FSREQCALLBACK",
            "write error ENOSPC @TickObject<FSREQCALLBACK", "write close @TickObject<FSREQCALLBACK",
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
        "http-client-error",
        { log, at in
            let server = HTTP.createServer { _, _ in log("request (never)") }
            server.onClientError { e, socket in
                log("clientError \(e.code)\(at())")
                markers(log, "in clientError", timer: false)  // (a timer would race the client's close)
                socket.end(Array("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n".utf8))
                server.close()
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                c.onConnect { c.write("GET / HTTP/1.1\r\nBad Header Line\r\n\r\n") }
                c.onData { _ in }
                c.onClose { _ in log("client close\(at())") }
            }
        },
        [
            "clientError HPE_INVALID_HEADER_TOKEN @HTTPINCOMINGMESSAGE<TCPWRAP", "in clientError nextTick", "in clientError promise",
            "in clientError immediate", "client close @TCPWRAP<TickObject",
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
    (
        "http-server-request",
        { log, at in
            let server = HTTP.createServer()
            server.onRequest { req, res in
                log("request \(req.method)\(at())")
                watch(log, at, req, res)
                req.onEnd {
                    markers(log, "in end", timer: false)
                    res.end("ok")
                    markers(log, "after res end", timer: false)
                }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                c.onConnect { c.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello") }
                c.onData { _ in }
                c.onClose { _ in
                    log("client close\(at())")
                    server.close()
                }
            }
        },
        [
            "request POST @HTTPINCOMINGMESSAGE<TCPWRAP", "req data 5 @TickObject<HTTPINCOMINGMESSAGE", "req end @TickObject<HTTPINCOMINGMESSAGE",
            "in end nextTick", "res finish @TickObject<TickObject", "after res end nextTick", "res close @TickObject<TickObject",
            "req close @TickObject<TickObject", "in end promise", "after res end promise", "in end immediate", "after res end immediate",
            "client close @TCPWRAP<TickObject",
        ]
    ),
    (
        // A body piece arriving while the request flows is emitted at once, in the parser's callback.
        "http-server-body-pieces",
        { log, at in
            let server = HTTP.createServer()
            server.onRequest { req, res in
                log("request\(at())")
                watch(log, at, req, res)
                req.onData { _ in markers(log, "in data", timer: false) }
                req.onEnd {
                    res.end("ok")
                    server.close()
                }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                c.onConnect {
                    c.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhel")
                    setTimeout(20) { c.write("lo") }
                }
                c.onData { _ in }
            }
        },
        [
            "request @HTTPINCOMINGMESSAGE<TCPWRAP", "req data 3 @TickObject<HTTPINCOMINGMESSAGE", "in data nextTick", "in data promise",
            "in data immediate", "req data 2 @HTTPINCOMINGMESSAGE<TCPWRAP", "in data nextTick", "in data promise",
            "req end @TickObject<HTTPINCOMINGMESSAGE", "res finish @TickObject<TickObject", "res close @TickObject<TickObject",
            "req close @TickObject<TickObject", "in data immediate",
        ]
    ),
    (
        // Answered without reading: the response's finish dumps the request (Node's _dump), then it ends.
        "http-server-unread",
        { log, at in
            let server = HTTP.createServer()
            server.onRequest { req, res in
                log("request\(at())")
                req.onEnd { log("req end\(at())") }
                req.onClose {
                    log("req close\(at())")
                    server.close()
                }
                res.onFinish { log("res finish\(at())") }
                res.onClose { log("res close\(at())") }
                res.end("ok")
                markers(log, "after res end", timer: false)
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                c.onConnect { c.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") }
                c.onData { _ in }
            }
        },
        [
            "request @HTTPINCOMINGMESSAGE<TCPWRAP", "res finish @TickObject<HTTPINCOMINGMESSAGE", "after res end nextTick",
            "res close @TickObject<TickObject", "req end @TickObject<TickObject", "req close @TickObject<TickObject", "after res end promise",
            "after res end immediate",
        ]
    ),
    (
        "http-server-keepalive",
        { log, at in
            var n = 0
            let server = HTTP.createServer()
            server.onRequest { req, res in
                n += 1
                let k = n
                log("request \(k)\(at())")
                watch(log, at, req, res)
                req.onEnd { res.end("ok\(k)") }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                c.onConnect { c.write("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n") }
                var got = 0
                c.onData { _ in
                    got += 1
                    if got == 1 { c.write("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n") } else { c.end() }
                }
                c.onClose { _ in
                    log("client close\(at())")
                    server.close()
                }
            }
        },
        [
            "request 1 @HTTPINCOMINGMESSAGE<TCPWRAP", "req end @TickObject<TickObject", "res finish @TickObject<TickObject",
            "res close @TickObject<TickObject", "req close @TickObject<TickObject", "request 2 @HTTPINCOMINGMESSAGE<TCPWRAP",
            "req end @TickObject<TickObject", "res finish @TickObject<TickObject", "res close @TickObject<TickObject",
            "req close @TickObject<TickObject", "client close @TCPWRAP<TickObject",
        ]
    ),
    (
        // The client goes away mid-body: 'aborted' and the response's 'close' in the socket's close
        // callback, the request's ECONNRESET 'error' and 'close' two ticks later.
        "http-server-cut-body",
        { log, at in
            var client: Socket?
            let server = HTTP.createServer()
            server.onRequest { req, res in
                log("request\(at())")
                watch(log, at, req, res)
                req.onData { _ in client?.destroy() }
                req.onAborted { markers(log, "in aborted", timer: false) }
                req.onClose { server.close() }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                client = c
                c.onConnect { c.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel") }
            }
        },
        [
            "request @HTTPINCOMINGMESSAGE<TCPWRAP", "req data 3 @TickObject<HTTPINCOMINGMESSAGE", "req aborted @TCPWRAP<TCPSERVERWRAP",
            "res close @TCPWRAP<TCPSERVERWRAP", "in aborted nextTick", "req error ECONNRESET aborted @TickObject<TickObject",
            "req close @TickObject<TickObject", "in aborted promise", "in aborted immediate",
        ]
    ),
    (
        // The client goes away mid-response: the request had ended and closed; the response's 'close' in
        // the socket's close callback.
        "http-server-cut-response",
        { log, at in
            let server = HTTP.createServer()
            server.onRequest { req, res in
                log("request\(at())")
                watch(log, at, req, res)
                res.writeHead(200, [("content-length", "10")])
                res.write("hel")
                res.onClose {
                    markers(log, "in res close", timer: false)
                    server.close()
                }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let c = Socket.connect(port: server.address()!.port, host: "127.0.0.1")
                c.onConnect { c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }
                c.onData { _ in c.destroy() }
            }
        },
        [
            "request @HTTPINCOMINGMESSAGE<TCPWRAP", "req end @TickObject<TickObject", "req close @TickObject<TickObject",
            "res close @TCPWRAP<TCPSERVERWRAP", "in res close nextTick", "in res close promise", "in res close immediate",
        ]
    ),
    (
        // A request's 'finish' once its socket took the bytes: in the connect callback on a new
        // connection, on the write's tick after the socket-assigning tick on a reused one.
        "http-client-finish",
        { log, at in
            let server = HTTP.createServer { req, res in
                req.resume()
                req.onEnd { res.end("ok") }
            }
            server.listen(port: 0, host: "127.0.0.1") {
                let agent = Agent(keepAlive: true)
                func go(_ k: String, _ then: @escaping () -> Void) {
                    let r = HTTP.request(method: "POST", port: server.address()!.port, path: "/", agent: agent) { res in
                        log("\(k) response\(at())")
                        res.resume()
                        res.onEnd { log("\(k) res end\(at())") }
                        res.onClose {
                            log("\(k) res close\(at())")
                            then()
                        }
                    }
                    r.onFinish { log("\(k) finish\(at())") }
                    r.onClose { log("\(k) req close\(at())") }
                    r.end("body")
                    markers(log, "\(k) after end", timer: false)
                }
                go("a") {
                    go("b") {
                        agent.destroy()
                        server.close()
                    }
                }
            }
        },
        [
            "a after end nextTick", "a after end promise", "a finish @TCPCONNECTWRAP<TCPWRAP", "a after end immediate",
            "a response @HTTPCLIENTREQUEST<TickObject", "a res end @TickObject<TickObject", "a req close @TickObject<TCPWRAP",
            "a res close @TickObject<TickObject", "b after end nextTick", "b finish @TickObject<TickObject", "b after end promise",
            "b after end immediate", "b response @HTTPCLIENTREQUEST<TickObject", "b res end @TickObject<TickObject",
            "b req close @TickObject<TCPWRAP", "b res close @TickObject<TickObject",
        ]
    ),
    (
        // HTTPCLIENTREQUEST is made on the tick that assigns the socket, not where the request is made.
        "http-client-resource",
        { log, at in
            let server = HTTP.createServer { _, res in res.end("ok") }
            server.listen(port: 0, host: "127.0.0.1") {
                setTimeout(1) {
                    let r = HTTP.request(port: server.address()!.port, path: "/") { res in
                        log("response\(at())")
                        res.onData { log("data \($0.count)\(at())") }
                        res.onEnd { log("end\(at())") }
                        res.onClose {
                            log("res close\(at())")
                            server.close()
                        }
                    }
                    r.onClose { log("req close\(at())") }
                    r.end()
                }
            }
        },
        [
            "response @HTTPCLIENTREQUEST<TickObject", "data 2 @TickObject<HTTPCLIENTREQUEST", "end @TickObject<TickObject",
            "req close @TickObject<TCPWRAP", "res close @TickObject<TickObject",
        ]
    ),
]

@Suite("Error and close order of every handle type, as in Node")
struct ErrorOrderTests {
    @Test("each scenario prints Node's order", arguments: scenarios.map(\.name))
    func scenario(_ name: String) {
        let s = scenarios.first { $0.name == name }!
        let (lines, hook) = runTraced { log, hook in
            try s.run(log) {
                let r = hook.resource(executionAsyncID())
                // The top level has no init (node's script names id 1 ROOT).
                let name = { (id: AsyncID) in id == .root ? "ROOT" : hook.resource(id)?.type ?? "undefined" }
                return " @" + (r?.type ?? "?") + "<" + (r.map { name($0.trigger) } ?? "undefined")
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
