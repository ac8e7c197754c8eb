// Group `stacks`: what CPU sampling with stacks costs and what it makes, side by side in one run.
// 1. Node runtime workloads (Benchmarks/node/runtime.js) and the Node HTTP server under load, recorded
//    with the kernel probes and no Node hooks, sampling off (--sample-rate 0) against the default 999 Hz
//    with user stacks, and bare node: the ratio isolates what sampling adds.
// 2. Trace bytes per sample: a CPU-bound program recorded with and without sampling.
// 3. Symbolizing 1 M samples: a synthetic trace (mappings of real binaries, 5,000 distinct stacks of 16
//    frames, 1 M samples) read, symbolized and counted by stack (TraceSamples + CodeProfile).
// 4. Unwinding 1 M samples from stack copies: the stack copies of a real recording (C at -O2
//    -fomit-frame-pointer calling glibc's qsort, whose callback burns CPU; record --unwind-later)
//    repeated to 1 M samples, read, unwound by CFI, symbolized and counted by stack; and the same
//    program recorded as record writes it (unwound while recording: stacks, no copies), its samples
//    repeated to 1 M, read, symbolized and counted. Sampling with stack copies (the default,
//    8 KiB) is also compared with frame pointers only (--stack-copy 0) in 1 and 2.
import TraceFormat
import TraceReader
import TraceSymbols
#if canImport(Glibc)
import Glibc
#endif

enum StacksBench {
    static let runs = 5

    /// ASYNCTRACE_BENCH_BASELINE: another build's `asynctrace`, recorded beside ours in the bytes parts.
    static var baselineCLI: String? {
        guard let path = getenv("ASYNCTRACE_BENCH_BASELINE").map({ String(cString: $0) }), access(path, X_OK) == 0 else { return nil }
        return path
    }

    static func run() {
        // ASYNCTRACE_BENCH_ONLY=symbolize,bytes,bytes_http,unwind,runtime,http: a subset of the parts.
        let only = getenv("ASYNCTRACE_BENCH_ONLY").map { String(cString: $0).split(separator: ",").map(String.init) }
        func wanted(_ part: String) -> Bool { only == nil || only!.contains(part) }
        if let path = getenv("ASYNCTRACE_BENCH_TRACE"), let r = try? TraceReader(path: String(cString: path)) { extensionAnatomy(r); return }
        if wanted("symbolize") { symbolize() }
        guard geteuid() == 0, let cli = NodeBench.siblingExecutable("asynctrace") else {
            print("{\"benchmark\": \"stacks.skipped\", \"reason\": \"needs root and asynctrace next to asynctrace-bench\"}")
            return
        }
        let dir = "/tmp/asynctrace-bench-stacks-\(getpid())"
        mkdir(dir, 0o700)
        defer { NodeBench.removeTree(dir) }
        if wanted("bytes") { bytesPerSample(cli: cli, dir: dir) }
        if wanted("bytes_http") { bytesOverDuration(cli: cli, dir: dir) }
        if wanted("unwind") { unwind(cli: cli, dir: dir) }
        if wanted("runtime") { runtime(cli: cli, dir: dir) }
        if wanted("http") { http(cli: cli, dir: dir) }
    }

    static func runtime(cli: String, dir: String) {
        let script = RuntimeBench.nodeScriptPath()
        let trace = dir + "/rt.atrace"
        let variants: [(name: String, argv: [String])] = [
            ("node", ["node", script]),
            ("record-sampling-off", [cli, "record", "--no-node-hooks", "--sample-rate", "0", "-o", trace, "--", "node", script]),
            ("record-sampling-999hz-fp-only", [cli, "record", "--no-node-hooks", "--stack-copy", "0", "-o", trace, "--", "node", script]),
            ("record-sampling-999hz-unwind-later", [cli, "record", "--no-node-hooks", "--unwind-later", "-o", trace, "--", "node", script]),
            ("record-sampling-999hz", [cli, "record", "--no-node-hooks", "-o", trace, "--", "node", script]),
        ]
        for w in ["setImmediate-chain", "await-chain"] {
            var results: [String: [Double]] = [:]
            for r in 0..<runs {
                for k in 0..<variants.count {
                    let v = variants[(k + r) % variants.count]
                    unlink(trace)
                    if let ns = RuntimeBench.runCommand(v.argv + [w])[w] { results[v.name, default: []].append(ns) }
                }
            }
            let off = median(results["record-sampling-off"] ?? []), bare = median(results["node"] ?? [])
            for v in variants {
                let m = median(results[v.name] ?? [])
                report(
                    "stacks.runtime.\(w).\(v.name)", nsPerOp: m,
                    extra: [
                        ("runs", "\(results[v.name]?.count ?? 0)"), ("slowdown_vs_node", fmt(m / bare)),
                        ("slowdown_vs_sampling_off", fmt(m / off)),
                    ])
            }
        }
    }

