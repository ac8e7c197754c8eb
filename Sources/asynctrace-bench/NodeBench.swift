// Group `node`: what recording a Node.js program costs, side by side in one run.
// 1. The `runtime` workloads (Benchmarks/node/runtime.js at a tenth of its sizes, as trace_events
//    costs ~40 µs per operation): bare node; node with an empty async_hooks hook (Node's own hook
//    cost, the floor of any async_hooks recorder); node recording with its built-in trace_events
//    category node.async_hooks (the peer); `asynctrace record --no-kernel` in the default mode, with
//    --node-promises and with --no-node-sites (what creation sites cost); kernel probes only, without
//    and with --node-loop-phases (what the libuv uprobes cost). Interleaved runs, medians.
//    ASYNCTRACE_BENCH_NODE_NO_HTTP=1 skips part 2.
// 2. An HTTP server under load (Benchmarks/node/http-server.js, 50 keep-alive connections, the `net`
//    group's load generator): bare node; node with an empty async_hooks hook (Node's floor); `asynctrace
//    record` with the kernel probes and the default Node hooks, without creation sites; kernel probes
//    only (--no-node-hooks); with --node-promises; ASYNCTRACE_BENCH_NODE_OTHER_CLI=<asynctrace>: another
//    build's defaults as one more variant. ASYNCTRACE_BENCH_NODE_RUNS=N: N interleaved rounds (5).
// 3. ASYNCTRACE_BENCH_NODE_STREAM=<file>: only the recorder's half of the hand-off, on a stream of preload
//    batches captured from the FIFO (e.g. `cat fifo > file` while the HTTP server is under load): the
//    NodeTraceWriter decoding it into trace chunks, ns per event (medians of 5 passes, one core).
// `asynctrace` is the CLI built next to this benchmark (swift build -c release builds both).
import NodeRecording

#if canImport(Glibc)
import Glibc
#endif

enum NodeBench {
    /// Interleaved rounds per variant (ASYNCTRACE_BENCH_NODE_RUNS=N for more on a noisy machine, 1...99).
    static let runs: Int = {
        guard let v = getenv("ASYNCTRACE_BENCH_NODE_RUNS").flatMap({ Int(String(cString: $0)) }), (1...99).contains(v) else { return 5 }
        return v
    }()
    static let scale = "0.1"

    static func run() {
        if let stream = getenv("ASYNCTRACE_BENCH_NODE_STREAM").map({ String(cString: $0) }) {
            decodeStream(stream)
            return
        }
        guard let cli = siblingExecutable("asynctrace") else {
            print("{\"benchmark\": \"node.skipped\", \"reason\": \"no asynctrace next to asynctrace-bench (swift build -c release)\"}")
            return
        }
        let script = RuntimeBench.nodeScriptPath()
        let dir = "/tmp/asynctrace-bench-node-\(getpid())"
        mkdir(dir, 0o700)
        defer { removeTree(dir) }
        let trace = dir + "/bench.atrace"
        let variants: [(name: String, argv: [String])] = [
            ("node", ["node", script]),
            ("node-async-hooks-empty", ["node", script, "--hooks"]),
            (
                "node-trace-events",
                [
                    "node", "--trace-event-categories", "node.async_hooks",
                    "--trace-event-file-pattern", dir + "/trace-events-${pid}.json", script,
                ]
            ),
            ("asynctrace-default", [cli, "record", "--no-kernel", "-o", trace, "--", "node", script]),
            ("asynctrace-promises", [cli, "record", "--no-kernel", "--node-promises", "-o", trace, "--", "node", script]),
            // The default mode without creation sites: what capturing them costs.
            ("asynctrace-no-sites", [cli, "record", "--no-kernel", "--no-node-sites", "-o", trace, "--", "node", script]),
            // Kernel probes only (no hooks, no sampling), without and with the libuv loop uprobes: what
            // --node-loop-phases costs.
            ("kernel-only", [cli, "record", "--no-node-hooks", "--sample-rate", "0", "-o", trace, "--", "node", script]),
            (
                "kernel-loop-phases",
                [
                    cli, "record", "--no-node-hooks", "--sample-rate", "0", "--node-loop-phases", "-o", trace, "--", "node", script,
                ]
            ),
        ]
        let workloads = ["setImmediate-chain", "setTimeout-0", "await-chain", "promise-all"]
        if getenv("ASYNCTRACE_BENCH_NODE_HTTP_ONLY") == nil {
            for w in workloads {
                var results: [String: [Double]] = [:]
                var traceEventsBytes: [Double] = [], traceBytes: [Double] = []
                for r in 0..<runs {
                    // Each round starts with another variant, so drift hits them alike.
                    for k in 0..<variants.count {
                        let v = variants[(k + r) % variants.count]
                        unlink(trace)
                        if let ns = RuntimeBench.runCommand(v.argv + [w, "--scale=\(scale)"])[w] { results[v.name, default: []].append(ns) }
                        if v.name == "node-trace-events" { traceEventsBytes.append(Double(directoryBytes(dir, prefix: "trace-events-"))) }
                        if v.name == "asynctrace-default" { traceBytes.append(Double(fileBytes(trace))) }
                        removeFiles(dir, prefix: "trace-events-")
                    }
                }
                let bare = median(results["node"] ?? [])
                for v in variants {
                    let m = median(results[v.name] ?? [])
                    var extra = [("runs", "\(results[v.name]?.count ?? 0)"), ("slowdown_vs_node", fmt(m / bare))]
                    if v.name == "node-trace-events" { extra.append(("output_bytes", fmt(median(traceEventsBytes)))) }
                    if v.name == "asynctrace-default" { extra.append(("trace_bytes", fmt(median(traceBytes)))) }
                    if v.name == "asynctrace-default" {
                        extra.append(("vs_no_sites", fmt(m / median(results["asynctrace-no-sites"] ?? []))))
                    }
                    if v.name == "kernel-loop-phases" { extra.append(("vs_kernel_only", fmt(m / median(results["kernel-only"] ?? [])))) }
                    if v.name.hasPrefix("asynctrace") {
                        extra.append(("vs_trace_events", fmt(m / median(results["node-trace-events"] ?? []))))
                    }
                    report("node.runtime.\(w).\(v.name)", nsPerOp: m, extra: extra)
                }
            }
        }
        if getenv("ASYNCTRACE_BENCH_NODE_NO_HTTP") == nil { httpUnderLoad(cli: cli, dir: dir) }
    }

