// Writing trace files for tests with the format's own ChunkBuilder (the same bytes the recorders write).
import Foundation
import TraceFormat
import TraceReader

func temporaryTracePath(_ name: String) -> String {
    NSTemporaryDirectory() + "asynctrace-reader-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).atrace"
}

/// Where each chunk landed in the file, for tests that damage or cut it.
struct WrittenChunk {
    var offset: Int
    var length: Int
    var pid: UInt32
    var tid: UInt32
    var sequence: UInt64
    var eventCount: Int
    /// The test's own record of the chunk's events (ids for per-stream checks).
    var ids: [UInt64]
}

/// Appends a header and chunks to a file, remembering the layout.
final class TraceFileWriter {
    let path: String
    private let handle: FileHandle
    private(set) var size = 0
    private(set) var chunks: [WrittenChunk] = []
    private var pending: [UInt8] = []

    init(path: String, header: FileHeader) {
        self.path = path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        handle = FileHandle(forWritingAtPath: path)!
        write(header.encode())
    }

    func write(_ bytes: [UInt8]) {
        pending.append(contentsOf: bytes)
        size += bytes.count
        if pending.count > 4 << 20 { flush() }
    }

    func append(chunk: [UInt8], pid: UInt32, tid: UInt32, sequence: UInt64, eventCount: Int, ids: [UInt64] = []) {
        chunks.append(
            WrittenChunk(
                offset: size, length: chunk.count, pid: pid, tid: tid, sequence: sequence,
                eventCount: eventCount, ids: ids))
        write(chunk)
    }

    func flush() {
        guard !pending.isEmpty else { return }
        handle.write(Data(pending))
        pending.removeAll(keepingCapacity: true)
    }

    func close() {
        flush()
        try? handle.close()
    }

    var bytes: [UInt8] { flush(); return [UInt8](FileManager.default.contents(atPath: path)!) }
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

func removeFile(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

/// A small multi-stream trace: `streams` user threads (+ a kernel stream) whose `before` events carry
/// ids `stream << 32 | n`, chunks of `perChunk` events, interleaved in the file.
func writeSmallTrace(
    path: String, streams: Int = 3, chunksPerStream: Int = 6, perChunk: Int = 25,
    kernel: Bool = true
) -> TraceFileWriter {
    let w = TraceFileWriter(
        path: path,
        header: FileHeader(
            pid: 100, monotonicStartNs: 1_000_000,
            realtimeStartNs: 5, program: "./small"))
    let total = streams + (kernel ? 1 : 0)
    var counters = [UInt64](repeating: 0, count: total)
    for c in 0..<chunksPerStream {
        for s in 0..<total {
            let isKernel = s == streams
            let tid: UInt32 = isKernel ? 0 : UInt32(200 + s)
            // Each stream's chunk c covers [c*10_000, c*10_000 + 9_999] ns, offset per stream.
            let base = UInt64(1_000_000 + c * 10_000 + s * 7)
            var b = ChunkBuilder(pid: 100, tid: tid, startNs: base, startTicks: base)
            var ids: [UInt64] = []
            if c == 0 && !isKernel {
                let n = b.intern("worker-\(s)", ticks: base)
                b.beginEvent(.threadInfo, ticks: base); b.putStringID(n)
            }
            for i in 0..<perChunk {
                let id = UInt64(s) << 32 | counters[s]
                counters[s] += 1
                let t = base + UInt64(i * 300)
                if isKernel {
                    b.beginEvent(.syscall, ticks: t)
                    for v: UInt64 in [100, 201, 0] { b.putUnsigned(v) }
                    b.putSigned(5); b.putUnsigned(id); b.putSigned(10); b.putUnsigned(100)
                } else {
                    b.beginEvent(.before, ticks: t); b.putAsyncID(id)
                }
                ids.append(id)
            }
            // Each stream's last chunk is final, as a recorder that stopped cleanly writes it.
            var flags: ChunkFlags = isKernel ? [.kernel] : []
            if c == chunksPerStream - 1 { flags.insert(.final) }
            let chunk = b.seal(
                sequence: UInt64(c), endNs: base + 9_999, endTicks: base + 9_999, droppedCumulative: 0,
                flags: flags)
            w.append(chunk: chunk, pid: 100, tid: tid, sequence: UInt64(c), eventCount: Int(b.eventCount), ids: ids)
        }
    }
    w.close()
    return w
}

/// The streams a file holding only `chunks` (a prefix, or the chunks left after a loss) leaves without their
/// final chunk, as the reader reports them (`unterminatedStream`), with the end of their last chunk.
func unterminatedStreams(_ chunks: some Sequence<WrittenChunk>, finalSequence: UInt64) -> [StreamKey: UInt64] {
    var last: [StreamKey: UInt64] = [:]
    for c in chunks {
        let key = StreamKey(pid: c.pid, tid: c.tid, isKernel: c.tid == 0)
        last[key] = max(last[key] ?? 0, c.sequence)
    }
    return last.filter { $0.value != finalSequence }
}

/// The id a test event carries: asyncID for user events, `size` for kernel syscalls.
func testID(_ e: DecodedEvent) -> UInt64? {
    switch e.kind {
    case .before: e.u(0)
    case .syscall: e.u(4)
    default: nil
    }
}
