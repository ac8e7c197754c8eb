// The `reader` group: decoding speed and resident memory of TraceReader on large synthetic traces
// written with ChunkBuilder (4 user threads with an init/before/after/destroy mix + a kernel stream).
#if canImport(Glibc)
import Glibc
#endif
import TraceAnalyses
import TraceFormat
import TraceReader

enum ReaderBenchmarks {
    static func run() { run(large: true) }
    static func runQuick() { run(large: false) }

    static func run(large withLarge: Bool) {
        let small = writeTrace(events: 10_000_000)
        var rates: [Double] = []
        var wallRates: [Double] = []
        for _ in 0..<3 {
            let r = read(small)
            rates.append(r.eventsPerSecond)
            wallRates.append(r.wallEventsPerSecond)
        }
        let medianSmall = rates.sorted()[1]
        resetPeakRSS()
        let smallRun = read(small)
        emit(
            "reader.events_10M", eventsPerSecond: medianSmall,
            extra: [
                "events": "\(smallRun.events)", "file_bytes": "\(smallRun.fileBytes)", "max_rss_kb": "\(smallRun.peakKB)",
                "bytes_per_event": format(Double(smallRun.fileBytes) / Double(smallRun.events)),
                "wall_ops_per_s": "\(Int(wallRates.sorted()[1]))",
            ])
        var analyzeRates: [Double] = []
        for _ in 0..<3 { analyzeRates.append(analyze(small).eventsPerSecond) }
        resetPeakRSS()
        let analyzeRun = analyze(small)
        emit(
            "reader.analyze_10M", eventsPerSecond: analyzeRates.sorted()[1],
            extra: [
                "events": "\(analyzeRun.events)", "max_rss_kb": "\(analyzeRun.peakKB)",
                "wall_ops_per_s": "\(Int(analyzeRun.wallEventsPerSecond))",
            ])
        var iteratorRates: [Double] = []
        for _ in 0..<3 { iteratorRates.append(read(small, byIterator: true).eventsPerSecond) }
        emit("reader.events_10M_next", eventsPerSecond: iteratorRates.sorted()[1], extra: ["api": "\"next()\""])
        var viewRates: [Double] = []
        for _ in 0..<3 { viewRates.append(read(small, byView: true).eventsPerSecond) }
        emit("reader.events_10M_view", eventsPerSecond: viewRates.sorted()[1], extra: ["api": "\"forEachView\""])
        unlink(small)
        guard withLarge else { return }

        let large = writeTrace(events: 100_000_000)
        resetPeakRSS()
        let largeRun = read(large)
        emit(
            "reader.events_100M", eventsPerSecond: largeRun.eventsPerSecond,
            extra: [
                "events": "\(largeRun.events)", "file_bytes": "\(largeRun.fileBytes)", "max_rss_kb": "\(largeRun.peakKB)",
                "wall_ops_per_s": "\(Int(largeRun.wallEventsPerSecond))",
                "rss_ratio_100M_to_10M": format(Double(largeRun.peakKB) / Double(max(1, smallRun.peakKB))),
            ])
        resetPeakRSS()
        let analyzeLarge = analyze(large)
        emit(
            "reader.analyze_100M", eventsPerSecond: analyzeLarge.eventsPerSecond,
            extra: [
                "events": "\(analyzeLarge.events)", "max_rss_kb": "\(analyzeLarge.peakKB)",
                "wall_ops_per_s": "\(Int(analyzeLarge.wallEventsPerSecond))",
                "rss_ratio_100M_to_10M": format(Double(analyzeLarge.peakKB) / Double(max(1, analyzeRun.peakKB))),
            ])
        unlink(large)
    }

    /// The whole `asynctrace report` analysis pass (all analyses, one read).
    static func analyze(_ path: String) -> ReadRun {
        let start = now()
        let cpuStart = cpuNow()
        guard let r = try? TraceReader(path: path) else { fatalError("bench trace unreadable") }
        let a = analyzeTrace(r)
        let secs = Double(now() - start) / 1e9
        let cpuSecs = Double(cpuNow() - cpuStart) / 1e9
        precondition(a.overview.damage.isEmpty && a.overview.count("before") > 0)
        let n = a.overview.totalEvents
        return ReadRun(
            events: n, fileBytes: r.fileSize, eventsPerSecond: Double(n) / cpuSecs,
            wallEventsPerSecond: Double(n) / secs, peakKB: peakRSSKB())
    }

    struct ReadRun {
        var events: UInt64
        var fileBytes: UInt64
        /// Per CPU second of the reading thread (other engineers' builds share the 2 cores).
        var eventsPerSecond: Double
        var wallEventsPerSecond: Double
        var peakKB: Int
    }

