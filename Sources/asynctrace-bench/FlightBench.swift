// The `flight` group: `asynctrace record --flight-recorder` against plain recording, side by side in
// one run (issue 18). The traced program is this binary again (a worker selected by an environment
// variable, which `record` passes through), run under the `asynctrace` binary built next to it.
// - overhead: a chain of setImmediate (every 8th writes a byte to /dev/null), medians of 5 runs each,
//   alternating plain (`record -o`) and flight (`record --flight-recorder`), kernel probes on in both;
// - bound: a paced load of ~1 M events/s for 20 s (ASYNCTRACE_BENCH_FLIGHT_BOUND_SECONDS=600: the issue's
//   10 minutes) with --keep 16MiB, in memory and on disk (--keep-on-disk): the most the window held by the
//   recorder's count, the most the segment directory held by the bench's own look every 100 ms, and the
//   recorder's RSS in the first minute and after it (growth would be a leak);
// - dump: the same load for 32 s with --keep 30s, the program asks for a dump at 31.5 s: how long the
//   dump of the 30 s window took (medians of 3).
import AsyncTraceRecorder
import AsyncTraceRuntime
#if canImport(Glibc)
import Glibc
#endif

enum FlightBench {
    static let workerVariable = "ASYNCTRACE_BENCH_FLIGHT_WORKER"

    static func run() {
        if let spec = getenv(workerVariable) { worker(String(cString: spec)); exit(0) }
        guard let cli = siblingCLI() else {
            print("{\"benchmark\": \"flight\", \"skipped\": \"no asynctrace binary next to asynctrace-bench (build the asynctrace product)\"}")
            return
        }
        // ASYNCTRACE_BENCH_FLIGHT_ONLY=bound (or overhead, dump; comma-separated) runs only those parts.
        let only = getenv("ASYNCTRACE_BENCH_FLIGHT_ONLY").map { String(cString: $0).split(separator: ",").map(String.init) }
        if only?.contains("overhead") ?? true { overhead(cli: cli) }
        if only?.contains("bound") ?? true { bound(cli: cli) }
        if only?.contains("dump") ?? true { dumpTime(cli: cli) }
    }

    static func overhead(cli: String) {
        let n = 2_000_000
        var plain: [Double] = [], flight: [Double] = []
        for _ in 0..<5 {
            plain.append(record(cli, ["-o", "/tmp/asynctrace-bench-flight-\(getpid()).atrace"], worker: "chain \(n)").workerNsPerOp)
            unlink("/tmp/asynctrace-bench-flight-\(getpid()).atrace")
            flight.append(record(cli, ["--flight-recorder", "--keep", "30s"], worker: "chain \(n)").workerNsPerOp)
        }
        let p = median(plain), f = median(flight)
        report(
            "flight.overhead.setImmediate-chain.plain_recording", nsPerOp: p,
            extra: [("runs", "[\(plain.map(fmt).joined(separator: ", "))]")])
        report(
            "flight.overhead.setImmediate-chain.flight_recorder", nsPerOp: f,
            extra: [("runs", "[\(flight.map(fmt).joined(separator: ", "))]"), ("ratio_to_plain", fmt(f / p))])
    }

    static func bound(cli: String) {
        let seconds = getenv("ASYNCTRACE_BENCH_FLIGHT_BOUND_SECONDS").flatMap { Int(String(cString: $0)) }.map { max(5, $0) } ?? 20
        let directory = "/tmp/asynctrace-bench-flight-window-\(getpid())"
        for onDisk in [false, true] {
            let where_ = onDisk ? ["--keep-on-disk", directory] : []
            let r = record(
                cli, ["--flight-recorder", "--keep", "16MiB"] + where_, worker: "paced 250000 \(seconds) 0",
                watching: onDisk ? directory : nil)
            report(
                "flight.bound.1M_events_per_s_\(seconds)s_keep_16MiB_\(onDisk ? "on_disk" : "in_memory")", nsPerOp: r.workerNsPerOp,
                extra: [
                    ("callbacks_per_s", fmt(1e9 / r.workerNsPerOp)), ("window_peak_bytes", "\(r.keptPeakKiB * 1024)"),
                    ("directory_peak_bytes", "\(r.directoryPeakBytes)"), ("bound_bytes", "\(16 << 20)"),
                    ("recorder_peak_rss_bytes", "\(r.peakRSSKiB * 1024)"),
                    ("recorder_rss_first_minute_max_bytes", "\(r.rssFirstMinuteKiB * 1024)"),
                    ("recorder_rss_after_first_minute_max_bytes", "\(r.rssLaterKiB * 1024)"),
                    ("recorder_rss_max_mib_by_minute", "[\(r.rssByMinuteKiB.map { String($0 / 1024) }.joined(separator: ", "))]"),
                ])
            rmdir(directory)
        }
    }

