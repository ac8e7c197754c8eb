// Workers of workers, stopped together with their ancestors: by process.exit() in the main thread (node
// stops the direct workers, and each stopped worker its own, without running a handler in any of them), and
// by worker.terminate() of the worker at the top of the tree. What every one of them recorded must reach the
// trace, also what they recorded after the main thread's last JavaScript (process.reallyExit), never be lost
// silently. Real node, real `asynctrace record`, no timing assumptions: every worker appends a byte to a
// file of its own as the first thing its callbacks do (a file survives the thread), and its stream must hold
// as many Immediate befores (one more if it was stopped between a before and that byte).
import Foundation
import Testing
import TraceFormat
import TraceReader

/// The tree: main → A → B → C, and main → D. Each runs a chain of setImmediate callbacks, each callback first
/// appending a byte to `<dir>/<threadId>.count`. B spins forever inside its 200th callback (it can never
/// write again: an ancestor must); A, C and D go on. When all four have begun 200 callbacks (a counter in
/// shared memory, handed down the tree), the main thread calls process.exit() with all of them running
/// (`exit`), or ends by itself with all of them running (`end`: they were unref'd; `throw`: an uncaught
/// exception), or terminates A (B and C
/// stop with it), waits for that, then exits (`terminate`). `stuck`: A stays inside the preload's hook after
/// its 200th callback (a stack formatter that never returns), then the main thread terminates A and calls
/// process.exit() at once, printing the time. `small-pool`: as `exit`, with a pool of 3 batch
/// slots that 5 workers (E) used and freed before, one after another, and D started once A, B and C hold all
/// three.
let nodeNestedWorkerStopProgram = #"""
    const { Worker } = require('worker_threads');
    const [mode, dir] = process.argv.slice(2);
    const code = `
      const fs = require('fs');
      const { Worker, workerData, threadId } = require('worker_threads');
      const ready = new Int32Array(workerData.ready);
      const out = fs.openSync(workerData.dir + '/' + threadId + '.count', 'w');
      const byte = Buffer.from('x');
      let n = 0;
      const [me, ...below] = workerData.chain;
      if (below.length) new Worker(workerData.code, { eval: true, workerData: { ...workerData, chain: below } });
      function step() {
        fs.writeSync(out, byte);
        if (++n === 200) Atomics.add(ready, 0, 1);
        if (me === 'A' && workerData.mode === 'stuck' && n === 200) return setTimeout(stuck, 0);
        if (me === 'B' && n >= 200) for (;;) {}
        if (me === 'E' && n === 50) return;  // ends by itself
        setImmediate(step);
      }
      setImmediate(step);
      // A callback of 2 ms: the preload formats where its Timeout was made, right after it, and this
      // formatter never returns: the worker stays inside the preload's after hook.
      function stuck() {
        Error.prepareStackTrace = () => { Atomics.add(ready, 1, 1); for (;;) {} };
        const end = Date.now() + 2;
        while (Date.now() < end) {}
      }
    `;
    const ready = new Int32Array(new SharedArrayBuffer(8));
    const data = (chain) => ({ workerData: { ready: ready.buffer, dir, code, chain, mode }, eval: true });
    let a, d;
    function tree() {
      a = new Worker(code, data(['A', 'B', 'C']));
      if (mode !== 'small-pool') d = new Worker(code, data(['D']));
      (function wait() {
        // small-pool: D once A, B and C hold the pool's 3 slots (D gets a buffer of its own).
        if (mode === 'small-pool' && d === undefined && Atomics.load(ready, 0) === 3) d = new Worker(code, data(['D']));
        if (Atomics.load(ready, 0) < 4 || (mode === 'stuck' && Atomics.load(ready, 1) === 0)) return setTimeout(wait, 1);
        if (mode === 'exit' || mode === 'small-pool') process.exit(0);
        if (mode === 'stuck') {
          a.terminate();
          console.log(Date.now());
          process.exit(0);
        }
        if (mode === 'end') return a.unref(), d.unref();  // the main thread ends by itself, the workers running
        if (mode === 'throw') throw new Error('uncaught');  // node ends the process (exit status 1)
        a.on('exit', () => process.exit(0));
        a.terminate();
      })();
    }
    if (mode !== 'small-pool') tree();
    else {
      // A pool of 3 slots, first used by 5 workers one after another (each ends by itself), so that the tree's
      // slots are reused ones.
      process.env.ASYNCTRACE_NODE_POOL_SLOTS = '3';
      let left = 5;
      (function next() {
        if (left-- === 0) return tree();
        new Worker(code, data(['E'])).on('exit', next);
      })();
    }
    """#

@Suite(.serialized) struct NodeNestedWorkerStopTests {
    struct Thread {
        var begun: Int  // bytes in its file: callbacks that reached their first line
        var befores: Int  // Immediate befores on its stream
        var mostPerID: Int
    }

    func record(_ mode: String, workers: Int = 4, status: Int32 = 0) throws -> (threads: [Int: Thread], stderr: String, stdout: String) {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-nested-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/nested.js", trace = dir + "/nested.atrace"
        try nodeNestedWorkerStopProgram.write(toFile: script, atomically: true, encoding: .utf8)
        let rec = try runNodeTool([NodeRepo.executable("asynctrace"), "record", "--no-kernel", "-o", trace, "--", node, script, mode, dir])
        #expect(rec.status == status, "record: \(rec.stdout) \(rec.stderr)")

        var begun: [Int: Int] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".count") {
            let size = try FileManager.default.attributesOfItem(atPath: dir + "/" + name)[.size] as? NSNumber
            if let id = Int(name.dropLast(".count".count)) { begun[id] = size?.intValue ?? 0 }
        }
        #expect(begun.count == workers, "the workers' files: \(begun) \(rec.stderr)")

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
        var threads: [Int: Thread] = [:]
        for stream in reader.streams where !stream.isKernel {
            // "node (worker 3)": the worker's threadId.
            guard let name = stream.threadName, let r = name.range(of: "(worker "),
                let id = Int(name[r.upperBound...].prefix { $0.isNumber }), let n = begun[id]
            else { continue }
            let b = befores[stream.index] ?? [:]
            threads[id] = Thread(begun: n, befores: b.values.reduce(0, +), mostPerID: b.values.max() ?? 0)
        }
        #expect(threads.count == workers, "streams of the workers: \(threads.keys.sorted()) of \(begun.keys.sorted()) \(rec.stderr)")
        return (threads, rec.stderr, rec.stdout)
    }

    func expectEveryCallbackOnce(_ r: (threads: [Int: Thread], stderr: String, stdout: String)) {
        for (id, t) in r.threads.sorted(by: { $0.key < $1.key }) {
            #expect(t.mostPerID == 1, "worker \(id): an Immediate's before recorded twice")
            #expect(
                t.befores == t.begun || t.befores == t.begun + 1,
                "worker \(id) began \(t.begun) callbacks (+1 if stopped between a before and its first line), the trace has \(t.befores)")
        }
        #expect(!r.stderr.contains("lost") && !r.stderr.contains("malformed"), "\(r.stderr)")
    }

    /// process.exit() in the main thread with the whole tree running: every callback every worker began, at
    /// any depth, also after the main thread's last JavaScript, is in the trace, once.
    @Test func nestedWorkersRunningAtProcessExitLoseNothing() throws {
        expectEveryCallbackOnce(try record("exit"))
    }

    /// The main thread's loop ends (its workers unref'd) with the whole tree running: the same.
    @Test func nestedWorkersRunningAtTheMainThreadsEndLoseNothing() throws {
        expectEveryCallbackOnce(try record("end"))
    }

    /// An uncaught exception in the main thread with the whole tree running: the same.
    @Test func nestedWorkersRunningAtAnUncaughtExceptionLoseNothing() throws {
        expectEveryCallbackOnce(try record("throw", status: 1))
    }

    /// The same with batch slots freed by ended workers and used again, and a worker that found them all in use.
    @Test func reusedSlotsAndAWorkerBeyondThePoolLoseNothing() throws {
        expectEveryCallbackOnce(try record("small-pool", workers: 9))
    }

    /// terminate() of a worker stuck inside the preload's hook (V8 stops it there, running no `finally`, so it
    /// stays marked as inside a hook), then process.exit() at once: the exit waits for it only briefly (200 ms;
    /// without the mark terminate() leaves, the full 2 s a live worker inside a hook gets, which come after the
    /// time printed: the bound cannot be met then), and nothing is lost.
    @Test func aWorkerTerminatedInsideAHookDelaysTheExitBriefly() throws {
        let r = try record("stuck")
        let printed = Double(r.stdout.split(separator: "\n").last.map(String.init) ?? "") ?? 0
        let elapsedMs = Date().timeIntervalSince1970 * 1000 - printed
        #expect(printed > 0 && elapsedMs < 1900, "from process.exit() to the end of record: \(elapsedMs) ms")
        expectEveryCallbackOnce(r)
    }

    /// terminate() of the worker at the top of a tree: its workers stop with it, and every callback they
    /// began is in the trace, once.
    @Test func nestedWorkersOfATerminatedWorkerLoseNothing() throws {
        expectEveryCallbackOnce(try record("terminate"))
    }
}
