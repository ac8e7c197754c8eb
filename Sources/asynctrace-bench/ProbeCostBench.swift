// Group `probes`: what each part of the kernel recording costs a real server under load, side by side.
// Servers: Node v20's `http` (Benchmarks/node/http-server.js), the runtime's HTTP and TCP-echo servers (the
// `net` group's), and the SwiftNIO HTTP server of Adapters/AsyncTraceNIO when its release build is there
// (ASYNCTRACE_BENCH_NIO_DEMO=<asynctrace-nio-demo> to point at one). Load: the `net` group's generator
// (50 keep-alive connections, one request in flight on each, 0.3 s warm-up, 2 s counted).
// Variants, taking turns (each round starts with another): the bare server; `asynctrace record --no-kernel`
// (the program's own events only: the floor every other variant stands on); each kernel probe family alone
// (syscalls, scheduler, CPU samples); everything on (record's defaults); the defaults without one part
// each. Per variant: requests/s (median), throughput loss against bare, CPU time per request of the server
// process (the BPF programs run in its context), of the recording CLI (the ring reader and writer) and of the
// load generator (untraced, it pays the tracepoints and the filter on its syscalls; their sum is the robust
// figure on a machine shared with other work), the
// kernel events per request, and every drop the recording reported (summed over the runs).
// Runs that started while another recording's probes were loaded (other sessions on a shared machine: their
// programs run on the same tracepoints for every process) are counted per variant.
// ASYNCTRACE_BENCH_PROBES_SERVERS / _VARIANTS: comma lists selecting some; _RUNS: rounds (default 5);
// _OTHER_CLI=<asynctrace>: another build's defaults as one more variant (before/after a change, one run).
// ASYNCTRACE_BENCH_PROBES_BPF_STATS=1: one more run of the defaults per server with the kernel's BPF run-time
// statistics on (they add two clock reads per program run, so never in the timed rounds): ns per run and
// runs per request of each program.
import KernelProbes
#if canImport(Glibc)
import Glibc
#endif

enum ProbeCostBench {
    struct Server {
        let name: String
        let workload: NetBench.Workload
        let bare: [String]  // the server alone
        let program: [String]  // what `record` runs
        let env: [String]
        var extraVariants: [Variant] = []  // record flags only this server has
    }

    struct Variant {
        let name: String
        let flags: [String]?  // record's flags; nil: the server runs bare
        var cli: String? = nil  // another asynctrace than the one next to this benchmark
    }

    static let variants: [Variant] = [
        Variant(name: "bare", flags: nil),
        Variant(name: "own-events", flags: ["--no-kernel"]),
        Variant(name: "syscalls", flags: ["--no-sched", "--sample-rate", "0", "--stack-threshold", "0"]),
        Variant(name: "sched", flags: ["--no-syscalls", "--sample-rate", "0", "--stack-threshold", "0"]),
        Variant(name: "samples", flags: ["--no-syscalls", "--no-sched", "--stack-threshold", "0"]),
        Variant(name: "defaults", flags: []),
        Variant(name: "defaults-no-waitstacks", flags: ["--stack-threshold", "0"]),
        Variant(name: "defaults-no-samples", flags: ["--sample-rate", "0"]),
        Variant(name: "defaults-no-stack-copy", flags: ["--stack-copy", "0"]),
        Variant(name: "defaults-no-sched", flags: ["--no-sched"]),
    ]

    struct Sample {
        var requestsPerS: Double
        var serverCPUPerRequestUs: Double
        var recorderCPUPerRequestUs: Double
        var loadCPUPerRequestUs: Double
        var kernelEventsPerRequest: Double
        var dropped: UInt64
        /// Other recordings' syscall probes loaded when the run started (they cost every variant alike).
        var otherProbes = 0
    }

