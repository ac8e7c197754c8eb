// Reads a trace file while it is being recorded (`asynctrace top`): each poll indexes the chunks
// appended since the last one and hands out a reader over those ready to be analysed.
// Writers append every chunk with one write() on an O_APPEND descriptor, so the file only ever ends
// inside a chunk while that write is in progress: a short last chunk is pending, not damage. Bytes
// that are not a chunk, checksums that fail and sequence gaps are damage, counted as the indexer does.
import TraceFormat

/// Reads a trace file while it is being recorded (`asynctrace top`): each `poll` indexes the chunks
/// appended since the last one and hands their events to the analyses in time order. A short last chunk
/// is a write in progress, not damage.
public final class TraceFollower {
    /// The followed file's path, as given.
    public let path: String
    /// nil until the file holds a complete header (the recorder may not have written it yet).
    public private(set) var header: FileHeader?
    /// Every stream seen so far, indexed in order of first appearance (indices never change).
    public private(set) var streams: [TraceStream] = []
    /// Damage found so far (never a chunk still being written).
    public private(set) var damage: [TraceDamage] = []
    /// `asynctrace record`'s note of events it could not write (see `TraceReader.unwritten`).
    public private(set) var unwritten: UnwrittenNote?
    /// Bytes at the end of the file that are not a whole chunk yet (a write in progress).
    public private(set) var pendingBytes: UInt64 = 0
    /// Where indexing stands: everything before this offset has been read.
    public private(set) var offset: UInt64 = 0
    /// Complete chunks indexed, and chunks whose events are being or have been handed out.
    public private(set) var chunksIndexed: UInt64 = 0
    /// Chunks whose events have all been handed out.
    public private(set) var chunksReleased: UInt64 = 0
    /// Latest chunk end among indexed chunks (CLOCK_MONOTONIC ns); 0 before the first.
    public private(set) var latestNs: UInt64 = 0
    /// An event is handed out once the latest chunk of any stream ends this much after it: chunks of other
    /// threads covering the same time are written within their flush interval (200 ms for the program's
    /// threads, 100 ms for the kernel stream), so events reach the analyses in time order (a thread that
    /// writes later than that, e.g. stuck in one callback, has its events analysed when they arrive).
    public var holdbackNs: UInt64 = 300_000_000

    let file: TraceFileHandle
    private var streamByKey: [StreamKey: Int] = [:]
    private var lastSequence: [UInt64?] = []
    private var ready: [[ChunkEntry]] = []
    /// Per stream: events before this time were handed out from its first ready chunk (it straddled a cut).
    private var resumeFromNs: [UInt64] = []
    /// Chunks whose decoding damage is already listed (a straddling chunk is decoded twice).
    private var damagedChunks = Set<UInt64>()
    private var headerBytes = [UInt8](repeating: 0, count: TraceFileFormat.chunkHeaderSize)
    private var payload = ByteBuffer(capacity: 256 << 10)
    private var unlistedDamage: UInt64 = 0
    private var search: ChunkSearch
    /// The pending chunk last searched for whole chunks inside it, and how far the file reached then.
    private var searchedPending: (offset: UInt64, size: UInt64)?
    static let maxDamageEntries = 1_000

    /// Opens `path` for following; the file may still be empty. Throws if it cannot be opened or is not a
    /// regular file.
    public init(path: String) throws(TraceOpenError) {
        self.path = path
        self.file = try TraceFileHandle(path: path)
        self.search = ChunkSearch(file: file)
    }

    /// Whether every stream seen has written its final chunk (the recording ended, or all its threads did).
    public var allStreamsEnded: Bool { !streams.isEmpty && streams.allSatisfy(\.endedCleanly) }

    /// Chunks indexed whose events have not all been handed out.
    public var chunksWaiting: Int { ready.reduce(0) { $0 + $1.count } }

    /// The file's bytes before this offset will not be read again (everything there was indexed and
    /// handed out): a follower of an in-memory file may free them.
    public var discardableBelow: UInt64 {
        var low = offset
        for list in ready { if let first = list.first { low = min(low, first.offset) } }
        return header == nil ? 0 : low
    }

    /// Indexes what was appended since the last call (`forEachEvent` then hands its events out); returns
    /// whether the file grew. Throws only if the file's header turns out not to be a trace.
    @discardableResult
    public func poll() throws(TraceOpenError) -> Bool {
        let size = file.currentSize()
        let before = (offset, pendingBytes)
        if header == nil {
            guard try readHeader(size: size) else {
                let grew = size != pendingBytes
                pendingBytes = size
                return grew
            }
        }
        indexNewChunks(size: size)
        return (offset, pendingBytes) != before
    }

