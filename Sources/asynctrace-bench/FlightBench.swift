// The `flight` group: `asynctrace record --flight-recorder` against plain recording, side by side in
// one run (issue 18). The traced program is this binary again (a worker selected by an environment
// variable, which `record` passes through), run under the `asynctrace` binary built next to it.
// - overhead: a chain of setImmediate (every 8th writes a byte to /dev/null), medians of 5 runs each,
//   alternating plain (`record -o`) and flight (`record --flight-recorder`), kernel probes on in both;
// - bound: a paced load of ~1 M events/s for 20 s with --keep 16MiB: the most the window held, and the
//   recorder's peak RSS (a shortened stand-in for the 10 minutes);
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
        overhead(cli: cli)
        bound(cli: cli)
        dumpTime(cli: cli)
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
        let r = record(cli, ["--flight-recorder", "--keep", "16MiB"], worker: "paced 250000 20 0")
        report(
            "flight.bound.1M_events_per_s_20s_keep_16MiB", nsPerOp: r.workerNsPerOp,
            extra: [
                ("window_peak_bytes", "\(r.keptPeakKiB * 1024)"), ("bound_bytes", "\(16 << 20)"),
                ("recorder_peak_rss_bytes", "\(r.peakRSSKiB * 1024)"),
            ])
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
    }

    /// `asynctrace record ARGS -- <this binary> flight` with the worker `spec`; what the worker and
    /// the recorder's summary said, and the recorder's peak RSS (VmHWM, read while it runs).
    static func record(_ cli: String, _ args: [String], worker spec: String) -> Run {
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
        while waitpid(pid, &status, WNOHANG) == 0 {
            if let hwm = statusField("/proc/\(pid)/status", "VmHWM:") { run.peakRSSKiB = max(run.peakRSSKiB, hwm) }
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