    static func http(cli: String, dir: String) {
        let server = "Benchmarks/node/http-server.js"
        let trace = dir + "/http.atrace"
        let get = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        let w = NetBench.Workload(name: "http_50conn", server: "http", connections: 50, request: get)
        let env = NetBench.currentEnvironment(removing: ["ASYNCTRACE_OUTPUT", "ASYNCTRACE_APPEND", "NODE_OPTIONS"])
        let variants: [(name: String, argv: [String])] = [
            ("node", ["node", server]),
            ("record-sampling-off", [cli, "record", "--no-node-hooks", "--sample-rate", "0", "-o", trace, "--", "node", server]),
            ("record-sampling-999hz-fp-only", [cli, "record", "--no-node-hooks", "--stack-copy", "0", "-o", trace, "--", "node", server]),
            ("record-sampling-999hz-unwind-later", [cli, "record", "--no-node-hooks", "--unwind-later", "-o", trace, "--", "node", server]),
            ("record-sampling-999hz", [cli, "record", "--no-node-hooks", "-o", trace, "--", "node", server]),
        ]
        var results: [String: [Double]] = [:]
        for r in 0..<runs {
            for k in 0..<variants.count {
                let v = variants[(k + r) % variants.count]
                unlink(trace)
                if let ops = NetBench.measureServer((v.argv, env), w) { results[v.name, default: []].append(ops) }
            }
        }
        let off = median(results["record-sampling-off"] ?? []), bare = median(results["node"] ?? [])
        for v in variants {
            let m = median(results[v.name] ?? [])
            report(
                "stacks.http_50conn.\(v.name)", nsPerOp: 1e9 / m,
                extra: [
                    ("req_per_s", fmt(m)), ("runs", "\(results[v.name]?.count ?? 0)"),
                    ("throughput_loss_vs_node", fmt(bare / m)), ("throughput_loss_vs_sampling_off", fmt(off / m)),
                ])
        }
    }

    /// Trace size with sampling minus without, per sample, for a 2 s CPU-bound Python loop (Debian's
    /// python3 and glibc have no frame pointers: samples need their stack copies), and the recorder's
    /// own CPU time per sample (its rusage, minus that of the recording without sampling): stack copies
    /// unwound while recording (the default), written for the reader (--unwind-later), frame pointers
    /// only (--stack-copy 0), side by side in one run.
    /// The same for a real program of many more distinct stacks: node running the runtime workloads
    /// (Benchmarks/node/runtime.js at half size: libuv, V8's builtins and JIT code; node's hooks off).
    static func bytesPerSample(cli: String, dir: String) {
        // 2 s of the program's own CPU time (not wall time: on a loaded machine it gets a share of a core).
        let python = ["/usr/bin/python3", "-S", "-c", "import time\nt=time.process_time()\nwhile time.process_time()-t<2: pass"]
        bytesPerSample(cli: cli, dir: dir, name: "stacks.bytes_per_sample", program: python)
        let node = ["node", RuntimeBench.nodeScriptPath(), "--scale=0.5"]
        bytesPerSample(cli: cli, dir: dir, name: "stacks.bytes_per_sample.node_runtime", program: node, options: ["--no-node-hooks"])
    }