    private func readHeader(size: UInt64) throws(TraceOpenError) -> Bool {
        let want = Int(min(size, UInt64(38 + TraceFileFormat.maxProgramBytes)))
        guard want > 0 else { return false }
        var buf = [UInt8](repeating: 0, count: want)
        let got = buf.withUnsafeMutableBytes { file.read(into: $0.baseAddress!, count: want, at: 0) }
        switch buf[0..<got].withUnsafeBytes({ FileHeader.decode($0) }) {
        case .success(let (h, n)):
            header = h
            offset = UInt64(n)
            return true
        case .failure(.tooShort):
            return false
        case .failure(.notATrace):
            if got < 8 && Array(buf[0..<got]) == Array(TraceFileFormat.magic[0..<got]) { return false }
            throw .notATrace(path: path)
        case .failure(.unsupportedVersion(let v)):
            throw .newerVersion(path: path, found: v, supported: TraceFileFormat.currentVersion)
        case .failure(.corrupt):
            // The header is written with one write(): a bad checksum over all of it is damage, not a write in progress.
            throw .corruptHeader(path: path)
        }
    }

    private func indexNewChunks(size: UInt64) {
        let headerSize = UInt64(TraceFileFormat.chunkHeaderSize)
        pendingBytes = 0
        while offset < size {
            let avail = size - offset
            if avail < headerSize {
                pendingBytes = avail
                return
            }
            let got = headerBytes.withUnsafeMutableBytes { file.read(into: $0.baseAddress!, count: Int(headerSize), at: offset) }
            guard got == Int(headerSize) else {
                pendingBytes = avail
                return
            }
            guard let h = headerBytes.withUnsafeBytes({ ChunkHeader.load(from: $0.baseAddress!) }),
                Int(h.payloadLength) <= TraceFileFormat.maxPayloadBytes
            else {
                resynchronize(from: offset, size: size, why: "are not a chunk")
                continue
            }
            let total = headerSize + UInt64(h.payloadLength)
            if avail < total {
                if let inside = wholeChunkInside(pendingAt: offset, size: size) {
                    // A writer appends a chunk with one write(), so no other chunk can follow a chunk still
                    // being written: this header's length is a lie (damage, or a crafted file) and waiting
                    // for it would hide every chunk after it.
                    record(
                        .garbage, offset: offset, bytes: inside - offset, header: nil,
                        message: "\(Wording.grouped(inside - offset)) bytes at offset \(Wording.grouped(offset)) begin with a header "
                            + "claiming to be \(claim(h)) of \(Wording.grouped(total)) bytes, but a whole chunk starts inside it; skipped")
                    offset = inside
                    continue
                }
                pendingBytes = avail
                return
            }
            let length = Int(h.payloadLength)
            payload.reserve(length)
            guard file.read(into: payload.pointer, count: length, at: offset + headerSize) == length else {
                pendingBytes = avail
                return
            }
            let body = UnsafeRawBufferPointer(start: payload.pointer, count: length)
            let crc = headerBytes.withUnsafeBytes { ChunkHeader.computeCRC(header: $0.baseAddress!, payload: body) }
            if crc != h.crc {
                // Trust the length only if it leads to the end or to another chunk header.
                let end = offset + total
                if case .chunk(let inside) = search.next(from: offset + 4, limit: end, stopAtIncomplete: false) {
                    // A whole chunk inside the claimed payload: the length is a lie.
                    record(
                        .garbage, offset: offset, bytes: inside - offset, header: nil,
                        message: "\(Wording.grouped(inside - offset)) bytes at offset \(Wording.grouped(offset)) begin with a damaged "
                            + "header claiming to be \(claim(h)), but a whole chunk starts inside it; skipped")
                    offset = inside
                } else if end == size || startsWithChunkMagic(at: end, size: size) {
                    record(
                        .checksumFailed, offset: offset, bytes: total, header: h,
                        message: "\(claim(h)) failed its checksum; its events were skipped")
                    offset = end
                } else {
                    resynchronize(from: offset, size: size, why: "begin with a damaged chunk header")
                }
                continue
            }
            if !h.hasOrderedClock {
                record(
                    .inconsistentChunk, offset: offset, bytes: total, header: h,
                    message: "\(claim(h)) passed its checksum but its clock runs backwards (end before start); its events were skipped")
            } else {
                accept(h, at: offset, payload: body)
            }
            offset += total
        }
    }

    private func startsWithChunkMagic(at pos: UInt64, size: UInt64) -> Bool {
        guard size >= pos + 4 else { return false }
        var m: UInt32 = 0
        guard withUnsafeMutableBytes(of: &m, { file.read(into: $0.baseAddress!, count: 4, at: pos) }) == 4 else { return false }
        return UInt32(littleEndian: m) == TraceFileFormat.chunkMagic
    }