    static func dumpTime(cli: String) {
        var ms: [Double] = [], sizes: [Double] = []
        var rss = 0
        for _ in 0..<3 {
            let r = record(cli, ["--flight-recorder", "--keep", "30s"], worker: "paced 250000 32 1")
            if let d = r.dumpMs { ms.append(d) }
            sizes.append(Double(r.dumpKiB) * 1024)
            rss = max(rss, r.peakRSSKiB)
        }
        report(
            "flight.dump.30s_window_at_1M_events_per_s", nsPerOp: median(ms) * 1e6,
            extra: [
                ("dump_ms", "[\(ms.map(fmt).joined(separator: ", "))]"), ("dump_bytes", fmt(median(sizes))),
                ("recorder_peak_rss_bytes", "\(rss * 1024)"),
            ])
    }

    struct Run {
        var workerNsPerOp = Double.nan
        var keptPeakKiB = 0
        var peakRSSKiB = 0
        var dumpMs: Double?
        var dumpKiB = 0
        var directoryPeakBytes = 0
        var rssFirstMinuteKiB = 0
        var rssLaterKiB = 0
        /// The most RSS in each minute of the run (a leak grows from minute to minute; warming up does not).
        var rssByMinuteKiB: [Int] = []
    }

    /// `asynctrace record ARGS -- <this binary> flight` with the worker `spec`; what the worker and
    /// the recorder's summary said, and the recorder's peak RSS (VmHWM, read while it runs).
    static func record(_ cli: String, _ args: [String], worker spec: String, watching directory: String? = nil) -> Run {
        let resultPath = "/tmp/asynctrace-bench-flight-result-\(getpid())"
        let errPath = "/tmp/asynctrace-bench-flight-stderr-\(getpid())"
        let argv = [cli, "record"] + args + ["--", selfPath(), "flight"]
        var env = ["\(workerVariable)=\(spec) \(resultPath)", "PATH=/usr/bin:/bin"]
        if let home = getenv("HOME") { env.append("HOME=\(String(cString: home))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        let rc = posix_spawn(&pid, cli, &actions, nil, cArgs, cEnv)
        posix_spawn_file_actions_destroy(&actions)
        guard rc == 0 else { fatalError("cannot run \(cli): \(rc)") }
        var run = Run()
        var status: Int32 = 0
        let started = monotonicNs()
        while waitpid(pid, &status, WNOHANG) == 0 {
            if let hwm = statusField("/proc/\(pid)/status", "VmHWM:") { run.peakRSSKiB = max(run.peakRSSKiB, hwm) }
            if let rss = statusField("/proc/\(pid)/status", "VmRSS:") {
                let minute = Int((monotonicNs() - started) / 60_000_000_000)
                while run.rssByMinuteKiB.count <= minute { run.rssByMinuteKiB.append(0) }
                run.rssByMinuteKiB[minute] = max(run.rssByMinuteKiB[minute], rss)
                if monotonicNs() - started < 60_000_000_000 {
                    run.rssFirstMinuteKiB = max(run.rssFirstMinuteKiB, rss)
                } else {
                    run.rssLaterKiB = max(run.rssLaterKiB, rss)
                }
            }
            if let directory { run.directoryPeakBytes = max(run.directoryPeakBytes, bytesIn(directory)) }
            usleep(100_000)
        }
        run.workerNsPerOp = Double(readText(resultPath).split(separator: "\n").first.map(String.init) ?? "") ?? .nan
        let err = readText(errPath)
        for line in err.split(separator: "\n").map(String.init) {
            if let after = text(after: "kept at most ", in: line) {
                run.keptPeakKiB = Int(after.prefix(while: { $0.isNumber })) ?? 0
            }
            if line.hasPrefix("asynctrace: wrote "), let after = text(after: " KiB, in ", in: line) {
                run.dumpMs = Double(after.prefix(while: { $0.isNumber })) ?? .nan
                if let events = text(after: " events, ", in: line) { run.dumpKiB = Int(events.prefix(while: { $0.isNumber })) ?? 0 }
            }
        }
        unlink(resultPath)
        unlink(errPath)
        return run
    }

    // MARK: worker side (the traced program)

    /// "chain N PATH": N chained setImmediate, every 8th writing a byte to /dev/null; ns per callback.
    /// "paced RATE SECONDS DUMP PATH": RATE callbacks/s (4 events each: init, before, after, destroy)
    /// for SECONDS, every 10th writing a byte; DUMP 1: TraceRecorder.dump() 1.5 s before the end.
    static func worker(_ spec: String) {
        TraceRecorder.startFromEnvironment()
        let parts = spec.split(separator: " ").map(String.init)
        let devNull = open("/dev/null", O_WRONLY)
        var byte: UInt8 = 1
        var result = ""
        switch parts.first {
        case "chain":
            let n = Int(parts[1])!
            let t0 = monotonicNs()
            EventLoop.main {
                var i = 0
                func step() {
                    i += 1
                    if i & 7 == 0 { _ = write(devNull, &byte, 1) }
                    if i < n { setImmediate(step) }
                }
                setImmediate(step)
            }
            result = fmt(Double(monotonicNs() - t0) / Double(n))
        case "paced":
            let rate = Double(parts[1])!, seconds = Int(parts[2])!, dump = parts[3] == "1"
            let t0 = monotonicNs()
            var done = 0
            EventLoop.main {
                let tick = setInterval(1) {
                    let due = Int(rate * Double(monotonicNs() - t0) / 1e9)
                    while done < due {
                        done += 1
                        let k = done
                        setImmediate { if k % 10 == 0 { _ = write(devNull, &byte, 1) } }
                    }
                }
                if dump { setTimeout(seconds * 1000 - 1500) { TraceRecorder.dump() } }
                setTimeout(seconds * 1000) { tick.clear() }
            }
            result = fmt(Double(monotonicNs() - t0) / Double(max(done, 1)))
        default:
            break
        }
        TraceRecorder.stop()
        let out = open(parts.last!, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = result.withCString { write(out, $0, strlen($0)) }
        close(out)
    }

    // MARK: helpers

    /// The sizes of the regular files directly in `directory` (0 if it cannot be read).
    static func bytesIn(_ directory: String) -> Int {
        guard let d = opendir(directory) else { return 0 }
        defer { closedir(d) }
        var total = 0
        while let e = readdir(d) {
            var name = e.pointee.d_name
            let file = withUnsafeBytes(of: &name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            var st = stat()
            if file != ".", file != "..", stat(directory + "/" + file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
                total += Int(st.st_size)
            }
        }
        return total
    }

    static func selfPath() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }

    static func siblingCLI() -> String? {
        let me = selfPath()
        guard let slash = me.lastIndex(of: "/") else { return nil }
        let cli = String(me[..<slash]) + "/asynctrace"
        return access(cli, X_OK) == 0 ? cli : nil
    }

    /// The rest of `line` after the first `marker`.
    static func text(after marker: String, in line: String) -> Substring? {
        let l = Array(line.utf8), m = Array(marker.utf8)
        guard l.count >= m.count else { return nil }
        for i in 0...(l.count - m.count) where l[i..<(i + m.count)].elementsEqual(m) {
            return line.utf8.dropFirst(i + m.count).split(separator: 0, omittingEmptySubsequences: false).first.map { Substring($0) }
        }
        return nil
    }

    static func readText(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A "Name:   123 kB" field of /proc/PID/status, in kB.
    static func statusField(_ path: String, _ name: String) -> Int? {
        for line in readText(path).split(separator: "\n") where line.hasPrefix(name) {
            return Int(line.dropFirst(name.count).trimmingPrefix(while: { $0 == " " || $0 == "\t" }).prefix(while: { $0.isNumber }))
        }
        return nil
    }
}