    static func run() {
        guard let cli = NodeBench.siblingExecutable("asynctrace") else {
            print("{\"benchmark\": \"probes.skipped\", \"reason\": \"no asynctrace next to asynctrace-bench (swift build -c release)\"}")
            return
        }
        if geteuid() != 0 { print("{\"benchmark\": \"probes.note\", \"reason\": \"not root: the kernel probes will be off\"}") }
        let runs = env("ASYNCTRACE_BENCH_PROBES_RUNS").flatMap { Int($0) } ?? 5
        let wantedServers = env("ASYNCTRACE_BENCH_PROBES_SERVERS").map { Set($0.split(separator: ",").map(String.init)) }
        let wantedVariants = env("ASYNCTRACE_BENCH_PROBES_VARIANTS").map { Set($0.split(separator: ",").map(String.init)) }
        var chosen = variants.filter { wantedVariants?.contains($0.name) ?? true }
        // Another build's defaults side by side (e.g. main before a change): ASYNCTRACE_BENCH_PROBES_OTHER_CLI=<asynctrace>.
        if let other = env("ASYNCTRACE_BENCH_PROBES_OTHER_CLI") { chosen.append(Variant(name: "defaults-other-cli", flags: [], cli: other)) }
        let dir = "/tmp/asynctrace-bench-probes-\(getpid())"
        mkdir(dir, 0o700)
        defer { NodeBench.removeTree(dir) }
        for server in servers() where wantedServers?.contains(server.name) ?? true {
            let chosen = chosen + server.extraVariants.filter { wantedVariants?.contains($0.name) ?? true }
            var results: [String: [Sample]] = [:]
            for r in 0..<runs {
                for k in 0..<chosen.count {
                    let v = chosen[(k + r) % chosen.count]
                    let others = KernelProbeSession.loadedPrograms(named: "on_sys_enter") ?? 0
                    if var s = measure(server, v, cli: cli, dir: dir) {
                        s.otherProbes = others
                        results[v.name, default: []].append(s)
                    }
                }
            }
            let bare = median((results["bare"] ?? []).map(\.requestsPerS))
            for v in chosen {
                let s = results[v.name] ?? []
                let rps = median(s.map(\.requestsPerS))
                report(
                    "probes.\(server.name).\(v.name)", nsPerOp: 1e9 / rps,
                    extra: [
                        ("req_per_s", fmt(rps)), ("runs", "\(s.count)"), ("throughput_loss", fmt3(bare / rps)),
                        ("server_cpu_us_per_req", fmt3(median(s.map(\.serverCPUPerRequestUs)))),
                        ("recorder_cpu_us_per_req", fmt3(median(s.map(\.recorderCPUPerRequestUs)))),
                        ("load_generator_cpu_us_per_req", fmt3(median(s.map(\.loadCPUPerRequestUs)))),
                        (
                            "all_cpu_us_per_req",
                            fmt3(median(s.map { $0.serverCPUPerRequestUs + $0.recorderCPUPerRequestUs + $0.loadCPUPerRequestUs }))
                        ),
                        ("kernel_events_per_req", fmt3(median(s.map(\.kernelEventsPerRequest)))),
                        ("dropped", "\(s.reduce(0) { $0 + $1.dropped })"),
                        ("runs_with_other_probes_loaded", "\(s.filter { $0.otherProbes > 0 }.count)"),
                        ("all_req_per_s", "[" + s.map { fmt($0.requestsPerS) }.joined(separator: ", ") + "]"),
                    ])
            }
            if env("ASYNCTRACE_BENCH_PROBES_BPF_STATS") == "1" { bpfStatistics(server, cli: cli, dir: dir) }
        }
    }

    static func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    static func fmt3(_ x: Double) -> String { x.isFinite ? String((x * 1000).rounded() / 1000) : "null" }

