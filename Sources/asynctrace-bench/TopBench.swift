// `asynctrace top`'s work (follow a growing file, analyse each interval, render it) against a writer
// appending a busy loop's trace at a fixed rate: does it keep up, and with how much of a core?
#if canImport(Glibc)
import Glibc
#endif
import TraceAnalyses
import TraceFixtures
import TraceFormat
import TraceReader
import TraceReports

enum TopBench {
    /// A chunk of the source file: where it is and how many events it holds.
    struct Chunk {
        var offset: Int
        var length: Int
        var events: Int
    }

    final class Replay: @unchecked Sendable {  // written by the writer thread, read after it is joined or atomically enough (Int loads)
        let bytes: [UInt8]
        let chunks: [Chunk]
        let fd: Int32
        let rate: Double
        var written = 0
        var finishedNs: UInt64 = 0
        init(bytes: [UInt8], chunks: [Chunk], fd: Int32, rate: Double) {
            self.bytes = bytes
            self.chunks = chunks
            self.fd = fd
            self.rate = rate
        }

        /// Appends the chunks so that `events` events are in the file `events / rate` seconds after the start.
        func run() {
            let start = ReaderBenchmarks.now()
            var events = 0
            for c in chunks {
                let due = start + UInt64(Double(events) / rate * 1e9)
                while ReaderBenchmarks.now() < due { usleep(500) }
                bytes.withUnsafeBytes { b in
                    var off = 0
                    while off < c.length {
                        let n = write(fd, b.baseAddress! + c.offset + off, c.length - off)
                        if n <= 0 { break }
                        off += n
                    }
                }
                events += c.events
                written = events
            }
            finishedNs = ReaderBenchmarks.now()
        }
    }

    static func run() {
        for rate in [5_000_000.0] { follow(rate: rate, seconds: 8) }
    }

    static func follow(rate: Double, seconds: Double) {
        let source = "/tmp/asynctrace-bench-top-source-\(getpid()).atrace"
        let target = "/tmp/asynctrace-bench-top-\(getpid()).atrace"
        defer {
            unlink(source)
            unlink(target)
        }
        // LoopTrace: 14 events per iteration (7 user, 7 kernel).
        let iterations = Int(rate * seconds / 14)
        LoopTrace.write(to: source, iterations: iterations)
        guard let bytes = readAll(source) else { return print("{\"benchmark\": \"top-follow\", \"error\": \"cannot read the source\"}") }
        // The header, then the chunks one by one.
        let headerLength = Int(UInt16(bytes[10]) | UInt16(bytes[11]) << 8)
        var chunks: [Chunk] = []
        var pos = headerLength
        while pos + TraceFileFormat.chunkHeaderSize <= bytes.count {
            let h = bytes.withUnsafeBytes { ChunkHeader.load(from: $0.baseAddress! + pos)! }
            let len = TraceFileFormat.chunkHeaderSize + Int(h.payloadLength)
            chunks.append(Chunk(offset: pos, length: len, events: Int(h.eventCount)))
            pos += len
        }
        let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        bytes.withUnsafeBytes { _ = write(fd, $0.baseAddress!, headerLength) }
        let total = chunks.reduce(0) { $0 + $1.events }
        let replay = Replay(bytes: bytes, chunks: chunks, fd: fd, rate: rate)
        var thread = pthread_t()
        let box = Unmanaged.passRetained(replay).toOpaque()
        pthread_create(
            &thread, nil,
            { p in
                let r = Unmanaged<Replay>.fromOpaque(p!).takeRetainedValue()
                r.run()
                return nil
            }, box)

        // What `asynctrace top` does every interval.
        let follower = try! TraceFollower(path: target)
        var live = LiveTraceAnalysis()
        var options = LiveTextOptions()
        options.source = "bench"
        let start = ReaderBenchmarks.now()
        let cpu0 = ReaderBenchmarks.cpuNow()
        var maxBehind = 0
        var rendered = 0
        var next = start + 1_000_000_000
        while true {
            let now = ReaderBenchmarks.now()
            if now < next { usleep(UInt32((next - now) / 1_000)) }
            next += 1_000_000_000
            let writerDone = replay.finishedNs != 0
            let grew = (try? follower.poll()) ?? false
            live.consume(follower, all: writerDone && !grew)
            if let i = live.interval() { rendered += LiveText.render(i, options: options).count }
            maxBehind = max(maxBehind, replay.written - Int(live.events))
            // Done when the writer finished, the file stopped growing and every chunk was handed out. (Counting
            // events against the chunk headers never matched: headers also count the string and metadata
            // records the analysis does not see as events, so every run ran to the time limit below.)
            if writerDone && !grew && follower.chunksWaiting == 0 { break }
            if ReaderBenchmarks.now() - start > UInt64(seconds * 4 * 1e9) { break }  // fell hopelessly behind
        }
        let end = ReaderBenchmarks.now()
        let cpu = ReaderBenchmarks.cpuNow() - cpu0
        pthread_join(thread, nil)
        close(fd)
        let writerSeconds = Double(replay.finishedNs - start) / 1e9
        let wall = Double(end - start) / 1e9
        ReaderBenchmarks.emit(
            "top-follow-\(Int(rate / 1e6))M", eventsPerSecond: Double(live.events) / writerSeconds,
            extra: [
                "events": "\(live.events)", "events_written": "\(total)",
                "writer_s": ReaderBenchmarks.format(writerSeconds), "caught_up_s": ReaderBenchmarks.format(wall),
                "cpu_s": ReaderBenchmarks.format(Double(cpu) / 1e9),
                "core_share": ReaderBenchmarks.format(Double(cpu) / 1e9 / wall),
                "max_behind_events": "\(maxBehind)", "lines_rendered": "\(rendered)",
            ])
        // The same analysis of the finished file as fast as it goes: the ceiling per core.
        let f2 = try! TraceFollower(path: target)
        var live2 = LiveTraceAnalysis()
        let c0 = ReaderBenchmarks.cpuNow()
        _ = try? f2.poll()
        live2.consume(f2, all: true)
        _ = live2.interval()
        let c = Double(ReaderBenchmarks.cpuNow() - c0) / 1e9
        ReaderBenchmarks.emit(
            "top-analyse-flat-out", eventsPerSecond: Double(live2.events) / c,
            extra: [
                "events": "\(live2.events)", "cpu_s": ReaderBenchmarks.format(c),
            ])
    }

    static func readAll(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var off = 0
        while off < out.count {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, $0.count - off) }
            if n <= 0 { return nil }
            off += n
        }
        return out
    }
}
