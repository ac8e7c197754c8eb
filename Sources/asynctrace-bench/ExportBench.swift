// The `export` group: events per second of every export format (and OTLP's spans per second) (CPU time of the exporting thread,
// median of 3) and bytes per event of the Perfetto output, on two synthetic traces:
//   loop: shaped like a busy server's loop: per iteration a poll phase, an epoll wait reporting a
//         connection's fd, its read callback with a read and a write syscall inside, and a nextTick-like
//         resource's whole life (regular, short timings);
//   http: shaped like a recorded HTTP benchmark with kernel syscalls (16 keep-alive connections, 1–8 ready
//         fds per wait, µs-scale jittered timings), where Perfetto's bytes per event are the hardest.
// kernel_ns_per_event: the exporting thread's time in the kernel (writing the output), median of 3.
// The last line, `export.summary`, has the figures README quotes.
#if canImport(Glibc)
import Glibc
#endif
import TraceExports
import TraceFixtures
import TraceFormat
import TraceReader

enum ExportBench {
    static let iterationsPerChunk = 1_000

    static func run() {
        // ASYNCTRACE_BENCH_EXPORT_ITERATIONS scales both traces down (for callgrind);
        // ASYNCTRACE_BENCH_EXPORT_FORMAT=perfetto measures one format only (for profiling).
        let scale = getenv("ASYNCTRACE_BENCH_EXPORT_ITERATIONS").flatMap { Int(String(cString: $0)) }
        let only = getenv("ASYNCTRACE_BENCH_EXPORT_FORMAT").map { String(cString: $0) }
        let loopPath = writeTrace(iterations: scale ?? 250_000)  // 14 events each: 3.5 M events
        defer { unlink(loopPath) }
        let httpPath = writeHTTPTrace(iterations: (scale ?? 250_000) / 6)  // ~50 events each: ~2 M events
        defer { unlink(httpPath) }
        var summary: [String: String] = [:]
        for (label, path) in [("loop", loopPath), ("http", httpPath)] {
            guard let reader = try? TraceReader(path: path) else { fatalError("bench trace unreadable") }
            let prefix = label == "loop" ? "export." : "export.http."
            let out = "/tmp/asynctrace-bench-export-\(getpid()).out"
            defer { unlink(out) }

            var passRates: [Double] = []
            for _ in 0..<3 {
                let cpu = ReaderBenchmarks.cpuNow()
                let timeline = Timeline(reader: reader)
                var sink = NullSink()
                timeline.run(into: &sink)
                passRates.append(Double(timeline.stats.events) / (Double(ReaderBenchmarks.cpuNow() - cpu) / 1e9))
                precondition(sink.ops > 0)
            }
            ReaderBenchmarks.emit(
                prefix + "timeline_pass", eventsPerSecond: passRates.sorted()[1],
                extra: ["events": "\(reader.eventCount)"])

            for format in ExportFormat.allCases where only == nil || only == format.rawValue {
                var rates: [Double] = []
                var kernelNsPerEvent: [Double] = []
                var last: ExportSummary?
                ReaderBenchmarks.resetPeakRSS()
                for _ in 0..<3 {
                    let cpu = ReaderBenchmarks.cpuNow()
                    let kernel = threadKernelNs()
                    guard let s = try? TraceExport.run(reader: reader, format: format, outputPath: out) else {
                        fatalError("export \(format) failed")
                    }
                    rates.append(Double(s.events) / (Double(ReaderBenchmarks.cpuNow() - cpu) / 1e9))
                    kernelNsPerEvent.append(Double(threadKernelNs() - kernel) / Double(s.events))
                    last = s
                }
                let s = last!
                let rate = rates.sorted()[1]
                ReaderBenchmarks.emit(
                    prefix + format.rawValue, eventsPerSecond: rate,
                    extra: [
                        "events": "\(s.events)", "output_bytes": "\(s.bytesWritten)",
                        "max_rss_kb": "\(ReaderBenchmarks.peakRSSKB())",
                        "bytes_per_event": ReaderBenchmarks.format(s.bytesPerEvent),
                        "kernel_ns_per_event": ReaderBenchmarks.format(kernelNsPerEvent.sorted()[1]),
                    ])
                summary["\(label)_\(format.rawValue)_meps"] = ReaderBenchmarks.format(rate / 1e6)
                if format == .perfetto { summary["\(label)_perfetto_bytes_per_event"] = ReaderBenchmarks.format(s.bytesPerEvent) }
                if format == .otlp {
                    // The OTLP goal is in spans per second (callbacks, parts inside requests, stalls, tracer spans).
                    let spansPerSecond = rate * Double(s.spans) / Double(max(1, s.events))
                    ReaderBenchmarks.emit(
                        prefix + "otlp_spans", eventsPerSecond: spansPerSecond,
                        extra: [
                            "spans": "\(s.spans)", "requests": "\(s.requests)",
                            "bytes_per_span": ReaderBenchmarks.format(Double(s.bytesWritten) / Double(max(1, s.spans))),
                        ])
                    summary["\(label)_otlp_mspans"] = ReaderBenchmarks.format(spansPerSecond / 1e6)
                }
            }
            guard label == "loop" else { continue }
            for (grouping, weight) in [(StackGrouping.causal, StackWeight.busy), (.callback, .wall)] where only == nil {
                var rates: [Double] = []
                for _ in 0..<3 {
                    let cpu = ReaderBenchmarks.cpuNow()
                    guard
                        let s = try? TraceExport.run(
                            reader: reader, format: .folded, outputPath: out, grouping: grouping,
                            weight: weight)
                    else { fatalError("export failed") }
                    rates.append(Double(s.events) / (Double(ReaderBenchmarks.cpuNow() - cpu) / 1e9))
                }
                ReaderBenchmarks.emit(
                    "export.folded_\(grouping.rawValue)_\(weight.rawValue)", eventsPerSecond: rates.sorted()[1],
                    extra: [:])
            }
        }
        // One line for README: every format's M events/s on both traces and Perfetto's bytes per event;
        // ns_per_op/ops_per_s are the slowest format's (the figure the ≥ 5 M events/s goal is about).
        let slowest = summary.filter { $0.key.hasSuffix("_meps") }.compactMap { Double($0.value) }.min() ?? 0
        ReaderBenchmarks.emit("export.summary", eventsPerSecond: slowest * 1e6, extra: summary)
    }