    static func servers() -> [Server] {
        let get = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        let echo = [UInt8](repeating: UInt8(ascii: "e"), count: 64)
        let http = NetBench.Workload(name: "http_50conn", server: "http", connections: 50, request: get)
        let tcp = NetBench.Workload(name: "tcp_echo_50conn", server: "tcp-echo", connections: 50, request: echo)
        let base = NetBench.currentEnvironment(removing: [
            "ASYNCTRACE_OUTPUT", "ASYNCTRACE_APPEND", "NODE_OPTIONS",
            "LD_PRELOAD", NetBench.serveVariable,
        ])
        let me = KernelBench.selfPath()
        var out = [
            Server(
                name: "node-http", workload: http, bare: ["node", "Benchmarks/node/http-server.js"],
                program: ["node", "Benchmarks/node/http-server.js"], env: base,
                // The kernel probes without Node's hooks: what issue 17 calls "probes alone".
                extraVariants: [
                    Variant(name: "kernel-only", flags: ["--no-node-hooks"]),
                    Variant(name: "kernel-only-no-sched", flags: ["--no-node-hooks", "--no-sched"]),
                    // The hooks without their creation stacks (Error.captureStackTrace at every init).
                    Variant(name: "own-events-no-node-sites", flags: ["--no-kernel", "--no-node-sites"]),
                    Variant(name: "defaults-no-node-sites", flags: ["--no-node-sites"]),
                ]),
            Server(
                name: "runtime-http", workload: http, bare: [me, "net"], program: [me, "net"],
                env: base + ["\(NetBench.serveVariable)=http"]),
            Server(
                name: "runtime-tcp-echo", workload: tcp, bare: [me, "net"], program: [me, "net"],
                env: base + ["\(NetBench.serveVariable)=tcp-echo"]),
        ]
        let nio = env("ASYNCTRACE_BENCH_NIO_DEMO") ?? "Adapters/AsyncTraceNIO/.build-release/release/asynctrace-nio-demo"
        if access(nio, X_OK) == 0 {
            out.append(
                Server(
                    name: "nio-http", workload: http, bare: [nio, "http", "--untraced", "--exit-on-stdin-eof"],
                    program: [nio, "http", "--exit-on-stdin-eof"], env: base))
        } else {
            print(
                "{\"benchmark\": \"probes.nio-http.skipped\", \"reason\": \"no \(nio): cd Adapters/AsyncTraceNIO && swift build -c release "
                    + "--product asynctrace-nio-demo --scratch-path .build-release, or set ASYNCTRACE_BENCH_NIO_DEMO\"}")
        }
        return out
    }

    /// One run of `server` in `variant`; nil if the server did not start or the load failed.
    static func measure(
        _ server: Server, _ variant: Variant, cli: String, dir: String,
        atCountingStart: ((pid_t) -> Void)? = nil, atEnd: ((pid_t) -> Void)? = nil
    ) -> Sample? {
        let trace = dir + "/probes.atrace", log = dir + "/record.log"
        unlink(trace)
        let argv = variant.flags.map { [variant.cli ?? cli, "record"] + $0 + ["-o", trace, "--"] + server.program } ?? server.bare
        guard let child = Spawned(argv: argv, env: server.env, stderrPath: log) else { return nil }
        defer { child.stop() }
        guard let port = child.port() else { return nil }
        let recorder = variant.flags == nil ? nil : child.pid
        var server0: (server: UInt64, recorder: UInt64, load: UInt64)?
        var serverPid = child.pid
        let rps = NetBench.load(port: port, server.workload) {
            if recorder != nil { serverPid = firstChild(of: child.pid) ?? child.pid }
            atCountingStart?(child.pid)
            server0 = (cpuNs(serverPid), recorder.map(cpuNs) ?? 0, KernelBench.threadCPUNs())
        }
        let load1 = KernelBench.threadCPUNs()
        let server1 = cpuNs(serverPid), recorder1 = recorder.map(cpuNs) ?? 0
        atEnd?(child.pid)
        guard let rps, rps > 0, let server0 else { return nil }
        let requests = rps * NetBench.seconds
        let tick = 1e-3  // ns -> us
        child.stop()
        let summary = recorder == nil ? RecordSummary() : RecordSummary(log: log)
        return Sample(
            requestsPerS: rps,
            serverCPUPerRequestUs: Double(server1 &- server0.server) * tick / requests,
            recorderCPUPerRequestUs: Double(recorder1 &- server0.recorder) * tick / requests,
            loadCPUPerRequestUs: Double(load1 &- server0.load) / 1000 / requests,
            kernelEventsPerRequest: Double(summary.kernelEvents) / (rps * (NetBench.seconds + 0.5)),
            dropped: summary.dropped)
    }