    static func read(_ path: String, byIterator: Bool = false, byView: Bool = false) -> ReadRun {
        let start = now()
        let cpuStart = cpuNow()
        guard let r = try? TraceReader(path: path) else { fatalError("bench trace unreadable") }
        let it = r.events()
        var n: UInt64 = 0
        var check: UInt64 = 0
        if byView {
            it.forEachView { e in
                n &+= 1
                check &+= e.timestampNs
            }
        } else if byIterator {
            while let e = it.next() {
                n &+= 1
                check &+= e.timestampNs
            }
        } else {
            it.forEach { _, e in
                n &+= 1
                check &+= e.timestampNs
            }
        }
        let secs = Double(now() - start) / 1e9
        let cpuSecs = Double(cpuNow() - cpuStart) / 1e9
        precondition(r.damage.isEmpty && it.damage.isEmpty && check != 0)
        return ReadRun(
            events: n, fileBytes: r.fileSize, eventsPerSecond: Double(n) / cpuSecs,
            wallEventsPerSecond: Double(n) / secs, peakKB: peakRSSKB())
    }

    /// Writes `events` events: 4 user threads (chunks of 16 K events) and a kernel stream, interleaved.
    static func writeTrace(events: Int) -> String {
        let path = "/tmp/asynctrace-bench-reader-\(getpid())-\(events).atrace"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        func put(_ bytes: [UInt8]) { bytes.withUnsafeBytes { precondition(write(fd, $0.baseAddress, $0.count) == $0.count) } }
        put(FileHeader(pid: 1, monotonicStartNs: 1_000, realtimeStartNs: 0, program: "bench").encode())
        let perChunk = 16_384
        let streams = 5
        var written = 0
        var seq: UInt64 = 0
        var t: UInt64 = 1_000
        var nextID: UInt64 = 2
        while written < events {
            for s in 0..<streams where written < events {
                let kernel = s == streams - 1
                var b = ChunkBuilder(
                    pid: 1, tid: kernel ? 0 : UInt32(s + 2), startNs: t, startTicks: kernel ? t : t * 2,
                    reserve: perChunk * 6)
                let type = kernel ? 0 : b.intern("TCPWRAP", ticks: kernel ? t : t * 2)
                let n = min(perChunk, events - written)
                var i = 0
                while i < n {
                    let ns = t + UInt64(i) * 50
                    if kernel {
                        b.beginEvent(.syscall, ticks: ns)
                        b.putUnsigned(1); b.putUnsigned(2); b.putUnsigned(0); b.putSigned(7)
                        b.putUnsigned(4096); b.putSigned(512); b.putUnsigned(1_500)
                        i += 1
                    } else {
                        // init, before, after, destroy of one resource
                        b.beginEvent(.initResource, ticks: ns * 2); b.putAsyncID(nextID); b.putStringID(type); b.putRelatedID(1)
                        b.beginEvent(.before, ticks: ns * 2 + 10); b.putAsyncID(nextID)
                        b.beginEvent(.after, ticks: ns * 2 + 40); b.putAsyncID(nextID)
                        b.beginEvent(.destroy, ticks: ns * 2 + 60); b.putAsyncID(nextID)
                        nextID += 1
                        i += 4
                    }
                }
                let end = t + UInt64(n) * 50
                put(
                    b.seal(
                        sequence: seq, endNs: end, endTicks: kernel ? end : end * 2, droppedCumulative: 0,
                        flags: kernel ? [.kernel] : []))
                written += Int(b.eventCount) - (kernel ? 0 : 1)
            }
            seq += 1
            t += UInt64(perChunk) * 50
        }
        return path
    }

    static func cpuNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Writing "5" to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
    static func resetPeakRSS() {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        if fd >= 0 {
            _ = write(fd, "5", 1)
            close(fd)
        }
    }

    static func peakRSSKB() -> Int {
        guard let f = fopen("/proc/self/status", "r") else { return -1 }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, 256, f) != nil {
            let s = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            if s.hasPrefix("VmHWM:") {
                return Int(s.dropFirst(6).filter { $0.isNumber }) ?? -1
            }
        }
        return -1
    }

    static func format(_ v: Double) -> String { String(Double(Int(v * 1000)) / 1000) }

    static func emit(_ name: String, eventsPerSecond: Double, extra: [String: String]) {
        var fields = [
            "\"benchmark\": \"\(name)\"", "\"ns_per_op\": \(format(1e9 / eventsPerSecond))",
            "\"ops_per_s\": \(Int(eventsPerSecond))",
        ]
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) { fields.append("\"\(k)\": \(v)") }
        print("{" + fields.joined(separator: ", ") + "}")
        fflush(nil)
    }
}
