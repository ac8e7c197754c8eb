// Issue 13 item 9 for the protocol handles over the runtime's sockets: TLS and the HTTP client report a
// failure as Node v20 does — 'error' on a nextTick right after it, 'close' later in the close phase (after
// the immediates) — checked line for line against the lines node itself prints for the same script.
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
    const net = require('net'), tls = require('tls'), http = require('http');
    const log = (s) => console.log(s);
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
        s.on('error', (e) => { log('error ' + e.code + ' ' + e.syscall); markers('in error'); });
        s.on('close', (hadError) => log('close ' + hadError));
      }); },
      'tls-destroy'() { withFreePort((port) => {
        const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
        s.on('error', (e) => log('error ' + e.message));
        s.on('close', (hadError) => log('close ' + hadError));
        s.destroy(new Error('boom'));
        markers('after destroy', false);  // set in the close phase: a timer's order would be a race
      }); },
      'http-refused'() { withFreePort((port) => {
        const r = http.request({ port, host: '127.0.0.1', path: '/' });
        r.on('error', (e) => { log('error ' + e.code + ' ' + e.syscall); markers('in error'); });
        r.end();
      }); },
    };
    scenarios[process.argv[1]]();
    """

private let scenarios: [(name: String, run: @Sendable (Log) throws -> Void, expected: [String])] = [
    (
        "tls-refused",
        { log in
            withFreePort { port in
                var o = TLSOptions()
                o.rejectUnauthorized = false
                let s = try TLS.connect(port: port, host: "127.0.0.1", options: o)
                s.onError { e in
                    log("error \(e.code) \(e.syscall)")
                    markers(log, "in error")
                }
                s.onClose { hadError in log("close \(hadError)") }
            }
        },
        ["error ECONNREFUSED connect", "in error nextTick", "in error promise", "in error immediate", "close true", "in error timeout"]
    ),
    (
        "tls-destroy",
        { log in
            withFreePort { port in
                var o = TLSOptions()
                o.rejectUnauthorized = false
                let s = try TLS.connect(port: port, host: "127.0.0.1", options: o)
                s.onError { e in log("error \(e.message)") }
                s.onClose { hadError in log("close \(hadError)") }
                s.destroy(NetError(code: "ERR_TEST", syscall: "destroy", asyncID: s.asyncID, message: "boom"))
                markers(log, "after destroy", timer: false)  // set in the close phase: a timer's order would be a race
            }
        },
        ["error boom", "after destroy nextTick", "after destroy promise", "after destroy immediate", "close true"]
    ),
    (
        "http-refused",
        { log in
            withFreePort { port in
                let r = HTTP.request(host: "127.0.0.1", port: port, path: "/")
                r.onError { e in
                    log("error \(e.code) \(e.syscall)")
                    markers(log, "in error")
                }
                r.end()
            }
        },
        ["error ECONNREFUSED connect", "in error nextTick", "in error promise", "in error immediate", "in error timeout"]
    ),
]

@Suite("Error order of TLS and HTTP, as in Node")
struct ErrorOrderTests {
    @Test("each scenario prints Node's order", arguments: scenarios.map(\.name))
    func scenario(_ name: String) {
        let s = scenarios.first { $0.name == name }!
        let (lines, hook) = runTraced(s.run)
        #expect(lines == s.expected)
        #expect(hook.state.withLock { $0.problems } == [])
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
