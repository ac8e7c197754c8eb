// Opens a trace file: reads the header, indexes the chunks (checking every checksum), and hands
// out iterators over the events of all streams in time order.
import TraceFormat

/// An open trace file: its header, streams and damage, indexed once (every chunk checksum checked);
/// `events(streams:)` hands out iterators over the events in time order. Immutable and `Sendable`.
public final class TraceReader: Sendable {
    /// The path the trace was opened from.
    public let path: String
    /// The file header: format version, the recording process, its start times and program name.
    public let header: FileHeader
    /// The file's size in bytes when it was opened (later appends are not read).
    public let fileSize: UInt64
    /// Every stream with at least one readable chunk: user threads, then the kernel stream, in file order of appearance.
    public let streams: [TraceStream]
    /// What could not be read, found while indexing (decoding can add more: see `TraceEventIterator.damage`).
    public let damage: [TraceDamage]
    /// Events in readable chunks, by their headers.
    public let eventCount: UInt64
    /// Payload bytes of readable chunks (what an iterator reads; for progress).
    public let payloadBytes: UInt64
    /// Earliest chunk start and latest chunk end among readable chunks (CLOCK_MONOTONIC ns); 0 if there are none.
    public let firstNs: UInt64
    /// Latest chunk end among readable chunks (CLOCK_MONOTONIC ns); 0 if there are none.
    public let lastNs: UInt64
    /// When recording stopped, as the recorders wrote it (CLOCK_MONOTONIC ns): the latest end of a stream's
    /// final chunk, which `record` sets to its stop time even when the last event came long before (a
    /// process idle at the end); 0 when no stream was closed.
    public let recordingEndNs: UInt64
    /// Events the recorders could not write to the file (disk full, I/O error), from `asynctrace record`'s
    /// note at the end of the file; nil when there is no note (nothing was lost, or the note itself could not
    /// be written, or the trace was not made by `record`).
    public let unwritten: UnwrittenNote?
    /// The trace file's device and inode: an output must never be this file.
    public var fileIdentity: FileIdentity { file.identity }

    let file: TraceFileHandle
    let chunks: [[ChunkEntry]]
    /// What indexing cost (for tests of its bounds).
    let indexStatistics: IndexStatistics
    /// Unterminated streams listed one by one in `damage`; more are counted in one entry.
    static let maxUnterminatedListed = 100
    let largestPayload: Int

    /// Opens `path`; throws only when the file is unusable as a whole (missing, not a trace, header damaged or too new).
    public init(path: String) throws(TraceOpenError) {
        let file = try TraceFileHandle(path: path)
        if file.size == 0 { throw .emptyFile(path: path) }
        let want = min(Int(file.size), 38 + TraceFileFormat.maxProgramBytes)
        var buf = [UInt8](repeating: 0, count: want)
        let got = buf.withUnsafeMutableBytes { file.read(into: $0.baseAddress!, count: want, at: 0) }
        if got < want { throw .cannotRead(path: path, errno: 0, message: "short read of the header") }
        let decoded = buf.withUnsafeBytes { FileHeader.decode($0) }
        let header: FileHeader
        let headerLength: Int
        switch decoded {
        case .success(let (h, n)):
            header = h
            headerLength = n
        case .failure(.tooShort):
            throw .truncatedHeader(path: path, bytes: got)
        case .failure(.notATrace):
            // A file shorter than the magic that matches its beginning is a header cut short.
            if got < 8 && Array(buf[0..<got]) == Array(TraceFileFormat.magic[0..<got]) {
                throw .truncatedHeader(path: path, bytes: got)
            }
            throw .notATrace(path: path)
        case .failure(.unsupportedVersion(let v)):
            throw .newerVersion(path: path, found: v, supported: TraceFileFormat.currentVersion)
        case .failure(.corrupt):
            throw .corruptHeader(path: path)
        }
        let indexer = ChunkIndexer(file: file, traceStartNs: header.monotonicStartNs)
        let index = indexer.build(from: UInt64(headerLength))
        self.path = path
        self.header = header
        self.fileSize = file.size
        self.file = file
        // Kernel streams last, so stream indices of user threads are stable and small.
        let order = index.streams.indices.sorted {
            let a = index.streams[$0], b = index.streams[$1]
            return a.isKernel != b.isKernel ? !a.isKernel : $0 < $1
        }
        var streams: [TraceStream] = []
        var chunks: [[ChunkEntry]] = []
        var unterminated: [TraceDamage] = []
        var unlistedUnterminated = 0
        for (i, old) in order.enumerated() {
            var s = index.streams[old]
            s = TraceStream(reindexing: s, to: i)
            if let last = index.chunks[old].last {
                // endedCleanly: the final flag lives only in the full header; re-read the last one.
                s.endedCleanly = Self.isFinal(file: file, offset: last.offset)
                if !s.endedCleanly {
                    if unterminated.count < Self.maxUnterminatedListed {
                        unterminated.append(
                            Self.unterminated(
                                s, last: last, traceEndNs: index.lastNs, fileSize: file.size,
                                traceStartNs: header.monotonicStartNs))
                    } else {
                        unlistedUnterminated += 1
                    }
                }
            }
            streams.append(s)
            chunks.append(index.chunks[old])
        }
        if unlistedUnterminated > 0 {
            var all = TraceDamage(
                kind: .unterminatedStream, fileOffset: file.size, byteCount: 0, stream: nil, sequences: nil, eventsLost: nil,
                startNs: nil, endNs: nil,
                message: "\(Wording.grouped(UInt64(unlistedUnterminated))) more streams have no final chunk either "
                    + "(counted here, not listed one by one)")
            all.count = UInt64(unlistedUnterminated)
            unterminated.append(all)
        }
        self.streams = streams
        self.chunks = chunks
        self.indexStatistics = index.statistics
        self.damage = index.damage.sorted { $0.fileOffset < $1.fileOffset } + unterminated
        self.eventCount = streams.reduce(0) { $0.addingSaturated($1.eventCount) }
        self.payloadBytes = index.payloadBytes
        self.largestPayload = index.largestPayload
        self.firstNs = index.firstNs == .max ? 0 : index.firstNs
        self.lastNs = index.lastNs
        self.recordingEndNs = index.finalEndNs
        self.unwritten = index.unwritten
    }

