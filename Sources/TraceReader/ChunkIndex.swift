// The index pass: walks the chunk headers once, checks every chunk's CRC, resynchronizes on
// garbage by scanning for the chunk magic, and accounts for every byte it cannot use.
// Memory: one payload buffer plus ~50 bytes per readable chunk.
import TraceFormat

struct TraceIndex: Sendable {
    var streams: [TraceStream] = []
    /// Per stream (same order as `streams`): readable chunks in sequence order.
    var chunks: [[ChunkEntry]] = []
    var damage: [TraceDamage] = []
    var payloadBytes: UInt64 = 0
    var largestPayload = 0
    var firstNs: UInt64 = .max
    var lastNs: UInt64 = 0
    /// Latest end of a stream's final chunk, empty ones included (0: none).
    var finalEndNs: UInt64 = 0
    var statistics = IndexStatistics()
    /// `asynctrace record`'s notes of what could not be written (summed; nil: the file has none).
    var unwritten: UnwrittenNote?
}

/// The work indexing did: bytes read from the file (bounded by a small multiple of the file's size, whatever
/// the file holds), and candidate chunks the resynchronisation checked.
struct IndexStatistics: Sendable {
    var bytesRead: UInt64 = 0
    var candidatesChecked: UInt64 = 0
}

struct ChunkIndexer: ~Copyable {
    private let file: TraceFileHandle
    private let traceStartNs: UInt64
    private var payload = ByteBuffer(capacity: 256 << 10)
    private var headerBytes = ByteBuffer(capacity: TraceFileFormat.chunkHeaderSize)
    private var index = TraceIndex()
    private var streamByKey: [StreamKey: Int] = [:]
    /// Sequence numbers of damaged chunks whose headers named their stream (so a gap they explain is not reported twice).
    private var explained: [StreamKey: Set<UInt64>] = [:]
    /// Finds the next readable chunk after damage, checking every candidate, in about one read of the file.
    private var search: ChunkSearch
    /// Damage entries kept one by one; past this many, they are only counted (`overflowDamage`), so a file of
    /// a million damaged regions cannot make the report (or memory) a million lines long.
    static let maxDamageEntries = 1_000
    /// Streams read; chunks of further streams are skipped and counted in one damage entry.
    static let maxStreams = 65_536
    private var beyondStreamLimit = (
        chunks: UInt64(0), events: UInt64(0), bytes: UInt64(0), streams: Set<StreamKey>(),
        firstOffset: UInt64?.none
    )
    private var overflowDamage = TraceDamage(kind: .garbage, fileOffset: 0, byteCount: 0, eventsLost: 0, message: "")
    private var overflowCount: UInt64 = 0

    init(file: TraceFileHandle, traceStartNs: UInt64) {
        self.file = file
        self.traceStartNs = traceStartNs
        search = ChunkSearch(file: file)
    }

    private enum Probe {
        case valid(ChunkHeader)
        case badChecksum(ChunkHeader)
        case beyondEndOfFile(ChunkHeader)
        case notAHeader
        case shortHeader
    }

    private mutating func read(into p: UnsafeMutableRawPointer, count: Int, at offset: UInt64) -> Int {
        let n = file.read(into: p, count: count, at: offset)
        index.statistics.bytesRead &+= UInt64(n)
        return n
    }

    /// Looks at the bytes at `pos` as a chunk; on `.valid` the payload is in `payload`.
    private mutating func probe(at pos: UInt64) -> Probe {
        let size = TraceFileFormat.chunkHeaderSize
        guard file.size >= pos, file.size - pos >= UInt64(size) else { return .shortHeader }
        guard read(into: headerBytes.pointer, count: size, at: pos) == size else { return .shortHeader }
        guard let h = ChunkHeader.load(from: headerBytes.pointer),
            Int(h.payloadLength) <= TraceFileFormat.maxPayloadBytes
        else { return .notAHeader }
        let length = Int(h.payloadLength)
        guard file.size - pos - UInt64(size) >= UInt64(length) else { return .beyondEndOfFile(h) }
        payload.reserve(length)
        guard read(into: payload.pointer, count: length, at: pos + UInt64(size)) == length else {
            return .beyondEndOfFile(h)
        }
        let crc = ChunkHeader.computeCRC(
            header: headerBytes.pointer,
            payload: UnsafeRawBufferPointer(start: payload.pointer, count: length))
        return crc == h.crc ? .valid(h) : .badChecksum(h)
    }

    private mutating func isValidChunk(at pos: UInt64) -> Bool {
        if case .valid = probe(at: pos) { return true }
        return false
    }