    static func bytesPerSample(cli: String, dir: String, name: String, program: [String], options: [String] = []) {
        struct Run {
            var bytes: UInt64, samples: Int, stacks: Int, cpuNs: Double
            var sampleEventBytes: UInt64
            var byKind: [String: UInt64]
            var copies: Double, unwound: Double, deferred: Double
        }
        func kernelPayload(_ rate: String, copy: String = "8K", extra: [String] = [], cli: String = cli) -> Run? {
            let trace = dir + "/bps-\(rate)-\(copy).atrace"
            unlink(trace)
            let out = RuntimeBench.runCommand(
                [cli, "record", "--bench-cpu", "--sample-rate", rate, "--stack-copy", copy] + options + extra + ["-o", trace, "--"] + program)
            guard let r = try? TraceReader(path: trace), let cpu = out["record_cpu"] else { return nil }
            let data = TraceSamples(reader: r)
            return Run(
                bytes: r.fileSize, samples: data.samples.count, stacks: data.stackAddresses.count, cpuNs: cpu,
                sampleEventBytes: sampleEventBytes(r), byKind: sampleEventBytesByKind(r),
                copies: (out["record_copies"] ?? 0) - (out["record_copies_not_needed"] ?? 0), unwound: out["record_copies_unwound"] ?? 0,
                deferred: out["record_copies_deferred"] ?? 0)
        }
        var variants: [(name: String, copy: String, extra: [String], cli: String)] = [
            ("unwound_while_recording", "8K", [], cli), ("unwind_later", "8K", ["--unwind-later"], cli), ("fp_only", "0", [], cli),
        ]
        // ASYNCTRACE_BENCH_BASELINE=<another build's asynctrace>: its recordings beside ours (unwound while recording),
        // e.g. the format before a change, same run, same program.
        if let baseline = Self.baselineCLI { variants.append(("baseline", "8K", [], baseline)) }
        var encoded: [String: [Double]] = [:]
        var bytes: [String: [Double]] = [:], cpu: [String: [Double]] = [:], samples: [String: [Double]] = [:]
        var stacks: [Double] = [], copies: [Double] = [], unwound: [Double] = [], deferred: [Double] = []
        var byKind: [String: [Double]] = [:]  // unwound while recording: bytes per sample by event kind
        for _ in 0..<3 {
            guard let off = kernelPayload("0") else { continue }
            for v in variants {
                guard let on = kernelPayload("999", copy: v.copy, extra: v.extra, cli: v.cli), on.samples > 0 else { continue }
                bytes[v.name, default: []].append(Double(Int64(on.bytes) - Int64(off.bytes)) / Double(on.samples))
                cpu[v.name, default: []].append((on.cpuNs - off.cpuNs) / Double(on.samples))
                encoded[v.name, default: []].append(Double(on.sampleEventBytes) / Double(on.samples))
                samples[v.name, default: []].append(Double(on.samples))
                if v.name == "unwound_while_recording" {
                    stacks.append(Double(on.stacks))
                    copies.append(on.copies)
                    unwound.append(on.unwound)
                    deferred.append(on.deferred)
                    for (k, n) in on.byKind { byKind[k, default: []].append(Double(n) / Double(on.samples)) }
                }
            }
        }
        var extra: [(String, String)] = []
        for v in variants {
            extra.append(("bytes_per_sample_\(v.name)", fmt(median(bytes[v.name] ?? []))))
            extra.append(("sample_event_bytes_per_sample_\(v.name)", fmt(median(encoded[v.name] ?? []))))
            extra.append(("recorder_cpu_ns_per_sample_\(v.name)", fmt(median(cpu[v.name] ?? []))))
            extra.append(("samples_\(v.name)", fmt(median(samples[v.name] ?? []))))
        }
        for (k, v) in byKind.sorted(by: { $0.key < $1.key }) { extra.append(("unwound_while_recording_per_sample_\(k)", fmt(median(v)))) }
        extra += [
            ("distinct_stacks", fmt(median(stacks))), ("copies_needed", fmt(median(copies))),
            ("copies_unwound_while_recording", fmt(median(unwound))), ("copies_left_to_reader", fmt(median(deferred))),
            (
                "note",
                "\"bytes_per_sample: trace size with sampling minus without, per sample (noisy under load: the other kernel events vary); sample_event_bytes_per_sample: the encoded bytes of the sampling events themselves (userSample, userSampleNewStack, stackCompact, sample, sampleNewStack or cpuSample, stackDef, stackExtend, stackUnwind, stackCopy, stackCopyDelta, mapping, sampling) per sample, if_cpuSample what the samples would have cost as format-7 cpuSamples, if_format8 (format 9 traces) what the same events cost as format 8 wrote them (each sampleNewStack as a stackExtend and a sample); baseline: recorded by ASYNCTRACE_BENCH_BASELINE's build (unwound while recording), interleaved with ours; recorder CPU: its rusage with sampling minus without, per sample\""
            ),
        ]
        report(name, nsPerOp: 0, extra: extra)
    }

    /// Bytes of the sampling events per sample as a recording grows: the Node HTTP server under load
    /// (50 connections) recorded with its default sampling for each duration in
    /// ASYNCTRACE_BENCH_SECONDS (default "10,30,60"), and the share of samples that brought a new stack
    /// (any stack definition): a server's code paths repeat, so new stacks thin out with time.
    static func bytesOverDuration(cli: String, dir: String) {
        let durations = (getenv("ASYNCTRACE_BENCH_SECONDS").map { String(cString: $0) } ?? "10,30,60")
            .split(separator: ",").compactMap { Double($0) }.filter { $0 > 0 && $0 <= 3600 }
        let trace = dir + "/http-duration.atrace"
        let get = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        let w = NetBench.Workload(name: "http_50conn", server: "http", connections: 50, request: get)
        let env = NetBench.currentEnvironment(removing: ["ASYNCTRACE_OUTPUT", "ASYNCTRACE_APPEND", "NODE_OPTIONS"])
        // With ASYNCTRACE_BENCH_BASELINE, each duration is recorded by that build too, after ours.
        var recorders: [(suffix: String, cli: String)] = [("", cli)]
        if let baseline = Self.baselineCLI { recorders.append((".baseline", baseline)) }
        for seconds in durations {
            for recorder in recorders {
                let argv = [recorder.cli, "record", "--no-node-hooks", "-o", trace, "--", "node", "Benchmarks/node/http-server.js"]
                unlink(trace)
                guard let load = NetBench.measureServerAndCPU((argv, env), w, seconds: seconds), let r = try? TraceReader(path: trace) else {
                    print("{\"benchmark\": \"stacks.bytes_per_sample.node_http.skipped\", \"seconds\": \(fmt(seconds))}")
                    continue
                }
                let byKind = sampleEventBytesByKind(r)
                let samples = TraceSamples(reader: r).samples.count
                let newStacks = eventCounts(r, [.stackDef, .stackExtend, .sampleNewStack, .stackCompact, .userSampleNewStack])
                let perSample = { (k: String) in fmt(Double(byKind[k] ?? 0) / Double(max(1, samples))) }
                var extra: [(String, String)] = [
                    ("format", "\(r.header.version)"), ("seconds", fmt(seconds)), ("req_per_s", fmt(load.opsPerSecond)),
                    ("samples", "\(samples)"), ("new_stacks", "\(newStacks)"),
                    ("new_stack_share", NetBench.fmt3(Double(newStacks) / Double(max(1, samples)))),
                    ("sample_event_bytes_per_sample", fmt(Double(sampleEventBytes(r)) / Double(max(1, samples)))),
                ]
                for k in byKind.keys.sorted() { extra.append(("per_sample_\(k)", perSample(k))) }
                report("stacks.bytes_per_sample.node_http.\(Int(seconds))s\(recorder.suffix)", nsPerOp: 0, extra: extra)
                // ASYNCTRACE_BENCH_KEEP=<file>: keep the last recording there (to look into its events).
                if let keep = getenv("ASYNCTRACE_BENCH_KEEP") { rename(trace, String(cString: keep) + recorder.suffix) }
            }
        }
        unlink(trace)
    }

