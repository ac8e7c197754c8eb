// The preload loses nothing and invents nothing: a program counts its own async_hooks events (a second
// hook, so both see the same emits) for every resource made after it starts counting, and the trace holds
// exactly those inits, befores, afters and destroys, per resource and type. The workload fills many
// batches (ticks, immediates, timers, fs callbacks, keep-alive HTTP requests), so every batching path
// (full batch, after+destroy records, the timed flush, the last batch at exit) is crossed.
import Foundation
import Testing
import TraceFormat
import TraceReader

/// Prints, at exit, {first, last, resources: {id: [type, before, after, destroy]}} for the resources it saw made.
let nodeCountingProgram = #"""
    const ah = require('async_hooks');
    const fs = require('fs');
    const http = require('http');
    const seen = new Map();
    let counting = true, first = -1, last = -1;
    ah.createHook({
      init(id, type) { if (!counting) return; if (first < 0) first = id; last = id; seen.set(id, [type, 0, 0, 0]); },
      before(id) { const c = seen.get(id); if (c) c[1]++; },
      after(id) { const c = seen.get(id); if (c) c[2]++; },
      destroy(id) { const c = seen.get(id); if (c) c[3]++; },
    }).enable();
    process.on('exit', () => {
      const resources = {};
      for (const [id, c] of seen) resources[id] = c;
      process.stdout.write(JSON.stringify({ first, last, resources }) + '\n');
    });
    function ticks(n, done) { let i = 0; (function f() { if (++i < n) process.nextTick(f); else done(); })(); }
    function immediates(n, done) { let i = 0; (function f() { if (++i < n) setImmediate(f); else done(); })(); }
    function timeouts(n, done) { let i = 0; (function f() { if (++i < n) setTimeout(f, 0); else done(); })(); }
    function reads(n, done) { let i = 0; (function f() { if (++i < n) fs.readFile(__filename, f); else done(); })(); }
    function requests(n, done) {
      const server = http.createServer((req, res) => { req.resume(); req.on('end', () => setImmediate(() => res.end('ok'))); });
      server.listen(0, '127.0.0.1', () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
        let left = n, inFlight = 0;
        function one() {
          inFlight++;
          http.get({ host: '127.0.0.1', port: server.address().port, path: '/', agent }, (res) => {
            res.resume();
            res.on('end', () => {
              inFlight--;
              if (--left > 0) one(); else if (inFlight === 0) { agent.destroy(); server.close(done); }
            });
          });
        }
        one(); one(); left--;
      });
    }
    ticks(6000, () => immediates(3000, () => timeouts(300, () => reads(60, () => requests(150, () => {})))));
    """#

@Suite(.serialized) struct NodeExactCountTests {
    // "own-destroys": the program's hook has no destroy callback, so the preload is the only destroy hook and
    // records the destroys of ticks, immediates and timers where Node queues them (not from Node's destroy
    // queue, which then never runs for them); with a destroy hook of the program's, Node queues them as well.
    @Test(arguments: ["default", "no-sites", "promises", "own-destroys"]) func traceHoldsExactlyTheProgramsOwnHookEvents(
        mode: String
    ) throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-count-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/count.js", trace = dir + "/count.atrace"
        let countsDestroys = mode != "own-destroys"
        let program =
            countsDestroys
            ? nodeCountingProgram : nodeCountingProgram.replacingOccurrences(of: "destroy(id) { const c = seen.get(id); if (c) c[3]++; },", with: "")
        #expect(program.contains("destroy(id)") == countsDestroys)
        try program.write(toFile: script, atomically: true, encoding: .utf8)
        let flags = ["default": [], "own-destroys": [], "no-sites": ["--no-node-sites"], "promises": ["--node-promises"]][mode] ?? []
        // Node's own events only (the kernel's are not what is counted here).
        let rec = try runNodeTool([NodeRepo.executable("asynctrace"), "record", "--no-kernel", "-o", trace] + flags + ["--", node, script])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        #expect(!rec.stderr.contains("dropped by node") && !rec.stderr.contains("malformed"), "\(rec.stderr)")
        let line = rec.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let out = try #require(try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "output: \(rec.stdout)")
        let first = UInt64((out["first"] as? NSNumber)?.int64Value ?? -1)
        let last = UInt64((out["last"] as? NSNumber)?.int64Value ?? -1)
        let resources = try #require(out["resources"] as? [String: [Any]])
        var expected: [UInt64: (type: String, before: Int, after: Int, destroy: Int)] = [:]
        for (key, c) in resources {
            guard let id = UInt64(key), c.count == 4, let type = c[0] as? String else { continue }
            expected[id] = (type, (c[1] as? NSNumber)?.intValue ?? -1, (c[2] as? NSNumber)?.intValue ?? -1, (c[3] as? NSNumber)?.intValue ?? -1)
        }
        #expect(expected.count > 9_000, "the program counted its resources: \(expected.count)")

        // The main thread's events on resources made in the counted range.
        var got: [UInt64: (type: String, before: Int, after: Int, destroy: Int)] = [:]
        // A tick run right after a tick (Node's queue, nothing between) starts at that tick's end: one clock read
        // less. Only while the preload's after hook is the only one: a program's own could make a syscall there.
        var tickBefores = 0, tickBeforesAtTickAfter = 0
        var lastTickAfterNs: [Int: UInt64] = [:]
        let reader = try TraceReader(path: trace)
        reader.events().forEach { stream, e in
            let id = e.u(0)
            if e.kind == .before || e.kind == .after, got[id]?.type == "TickObject" {
                if e.kind == .before {
                    tickBefores += 1
                    if lastTickAfterNs[stream] == e.timestampNs { tickBeforesAtTickAfter += 1 }
                }
                lastTickAfterNs[stream] = e.kind == .after ? e.timestampNs : nil
            } else if e.kind != .destroy {
                lastTickAfterNs[stream] = nil
            }
            guard id >= first && id <= last else { return }
            switch e.kind {
            case .initResource: got[id] = (e.text, 0, 0, 0)
            case .before: got[id]?.before += 1
            case .after: got[id]?.after += 1
            case .destroy: got[id]?.destroy += 1
            default: break
            }
        }
        var byType: [String: (expected: Int, got: Int)] = [:]
        var wrong: [String] = []
        for (id, e) in expected {
            byType[e.type, default: (0, 0)].expected += 1
            guard let g = got[id] else { wrong.append("\(id) \(e.type): no init"); continue }
            byType[e.type, default: (0, 0)].got += 1
            // Without the program's destroy hook: a tick or an immediate is destroyed once, a timeout that ran (once) too,
            // other resources (handles, requests: destroyed from C++) at most once.
            let destroyOK =
                countsDestroys
                ? g.destroy == e.destroy
                : (["TickObject", "Immediate"].contains(e.type) || (e.type == "Timeout" && e.after == 1)) ? g.destroy == 1 : g.destroy <= 1
            if g.type != e.type || g.before != e.before || g.after != e.after || !destroyOK {
                wrong.append("\(id): \(e) in the program, \(g) in the trace")
            }
        }
        let extra = got.keys.filter { expected[$0] == nil }
        #expect(wrong.isEmpty, "\(wrong.count) resources differ, e.g. \(wrong.prefix(5)); per type: \(byType)")
        #expect(extra.isEmpty, "resources in the trace the program never saw: \(extra.prefix(5))")
        // The program's counting hook has an after callback: its syscalls could come between two ticks.
        #expect(
            tickBefores > 5_000 && tickBeforesAtTickAfter * 100 < tickBefores,
            "\(tickBeforesAtTickAfter) of \(tickBefores) tick befores at the previous tick's after")
        for type in ["TickObject", "Immediate", "Timeout", "FSREQCALLBACK", "TCPWRAP", "HTTPINCOMINGMESSAGE", "HTTPCLIENTREQUEST"] {
            #expect((byType[type]?.expected ?? 0) > 0, "the workload made \(type) resources: \(byType)")
        }
    }

    // Without a hook of the program's, a tick run right after another tick (Node's tick queue runs them back to back,
    // nothing between them) takes that tick's after time as its before time instead of reading the clock again; a
    // tick after anything else (here: an immediate's callback, a timer's) reads the clock.
    @Test func ticksRunBackToBackStartAtThePreviousTicksEnd() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-chain-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/chain.js", trace = dir + "/chain.atrace"
        try """
        let i = 0, j = 0;
        (function f() { if (++i < 3000) process.nextTick(f); else next(); })();
        function next() { setImmediate(function g() { process.nextTick(() => {}); if (++j < 200) setTimeout(g, 0); }); }
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let rec = try runNodeTool([NodeRepo.executable("asynctrace"), "record", "--no-kernel", "-o", trace, "--", node, script])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        var types: [UInt64: String] = [:]
        var lastAfter: [Int: (ns: UInt64, tick: Bool)] = [:]
        var afterTick = 0, afterTickShared = 0, afterOther = 0, afterOtherShared = 0
        try TraceReader(path: trace).events().forEach { stream, e in
            switch e.kind {
            case .initResource:
                types[e.u(0)] = e.text
                lastAfter[stream] = nil
            case .before:
                if types[e.u(0)] == "TickObject", let a = lastAfter[stream] {
                    if a.tick {
                        afterTick += 1; afterTickShared += a.ns == e.timestampNs ? 1 : 0
                    } else {
                        afterOther += 1; afterOtherShared += a.ns == e.timestampNs ? 1 : 0
                    }
                }
                lastAfter[stream] = nil
            case .after: lastAfter[stream] = (e.timestampNs, types[e.u(0)] == "TickObject")
            case .destroy, .resourceAttribute: break
            default: lastAfter[stream] = nil
            }
        }
        #expect(
            afterTick > 2_500 && afterTickShared * 10 >= afterTick * 9, "\(afterTickShared) of \(afterTick) ticks right after a tick share its time")
        #expect(afterOther >= 100 && afterOtherShared == 0, "\(afterOtherShared) of \(afterOther) ticks right after another callback share its time")
    }
}
