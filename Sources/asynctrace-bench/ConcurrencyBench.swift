// Swift Concurrency observed by the injected library: the cost per job and per task, recorded and at
// the hooks-only floor (interposers, trampolines and execution-state updates with no recorder), next to
// the bare program, in one run with the variants taking turns. The program is
// Benchmarks/swift-concurrency/tasks.swift, compiled here with swiftc -O; it times its own measured
// section. The injected library is the one next to this executable, or ASYNCTRACE_CONCURRENCY_LIBRARY
// (build it in release: swift build -c release --product AsyncTraceConcurrencyPreload).
// Env: ASYNCTRACE_BENCH_TASKS (group size, default 1 M), ASYNCTRACE_BENCH_YIELDS (default 1 M), ..._RUNS (5).
import TraceReader
#if canImport(Glibc)
import Glibc
#endif

enum ConcurrencyBench {
    static func run() {
        guard let library = preloadLibrary() else {
            print(
                "{\"benchmark\": \"concurrency\", \"skipped\": \"libAsyncTraceConcurrencyPreload.so not found (set ASYNCTRACE_CONCURRENCY_LIBRARY)\"}"
            )
            return
        }
        guard let program = compileProgram() else {
            print("{\"benchmark\": \"concurrency\", \"skipped\": \"swiftc or Benchmarks/swift-concurrency/tasks.swift not found\"}")
            return
        }
        let runs = envInt("ASYNCTRACE_BENCH_RUNS") ?? 5
        let cases = [
            ("group", envInt("ASYNCTRACE_BENCH_TASKS") ?? 1_000_000, "task"),
            ("yield", envInt("ASYNCTRACE_BENCH_YIELDS") ?? 1_000_000, "job"),
        ]
        let trace = "/tmp/asynctrace-bench-concurrency-\(getpid()).atrace"
        for (mode, n, unit) in cases {
            var samples: [String: [Double]] = ["bare": [], "hooks-only": [], "recorded": []]
            var dropped: UInt64 = 0
            var events: UInt64 = 0
            let order = ["bare", "hooks-only", "recorded"]
            for r in 0..<runs {
                for k in 0..<order.count {
                    let variant = order[(k + r) % order.count]  // each variant goes first in turn
                    var env = baseEnvironment()
                    switch variant {
                    case "hooks-only": env += ["LD_PRELOAD=\(library)", "ASYNCTRACE_CONCURRENCY_HOOKS_ONLY=1"]
                    case "recorded": env += ["LD_PRELOAD=\(library)", "ASYNCTRACE_OUTPUT=\(trace)"]
                    default: break
                    }
                    guard let ns = runProgram(program, [mode, String(n)], env) else {
                        print("{\"benchmark\": \"concurrency/\(mode)\", \"error\": \"the program failed (\(variant))\"}")
                        return
                    }
                    samples[variant]!.append(ns / Double(n))
                    if variant == "recorded", let reader = try? TraceReader(path: trace) {
                        dropped = max(dropped, reader.droppedUser)
                        events = reader.eventCount
                    }
                    unlink(trace)
                }
            }
            let bare = median(samples["bare"]!), floor = median(samples["hooks-only"]!), rec = median(samples["recorded"]!)
            let name = mode == "group" ? "concurrency/task-group-child" : "concurrency/yield-job"
            report(
                name, nsPerOp: rec,
                extra: [
                    ("unit", "\"\(unit)\""), ("count", String(n)), ("bare_ns", fmt(bare)), ("hooks_only_ns", fmt(floor)),
                    ("recorded_ns", fmt(rec)), ("hooks_only_added_ns", fmt(floor - bare)), ("recorded_added_ns", fmt(rec - bare)),
                    ("recorded_vs_bare", fmt(rec / bare)), ("events_per_run", String(events)), ("events_dropped_max", String(dropped)),
                    ("runs", String(runs)),
                ])
        }
    }

    static func envInt(_ name: String) -> Int? { getenv(name).flatMap { Int(String(cString: $0)) } }

    static func baseEnvironment() -> [String] {
        var out: [String] = []
        var p = environ
        while let e = p.pointee {
            let s = String(cString: e)
            if !s.hasPrefix("LD_PRELOAD=") && !s.hasPrefix("ASYNCTRACE_") { out.append(s) }
            p += 1
        }
        return out
    }

    static func selfDirectory() -> String {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &buf, 4096)
        let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "."
        return exe.lastIndex(of: "/").map { String(exe[..<$0]) } ?? "."
    }

    static func preloadLibrary() -> String? {
        if let p = getenv("ASYNCTRACE_CONCURRENCY_LIBRARY").map({ String(cString: $0) }), access(p, R_OK) == 0 { return p }
        let p = selfDirectory() + "/libAsyncTraceConcurrencyPreload.so"
        return access(p, R_OK) == 0 ? p : nil
    }

    /// The benchmark program, compiled with swiftc -O next to the bench's build products.
    static func compileProgram() -> String? {
        var dir = selfDirectory()
        var source: String?
        for _ in 0..<5 {
            let candidate = dir + "/Benchmarks/swift-concurrency/tasks.swift"
            if access(candidate, R_OK) == 0 { source = candidate; break }
            dir = dir.lastIndex(of: "/").map { String(dir[..<$0]) } ?? "/"
        }
        if source == nil, access("Benchmarks/swift-concurrency/tasks.swift", R_OK) == 0 { source = "Benchmarks/swift-concurrency/tasks.swift" }
        guard let source else { return nil }
        let output = "/tmp/asynctrace-bench-tasks-\(getpid())"
        let candidates: [String] = ["/opt/swift/usr/bin/swiftc", "/usr/bin/swiftc"]
        let swiftc = candidates.first { (p: String) in access(p, X_OK) == 0 }
        guard let swiftc,
            runProgram(
                swiftc, ["-O", "-parse-as-library", source, "-o", output], baseEnvironment(),
                expectTime: false) != nil
        else { return nil }
        return output
    }

    /// Runs `path` and returns the "elapsed_ns N" it prints (or 0 when `expectTime` is false); nil on failure.
    static func runProgram(_ path: String, _ args: [String], _ env: [String], expectTime: Bool = true) -> Double? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv = ([path] + args).map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
            posix_spawn_file_actions_destroy(&actions)
        }
        var pid: pid_t = 0
        guard posix_spawn(&pid, path, &actions, nil, argv, envp) == 0 else { close(fds[0]); close(fds[1]); return nil }
        close(fds[1])
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let r = read(fds[0], &buf, buf.count)
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { break }
            out += buf[0..<r]
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { return nil }
        if !expectTime { return 0 }
        let text = String(decoding: out, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("elapsed_ns ") }),
            let ns = Double(line.split(separator: " ")[1])
        else { return nil }
        return ns
    }
}