    /// Where a trace's stack extension bytes go (ASYNCTRACE_BENCH_TRACE=<file>): per field of stackExtend and
    /// sampleNewStack (the id: a stackExtend's own; a sampleNewStack's is its sample's), bytes per extension.
    static func extensionAnatomy(_ r: TraceReader) {
        func varint(_ v: UInt64) -> Double { Double(varintSize(v)) }
        var n = 0.0, id = 0.0, base = 0.0, shared = 0.0, own = 0.0, count = 0.0, frames = 0.0, methods = 0.0, ownOne = 0.0, ownFrames = 0.0
        var leafFromBaseLeaf = 0.0
        var stacks: [UInt64: [UInt64]] = [:]
        r.events(streams: Set(r.streams.indices.filter { r.streams[$0].isKernel })).forEachView { v in
            if v.kind == .stackDef { stacks[v.u(0)] = Array(v.list) }
            // stackExtend: id, base, shared, own; sampleNewStack: the sample's user stack, base, shared, own from argument 4.
            guard v.kind == .stackExtend || v.kind == .sampleNewStack else { return }
            let (sid, f) = v.kind == .stackExtend ? (v.u(0), 1) : (v.u(2), 4)
            guard let b = stacks[v.u(f)], v.u(f + 2) <= UInt64(v.list.count), v.u(f + 1) <= UInt64(b.count) else { return }
            let o = Int(v.u(f + 2))
            n += 1; id += varint(sid); base += varint(v.u(f)); shared += varint(v.u(f + 1)); own += varint(v.u(f + 2))
            count += varint(UInt64(v.list.count))
            frames += v.list.prefix(o).reduce(0) { $0 + varint($1) }
            methods += Double(v.list.count - o)
            ownFrames += Double(o)
            if o == 1 { ownOne += 1 }
            let sharedFrames = b.suffix(Int(v.u(f + 1)))
            let full = StackExtension.decode(v.list[..<o], above: sharedFrames.first ?? 0) + sharedFrames
            stacks[sid] = full
            if o >= 1, let bl = b.first {
                let d = Int64(bitPattern: full[0] &- bl)
                leafFromBaseLeaf += varint(UInt64(bitPattern: (d << 1) ^ (d >> 63)))
            }
        }
        print(
            "{\"extensions\": \(Int(n)), \"id\": \(fmt(id / n)), \"base\": \(fmt(base / n)), \"shared\": \(fmt(shared / n)), \"own\": \(fmt(own / n)), \"list_count\": \(fmt(count / n)), \"frames\": \(fmt(frames / n)), \"methods\": \(fmt(methods / n)), \"own_frames\": \(fmt(ownFrames / n)), \"own_one_share\": \(fmt(ownOne / n)), \"leaf_from_base_leaf_bytes\": \(fmt(leafFromBaseLeaf / n))}"
        )
    }

    /// How many events of `kinds` the kernel streams hold.
    static func eventCounts(_ r: TraceReader, _ kinds: Set<EventKind>) -> Int {
        let it = r.events(streams: Set(r.streams.indices.filter { r.streams[$0].isKernel }))
        var n = 0
        it.forEachView { v in if kinds.contains(v.kind) { n += 1 } }
        return n
    }

    /// The encoded size of the events sampling adds to a trace's kernel stream (kind byte, timestamp
    /// delta, arguments as the spec table encodes them; string definitions of mapping paths left out).
    static func sampleEventBytes(_ r: TraceReader) -> UInt64 {
        sampleEventBytesByKind(r).filter { !$0.key.hasPrefix("if_") }.values.reduce(0, +)
    }