    /// Skips to the next whole chunk, or to a chunk header whose chunk is not all there yet (waited for),
    /// in what the file holds now; everything skipped is damage.
    private func resynchronize(from pos: UInt64, size: UInt64, why: String) {
        var next = size
        switch search.next(from: pos + 1, limit: size, stopAtIncomplete: true) {
        case .chunk(let at), .incomplete(let at): next = at
        case nil: break
        }
        record(
            .garbage, offset: pos, bytes: next - pos, header: nil,
            message: "\(Wording.grouped(next - pos)) bytes at offset \(Wording.grouped(pos)) \(why); skipped")
        offset = next
    }

    /// A whole chunk starting inside the incomplete chunk at `pending`, searched once per size of the file.
    private func wholeChunkInside(pendingAt pending: UInt64, size: UInt64) -> UInt64? {
        if let s = searchedPending, s.offset == pending, s.size == size { return nil }
        searchedPending = (pending, size)
        guard case .chunk(let at) = search.next(from: pending + 1, limit: size, stopAtIncomplete: false) else { return nil }
        return at
    }

    private func key(_ h: ChunkHeader) -> StreamKey { StreamKey(pid: h.pid, tid: h.tid, isKernel: h.isKernel) }

    private func claim(_ h: ChunkHeader) -> String {
        let start = header?.monotonicStartNs ?? 0
        return "chunk \(h.sequence) of \(key(h)) (~\(Wording.grouped(UInt64(h.eventCount))) events between "
            + "\(Wording.relative(h.startNs, from: start)) and \(Wording.relative(h.endNs, from: start)))"
    }

    private func record(_ kind: TraceDamage.Kind, offset: UInt64, bytes: UInt64, header h: ChunkHeader?, message: String) {
        guard damage.count < Self.maxDamageEntries else {
            unlistedDamage += 1
            if damage.count == Self.maxDamageEntries {
                damage.append(TraceDamage(kind: kind, fileOffset: offset, byteCount: 0, message: ""))
            }
            damage[Self.maxDamageEntries].count = unlistedDamage
            damage[Self.maxDamageEntries].message =
                "\(Wording.grouped(unlistedDamage)) more damaged regions from offset "
                + "\(Wording.grouped(damage[Self.maxDamageEntries].fileOffset)) on are counted here, not listed one by one"
            return
        }
        var d = TraceDamage(kind: kind, fileOffset: offset, byteCount: bytes, message: message)
        if let h {
            d.stream = key(h)
            d.sequences = h.sequence...h.sequence
            d.eventsLost = UInt64(h.eventCount)
            d.startNs = h.startNs
            d.endNs = max(h.startNs, h.endNs)
        }
        damage.append(d)
    }

    private func accept(_ h: ChunkHeader, at pos: UInt64, payload body: UnsafeRawBufferPointer) {
        if h.flags.contains(.unwrittenNote) {
            // A note, not a stream's chunk (see TraceReader.unwritten); the live view shows it as written.
            if let note = UnwrittenNote.decode(body) { unwritten = note }
            return
        }
        let k = key(h)
        let s: Int
        if let existing = streamByKey[k] {
            s = existing
        } else {
            guard streams.count < ChunkIndexer.maxStreams else {
                record(
                    .tooManyStreams, offset: pos, bytes: UInt64(TraceFileFormat.chunkHeaderSize) + UInt64(h.payloadLength),
                    header: h,
                    message: "\(claim(h)) belongs to a stream beyond the reader's bound of "
                        + "\(Wording.grouped(UInt64(ChunkIndexer.maxStreams))) streams; skipped")
                return
            }
            s = streams.count
            streamByKey[k] = s
            streams.append(TraceStream(index: s, key: k))
            lastSequence.append(nil)
            ready.append([])
        }
        if let last = lastSequence[s] {
            if h.sequence <= last {
                record(
                    .duplicateChunk, offset: pos, bytes: UInt64(TraceFileFormat.chunkHeaderSize) + UInt64(h.payloadLength),
                    header: h, message: "\(claim(h)) comes after chunk \(last) of its stream (a copy or out of order); ignored")
                return
            }
            if h.sequence > last + 1 {
                var d = TraceDamage(
                    kind: .missingChunks, fileOffset: pos, byteCount: 0, stream: k,
                    sequences: (last + 1)...(h.sequence - 1), eventsLost: nil, startNs: nil, endNs: h.startNs,
                    message: "")
                d.message = "\(k) skips \(Wording.sequences(d.sequences!)) (not in the file); their events are missing"
                if damage.count < Self.maxDamageEntries { damage.append(d) } else { unlistedDamage += 1 }
            }
        }
        lastSequence[s] = h.sequence
        chunksIndexed += 1
        let entry = ChunkEntry(
            offset: pos,
            header: ChunkHeaderSummary(
                sequence: h.sequence, startNs: h.startNs, endNs: max(h.startNs, h.endNs), payloadLength: h.payloadLength,
                eventCount: h.eventCount, droppedCumulative: h.droppedCumulative))
        ready[s].append(entry)
        var st = streams[s]
        if st.chunkCount < 4 && (st.threadName == nil || (st.program == nil && !k.isKernel)) {
            var d = ChunkDecoder(header: h, payload: body)
            while let r = d.next(), case .success(let e) = r {
                if e.kind == .threadInfo && st.threadName == nil { st.threadName = e.text }
                if e.kind == .processInfo && st.program == nil {
                    st.program = e.text
                    st.parentPid = UInt32(truncatingIfNeeded: e.u(0))
                }
            }
        }
        st.chunkCount += 1
        st.eventCount = st.eventCount.addingSaturated(UInt64(h.eventCount))
        st.dropped = max(st.dropped, h.droppedCumulative)
        st.endedCleanly = h.flags.contains(.final)
        if h.eventCount > 0 {
            st.firstNs = min(st.firstNs, h.startNs)
            st.lastNs = max(st.lastNs, h.endNs)
            latestNs = max(latestNs, h.endNs)
        }
        streams[s] = st
    }