    static func httpUnderLoad(cli: String, dir: String) {
        let server = "Benchmarks/node/http-server.js"
        let trace = dir + "/http.atrace"
        let get = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        let w = NetBench.Workload(name: "http_50conn", server: "http", connections: 50, request: get)
        let env = NetBench.currentEnvironment(removing: ["ASYNCTRACE_OUTPUT", "ASYNCTRACE_APPEND", "NODE_OPTIONS"])
        var variants: [(name: String, argv: [String])] = [
            ("node", ["node", server]),
            // Node's own hook machinery with empty hooks: the floor of any async_hooks recorder.
            ("node-async-hooks-empty", ["node", server, "--hooks"]),
            ("record-default", [cli, "record", "-o", trace, "--", "node", server]),
            ("record-no-sites", [cli, "record", "--no-node-sites", "-o", trace, "--", "node", server]),
            ("record-kernel-only", [cli, "record", "--no-node-hooks", "-o", trace, "--", "node", server]),
            ("record-promises", [cli, "record", "--node-promises", "-o", trace, "--", "node", server]),
        ]
        // Another build's defaults side by side (before/after a change, one run): ASYNCTRACE_BENCH_NODE_OTHER_CLI=<asynctrace>.
        if let other = getenv("ASYNCTRACE_BENCH_NODE_OTHER_CLI").map({ String(cString: $0) }) {
            variants.append(("record-default-other-cli", [other, "record", "-o", trace, "--", "node", server]))
        }
        var results: [String: [Double]] = [:], cpu: [String: [Double]] = [:]
        for r in 0..<runs {
            for k in 0..<variants.count {
                let v = variants[(k + r) % variants.count]
                unlink(trace)
                if let m = NetBench.measureServerAndCPU((v.argv, env), w) {
                    results[v.name, default: []].append(m.opsPerSecond)
                    cpu[v.name, default: []].append(m.cpuNsPerOp)
                }
            }
        }
        let bare = median(results["node"] ?? [])
        let bareCPU = median(cpu["node"] ?? [])
        for v in variants {
            let m = median(results[v.name] ?? [])
            let c = median(cpu[v.name] ?? [])
            report(
                "node.http_50conn.\(v.name)", nsPerOp: 1e9 / m,
                extra: [
                    ("req_per_s", fmt(m)), ("runs", "\(results[v.name]?.count ?? 0)"),
                    // CPU of the server's process tree (node, and the recorder where there is one) per request.
                    ("cpu_us_per_req", fmt(c / 1000)), ("cpu_vs_node", fmt(c / bareCPU)),
                    ("throughput_loss", fmt(bare / m)), ("vs_kernel_only", fmt(median(results["record-kernel-only"] ?? []) / m)),
                    ("seconds", fmt(NetBench.seconds)),
                ])
        }
    }

    /// The recorder's decoding of captured preload batches: ns per trace event written.
    static func decodeStream(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            print("{\"benchmark\": \"node.decode.skipped\", \"reason\": \"cannot open \(path)\"}")
            return
        }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        close(fd)
        var times: [Double] = []
        var events: UInt64 = 0, written = 0
        for _ in 0..<runs {
            var out = 0
            var writer = NodeTraceWriter(sink: { out += $0.count })
            let t0 = monotonicNs()
            data.withUnsafeBytes { all in
                // In 1 MiB reads, as the recorder's reader thread takes them from the FIFO.
                var offset = 0
                while offset < all.count {
                    let end = min(all.count, offset + (1 << 20))
                    _ = writer.consume(UnsafeRawBufferPointer(rebasing: all[offset..<end]), nowNs: 0)
                    offset = end
                }
            }
            writer.flush(final: true)
            times.append(Double(monotonicNs() - t0))
            events = writer.statistics.events
            written = out
        }
        let ns = median(times)
        report(
            "node.decode", nsPerOp: ns / Double(max(events, 1)),
            extra: [
                ("events", "\(events)"), ("input_bytes_per_event", fmt(Double(data.count) / Double(max(events, 1)))),
                ("trace_bytes_per_event", fmt(Double(written) / Double(max(events, 1)))), ("runs", "\(runs)"),
            ])
    }

    static func siblingExecutable(_ name: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        var path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        while let last = path.last, last != "/" { path.removeLast() }
        let candidate = path + name
        return access(candidate, X_OK) == 0 ? candidate : nil
    }

    static func fileBytes(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    static func names(in dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    static func directoryBytes(_ dir: String, prefix: String) -> Int {
        names(in: dir).filter { $0.hasPrefix(prefix) }.reduce(0) { $0 + fileBytes(dir + "/" + $1) }
    }

    static func removeFiles(_ dir: String, prefix: String) {
        for n in names(in: dir) where n.hasPrefix(prefix) { unlink(dir + "/" + n) }
    }

    static func removeTree(_ dir: String) {
        for n in names(in: dir) { unlink(dir + "/" + n) }
        rmdir(dir)
    }
}
