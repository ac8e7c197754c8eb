// The `runtime` group: the event loop against Node v20, side by side in one run.
// Workloads (sizes as Benchmarks/node/runtime.js): 1 M chained setImmediate, 200 k setTimeout(0),
// 1 M chained awaits, Promise.all of 100 k. Each run measures, in turn: our loop bare, our loop with
// the recorder on, our loop with ClockFloorHook (the hooks' calls and the recorder's clock reads, nothing
// written), the same without the clock reads, Node, Node with an async_hooks hook.
// Medians over ASYNCTRACE_BENCH_RUNS runs (default 5).
import AsyncHooks
import AsyncTraceRecorder
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
#endif

enum RuntimeBench {
    static var workloads: [(name: String, n: Int, run: @Sendable (Int) -> Void)] {
        // ASYNCTRACE_BENCH_ONLY=name[,name] runs a subset (for profiling).
        let only = getenv("ASYNCTRACE_BENCH_ONLY").map { String(cString: $0).split(separator: ",").map(String.init) }
        return allWorkloads.filter { only == nil || only!.contains($0.name) }
    }
    static let allWorkloads: [(name: String, n: Int, run: @Sendable (Int) -> Void)] = [
        ("setImmediate-chain", 1_000_000, immediateChain),
        ("setTimeout-0", 200_000, timeouts),
        ("await-chain", 1_000_000, awaitChain),
        ("promise-all", 100_000, promiseAll),
    ]

    /// The chain's counter: a captured `var` would cost a dynamic exclusivity check per step,
    /// which is the closure's overhead, not the loop's (Node's `++i` has none).
    final class Counter {
        @exclusivity(unchecked) var value = 0
    }

    static func immediateChain(_ n: Int) {
        let i = Counter()
        func step() { i.value += 1; if i.value < n { setImmediate(step) } }
        setImmediate(step)
        try! EventLoop.current.run()
    }

    static func timeouts(_ n: Int) {
        var left = n
        for _ in 0..<n { setTimeout(0) { left -= 1 } }
        try! EventLoop.current.run()
        precondition(left == 0)
    }

    static func awaitChain(_ n: Int) {
        EventLoop.current.runAsync {
            var s = 0
            for i in 0..<n { s &+= try await Promise.resolve(i).value }
            return s
        }
        try! EventLoop.current.run()
    }