    /// `sampleEventBytes` per event kind (by name), and what the stack definitions would have cost had every
    /// stack been written whole (`stackDef` and a whole `stackUnwind`, as before `stackExtend`): "if_whole_stackDef",
    /// "if_whole_stackUnwind", the same recording side by side.
    static func sampleEventBytesByKind(_ r: TraceReader) -> [String: UInt64] {
        func varint(_ v: UInt64) -> UInt64 {
            var n: UInt64 = 1
            var x = v >> 7
            while x != 0 { n += 1; x >>= 7 }
            return n
        }
        let kinds: Set<EventKind> = [
            .cpuSample, .sample, .sampleNewStack, .stackDef, .stackExtend, .stackUnwind, .stackCopy, .stackCopyDelta, .mapping, .sampling,
            .userSample, .userSampleNewStack, .stackCompact,
        ]
        var format10 = false
        let kernel = Set(r.streams.indices.filter { r.streams[$0].isKernel })
        let it = r.events(streams: kernel)
        var total: [String: UInt64] = [:]
        var previous: UInt64 = 0
        // The previous pid, tid and stackID arguments (the writer's are per chunk: a chunk's first sample is
        // counted as a difference from the previous chunk's last, a few bytes less than written, once per chunk).
        var previousByEncoding: [ArgEncoding: UInt64] = [:]
        var stacks: [UInt64: (frames: [UInt64], methods: Int)] = [:]
        it.forEachView { v in
            defer { previous = v.timestampNs }
            guard kinds.contains(v.kind), let spec = v.kind.spec else { return }
            var n = 1 + varint(v.timestampNs &- previous)
            for (i, a) in spec.args.enumerated() {
                switch a.encoding {
                case .unsigned: n += varint(v.u(i))
                case .signed: n += varint(UInt64(bitPattern: (v.s(i) << 1) ^ (v.s(i) >> 63)))
                case .string: n += varint(UInt64(max(0, v.textID)))
                case .list: n += varint(UInt64(v.list.count)) + v.list.reduce(0) { $0 + varint($1) }
                case .pid, .tid, .stackID:
                    let d = Int64(bitPattern: v.u(i) &- previousByEncoding[a.encoding, default: 0])
                    n += varint(UInt64(bitPattern: (d << 1) ^ (d >> 63)))
                    previousByEncoding[a.encoding] = v.u(i)
                default: n += 1
                }
            }
            total[spec.name, default: 0] += n
            let delta = varint(v.timestampNs &- previous)
            // What format 8 wrote: a sampleNewStack as a stackExtend (kind, time delta 0, id) and a sample.
            total["if_format8", default: 0] += n + (v.kind == .sampleNewStack ? 2 + varint(v.u(2)) : 0)
            /// A stack defined compactly (format 10: stackCompact, id in argument 0, or userSampleNewStack, id in argument 2).
            func compact(id: UInt64, first: Int) {
                format10 = true
                let read = CompactStack.decode(id: id, base: v.s(first), shape: v.u(first + 1), frames: v.list, maxFrames: 512) { b in
                    stacks[UInt64(b)].map { ($0.frames, [UInt8](repeating: 0, count: $0.methods)) }
                }
                guard case .success(let stack) = read else { return }
                stacks[id] = (stack.frames, stack.methods?.count ?? 0)
                total["if_whole_stackDef", default: 0] +=
                    1 + (v.kind == .userSampleNewStack ? 1 : delta) + varint(id) + varint(UInt64(stack.frames.count))
                    + stack.frames.reduce(0) { $0 + varint($1) }
                if let m = stack.methods, !m.isEmpty {
                    total["if_whole_stackUnwind", default: 0] += 2 + varint(id) + varint(UInt64(m.count)) + UInt64(m.count)
                }
            }
            /// A stack defined as an extension (stackExtend: id in argument 0, base, shared, own after it;
            /// sampleNewStack: id in argument 2, the others from argument 4), and what a whole stackDef + stackUnwind would cost.
            func extended(id: UInt64, first: Int) {
                guard let base = stacks[v.u(first)], v.u(first + 1) <= UInt64(base.frames.count), v.u(first + 2) <= UInt64(v.list.count) else {
                    return
                }
                let shared = base.frames.suffix(Int(v.u(first + 1))), own = Int(v.u(first + 2))
                let frames = StackExtension.decode(v.list[..<own], above: shared.first ?? 0) + shared
                let listed = v.list.count - own
                let methods = listed > own ? listed : listed == 0 && own > 0 ? 0 : listed + max(0, base.methods - (base.frames.count - shared.count))
                stacks[id] = (frames, methods)
                total["if_whole_stackDef", default: 0] +=
                    1 + (v.kind == .sampleNewStack ? 1 : delta) + varint(id) + varint(UInt64(frames.count)) + frames.reduce(0) { $0 + varint($1) }
                // A whole stackUnwind: kind, delta 0, id, count, one byte per method.
                if methods > 0 { total["if_whole_stackUnwind", default: 0] += 2 + varint(id) + varint(UInt64(methods)) + UInt64(methods) }
            }
            switch v.kind {
            case .sample, .sampleNewStack:
                // The same sample as a format-7 cpuSample (pid, tid and stack as plain varints).
                total["if_cpuSample", default: 0] += 1 + delta + (0..<4).reduce(0) { $0 + varint(v.u($1)) }
                if v.kind == .sampleNewStack { extended(id: v.u(2), first: 4) }
            case .userSample, .userSampleNewStack:
                format10 = true
                total["if_cpuSample", default: 0] += 1 + delta + (0..<3).reduce(0) { $0 + varint(v.u($1)) } + 1
                if v.kind == .userSampleNewStack { compact(id: v.u(2), first: 3) }
            case .stackCompact:
                compact(id: v.u(0), first: 1)
            case .cpuSample:
                total["if_cpuSample", default: 0] += n
            case .stackDef:
                stacks[v.u(0)] = (Array(v.list), 0)
                total["if_whole_stackDef", default: 0] += n
            case .stackExtend:
                extended(id: v.u(0), first: 1)
            case .stackUnwind:
                stacks[v.u(0)]?.methods = v.list.count
                total["if_whole_stackUnwind", default: 0] += n
            default:
                break
            }
        }
        // "What format 8 wrote" is said of format 9's kinds only.
        if format10 { total["if_format8"] = nil }
        return total
    }

