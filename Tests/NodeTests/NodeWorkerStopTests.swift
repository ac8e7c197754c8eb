// Worker threads stopped from outside run no exit handler of their own: `worker.terminate()`, and
// process.exit() in the main thread while workers run. What such a worker recorded and had not written yet
// must still reach the trace (its parent thread writes it), never be lost silently. Real node, real
// `asynctrace record`; no timing assumptions: each worker counts the callbacks it began in shared memory,
// and the trace must hold exactly those (a callback whose before was recorded just as the worker was stopped
// may add one), each once.
import Foundation
import Testing
import TraceFormat
import TraceReader

/// Four workers run a chain of setImmediate callbacks, counting each in shared memory as it begins. Workers
/// 0 and 1 spin forever inside their 200th callback (they can never write again); 2 and 3 go on. When all
/// have begun 200, the main thread either terminates them (`terminate`) and prints the final counts, or
/// prints the counts as they are and calls process.exit() with the workers running (`exit`).
let nodeWorkerStopProgram = #"""
    const { Worker } = require('worker_threads');
    const mode = process.argv[2];
    const code = `
      const { parentPort, workerData } = require('worker_threads');
      const count = new Int32Array(workerData.counter);
      function step() {
        const n = Atomics.add(count, 0, 1) + 1;
        if (n === 200) parentPort.postMessage('ready');
        if (workerData.spin && n >= 200) for (;;) {}
        setImmediate(step);
      }
      setImmediate(step);
    `;
    const workers = [];
    let ready = 0;
    for (let i = 0; i < 4; i++) {
      const counter = new SharedArrayBuffer(4);
      const worker = new Worker(code, { eval: true, workerData: { counter, spin: i < 2 } });
      workers.push({ worker, count: new Int32Array(counter) });
      worker.on('message', () => { if (++ready === workers.length) stop(); });
    }
    function counts() {
      const out = {};
      workers.forEach((w, i) => { out[w.worker.threadId] = { count: Atomics.load(w.count, 0), spin: i < 2 }; });
      return out;
    }
    async function stop() {
      if (mode === 'exit') {
        console.log(JSON.stringify(counts()));
        process.exit(0);
      }
      const ids = workers.map((w) => w.worker.threadId);  // -1 once a worker has exited
      await Promise.all(workers.map((w) => w.worker.terminate()));
      const out = {};
      workers.forEach((w, i) => { out[ids[i]] = { count: Atomics.load(w.count, 0), spin: i < 2 }; });
      console.log(JSON.stringify(out));
    }
    """#

@Suite(.serialized) struct NodeWorkerStopTests {
    struct Recorded {
        var stderr: String
        var counts: [Int: (count: Int, spin: Bool)]
        /// Per worker threadId: the befores of Immediates on its stream, and the largest number of befores of one id.
        var immediates: [Int: (befores: Int, mostPerID: Int)]
    }

    func record(_ mode: String) throws -> Recorded {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-stop-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/stop.js", trace = dir + "/stop.atrace"
        try nodeWorkerStopProgram.write(toFile: script, atomically: true, encoding: .utf8)
        let rec = try runNodeTool([NodeRepo.executable("asynctrace"), "record", "--no-kernel", "-o", trace, "--", node, script, mode])
        #expect(rec.status == 0, "record: \(rec.stderr)")
        let line = rec.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let printed = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: [String: Any]]) ?? [:]
        var counts: [Int: (Int, Bool)] = [:]
        for (k, v) in printed {
            if let id = Int(k), let c = (v["count"] as? NSNumber)?.intValue { counts[id] = (c, (v["spin"] as? Bool) ?? false) }
        }
        #expect(counts.count == 4, "the program's output: \(rec.stdout) \(rec.stderr)")

        let reader = try TraceReader(path: trace)
        var types: [UInt64: String] = [:]
        var befores: [Int: [UInt64: Int]] = [:]  // stream index -> id -> befores
        reader.events().forEach { s, e in
            switch e.kind {
            case .initResource: types[e.u(0)] = e.text
            case .before where types[e.u(0)] == "Immediate": befores[s, default: [:]][e.u(0), default: 0] += 1
            default: break
            }
        }
        var immediates: [Int: (Int, Int)] = [:]
        for stream in reader.streams where !stream.isKernel {
            // "node (worker 3)": the worker's threadId.
            guard let name = stream.threadName, let r = name.range(of: "(worker "),
                let id = Int(name[r.upperBound...].prefix { $0.isNumber })
            else { continue }
            let b = befores[stream.index] ?? [:]
            immediates[id] = (b.values.reduce(0, +), b.values.max() ?? 0)
        }
        return Recorded(stderr: rec.stderr, counts: counts, immediates: immediates)
    }

    /// terminate(): every callback a worker began is in the trace, once, also that of a worker spinning
    /// inside a callback (it never wrote a batch again: only its parent could).
    @Test func terminatedWorkersLoseNothing() throws {
        let r = try record("terminate")
        for (id, c) in r.counts {
            let got = try #require(r.immediates[id], "no stream for worker \(id): \(r.immediates) \(r.stderr)")
            #expect(got.mostPerID == 1, "worker \(id): an Immediate's before recorded twice")
            if c.spin {
                #expect(got.befores == c.count, "spinning worker \(id) began \(c.count) callbacks, the trace has \(got.befores)")
            } else {
                #expect(
                    got.befores == c.count || got.befores == c.count + 1,
                    "worker \(id) began \(c.count) callbacks (+1 if stopped between its before and its first line), the trace has \(got.befores)")
            }
        }
        #expect(r.stderr.contains("of stopped workers written by another thread"), "\(r.stderr)")
        #expect(!r.stderr.contains("lost") && !r.stderr.contains("missing") && !r.stderr.contains("malformed"), "\(r.stderr)")
    }

    /// process.exit() in the main thread with workers running: what they had begun when the main thread
    /// decided to exit is in the trace, once (the busy ones go on until node stops them).
    @Test func workersRunningAtProcessExitLoseNothingTheyDidBefore() throws {
        let r = try record("exit")
        for (id, c) in r.counts {
            let got = try #require(r.immediates[id], "no stream for worker \(id): \(r.immediates) \(r.stderr)")
            #expect(got.mostPerID == 1, "worker \(id): an Immediate's before recorded twice")
            if c.spin {
                #expect(got.befores == c.count, "spinning worker \(id) began \(c.count) callbacks, the trace has \(got.befores)")
            } else {
                #expect(got.befores >= c.count, "worker \(id) had begun \(c.count) callbacks at process.exit(), the trace has \(got.befores)")
            }
        }
        #expect(r.stderr.contains("of stopped workers written by another thread"), "\(r.stderr)")
        #expect(!r.stderr.contains("lost") && !r.stderr.contains("malformed"), "\(r.stderr)")
    }
}