    static func promiseAll(_ n: Int) {
        var ps: [Promise<Int>] = []
        ps.reserveCapacity(n)
        for i in 0..<n { ps.append(Promise.resolve(i)) }
        var done = false
        Promise.all(ps).then { _ in done = true }
        ps = []
        try! EventLoop.current.run()
        precondition(done)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// ns per op of one workload run on this thread's loop.
    static func measure(_ w: (name: String, n: Int, run: @Sendable (Int) -> Void)) -> Double {
        let t0 = now()
        w.run(w.n)
        return Double(now() - t0) / Double(w.n)
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }

    static func run() {
        let runs = getenv("ASYNCTRACE_BENCH_RUNS").flatMap { Int(String(cString: $0)) } ?? 5
        let script = nodeScriptPath()
        let tracePath = "/tmp/asynctrace-bench-runtime-\(getpid()).atrace"
        var bare: [String: [Double]] = [:], recorded: [String: [Double]] = [:]
        var node: [String: [Double]] = [:], nodeHooks: [String: [Double]] = [:]
        var dropped: UInt64 = 0, written: UInt64 = 0
        // Freed memory stays in the heap between measurements (as V8 keeps its heap): otherwise each run
        // pays page faults for whatever the run before it gave back, depending on its position.
        _ = glibcMallopt(-1 /* M_TRIM_THRESHOLD */, 1 << 30)
        _ = glibcMallopt(-3 /* M_MMAP_THRESHOLD */, 1 << 30)
        for w in workloads { _ = measure((w.name, w.n / 10, w.run)) }  // warm-up
        let withNode = getenv("ASYNCTRACE_BENCH_NO_NODE") == nil
        let withRecording = getenv("ASYNCTRACE_BENCH_NO_RECORDING") == nil
        let floorHook = ClockFloorHook()
        var floor: [String: [Double]] = [:], hooksOnly: [String: [Double]] = [:]
        // The measurements of one workload run back to back, so load changes on a shared machine hit
        // them alike; the ratios are taken from the medians. Our variants (bare, recorded, floors) take
        // turns at going first: a later one finds the allocator's memory already faulted in and its
        // arenas shaped by the one before, which a fixed order would credit to one side (Promise.all
        // read as 0.87x "slowdown" with recording always second).
        enum Variant { case bare, recorded, floor, hooks, noStacks, allStacks, promise64 }
        var variants: [Variant] = [.bare]
        if withRecording { variants += [.recorded, .floor, .hooks] }
        // ASYNCTRACE_BENCH_VARIANTS=bare,recorded,floor,hooks: a subset (for instruction counts of one variant).
        // Creation stacks' cost (only when listed): noStacks (recorded with ASYNCTRACE_CREATION_STACKS=off),
        // allStacks (=all: every promise too), promise64 (=handles+64); `recorded` is the default (handles).
        if let v = getenv("ASYNCTRACE_BENCH_VARIANTS").map({ String(cString: $0).split(separator: ",").map(String.init) }) {
            variants = (variants + (withRecording ? [.noStacks, .allStacks, .promise64] : [])).filter { v.contains("\($0)") }
        }
        var stackVariants: [String: [String: [Double]]] = [:]
        for run in 0..<runs {
            for w in workloads {
                for k in 0..<variants.count {
                    let variant = variants[(run + k) % variants.count]
                    switch variant {
                    case .bare:
                        bare[w.name, default: []].append(measure(w))
                    case .recorded, .noStacks, .allStacks, .promise64:
                        var options = RecorderOptions()
                        switch variant {
                        case .noStacks: options.creationStacks = .off
                        case .allStacks: options.creationStacks = .all
                        case .promise64: options.creationStacks = CreationStackPolicy(handles: true, promiseEvery: 64)
                        default: break
                        }
                        do { try TraceRecorder.start(path: tracePath, options: options) } catch {
                            print("{\"error\": \"recorder: \(error)\"}"); return
                        }
                        let t = measure(w)
                        if variant == .recorded {
                            recorded[w.name, default: []].append(t)
                        } else {
                            stackVariants["\(variant)", default: [:]][w.name, default: []].append(t)
                        }
                        TraceRecorder.stop()
                        dropped += TraceRecorder.statistics.eventsDropped
                        written += TraceRecorder.statistics.eventsWritten
                        unlink(tracePath)
                    case .floor, .hooks:
                        clockFloorReadsClock = variant == .floor
                        AsyncHooks.enable(floorHook)
                        let t = measure(w)
                        AsyncHooks.disable(floorHook)
                        if variant == .floor { floor[w.name, default: []].append(t) } else { hooksOnly[w.name, default: []].append(t) }
                    }
                }
                if withNode {
                    if let v = runNode(script, w.name, hooks: false)[w.name] { node[w.name, default: []].append(v) }
                    if let v = runNode(script, w.name, hooks: true)[w.name] { nodeHooks[w.name, default: []].append(v) }
                }
            }
        }
        for w in workloads {
            let b = median(bare[w.name] ?? []), r = median(recorded[w.name] ?? [])
            let nd = median(node[w.name] ?? []), nh = median(nodeHooks[w.name] ?? [])
            emit("runtime/\(w.name)/asynctrace", b, w.n, runs, extra: ", \"speedup_vs_node\": \(fmt(nd / b))")
            emit("runtime/\(w.name)/asynctrace-recording", r, w.n, runs, extra: ", \"recording_slowdown\": \(fmt(r / b))")
            if withRecording {  // the floors run with the recorded variant
                let f = median(floor[w.name] ?? [])
                emit("runtime/\(w.name)/hooks-clock-floor", f, w.n, runs, extra: ", \"floor_slowdown\": \(fmt(f / b))")
                let h = median(hooksOnly[w.name] ?? [])
                emit("runtime/\(w.name)/hooks-floor", h, w.n, runs, extra: ", \"floor_slowdown\": \(fmt(h / b))")
            }
            for (name, label) in [("noStacks", "no-creation-stacks"), ("allStacks", "all-creation-stacks"), ("promise64", "promise-stacks-1-in-64")] {
                guard let xs = stackVariants[name]?[w.name] else { continue }
                let v = median(xs)
                emit(
                    "runtime/\(w.name)/asynctrace-recording-\(label)", v, w.n, runs,
                    extra: ", \"recording_slowdown\": \(fmt(v / b)), \"vs_default_recording\": \(fmt(v / r))")
            }
            emit("runtime/\(w.name)/node", nd, w.n, runs, extra: "")
            emit("runtime/\(w.name)/node-async-hooks", nh, w.n, runs, extra: ", \"hooks_slowdown\": \(fmt(nh / nd))")
        }
        print("{\"benchmark\": \"runtime/recorder-totals\", \"events_written\": \(written), \"events_dropped\": \(dropped)}")
    }

    static func fmt(_ x: Double) -> String { x.isFinite ? String(Double(Int(x * 1000)) / 1000) : "null" }

    static func emit(_ name: String, _ ns: Double, _ n: Int, _ runs: Int, extra: String) {
        print("{\"benchmark\": \"\(name)\", \"ns_per_op\": \(fmt(ns)), \"ops_per_s\": \(fmt(1e9 / ns)), \"n\": \(n), \"runs\": \(runs)\(extra)}")
    }

    static func nodeScriptPath() -> String {
        // Sources/asynctrace-bench/RuntimeBench.swift -> <package>/Benchmarks/node/runtime.js
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/Benchmarks/node/runtime.js"
    }

    /// Runs the Node peer once; returns ns_per_op by workload name (empty if node is missing).
    static func runNode(_ script: String, _ workload: String, hooks: Bool) -> [String: Double] {
        runCommand(["node", script, workload] + (hooks ? ["--hooks"] : []))
    }

    /// Runs a command (PATH searched) whose stdout has runtime.js's lines; ns_per_op by workload name.
    static func runCommand(_ argv: [String]) -> [String: Double] {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return [:] }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var args = argv
        var cargs = args.map { strdup($0) } + [nil]
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, &cargs, environ)
        posix_spawn_file_actions_destroy(&actions)
        for p in cargs { free(p) }
        close(fds[1])
        args = []
        guard rc == 0 else { close(fds[0]); return [:] }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        close(fds[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        var result: [String: Double] = [:]
        for line in String(decoding: out, as: UTF8.self).split(separator: "\n") {
            guard let name = field(line, "benchmark"), let ns = field(line, "ns_per_op").flatMap(Double.init) else { continue }
            result[name] = ns
        }
        return result
    }

    /// The value of `"key":` in one flat JSON line (Node's JSON.stringify output).
    static func field(_ line: Substring, _ key: String) -> String? {
        guard let r = line.range(of: "\"\(key)\":") else { return nil }
        var v = line[r.upperBound...].drop { $0 == " " }
        if v.first == "\"" { v = v.dropFirst(); return String(v.prefix { $0 != "\"" }) }
        return String(v.prefix { $0 != "," && $0 != "}" })
    }
}

/// glibc's mallopt (malloc.h is not in the Glibc module).
@_silgen_name("mallopt") func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32

extension Substring {
    fileprivate func range(of s: String) -> Range<Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(s) { return i..<index(i, offsetBy: s.count) }
            i = index(after: i)
        }
        return nil
    }
}