    /// A real recording's stack copies repeated to 1 M samples: read + unwind + symbolize + count by stack.
    static func unwind(cli: String, dir: String) {
        let src = dir + "/qsort-burn.c", exe = dir + "/qsort-burn", trace = dir + "/qsort-burn.atrace"
        let c = """
            #include <stdio.h>
            #include <stdlib.h>
            #include <time.h>
            static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
            __attribute__((noinline)) int slow_compare(const void *a, const void *b) {
                volatile double x = 1; for (int i = 0; i < 300; i++) x = x * 1.0000001 + 0.5;
                long d = *(const long *)a - *(const long *)b; return (d > 0) - (d < 0);
            }
            __attribute__((noinline)) long sort_some(long *v, int n) {
                for (int i = 0; i < n; i++) v[i] = (i * 7919L) % n;
                qsort(v, n, sizeof(long), slow_compare); __asm__ volatile(""); return v[n / 2] + 1;
            }
            int main(void) { static long v[4096]; long s = 0; double t0 = now(); while (now() - t0 < 1) s += sort_some(v, 4096); printf("%ld\\n", s); return 0; }
            """
        guard let f = fopen(src, "w") else { return }
        fputs(c, f)
        fclose(f)
        _ = RuntimeBench.runCommand(["/usr/bin/cc", "-O2", "-fomit-frame-pointer", "-o", exe, src])
        // The copies themselves (the reader unwinds them): --unwind-later, as record wrote them before v6.
        _ = RuntimeBench.runCommand([cli, "record", "--unwind-later", "-o", trace, "--", exe])
        // And as record writes them now (unwound while recording): the stacks, no copies.
        let unwoundTrace = dir + "/qsort-burn-unwound.atrace"
        _ = RuntimeBench.runCommand([cli, "record", "-o", unwoundTrace, "--", exe])
        symbolizeRecorded(unwoundTrace, dir: dir)
        guard let r = try? TraceReader(path: trace) else { return }
        // The recording's mappings and (stackCopy, cpuSample) pairs, re-encoded.
        var mappings: [(pid: UInt64, start: UInt64, end: UInt64, offset: UInt64, path: String, buildID: [UInt64])] = []
        var pairs: [(delta: Bool, copy: [UInt64], list: [UInt64], sample: [UInt64])] = []
        var copy: (Bool, [UInt64], [UInt64])?
        let it = r.events(streams: Set(r.streams.indices.filter { r.streams[$0].isKernel }))
        while let e = it.next() {
            let ev = e.event
            switch ev.kind {
            case .mapping:
                mappings.append(
                    (
                        UInt64(bitPattern: ev.arg(0)), UInt64(bitPattern: ev.arg(1)), UInt64(bitPattern: ev.arg(2)), UInt64(bitPattern: ev.arg(3)),
                        ev.text, ev.list
                    ))
            case .stackCopy:
                copy = (false, (0..<6).map { UInt64(bitPattern: ev.arg($0)) }, ev.list)
            case .stackCopyDelta:
                // Its base is the copy before it (one thread): 1 ms earlier in the file written below.
                copy = (true, (0..<6).map { UInt64(bitPattern: ev.arg($0)) } + [1_000_000], ev.list)
            case .cpuSample, .sample, .sampleNewStack:
                if let c = copy { pairs.append((c.0, c.1, c.2, (0..<4).map { UInt64(bitPattern: ev.arg($0)) })) }
                copy = nil
            default:
                break
            }
        }
        guard !pairs.isEmpty else { return }
        let path = dir + "/unwind-1M.atrace"
        guard let fd = createSyntheticTrace(path, pid: r.header.pid, program: "unwind") else { return }
        var t: UInt64 = 2_000_000, seq: UInt64 = 0
        var b = ChunkBuilder(pid: r.header.pid, tid: 0, startNs: t, startTicks: t)
        for m in mappings {
            let s = b.intern(m.path, ticks: t)
            b.beginEvent(.mapping, ticks: t)
            b.putUnsigned(m.pid); b.putUnsigned(m.start); b.putUnsigned(m.end); b.putUnsigned(m.offset)
            b.putStringID(s)
            b.putList(m.buildID)
        }
        let samples = 1_000_000
        for i in 0..<samples {
            t += 1_000_000
            let p = pairs[i % pairs.count]
            // The first copy of the file has no base: the recording's first copy (always whole) goes first.
            b.beginEvent(p.delta && i > 0 ? .stackCopyDelta : .stackCopy, ticks: t)
            for v in (p.delta && i == 0 ? Array(p.copy.prefix(6)) : p.copy) { b.putUnsigned(v) }
            b.putList(p.list)
            b.beginEvent(.cpuSample, ticks: t)
            b.putUnsigned(p.sample[0]); b.putUnsigned(p.sample[1]); b.putUnsigned(0); b.putUnsigned(0)
            if b.byteCount > 4 << 20 || i == samples - 1 {
                let bytes = b.seal(
                    sequence: seq, endNs: t, endTicks: t, droppedCumulative: 0,
                    flags: i == samples - 1 ? [.kernel, .final] : .kernel)
                _ = write(fd, bytes, bytes.count)
                seq += 1
                b = ChunkBuilder(pid: r.header.pid, tid: 0, startNs: t, startTicks: t)
            }
        }
        close(fd)
        var seconds: [Double] = []
        var depth = 0.0
        for _ in 0..<3 {
            let t0 = monotonicNs()
            guard let r = try? TraceReader(path: path) else { return }
            let data = TraceSamples(reader: r)
            let profile = CodeProfile(data, samples: data.samples)
            seconds.append(Double(monotonicNs() - t0) / 1e9)
            depth = Double(profile.stacks.first?.frames.count ?? 0)
        }
        // The recording itself (each copy once, as recorded): unwinding without the repetition above.
        var recordedSeconds: [Double] = []
        var recordedSamples = 0, recordedFromCache = 0
        for _ in 0..<3 {
            let t0 = monotonicNs()
            guard let r = try? TraceReader(path: trace) else { break }
            let data = TraceSamples(reader: r)
            _ = CodeProfile(data, samples: data.samples)
            recordedSeconds.append(Double(monotonicNs() - t0) / 1e9)
            recordedSamples = data.unwoundSamples
            recordedFromCache = data.unwoundFromCache
        }
        report(
            "stacks.unwind_recorded", nsPerOp: median(recordedSeconds) * 1e9 / Double(max(1, recordedSamples)),
            extra: [
                ("seconds", fmt(median(recordedSeconds))), ("unwound_samples", "\(recordedSamples)"),
                ("from_cache", "\(recordedFromCache)"), ("file_bytes", "\(r.fileSize)"),
            ])
        report(
            "stacks.unwind_1M_samples", nsPerOp: median(seconds) * 1e9 / Double(samples),
            extra: [
                ("seconds", fmt(median(seconds))), ("samples", "\(samples)"), ("recorded_copies", "\(pairs.count)"),
                ("copies_as_delta", "\(pairs.filter(\.delta).count)"),
                ("top_stack_frames", fmt(depth)),
            ])
    }