    // MARK: BPF run-time statistics

    /// One run of the defaults with BPF_ENABLE_STATS held: each of the recording's programs' ns per run
    /// and runs per request over the counted seconds.
    static func bpfStatistics(_ server: Server, cli: String, dir: String) {
        let stats = KernelProbeSession.enableRunTimeStatistics()
        guard stats >= 0 else {
            print("{\"benchmark\": \"probes.\(server.name).bpf_stats.skipped\", \"reason\": \"BPF_ENABLE_STATS failed: errno \(-stats)\"}")
            return
        }
        defer { close(stats) }
        var before: [String: (ns: UInt64, runs: UInt64)] = [:], after = before
        guard
            let s = measure(
                server, Variant(name: "defaults", flags: []), cli: cli, dir: dir,
                atCountingStart: { before = programStatistics(owner: $0) },
                atEnd: { after = programStatistics(owner: $0) })
        else { return }
        let requests = s.requestsPerS * NetBench.seconds
        var total = 0.0
        for (name, a) in after.sorted(by: { $0.key < $1.key }) {
            let b = before[name] ?? (0, 0)
            let runs = a.runs &- b.runs, ns = a.ns &- b.ns
            guard runs > 0 else { continue }
            total += Double(ns) / requests
            report(
                "probes.\(server.name).bpf.\(name)", nsPerOp: Double(ns) / Double(runs),
                extra: [("runs_per_req", fmt3(Double(runs) / requests)), ("ns_per_req", fmt(Double(ns) / requests))])
        }
        report(
            "probes.\(server.name).bpf.all_programs", nsPerOp: total,
            extra: [("req_per_s", fmt(s.requestsPerS)), ("note", "\"ns per request, with the statistics' own clock reads\"")])
    }

    /// run_time_ns and run_cnt of the BPF programs process `owner` holds (its fds' /proc fdinfo), by name
    /// (`bpftool prog show id`, asked once per program).
    static func programStatistics(owner: pid_t) -> [String: (ns: UInt64, runs: UInt64)] {
        var out: [String: (ns: UInt64, runs: UInt64)] = [:]
        for fd in NodeBench.names(in: "/proc/\(owner)/fdinfo") {
            var id: String?, ns: UInt64 = 0, runs: UInt64 = 0
            for line in readSmall("/proc/\(owner)/fdinfo/\(fd)").split(separator: "\n") {
                let kv = line.split(separator: "\t").map(String.init)
                guard kv.count == 2 else { continue }
                switch kv[0] {
                case "prog_id:": id = kv[1]
                case "run_time_ns:": ns = UInt64(kv[1]) ?? 0
                case "run_cnt:": runs = UInt64(kv[1]) ?? 0
                default: break
                }
            }
            guard let id else { continue }
            if programNames[id] == nil {
                let words = capture(["bpftool", "prog", "show", "id", id]).split(whereSeparator: { $0 == " " || $0 == "\n" })
                programNames[id] = words.firstIndex(of: "name").flatMap { $0 + 1 < words.count ? String(words[$0 + 1]) : nil } ?? "prog\(id)"
            }
            let name = programNames[id]!
            out[name, default: (0, 0)].ns += ns
            out[name, default: (0, 0)].runs += runs
        }
        return out
    }

    nonisolated(unsafe) static var programNames: [String: String] = [:]

    // MARK: processes

    /// CPU time of a process's threads in ns (the first field of each /proc/PID/task/TID/schedstat:
    /// ns precision, where /proc/PID/stat counts 10 ms ticks).
    static func cpuNs(_ pid: pid_t) -> UInt64 {
        var total: UInt64 = 0
        for tid in NodeBench.names(in: "/proc/\(pid)/task") {
            total &+= readSmall("/proc/\(pid)/task/\(tid)/schedstat").split(separator: " ").first.flatMap { UInt64($0) } ?? 0
        }
        return total
    }