    /// A reader that knows the streams, header and damage so far (its `events()` are empty: the
    /// follower hands events out itself, `forEachEvent`), for analyses that need the streams.
    public func snapshot() -> TraceReader? {
        guard let header else { return nil }
        return TraceReader(following: self, header: header, chunks: [[ChunkEntry]](repeating: [], count: streams.count))
    }

    /// Calls `body` with every event not handed out yet up to the cut, in time order across streams: the
    /// latest chunk's end minus `holdbackNs`, or every event with `all`. Events are cut at a time, not at
    /// chunk boundaries: chunks of different threads overlap in time, so handing out whole chunks would
    /// analyse a thread's later events before another thread's earlier ones. A chunk that straddles the
    /// cut is read again next time from where it stopped. Returns how many events it delivered.
    @discardableResult
    public func forEachEvent(all: Bool = false, _ body: (_ stream: Int, _ event: borrowing DecodedEvent) -> Void) -> UInt64 {
        guard let header else { return 0 }
        let cut = all ? UInt64.max : latestNs.subtractingSaturated(holdbackNs)
        while resumeFromNs.count < streams.count { resumeFromNs.append(0) }
        var batch = [[ChunkEntry]](repeating: [], count: streams.count)
        var any = false
        for s in ready.indices {
            for c in ready[s] {
                if c.header.startNs > cut { break }
                batch[s].append(c)
            }
            any = any || !batch[s].isEmpty
        }
        guard any else { return 0 }
        // The reader's own iterator: its batch decoding is the fast path (a per-event decoder was 2x slower).
        let it = TraceReader(following: self, header: header, chunks: batch).events()
        let resume = resumeFromNs
        var delivered: UInt64 = 0
        do {
            try it.forEach { s, e in
                let ns = e.timestampNs
                if ns > cut { throw StopAtCut() }  // time order: everything after is past the cut too
                if ns < resume[s] { return }  // delivered when this chunk was read up to an earlier cut
                body(s, e)
                delivered &+= 1
            }
        } catch {}
        for d in it.damage where !damagedChunks.contains(d.fileOffset) {
            damagedChunks.insert(d.fileOffset)
            if damage.count < Self.maxDamageEntries { damage.append(d) } else { unlistedDamage += 1 }
        }
        for s in batch.indices where !batch[s].isEmpty {
            var done = 0
            while done < batch[s].count && batch[s][done].header.endNs <= cut { done += 1 }
            ready[s].removeFirst(done)
            chunksReleased += UInt64(done)
            resumeFromNs[s] = done < batch[s].count ? cut + 1 : 0  // cut < .max: with `all` nothing straddles
        }
        return delivered
    }

    private struct StopAtCut: Error {}
}

extension TraceReader {
    /// A reader over some chunks of a followed file: every stream known so far (same indices as the
    /// follower's), the chunks of this batch, and the damage found so far.
    convenience init(following f: TraceFollower, header: FileHeader, chunks: [[ChunkEntry]]) {
        var first = UInt64.max, last: UInt64 = 0, bytes: UInt64 = 0, largest = 0
        for list in chunks {
            for c in list {
                bytes += UInt64(c.header.payloadLength)
                largest = max(largest, Int(c.header.payloadLength))
                if c.header.eventCount > 0 {
                    first = min(first, c.header.startNs)
                    last = max(last, c.header.endNs)
                }
            }
        }
        self.init(
            path: f.path, header: header, file: f.file, streams: f.streams, chunks: chunks, damage: f.damage,
            payloadBytes: bytes, largestPayload: largest, firstNs: first == .max ? 0 : first, lastNs: last, unwritten: f.unwritten)
    }
}