    /// The offset of the next readable chunk at or after `from`, or nil.
    private mutating func scanForChunk(from: UInt64) -> UInt64? {
        guard case .chunk(let at) = search.next(from: from, limit: file.size, stopAtIncomplete: false) else { return nil }
        return at
    }

    private func key(_ h: ChunkHeader) -> StreamKey { StreamKey(pid: h.pid, tid: h.tid, isKernel: h.isKernel) }

    private func claim(_ h: ChunkHeader) -> String {
        "chunk \(h.sequence) of \(key(h)) (~\(Wording.grouped(UInt64(h.eventCount))) events between "
            + "\(Wording.relative(h.startNs, from: traceStartNs)) and \(Wording.relative(h.endNs, from: traceStartNs)))"
    }

    private mutating func record(
        _ kind: TraceDamage.Kind, offset: UInt64, bytes: UInt64, header h: ChunkHeader?,
        message: String
    ) {
        if let h { explained[key(h), default: []].insert(h.sequence) }
        guard index.damage.count < Self.maxDamageEntries else {
            countOverflow(bytes: bytes, eventsLost: h.map { UInt64($0.eventCount) } ?? 0, offset: offset)
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
        index.damage.append(d)
    }

    private mutating func countOverflow(bytes: UInt64, eventsLost: UInt64, offset: UInt64) {
        if overflowCount == 0 { overflowDamage.fileOffset = offset }
        overflowCount += 1
        overflowDamage.byteCount = overflowDamage.byteCount.addingSaturated(bytes)
        overflowDamage.eventsLost = (overflowDamage.eventsLost ?? 0).addingSaturated(eventsLost)
    }

    /// The damage beyond `maxDamageEntries`, as one entry that counts it.
    private mutating func appendOverflow() {
        guard overflowCount > 0 else { return }
        overflowDamage.count = overflowCount
        overflowDamage.message =
            "\(Wording.grouped(overflowCount)) more damaged regions from offset "
            + "\(Wording.grouped(overflowDamage.fileOffset)) on (\(Wording.grouped(overflowDamage.byteCount)) bytes, "
            + "~\(Wording.grouped(overflowDamage.eventsLost ?? 0)) events) are counted here, not listed one by one"
        index.damage.append(overflowDamage)
    }

    private mutating func accept(_ h: ChunkHeader, at pos: UInt64) {
        if h.flags.contains(.unwrittenNote) {
            noteUnwritten(UnwrittenNote.decode(UnsafeRawBufferPointer(start: payload.pointer, count: Int(h.payloadLength))))
            return
        }
        let k = key(h)
        let s: Int
        if let existing = streamByKey[k] {
            s = existing
        } else if index.streams.count >= Self.maxStreams {
            // Every stream costs memory in the reader and the analyses (~2 KB); past the bound its chunks are
            // counted, not read.
            beyondStreamLimit.chunks += 1
            beyondStreamLimit.events = beyondStreamLimit.events.addingSaturated(UInt64(h.eventCount))
            beyondStreamLimit.bytes = beyondStreamLimit.bytes.addingSaturated(UInt64(TraceFileFormat.chunkHeaderSize) + UInt64(h.payloadLength))
            if beyondStreamLimit.streams.count < Self.maxStreams { beyondStreamLimit.streams.insert(k) }
            if beyondStreamLimit.firstOffset == nil { beyondStreamLimit.firstOffset = pos }
            return
        } else {
            s = index.streams.count
            streamByKey[k] = s
            index.streams.append(TraceStream(index: s, key: k))
            index.chunks.append([])
        }
        index.chunks[s].append(
            ChunkEntry(
                offset: pos,
                header: ChunkHeaderSummary(
                    sequence: h.sequence, startNs: h.startNs, endNs: max(h.startNs, h.endNs), payloadLength: h.payloadLength,
                    eventCount: h.eventCount, droppedCumulative: h.droppedCumulative)))
        index.payloadBytes += UInt64(h.payloadLength)
        if h.flags.contains(.final) { index.finalEndNs = max(index.finalEndNs, h.startNs, h.endNs) }
        index.largestPayload = max(index.largestPayload, Int(h.payloadLength))
        if h.eventCount > 0 {
            index.firstNs = min(index.firstNs, h.startNs)
            index.lastNs = max(index.lastNs, h.endNs)
        }
        var st = index.streams[s]
        if st.chunkCount < 4 && (st.threadName == nil || (st.program == nil && !k.isKernel)) {
            readMetadata(h, into: &st)
        }
        st.chunkCount += 1
        st.eventCount += UInt64(h.eventCount)
        st.dropped = max(st.dropped, h.droppedCumulative)
        if h.eventCount > 0 {
            st.firstNs = min(st.firstNs, h.startNs)
            st.lastNs = max(st.lastNs, h.endNs)
        }
        index.streams[s] = st
    }

    /// A note of unwritten events belongs to no stream; several (a crafted file) add up, saturating.
    private mutating func noteUnwritten(_ note: UnwrittenNote?) {
        guard let note else { return }
        guard var sum = index.unwritten else {
            index.unwritten = note
            return
        }
        sum.userEvents = sum.userEvents.addingSaturated(note.userEvents)
        sum.kernelEvents = sum.kernelEvents.addingSaturated(note.kernelEvents)
        if sum.errno == 0 { sum.errno = note.errno }
        sum.processesNotFlushed = sum.processesNotFlushed.addingSaturated(note.processesNotFlushed)
        if sum.programSignal == 0 { sum.programSignal = note.programSignal }
        index.unwritten = sum
    }

    /// Thread and process names come from events in the stream's first chunks.
    private func readMetadata(_ h: ChunkHeader, into st: inout TraceStream) {
        var d = ChunkDecoder(header: h, payload: UnsafeRawBufferPointer(start: payload.pointer, count: Int(h.payloadLength)))
        while let r = d.next(), case .success(let e) = r {
            if e.kind == .threadInfo && st.threadName == nil { st.threadName = e.text }
            if e.kind == .processInfo && st.program == nil {
                st.program = e.text
                st.parentPid = UInt32(truncatingIfNeeded: e.u(0))
            }
        }
    }

    consuming func build(from dataStart: UInt64) -> TraceIndex {
        let headerSize = UInt64(TraceFileFormat.chunkHeaderSize)
        var pos = dataStart
        while pos < file.size {
            switch probe(at: pos) {
            case .valid(let h):
                if h.hasOrderedClock {
                    accept(h, at: pos)
                } else {
                    // The checksum vouches for the bytes, not for the writer: a clock running backwards
                    // cannot place the chunk's events in time.
                    record(
                        .inconsistentChunk, offset: pos, bytes: headerSize + UInt64(h.payloadLength), header: h,
                        message: "\(claim(h)) passed its checksum but its clock runs backwards (end before start); "
                            + "its events were skipped")
                }
                pos += headerSize + UInt64(h.payloadLength)
            case .shortHeader:
                let n = file.size - pos
                record(
                    .truncatedTail, offset: pos, bytes: n, header: nil,
                    message: "the file ends with \(n) bytes of an incomplete chunk header at offset \(Wording.grouped(pos)); skipped")
                pos = file.size
            case .badChecksum(let h):
                let end = pos + headerSize + UInt64(h.payloadLength)
                let following = scanForChunk(from: pos + 4)
                if let inside = following, inside < end {
                    // A whole chunk inside the claimed payload: the length is a lie (a crafted header claiming
                    // to reach the end of the file or the next chunk would otherwise hide every chunk it covers).
                    record(
                        .garbage, offset: pos, bytes: inside - pos, header: nil,
                        message: "\(Wording.grouped(inside - pos)) unreadable bytes at offset \(Wording.grouped(pos)) skipped; "
                            + "they begin with a damaged header claiming to be \(claim(h)), but a whole chunk starts inside it")
                    pos = inside
                } else if end == file.size || isValidChunk(at: end) {
                    // The header's length led to the next chunk, so the header is probably right.
                    record(
                        .checksumFailed, offset: pos, bytes: end - pos, header: h,
                        message: "\(claim(h)) failed its checksum; its events were skipped")
                    pos = end
                } else {
                    let next = following ?? file.size
                    record(
                        .garbage, offset: pos, bytes: next - pos, header: nil,
                        message: "\(Wording.grouped(next - pos)) unreadable bytes at offset \(Wording.grouped(pos)) skipped; "
                            + "they begin with a damaged header claiming to be \(claim(h))")
                    pos = next
                }
            case .beyondEndOfFile(let h):
                if let next = scanForChunk(from: pos + 4) {
                    record(
                        .garbage, offset: pos, bytes: next - pos, header: nil,
                        message: "\(Wording.grouped(next - pos)) unreadable bytes at offset \(Wording.grouped(pos)) skipped; "
                            + "they begin with a header claiming to be \(claim(h)) that runs past the end of the file")
                    pos = next
                } else {
                    let n = file.size - pos
                    record(
                        .truncatedTail, offset: pos, bytes: n, header: h,
                        message: "the file ends inside \(claim(h)); its \(Wording.grouped(n)) bytes were skipped")
                    pos = file.size
                }
            case .notAHeader:
                let next = scanForChunk(from: pos + 1) ?? file.size
                record(
                    .garbage, offset: pos, bytes: next - pos, header: nil,
                    message: "\(Wording.grouped(next - pos)) bytes at offset \(Wording.grouped(pos)) are not a chunk; skipped")
                pos = next
            }
        }
        orderStreams()
        index.statistics.bytesRead &+= search.bytesRead
        index.statistics.candidatesChecked = search.candidatesChecked
        if let first = beyondStreamLimit.firstOffset {
            let n = beyondStreamLimit.streams.count
            index.damage.append(
                TraceDamage(
                    kind: .tooManyStreams, fileOffset: first, byteCount: beyondStreamLimit.bytes, stream: nil, sequences: nil,
                    eventsLost: beyondStreamLimit.events, startNs: nil, endNs: nil,
                    message: "the file holds more than \(Wording.grouped(UInt64(Self.maxStreams))) streams; "
                        + "\(Wording.grouped(beyondStreamLimit.chunks)) chunks (~\(Wording.grouped(beyondStreamLimit.events)) events) "
                        + "of \(n >= Self.maxStreams ? "at least " : "")\(Wording.grouped(UInt64(n))) more streams were skipped"))
        }
        appendOverflow()
        return index
    }

    private mutating func appendDamage(_ d: TraceDamage) {
        guard index.damage.count < Self.maxDamageEntries else {
            countOverflow(bytes: d.byteCount, eventsLost: d.eventsLost ?? 0, offset: d.fileOffset)
            return
        }
        index.damage.append(d)
    }

    /// Puts each stream's chunks in sequence order and accounts for duplicates and gaps.
    private mutating func orderStreams() {
        for s in index.streams.indices {
            let key = index.streams[s].key
            var list = index.chunks[s]
            list.sort { $0.header.sequence < $1.header.sequence || ($0.header.sequence == $1.header.sequence && $0.offset < $1.offset) }
            var kept: [ChunkEntry] = []
            kept.reserveCapacity(list.count)
            var prev: ChunkEntry? = nil
            for c in list {
                if let p = prev, p.header.sequence == c.header.sequence {
                    appendDamage(
                        TraceDamage(
                            kind: .duplicateChunk, fileOffset: c.offset,
                            byteCount: UInt64(TraceFileFormat.chunkHeaderSize) + UInt64(c.header.payloadLength), stream: key,
                            sequences: c.header.sequence...c.header.sequence, eventsLost: 0, startNs: nil, endNs: nil,
                            message: "chunk \(c.header.sequence) of \(key) appears twice (offsets \(Wording.grouped(p.offset)) and "
                                + "\(Wording.grouped(c.offset))); the second copy was ignored"))
                    index.streams[s].chunkCount -= 1
                    index.streams[s].eventCount -= UInt64(c.header.eventCount)
                    index.payloadBytes -= UInt64(c.header.payloadLength)
                    continue
                }
                let expected = prev.map { $0.header.sequence + 1 } ?? 0
                if c.header.sequence > expected {
                    noteGap(stream: key, from: expected, to: c.header.sequence - 1, after: prev, before: c)
                }
                kept.append(c)
                prev = c
            }
            index.chunks[s] = kept
        }
    }

    /// A gap is not damage when damaged chunks already account for it, or when the recorder counted
    /// the missing chunks as dropped (it skips a sequence number for every chunk it drops).
    private mutating func noteGap(stream key: StreamKey, from: UInt64, to: UInt64, after: ChunkEntry?, before: ChunkEntry) {
        let droppedBetween = before.header.droppedCumulative &- (after?.header.droppedCumulative ?? 0)
        if droppedBetween > 0 && droppedBetween <= before.header.droppedCumulative { return }
        // Runs of missing sequence numbers, split around the damaged chunks that are already reported.
        let known = (explained[key] ?? []).filter { $0 >= from && $0 <= to }.sorted()
        var runs: [ClosedRange<UInt64>] = []
        var next = from
        for k in known {
            if k > next { runs.append(next...(k - 1)) }
            next = k + 1
        }
        if next <= to { runs.append(next...to) }
        let startNs = after?.header.endNs ?? 0
        let endNs = before.header.startNs
        let when =
            after == nil
            ? "before \(Wording.relative(endNs, from: traceStartNs))"
            : "between \(Wording.relative(startNs, from: traceStartNs)) and \(Wording.relative(endNs, from: traceStartNs))"
        for r in runs {
            appendDamage(
                TraceDamage(
                    kind: .missingChunks, fileOffset: before.offset, byteCount: 0, stream: key, sequences: r,
                    eventsLost: nil, startNs: after == nil ? nil : startNs, endNs: endNs,
                    message: "\(Wording.sequences(r)) of \(key) \(r.lowerBound == r.upperBound ? "is" : "are") missing from the file; "
                        + "events \(when) lost (count unknown)"))
        }
    }
}