    static func firstChild(of pid: pid_t) -> pid_t? {
        readSmall("/proc/\(pid)/task/\(pid)/children").split(separator: " ").first.flatMap { pid_t($0) }
    }

    static func readSmall(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A command's stdout.
    static func capture(_ argv: [String]) -> String {
        let path = "/tmp/asynctrace-bench-probes-\(getpid()).out"
        defer { unlink(path) }
        guard
            let p = Spawned(
                argv: argv, env: NetBench.currentEnvironment(removing: []), stderrPath: "/dev/null",
                stdoutPath: path)
        else { return "" }
        p.wait()
        return readSmall(path)
    }

    /// A child with a pipe on stdin (closing it stops our servers) and stdout (the port), stderr to a file.
    final class Spawned {
        let pid: pid_t
        private var toChild: Int32
        private var fromChild: Int32
        private var reaped = false

        init?(argv: [String], env: [String], stderrPath: String, stdoutPath: String? = nil) {
            var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1]
            guard pipe(&inPipe) == 0, pipe(&outPipe) == 0 else { return nil }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
            if let stdoutPath {
                posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            } else {
                posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
            }
            posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            for fd in inPipe + outPipe { posix_spawn_file_actions_addclose(&actions, fd) }
            let cArgv = argv.map { strdup($0) } + [nil]
            let cEnv = env.map { strdup($0) } + [nil]
            var pid: pid_t = 0
            let rc = posix_spawnp(&pid, cArgv[0]!, &actions, nil, cArgv, cEnv)
            posix_spawn_file_actions_destroy(&actions)
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
            close(inPipe[0])
            close(outPipe[1])
            toChild = inPipe[1]
            fromChild = outPipe[0]
            guard rc == 0 else {
                print("{\"benchmark\": \"probes.skipped\", \"reason\": \"cannot start \(argv[0]): errno \(rc)\"}")
                close(toChild)
                close(fromChild)
                return nil
            }
            self.pid = pid
        }

        /// The first line of stdout as a port ("12345" or "PORT 12345").
        func port() -> Int? {
            var line: [UInt8] = []
            var c: UInt8 = 0
            while read(fromChild, &c, 1) == 1 && c != 10 { line.append(c) }
            var text = Substring(String(decoding: line, as: UTF8.self))
            if text.hasPrefix("PORT ") { text = text.dropFirst(5) }
            return Int(text)
        }

        func wait() {
            guard !reaped else { return }
            reaped = true
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }

        /// Closes stdin (the server exits, `record` then writes its summary) and reaps it.
        func stop() {
            if toChild >= 0 { close(toChild); toChild = -1 }
            if fromChild >= 0 { close(fromChild); fromChild = -1 }
            wait()
        }

        deinit { stop() }
    }

    /// The counts in `record`'s summary: "wrote … (… s; N program events, M kernel events; dropped: A program, B kernel)",
    /// and its "lost N … events" lines. A run without a summary counts as lossy rather than silently clean.
    struct RecordSummary {
        var kernelEvents: UInt64 = 0
        var dropped: UInt64 = 0
        init() {}
        init(log: String) {
            let lines = readSmall(log).split(separator: "\n")
            guard let line = lines.last(where: { $0.contains("asynctrace: wrote") }),
                let d = line.firstRange(of: "dropped: ")
            else {
                dropped = 1
                return
            }
            kernelEvents = Self.number(before: " kernel events", in: line) ?? 0
            let tail = line[d.upperBound...]
            dropped = (Self.number(before: " program", in: tail) ?? 0) + (Self.number(before: " kernel", in: tail) ?? 0)
            for l in lines {
                guard let r = l.firstRange(of: "lost ") else { continue }
                dropped += UInt64(String(l[r.upperBound...].prefix { $0.isNumber })) ?? 1
            }
        }

        static func number(before marker: String, in text: Substring) -> UInt64? {
            guard let r = text.firstRange(of: marker) else { return nil }
            return UInt64(String(text[..<r.lowerBound].reversed().prefix { $0.isNumber }.reversed()))
        }
    }
}