    /// A real recording's samples as record writes them (stacks unwound while recording: stackDef,
    /// stackExtend, stackUnwind, no copies) repeated to 1 M samples: read + symbolize + count by stack.
    static func symbolizeRecorded(_ trace: String, dir: String) {
        guard let r = try? TraceReader(path: trace) else { return }
        let path = dir + "/symbolize-recorded-1M.atrace"
        guard let fd = createSyntheticTrace(path, pid: r.header.pid, program: "symbolize") else { return }
        var t: UInt64 = 2_000_000, seq: UInt64 = 0
        var b = ChunkBuilder(pid: r.header.pid, tid: 0, startNs: t, startTicks: t)
        // Every event but the samples as recorded (mappings, sampling, stack definitions), then the samples.
        var samples: [[UInt64]] = []
        let kinds: Set<EventKind> = [.mapping, .sampling, .stackDef, .stackExtend, .stackUnwind]
        let it = r.events(streams: Set(r.streams.indices.filter { r.streams[$0].isKernel }))
        while let e = it.next() {
            let ev = e.event
            if ev.kind == .cpuSample || ev.kind == .sample || ev.kind == .sampleNewStack {
                samples.append((0..<4).map { UInt64(bitPattern: ev.arg($0)) })
            }
            if ev.kind == .sampleNewStack {
                // Its stack's definition, as a stackExtend.
                b.beginEvent(.stackExtend, ticks: t)
                for i in [2, 4, 5, 6] { b.putUnsigned(UInt64(bitPattern: ev.arg(i))) }
                b.putList(ev.list)
            }
            guard kinds.contains(ev.kind), let spec = ev.kind.spec else { continue }
            let text = ev.kind == .mapping ? b.intern(ev.text, ticks: t) : 0
            b.beginEvent(ev.kind, ticks: t)
            for (i, a) in spec.args.enumerated() {
                switch a.encoding {
                case .string: b.putStringID(text)
                case .list: b.putList(ev.list)
                default: b.putUnsigned(UInt64(bitPattern: ev.arg(i)))
                }
            }
        }
        guard !samples.isEmpty else { return }
        let total = 1_000_000
        for i in 0..<total {
            t += 1_000_000
            let s = samples[i % samples.count]
            // As record writes them (format 8).
            b.beginEvent(.sample, ticks: t)
            b.putPid(s[0])
            b.putTid(s[1])
            b.putStackID(s[2])
            b.putUnsigned(s[3])
            if b.byteCount > 4 << 20 || i == total - 1 {
                let bytes = b.seal(
                    sequence: seq, endNs: t, endTicks: t, droppedCumulative: 0, flags: i == total - 1 ? [.kernel, .final] : .kernel)
                _ = write(fd, bytes, bytes.count)
                seq += 1
                b = ChunkBuilder(pid: r.header.pid, tid: 0, startNs: t, startTicks: t)
            }
        }
        close(fd)
        var seconds: [Double] = []
        var stacks = 0, named = 0.0, fileBytes: UInt64 = 0
        for _ in 0..<3 {
            let t0 = monotonicNs()
            guard let r = try? TraceReader(path: path) else { return }
            let data = TraceSamples(reader: r)
            let profile = CodeProfile(data, samples: data.samples)
            seconds.append(Double(monotonicNs() - t0) / 1e9)
            stacks = profile.stacks.count
            fileBytes = r.fileSize
            let frames = profile.functions.map { data.frame($0.frame) }
            named = Double(frames.filter { $0.function != nil }.count) / Double(max(1, frames.count))
        }
        report(
            "stacks.symbolize_1M_recorded_samples", nsPerOp: median(seconds) * 1e9 / Double(total),
            extra: [
                ("seconds", fmt(median(seconds))), ("samples", "\(total)"), ("recorded_samples", "\(samples.count)"),
                ("distinct_stacks", "\(stacks)"), ("file_bytes", "\(fileBytes)"), ("share_of_frames_named", fmt(named)),
            ])
    }