    /// A stream whose last readable chunk is not marked final lost its end: the recorder was killed, the file
    /// was cut at a chunk boundary or lost chunks, or it is still being recorded. What it did from its last
    /// chunk on is unknown; the rest of the trace says how long that was.
    private static func unterminated(
        _ s: TraceStream, last: ChunkEntry, traceEndNs: UInt64, fileSize: UInt64,
        traceStartNs: UInt64
    ) -> TraceDamage {
        let fromNs = last.header.endNs
        let after = Wording.relative(fromNs, from: traceStartNs)
        let lostRange =
            traceEndNs > fromNs
            ? "its events from \(after) on are missing (the trace goes on to \(Wording.relative(traceEndNs, from: traceStartNs)))"
            : "any events after \(after) are missing"
        return TraceDamage(
            kind: .unterminatedStream, fileOffset: fileSize, byteCount: 0, stream: s.key,
            sequences: nil, eventsLost: nil, startNs: fromNs, endNs: max(fromNs, traceEndNs),
            message: "\(s.key) has no final chunk after chunk \(last.header.sequence) (the recorder was killed, the "
                + "file was cut or lost chunks, or it is still being written); \(lostRange), count unknown")
    }

    /// A reader over chunks already indexed elsewhere (a followed file's batch).
    init(
        path: String, header: FileHeader, file: TraceFileHandle, streams: [TraceStream], chunks: [[ChunkEntry]],
        damage: [TraceDamage], payloadBytes: UInt64, largestPayload: Int, firstNs: UInt64, lastNs: UInt64,
        unwritten: UnwrittenNote? = nil
    ) {
        self.path = path
        self.header = header
        self.fileSize = file.currentSize()
        self.file = file
        self.streams = streams
        self.chunks = chunks
        self.damage = damage
        self.indexStatistics = IndexStatistics()
        self.eventCount = chunks.reduce(0) { n, list in list.reduce(n) { $0.addingSaturated(UInt64($1.header.eventCount)) } }
        self.payloadBytes = payloadBytes
        self.largestPayload = largestPayload
        self.firstNs = firstNs
        self.lastNs = lastNs
        self.recordingEndNs = 0  // a followed file is still being written
        self.unwritten = unwritten
    }

    private static func isFinal(file: TraceFileHandle, offset: UInt64) -> Bool {
        var h = [UInt8](repeating: 0, count: TraceFileFormat.chunkHeaderSize)
        let n = h.withUnsafeMutableBytes { file.read(into: $0.baseAddress!, count: $0.count, at: offset) }
        guard n == h.count else { return false }
        return h.withUnsafeBytes { ChunkHeader.load(from: $0.baseAddress!)?.flags.contains(.final) ?? false }
    }

    /// Events the recorders dropped: user streams together, and the kernel stream(s).
    public var droppedUser: UInt64 { streams.filter { !$0.isKernel }.reduce(0) { $0.addingSaturated($1.dropped) } }
    /// Events the kernel probes dropped (ring buffer full), summed over the kernel streams.
    public var droppedKernel: UInt64 { streams.filter { $0.isKernel }.reduce(0) { $0.addingSaturated($1.dropped) } }
    /// Events known lost to damage (from chunk headers; missing chunks of unknown size are not counted).
    public var eventsLostToDamage: UInt64 { damage.reduce(0) { $0.addingSaturated($1.eventsLost ?? 0) } }
    /// Whether any program thread's stream holds events (hooks were recorded).
    public var hasUserEvents: Bool { streams.contains { !$0.isKernel && $0.eventCount > 0 } }
    /// Whether any kernel stream holds events (the probes were recorded).
    public var hasKernelEvents: Bool { streams.contains { $0.isKernel && $0.eventCount > 0 } }

    /// All events of the selected streams (default: all) in time order. Each call starts from the beginning.
    public func events(streams selected: Set<Int>? = nil) -> TraceEventIterator {
        TraceEventIterator(reader: self, selected: selected)
    }
}

extension TraceStream {
    init(reindexing s: TraceStream, to index: Int) {
        self.init(index: index, key: s.key)
        threadName = s.threadName
        program = s.program
        parentPid = s.parentPid
        chunkCount = s.chunkCount
        eventCount = s.eventCount
        dropped = s.dropped
        firstNs = s.firstNs
        lastNs = s.lastNs
        endedCleanly = s.endedCleanly
    }
}
