// `asynctrace record node prog.js` end to end: a Node program of known structure, recorded by the
// real CLI with the real kernel probes (root), read back through the reader, the report's JSON and
// the exports' validators.
import Foundation
import Testing
import TraceFormat
import TraceReader

enum NodeRepo {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func executable(_ name: String) -> String {
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return name
    }

    static var node: String? {
        for p in ["/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"] where FileManager.default.isExecutableFile(atPath: p) {
            return p
        }
        return nil
    }
}

struct NodeToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

func runNodeTool(_ args: [String], timeout: TimeInterval = 120) throws -> NodeToolResult {
    let base = NSTemporaryDirectory() + "asynctrace-nodetest-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
    _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: base + ".out")
        try? FileManager.default.removeItem(atPath: base + ".err")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: args[0])
    p.arguments = Array(args.dropFirst())
    p.standardOutput = FileHandle(forWritingAtPath: base + ".out")
    p.standardError = FileHandle(forWritingAtPath: base + ".err")
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning { p.terminate() }
    p.waitUntilExit()
    return NodeToolResult(
        status: p.terminationStatus,
        stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
}

/// A Node program recorded and reported as most of these tests do: `source` written as `file` in a fresh
/// temporary directory, `asynctrace record <recordOptions> -o TRACE -- node SCRIPT`, then `report TRACE --json
/// <reportOptions>` (its JSON, or empty when it did not parse). The directory is removed after `body`, which
/// may read the trace or report it again.
struct RecordedNodeScript {
    var dir: String
    var script: String
    var trace: String
    var record: NodeToolResult
    var json: [String: Any]
}

func withRecordedNodeScript<T>(
    _ source: String, file: String, node: String, record recordOptions: [String], report reportOptions: [String] = [],
    _ body: (RecordedNodeScript) throws -> T
) throws -> T {
    let dir = NSTemporaryDirectory() + "asynctrace-node-\(file)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let script = dir + "/" + file, trace = dir + "/" + file + ".atrace"
    try source.write(toFile: script, atomically: true, encoding: .utf8)
    let rec = try runNodeTool([NodeRepo.executable("asynctrace"), "record"] + recordOptions + ["-o", trace, "--", node, script])
    let rep = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--json"] + reportOptions)
    let json = (try? JSONSerialization.jsonObject(with: Data(rep.stdout.utf8)) as? [String: Any]) ?? [:]
    return try body(RecordedNodeScript(dir: dir, script: script, trace: trace, record: rec, json: json))
}