    /// 1 M samples over 5,000 stacks into real binaries: read + symbolize + count by stack.
    static func symbolize() {
        let path = "/tmp/asynctrace-bench-symbolize-\(getpid()).atrace"
        defer { unlink(path) }
        var exe = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &exe, exe.count - 1)
        guard n > 0 else { return }
        let binaries = [
            String(decoding: exe[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self),
            "/usr/lib/x86_64-linux-gnu/libc.so.6", "/opt/swift/usr/lib/swift/linux/libswiftCore.so",
        ]
        var sizes: [UInt64] = []
        for b in binaries {
            var st = stat()
            sizes.append(stat(b, &st) == 0 ? UInt64(st.st_size) : 1 << 20)
        }
        guard let fd = createSyntheticTrace(path, pid: 1234, program: "synthetic") else { return }
        var rng = SystemRandomNumberGenerator()
        let bases: [UInt64] = [0x5555_0000_0000, 0x7f00_0000_0000, 0x7f10_0000_0000]
        var seq: UInt64 = 0
        var t: UInt64 = 2_000_000
        func flush(_ b: ChunkBuilder, final: Bool) {
            let bytes = b.seal(sequence: seq, endNs: t, endTicks: t, droppedCumulative: 0, flags: final ? [.kernel, .final] : .kernel)
            _ = write(fd, bytes, bytes.count)
            seq += 1
        }
        var b = ChunkBuilder(pid: 1234, tid: 0, startNs: t, startTicks: t)
        b.beginEvent(.sampling, ticks: t)
        b.putUnsigned(1_001_001)
        b.putUnsigned(0)
        for (i, path) in binaries.enumerated() {
            let s = b.intern(path, ticks: t)
            b.beginEvent(.mapping, ticks: t)
            b.putUnsigned(1234); b.putUnsigned(bases[i]); b.putUnsigned(bases[i] + sizes[i]); b.putUnsigned(0)
            b.putStringID(s)
            b.putList([UInt64]())
        }
        let stackCount = 5_000, samples = 1_000_000
        for id in 1...stackCount {
            let frames = (0..<16).map { _ -> UInt64 in
                let m = Int.random(in: 0..<binaries.count, using: &rng)
                return bases[m] + UInt64.random(in: 0x1000..<max(0x2000, sizes[m] / 2), using: &rng)
            }
            b.beginEvent(.stackDef, ticks: t)
            b.putUnsigned(UInt64(id))
            b.putList(frames)
        }
        for i in 0..<samples {
            t += 1_000_000
            b.beginEvent(.cpuSample, ticks: t)
            b.putUnsigned(1234); b.putUnsigned(1234)
            b.putUnsigned(UInt64.random(in: 1...UInt64(stackCount), using: &rng)); b.putUnsigned(0)
            if b.byteCount > 4 << 20 && i < samples - 1 {
                flush(b, final: false)
                b = ChunkBuilder(pid: 1234, tid: 0, startNs: t, startTicks: t)
            }
        }
        flush(b, final: true)
        close(fd)
        var seconds: [Double] = []
        var named = 0.0
        for _ in 0..<3 {
            let t0 = monotonicNs()
            guard let r = try? TraceReader(path: path) else { return }
            let data = TraceSamples(reader: r)
            let profile = CodeProfile(data, samples: data.samples)
            seconds.append(Double(monotonicNs() - t0) / 1e9)
            let frames = profile.functions.map { data.frame($0.frame) }
            named = Double(frames.filter { $0.function != nil }.count) / Double(max(1, frames.count))
        }
        report(
            "stacks.symbolize_1M_samples", nsPerOp: median(seconds) * 1e9 / Double(samples),
            extra: [
                ("seconds", fmt(median(seconds))), ("samples", "\(samples)"), ("distinct_stacks", "\(stackCount)"),
                ("frames_per_stack", "16"), ("share_of_frames_named", fmt(named)),
            ])
    }

    /// A new trace file at `path` holding only its header (start 1 ms), open for appending chunks; nil if it cannot be created.
    static func createSyntheticTrace(_ path: String, pid: UInt32, program: String) -> Int32? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        guard fd >= 0 else { return nil }
        let header = FileHeader(pid: pid, monotonicStartNs: 1_000_000, realtimeStartNs: 0, program: program).encode()
        _ = write(fd, header, header.count)
        return fd
    }
}