    /// The calling thread's CPU time in the kernel so far: for the exports, mostly `write` copying the output
    /// into the page cache, whose cost per byte swings several-fold on these VMs (memory the host reclaimed
    /// is faulted back in on first touch), so it explains most of the run-to-run spread of the text formats.
    static func threadKernelNs() -> UInt64 {
        var usage = rusage()
        getrusage(__rusage_who_t(1), &usage)  // RUSAGE_THREAD (a GNU extension the Glibc module leaves out)
        return UInt64(usage.ru_stime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_stime.tv_usec) * 1_000
    }

    struct NullSink: TimelineSink {
        var ops = 0
        mutating func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {}
        mutating func consume(_ op: TimelineOp, timeline: Timeline) { ops &+= 1 }
    }

    static func writeTrace(iterations: Int) -> String {
        let path = "/tmp/asynctrace-bench-export-\(getpid()).atrace"
        LoopTrace.write(to: path, iterations: iterations)
        return path
    }

    /// A trace shaped like a recorded HTTP benchmark with kernel syscalls (the examples' http scenario under
    /// `asynctrace record`): 16 keep-alive connections; per loop iteration an epoll wait returning 1–8 of their
    /// fds, then per ready fd the connection's callback with a read and a sendto inside and a request resource
    /// created there that runs once and is destroyed; µs-scale, jittered gaps and durations (a fixed seed).
    static func writeHTTPTrace(iterations: Int) -> String {
        let path = "/tmp/asynctrace-bench-export-http-\(getpid()).atrace"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        func put(_ bytes: [UInt8]) { bytes.withUnsafeBytes { precondition(write(fd, $0.baseAddress, $0.count) == $0.count) } }
        let pid: UInt32 = 2000, tid: UInt32 = 2000
        put(FileHeader(pid: pid, monotonicStartNs: 1_000_000, realtimeStartNs: 0, program: "http-bench").encode())
        var rng: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random(_ range: ClosedRange<UInt64>) -> UInt64 {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            return range.lowerBound + rng % (range.upperBound - range.lowerBound + 1)
        }
        let connections = 16
        var t: UInt64 = 1_000_000
        var nextID: UInt64 = 100
        var seq: UInt64 = 0
        var done = 0
        while done < iterations {
            var u = ChunkBuilder(pid: pid, tid: tid, startNs: t, startTicks: t, reserve: 256 << 10)
            var k = ChunkBuilder(pid: pid, tid: 0, startNs: t, startTicks: t, reserve: 256 << 10)
            let request = u.intern("HTTPINCOMINGMESSAGE", ticks: t)
            if seq == 0 {
                let tcp = u.intern("TCPWRAP", ticks: t)
                for c in 0..<connections {
                    u.beginEvent(.initResource, ticks: t); u.putAsyncID(UInt64(10 + c)); u.putStringID(tcp); u.putRelatedID(1)
                    u.beginEvent(.resourceFD, ticks: t); u.putAsyncID(UInt64(10 + c)); u.putSigned(Int64(7 + c))
                }
            }
            func sys(_ nr: UInt64, fd: Int64, size: UInt64, ret: Int64, at exit: UInt64, dur: UInt64) {
                k.beginEvent(.syscall, ticks: exit)
                k.putUnsigned(UInt64(pid)); k.putUnsigned(UInt64(tid)); k.putUnsigned(nr); k.putSigned(fd)
                k.putUnsigned(size); k.putSigned(ret); k.putUnsigned(dur)
            }
            for _ in 0..<min(iterationsPerChunk / 4, iterations - done) {
                u.beginEvent(.loopIteration, ticks: t); u.putUnsigned(UInt64(done))
                t += random(100...400)
                u.beginEvent(.phaseEnter, ticks: t); u.putUnsigned(4)
                t += random(100...300)
                u.beginEvent(.pollStart, ticks: t); u.putSigned(-1)
                let wait = random(2_000...60_000)
                t += wait + random(200...600)
                let ready = (0..<Int(random(1...8))).map { _ in Int(random(0...UInt64(connections - 1))) }
                let fds = Array(Set(ready)).sorted().map { UInt64(7 + $0) }
                k.beginEvent(.epollWait, ticks: t)
                k.putUnsigned(UInt64(pid)); k.putUnsigned(UInt64(tid)); k.putUnsigned(232); k.putSigned(3)
                k.putUnsigned(1024); k.putSigned(-1); k.putSigned(Int64(fds.count)); k.putUnsigned(wait); k.putList(fds)
                t += random(300...900)
                u.beginEvent(.pollEnd, ticks: t); u.putUnsigned(UInt64(fds.count)); u.putList(fds)
                for f in fds {
                    let conn = f - 7 + 10
                    t += random(200...800)
                    u.beginEvent(.before, ticks: t); u.putAsyncID(conn)
                    let readDur = random(800...4_000)
                    t += random(300...1_500) + readDur
                    sys(0, fd: Int64(f), size: 65_536, ret: Int64(random(80...400)), at: t, dur: readDur)
                    t += random(2_000...15_000)
                    u.beginEvent(.initResource, ticks: t); u.putAsyncID(nextID); u.putStringID(request); u.putRelatedID(conn)
                    let sendDur = random(3_000...12_000)
                    t += random(1_000...5_000) + sendDur
                    let size = random(100...300)
                    sys(44, fd: Int64(f), size: size, ret: Int64(size), at: t, dur: sendDur)
                    t += random(300...1_500)
                    u.beginEvent(.after, ticks: t); u.putAsyncID(conn)
                    t += random(200...800)
                    u.beginEvent(.before, ticks: t); u.putAsyncID(nextID)
                    t += random(1_000...6_000)
                    u.beginEvent(.after, ticks: t); u.putAsyncID(nextID)
                    t += random(100...400)
                    u.beginEvent(.destroy, ticks: t); u.putAsyncID(nextID)
                    nextID += 1
                }
                t += random(200...600)
                u.beginEvent(.phaseLeave, ticks: t); u.putUnsigned(4)
                done += 1
                t += random(500...3_000)
            }
            put(u.seal(sequence: seq, endNs: t, endTicks: t, droppedCumulative: 0))
            put(k.seal(sequence: seq, endNs: t, endTicks: t, droppedCumulative: 0, flags: [.kernel]))
            seq += 1
        }
        return path
    }
}