/// An HTTP server whose handler defers its work through setImmediate; the /block request's deferred
/// callback reads a FIFO synchronously until a child writes to it ~500 ms later (the test wants >= 150 ms:
/// room for a loaded machine's slow spawn); a promise chain with
/// an fs callback; an interval left running; a worker thread whose timer callback spins for 40 ms.
/// The program prints the async ids the test looks for, then exits with process.exit (the interval
/// would keep it alive otherwise).
let nodeProgram = #"""
    const http = require('http');
    const fs = require('fs');
    const { spawn } = require('child_process');
    const { Worker } = require('worker_threads');
    const fifo = process.argv[2];
    const ids = {};
    const keepAlive = setInterval(() => {}, 60000);
    ids.interval = +keepAlive;  // a Timeout's primitive value is its async id
    const worker = new Worker(`
      const { parentPort } = require('worker_threads');
      setTimeout(function spin() {
        const t = Date.now(); while (Date.now() - t < 40) {}
        setImmediate(() => parentPort.postMessage('spun'));  // from a later callback: spin's after() is recorded
      }, 5);
    `, { eval: true });
    const workerDone = new Promise((resolve) => worker.once('message', resolve));
    const server = http.createServer((req, res) => {
      setImmediate(function deferred() {
        if (req.url === '/block') {
          const fd = fs.openSync(fifo, fs.constants.O_RDWR);  // O_RDWR: open never waits for a writer
          const b = Buffer.alloc(1);
          fs.readSync(fd, b, 0, 1, null);                    // blocks until the child writes
          fs.closeSync(fd);
        }
        res.end('ok\n');
      });
    });
    function get(port, path) {
      return new Promise((resolve) => http.get({ port, host: '127.0.0.1', path }, (r) => { r.resume(); r.on('end', resolve); }));
    }
    server.listen(0, '127.0.0.1', async () => {
      const port = server.address().port;
      await get(port, '/');
      spawn('/bin/sh', ['-c', 'sleep 0.5; printf x > "$0"', fifo], { stdio: 'ignore' });
      await get(port, '/block');
      const text = await Promise.resolve(__filename).then((f) => new Promise((resolve, reject) =>
        fs.readFile(f, 'utf8', (err, data) => (err ? reject(err) : resolve(data)))));
      await workerDone;
      await worker.terminate();
      server.close(() => {
        console.log(JSON.stringify({ ...ids, length: text.length }));
        process.exit(0);
      });
    });
    """#

struct NodeTrace {
    var inits: [UInt64: (type: String, trigger: UInt64, stream: Int)] = [:]
    var destroyed = Set<UInt64>()
    var befores: [UInt64: Int] = [:]
    var beforesByStream: [Int: [String]] = [:]
    var streams: [TraceStream] = []
}

func readNodeTrace(_ path: String) throws -> NodeTrace {
    let reader = try TraceReader(path: path)
    var t = NodeTrace()
    t.streams = reader.streams
    reader.events().forEach { s, e in
        switch e.kind {
        case .initResource: t.inits[e.u(0)] = (e.text, e.u(2), s)
        case .destroy: t.destroyed.insert(e.u(0))
        case .before:
            t.befores[e.u(0), default: 0] += 1
            if let i = t.inits[e.u(0)] { t.beforesByStream[s, default: []].append(i.type) }
        default: break
        }
    }
    return t
}

@Suite(.serialized) struct NodeRecordTests {
    static let kernelCapable = getuid() == 0 && FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux")

    /// Records the program; returns the trace's path (caller removes it), the program's printed ids and record's stderr.
    func record(extra: [String] = []) throws -> (trace: String, ids: [String: Any], stderr: String, dir: String) {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let script = dir + "/prog.js", fifo = dir + "/slow.fifo", trace = dir + "/node.atrace"
        try nodeProgram.write(toFile: script, atomically: true, encoding: .utf8)
        #expect(mkfifo(fifo, 0o600) == 0)
        if !Self.kernelCapable { print("KERNEL TEST SKIPPED: not root or no BTF; recording node's own events only") }
        let rec = try runNodeTool([NodeRepo.executable("asynctrace"), "record", "-o", trace] + extra + ["--", node, script, fifo])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        let line = rec.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let ids = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
        #expect(!ids.isEmpty, "the program's output: \(rec.stdout) \(rec.stderr)")
        return (trace, ids, rec.stderr, dir)
    }

    @Test func defaultModeRecordsNodesResourcesCallbacksThreadsAndSyscalls() throws {
        let (trace, ids, stderr, dir) = try record()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(stderr.contains("node: "), "record says what the hooks sent: \(stderr)")
        #expect(!stderr.contains("dropped by node") && !stderr.contains("malformed"), "\(stderr)")
        let t = try readNodeTrace(trace)

        // Node's own type names, with trigger chains.
        let types = Set(t.inits.values.map(\.type))
        for type in ["TCPSERVERWRAP", "TCPWRAP", "HTTPINCOMINGMESSAGE", "Immediate", "Timeout", "FSREQCALLBACK", "TickObject", "WORKER"] {
            #expect(types.contains(type), "no \(type) resource; types: \(types.sorted())")
        }
        #expect(!types.contains("PROMISE"), "the default mode does not record promises")
        // Every Immediate of the main thread's (the worker's ids are 2^32 and up) leads back through the
        // connection (TCPWRAP) that caused it.
        let immediates = t.inits.filter { $0.value.type == "Immediate" && $0.key < 1 << 32 }
        #expect(immediates.count >= 2)
        for (id, _) in immediates {
            var chain: [String] = []
            var cur = id
            while let i = t.inits[cur], chain.count < 20 { chain.append(i.type); cur = i.trigger }
            #expect(chain.contains("TCPWRAP") && chain.contains("HTTPINCOMINGMESSAGE"), "chain of Immediate \(id): \(chain)")
        }

        // The interval is open at exit: created, never destroyed; the program's own id for it.
        let intervalID = UInt64((ids["interval"] as? NSNumber)?.intValue ?? -1)
        #expect(t.inits[intervalID]?.type == "Timeout", "the interval (async id \(intervalID)) has an init as a Timeout")
        #expect(!t.destroyed.contains(intervalID), "the interval is never destroyed")

        // The worker's callbacks are on its own thread (same process, another tid), with its own ids.
        let main = try #require(t.streams.first { !$0.isKernel && $0.threadName?.contains("worker") == false })
        let workerStream = try #require(
            t.streams.first { !$0.isKernel && $0.threadName?.contains("worker") == true },
            "no worker stream: \(t.streams.map { ($0.tid, $0.threadName ?? "-") })")
        #expect(workerStream.pid == main.pid && workerStream.tid != main.tid)
        #expect(
            t.beforesByStream[workerStream.index]?.contains("Timeout") == true,
            """
            the worker's timer ran on its thread; streams: \(t.streams.filter { !$0.isKernel }.map { ($0.index, $0.tid, $0.threadName ?? "-") }), \
            callbacks per stream: \(t.beforesByStream.mapValues { Dictionary($0.map { ($0, 1) }, uniquingKeysWith: +) })
            """)
        #expect(
            t.inits.filter { $0.value.stream == workerStream.index }.allSatisfy { $0.key > 1 << 32 },
            "worker ids are in their own range")

        // The report: the blocking callback is the /block request's Immediate and owns its read.
        let rep = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--json"])
        #expect(rep.status == 0, "\(rep.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(rep.stdout.utf8)) as? [String: Any])
        let blocking = try #require(json["blocking"] as? [[String: Any]])
        let slow = try #require(blocking.first { ($0["type"] as? String) == "Immediate" }, "blocking: \(blocking)")
        #expect(((slow["duration_ns"] as? NSNumber)?.int64Value ?? 0) >= 150_000_000)
        #expect((slow["causal_chain"] as? [String])?.contains("HTTPINCOMINGMESSAGE") == true)
        // (On a loaded machine a batch write may block 10 ms too: the worker's Timeout, not its first.)
        let workerBlock = blocking.first { ($0["thread"] as? String)?.contains("worker") == true && $0["type"] as? String == "Timeout" }
        #expect(workerBlock != nil, "the worker's 40 ms timer is a blocking callback on its thread: \(blocking)")
        #expect(
            (workerBlock?["causal_chain"] as? [String])?.first == "WORKER",
            "the worker's first resources are the WORKER's: \(String(describing: workerBlock))")
        if Self.kernelCapable {
            let calls = slow["syscalls"] as? [[String: Any]] ?? []
            let read = calls.first { ($0["name"] as? String) == "read" }
            #expect(
                ((read?["ns"] as? NSNumber)?.int64Value ?? 0) >= 150_000_000,
                "the synchronous read is inside the callback that made it: \(calls)")
            // fds named by their owners.
            let fds = json["fds"] as? [[String: Any]] ?? []
            #expect(fds.contains { ($0["resource_type"] as? String) == "TCPWRAP" }, "a socket fd is owned by a TCPWRAP")
            // The loop stall (between epoll waits) is named by the callback inside it and where it was made.
            let stalls = json["stalls"] as? [[String: Any]] ?? []
            // The stall of the synchronous read (under load, start-up can also stall the loop 150 ms).
            let stall = stalls.first { st in
                (st["syscalls"] as? [[String: Any]] ?? []).contains {
                    ($0["name"] as? String) == "read" && (($0["ns"] as? NSNumber)?.int64Value ?? 0) >= 150_000_000
                }
            }
            let inside = stall?["callback"] as? [String: Any]
            #expect(inside?["type"] as? String == "Immediate", "the stall of the read is named by the blocked Immediate: \(stalls)")
            let site = (inside?["created_at"] as? [[String: Any]])?.first
            #expect(
                site?["function"] as? String == "Server.<anonymous>" && (site?["file"] as? String)?.hasSuffix("prog.js") == true,
                "created in the request handler: \(String(describing: site))")
        }
        let open = json["open_at_exit"] as? [[String: Any]] ?? []
        #expect(open.contains { ($0["type"] as? String) == "Timeout" }, "the interval is open at exit: \(open)")

        // Exports of a Node trace validate.
        let pf = dir + "/node.pftrace", chrome = dir + "/node.json"
        #expect(try runNodeTool([NodeRepo.executable("asynctrace"), "export", trace, "--format", "perfetto", "-o", pf]).status == 0)
        #expect(try runNodeTool([NodeRepo.executable("asynctrace"), "export", trace, "--format", "chrome", "-o", chrome]).status == 0)
        for (script, file) in [("perfetto_check.py", pf), ("chrome_check.py", chrome)] {
            let v = try runNodeTool(["/usr/bin/env", "python3", NodeRepo.root + "/Tests/TraceExportsTests/validators/" + script, file])
            #expect(v.status == 0 && !v.stdout.contains("\"error\""), "\(script): \(v.stdout.prefix(500)) \(v.stderr.prefix(500))")
        }
    }

    @Test func promisesModeRecordsPromisesAndTheirContinuations() throws {
        let (trace, _, _, dir) = try record(extra: ["--node-promises"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = try readNodeTrace(trace)
        let promises = t.inits.filter { $0.value.type == "PROMISE" }
        #expect(promises.count >= 5, "PROMISE resources recorded")
        #expect(promises.keys.contains { t.befores[$0] != nil }, "await continuations run as PROMISE callbacks")
        // The fs callback of the promise chain was created inside a promise continuation.
        #expect(t.inits.values.contains { $0.type == "FSREQCALLBACK" && t.inits[$0.trigger]?.type == "PROMISE" })
    }

    @Test func noNodeHooksRecordsKernelEventsOnly() throws {
        let (trace, _, stderr, dir) = try record(extra: ["--no-node-hooks"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(!stderr.contains("node: "))
        let t = try readNodeTrace(trace)
        #expect(t.inits.isEmpty)
    }
}

/// A server that is never closed, an interval left running (made in a named function), and a deferred
/// callback that spins for 30 ms: open at exit and the blocking callback name where each was created.
let nodeLeakProgram = #"""
    const http = require('http');
    function startServer() {
      const server = http.createServer((req, res) => {
        setImmediate(function slowHandler() { const t = Date.now(); while (Date.now() - t < 30) {} res.end('ok'); });
      });
      server.listen(0, '127.0.0.1', () => {
        http.get({ port: server.address().port, host: '127.0.0.1', path: '/' }, (r) => {
          r.resume();
          r.on('end', () => setTimeout(() => (process.argv[2] === 'kill' ? process.kill(process.pid, 'SIGTERM') : process.exit(0)), 1500));
        });
      });
      return server;
    }
    function leakAnInterval() {
      return setInterval(function tick() {}, 60000);
    }
    startServer();
    leakAnInterval();
    """#

@Suite(.serialized) struct NodeCreationSiteTests {
    @Test(arguments: [false, true]) func openAtExitAndBlockingCallbacksSayWhereTheirResourcesWereCreated(killed: Bool) throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-sites-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/leaky.js", trace = dir + "/sites.atrace"
        try nodeLeakProgram.write(toFile: script, atomically: true, encoding: .utf8)
        // killed: the program ends by SIGTERM (no exit handler runs): the sites of what lived long enough
        // were sent while it ran.
        let rec = try runNodeTool(
            [NodeRepo.executable("asynctrace"), "record", "--no-kernel", "-o", trace, "--", node, script] + (killed ? ["kill"] : []))
        #expect(rec.status == (killed ? 128 + SIGTERM : 0), "record: \(rec.stderr)")
        let rep = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(rep.stdout.utf8)) as? [String: Any])
        func sites(_ o: [String: Any]) -> [(function: String, file: String, line: Int)] {
            (o["created_at"] as? [[String: Any]] ?? []).map {
                (($0["function"] as? String) ?? "", ($0["file"] as? String) ?? "", ($0["line"] as? NSNumber)?.intValue ?? 0)
            }
        }
        let open = json["open_at_exit"] as? [[String: Any]] ?? []
        // The interval: made in leakAnInterval (line 15), called from the top level (line 18).
        let interval = open.first { $0["type"] as? String == "Timeout" && sites($0).first?.function == "leakAnInterval" }
        #expect(interval != nil, "no Timeout created in leakAnInterval open at exit: \(open)")
        if let interval {
            #expect(sites(interval).first.map { $0.file == script && $0.line == 15 } == true, "\(sites(interval))")
            #expect(sites(interval).dropFirst().first?.line == 18, "its caller: \(sites(interval))")
        }
        // The server: listen() with an address defers the handle's creation (a lookup, then a tick), so node's
        // own frame comes first, then the user code that led to it: startServer, where listen was called.
        let server = try #require(open.first { $0["type"] as? String == "TCPSERVERWRAP" }, "\(open)")
        #expect(sites(server).contains { $0.function == "startServer" && $0.file == script && $0.line == 6 }, "\(sites(server))")
        // The blocking callback: the Immediate made in the request handler (line 4).
        let blocking = try #require(json["blocking"] as? [[String: Any]])
        let slow = try #require(blocking.first { ($0["type"] as? String) == "Immediate" }, "blocking: \(blocking)")
        #expect(sites(slow).first.map { $0.file == script && $0.line == 4 } == true, "\(sites(slow))")
        // The text report says it too.
        let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace]).stdout
        #expect(text.contains("created at Server.<anonymous> (leaky.js:4)"), "\(text.prefix(3000))")
        #expect(text.contains("leakAnInterval (leaky.js:15)"), "\(text)")
        // And the HTML report.
        let html = dir + "/sites.html"
        #expect(try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--html", "-o", html]).status == 0)
        let page = (try? String(contentsOfFile: html, encoding: .utf8)) ?? ""
        #expect(page.contains("leakAnInterval (leaky.js:15)"), "the HTML report's open-at-exit table")
    }
}
