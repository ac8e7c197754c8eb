// Reads a trace file while it is being recorded (`asynctrace top`): each poll indexes the chunks
// appended since the last one and hands out a reader over those ready to be analysed.
// Writers append every chunk with one write() on an O_APPEND descriptor, so the file only ever ends
// inside a chunk while that write is in progress: a short last chunk is pending, not damage. Bytes
// that are not a chunk, checksums that fail and sequence gaps are damage, counted as the indexer does.
import TraceFormat

public final class TraceFollower {
    public let path: String
    /// nil until the file holds a complete header (the recorder may not have written it yet).
    public private(set) var header: FileHeader?
    /// Every stream seen so far, indexed in order of first appearance (indices never change).
    public private(set) var streams: [TraceStream] = []
    /// Damage found so far (never a chunk still being written).
    public private(set) var damage: [TraceDamage] = []
    /// Bytes at the end of the file that are not a whole chunk yet (a write in progress).
    public private(set) var pendingBytes: UInt64 = 0
    /// Where indexing stands: everything before this offset has been read.
    public private(set) var offset: UInt64 = 0
    /// Complete chunks indexed, and chunks whose events are being or have been handed out.
    public private(set) var chunksIndexed: UInt64 = 0
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
    private var cursors: [FollowCursor] = []
    private var headerBytes = [UInt8](repeating: 0, count: TraceFileFormat.chunkHeaderSize)
    private var payload = ByteBuffer(capacity: 256 << 10)
    private var unlistedDamage: UInt64 = 0
    static let maxDamageEntries = 1_000

    /// Opens `path` for following; the file may still be empty. Throws if it cannot be opened or is not a
    /// regular file.
    public init(path: String) throws(TraceOpenError) {
        self.path = path
        self.file = try TraceFileHandle(path: path)
    }

    /// Whether every stream seen has written its final chunk (the recording ended, or all its threads did).
    public var allStreamsEnded: Bool { !streams.isEmpty && streams.allSatisfy(\.endedCleanly) }

    /// Chunks indexed whose events have not all been handed out.
    public var chunksWaiting: Int { ready.reduce(0) { $0 + $1.count } + cursors.reduce(0) { $0 + ($1.decoding || $1.hasHead ? 1 : 0) } }

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
                  Int(h.payloadLength) <= TraceFileFormat.maxPayloadBytes else {
                resynchronize(from: offset, size: size, why: "are not a chunk")
                continue
            }
            let total = headerSize + UInt64(h.payloadLength)
            if avail < total {
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
                if end == size || startsWithChunkMagic(at: end, size: size) {
                    record(.checksumFailed, offset: offset, bytes: total, header: h,
                           message: "\(claim(h)) failed its checksum; its events were skipped")
                    offset = end
                } else {
                    resynchronize(from: offset, size: size, why: "begin with a damaged chunk header")
                }
                continue
            }
            if !h.hasOrderedClock {
                record(.inconsistentChunk, offset: offset, bytes: total, header: h,
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

    /// Skips to the next chunk magic in what the file holds now (a candidate too short to check yet is
    /// waited for); everything skipped is damage.
    private func resynchronize(from pos: UInt64, size: UInt64, why: String) {
        let window = 1 << 20
        var base = pos + 1
        var next = size
        var buf = [UInt8](repeating: 0, count: window)
        search: while base + 4 <= size {
            let n = buf.withUnsafeMutableBytes { file.read(into: $0.baseAddress!, count: window, at: base) }
            if n < 4 { break }
            for i in 0...(n - 4) where buf[i] == 0x41 {
                let m = UInt32(buf[i]) | UInt32(buf[i + 1]) << 8 | UInt32(buf[i + 2]) << 16 | UInt32(buf[i + 3]) << 24
                if m == TraceFileFormat.chunkMagic {
                    next = base + UInt64(i)
                    break search
                }
            }
            base += UInt64(n - 3)
            if n < window { break }
        }
        record(.garbage, offset: pos, bytes: next - pos, header: nil,
               message: "\(Wording.grouped(next - pos)) bytes at offset \(Wording.grouped(pos)) \(why); skipped")
        offset = next
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
            damage[Self.maxDamageEntries].message = "\(Wording.grouped(unlistedDamage)) more damaged regions from offset "
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
        let k = key(h)
        let s: Int
        if let existing = streamByKey[k] {
            s = existing
        } else {
            guard streams.count < ChunkIndexer.maxStreams else {
                record(.tooManyStreams, offset: pos, bytes: UInt64(TraceFileFormat.chunkHeaderSize) + UInt64(h.payloadLength),
                       header: h, message: "\(claim(h)) belongs to a stream beyond the reader's bound of "
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
                record(.duplicateChunk, offset: pos, bytes: UInt64(TraceFileFormat.chunkHeaderSize) + UInt64(h.payloadLength),
                       header: h, message: "\(claim(h)) comes after chunk \(last) of its stream (a copy or out of order); ignored")
                return
            }
            if h.sequence > last + 1 {
                var d = TraceDamage(kind: .missingChunks, fileOffset: pos, byteCount: 0, stream: k,
                                    sequences: (last + 1)...(h.sequence - 1), eventsLost: nil, startNs: nil, endNs: h.startNs,
                                    message: "")
                d.message = "\(k) skips \(Wording.sequences(d.sequences!)) (not in the file); their events are missing"
                if damage.count < Self.maxDamageEntries { damage.append(d) } else { unlistedDamage += 1 }
            }
        }
        lastSequence[s] = h.sequence
        chunksIndexed += 1
        let entry = ChunkEntry(offset: pos, header: ChunkHeaderSummary(
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

    /// Events lost in chunks that passed their checksum but did not decode (counted in `damage`).
    public private(set) var undecodableChunks: UInt64 = 0

    /// Calls `body` with every event not handed out yet up to the cut, in time order across streams: the
    /// latest chunk's end minus `holdbackNs`, or every event with `all`. Events are cut at a time, not at
    /// chunk boundaries: chunks of different threads overlap in time, so handing out whole chunks would
    /// analyse a thread's later events before another thread's earlier ones. Returns how many it delivered.
    @discardableResult
    public func forEachEvent(all: Bool = false, _ body: (_ stream: Int, _ event: borrowing DecodedEvent) -> Void) -> UInt64 {
        let cut = all ? UInt64.max : latestNs.subtractingSaturated(holdbackNs)
        while cursors.count < streams.count { cursors.append(FollowCursor()) }
        // A small heap of (head time, stream) over the streams with an event at or before the cut.
        var heap: [(ns: UInt64, stream: Int)] = []
        for s in cursors.indices where advance(s) {
            let ns = cursors[s].head.timestampNs
            if ns <= cut { heap.append((ns, s)) }
        }
        func less(_ a: (ns: UInt64, stream: Int), _ b: (ns: UInt64, stream: Int)) -> Bool {
            a.ns < b.ns || (a.ns == b.ns && a.stream < b.stream)
        }
        func siftDown(_ i0: Int) {
            var i = i0
            while true {
                let l = 2 * i + 1
                if l >= heap.count { return }
                var m = l
                if l + 1 < heap.count && less(heap[l + 1], heap[l]) { m = l + 1 }
                if !less(heap[m], heap[i]) { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        if heap.count > 1 { for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) } }
        var delivered: UInt64 = 0
        while !heap.isEmpty {
            let s = heap[0].stream
            // This stream alone may go on until the next stream's head (or the cut).
            var limit = cut
            var limitStream = Int.max
            if heap.count > 1 {
                var m = 1
                if heap.count > 2 && less(heap[2], heap[1]) { m = 2 }
                limit = min(cut, heap[m].ns)
                limitStream = heap[m].stream
            }
            var more = true
            repeat {
                body(s, cursors[s].head)
                delivered &+= 1
                cursors[s].hasHead = false
                more = advance(s)
            } while more && (cursors[s].head.timestampNs < limit
                             || (cursors[s].head.timestampNs == limit && s < limitStream && limit <= cut))
            if more && cursors[s].head.timestampNs <= cut {
                heap[0] = (cursors[s].head.timestampNs, s)
            } else {
                heap[0] = heap[heap.count - 1]
                heap.removeLast()
            }
            siftDown(0)
        }
        return delivered
    }

    /// Makes sure stream `s` has its next event in `head`, loading its next ready chunk when the current one
    /// is done; false if it has none yet.
    private func advance(_ s: Int) -> Bool {
        if cursors[s].hasHead { return true }
        while true {
            if cursors[s].decoding {
                switch cursors[s].decodeNext() {
                case .event:
                    // String definitions are the chunk's own bookkeeping (the reader's iterator skips them too).
                    if cursors[s].head.kind == .stringDef { continue }
                    cursors[s].hasHead = true
                    return true
                case .end:
                    cursors[s].decoding = false
                case .failure(let error):
                    cursors[s].decoding = false
                    undecodable(s, error)
                }
            }
            guard !ready[s].isEmpty else { return false }
            let c = ready[s].removeFirst()
            chunksReleased += 1
            load(s, c)
        }
    }

    private func load(_ s: Int, _ c: ChunkEntry) {
        let size = TraceFileFormat.chunkHeaderSize
        let total = size + Int(c.header.payloadLength)
        cursors[s].reserve(total)
        let n = file.read(into: cursors[s].buffer!, count: total, at: c.offset)
        guard n == total, let h = ChunkHeader.load(from: cursors[s].buffer!), h.sequence == c.header.sequence,
              h.payloadLength == c.header.payloadLength else {
            record(.undecodable, offset: c.offset, bytes: UInt64(total), header: nil,
                   message: "chunk \(c.header.sequence) of \(streams[s].key) could not be read again (the file changed under the reader); skipped")
            return
        }
        cursors[s].current = c
        cursors[s].decoder = ChunkDecoder(header: h, payload: UnsafeRawBufferPointer(start: cursors[s].buffer! + size,
                                                                                  count: Int(h.payloadLength)))
        cursors[s].decoding = true
    }

    private func undecodable(_ s: Int, _ error: ChunkDecodeError) {
        guard let c = cursors[s].current else { return }
        undecodableChunks += 1
        let why: String
        switch error {
        case .unknownKind(let k, let off): why = "holds an event of unknown kind 0x\(String(k, radix: 16)) at byte \(off)"
        case .truncatedEvent(let off): why = "ends inside an event at byte \(off)"
        case .undefinedString(let id, let off): why = "uses string \(id) before defining it at byte \(off)"
        case .malformed(let off): why = "is malformed near byte \(off)"
        }
        let done = UInt64(cursors[s].decoder?.decoded ?? 0)
        let lost = UInt64(c.header.eventCount).subtractingSaturated(done)
        var d = TraceDamage(kind: .undecodable, fileOffset: c.offset,
                            byteCount: UInt64(TraceFileFormat.chunkHeaderSize) + UInt64(c.header.payloadLength),
                            message: "chunk \(c.header.sequence) of \(streams[s].key) \(why); its last ~\(Wording.grouped(lost)) events were skipped")
        d.stream = streams[s].key
        d.sequences = c.header.sequence...c.header.sequence
        d.eventsLost = lost
        d.startNs = c.header.startNs
        d.endNs = c.header.endNs
        if damage.count < Self.maxDamageEntries { damage.append(d) } else { unlistedDamage += 1 }
    }

    deinit {
        for i in cursors.indices { cursors[i].buffer?.deallocate() }
    }
}

/// One stream's place in the events handed out: its current chunk (in `buffer`) and next event.
struct FollowCursor {
    var buffer: UnsafeMutableRawPointer? = nil
    var capacity = 0
    var decoder: ChunkDecoder? = nil
    var decoding = false
    var current: ChunkEntry? = nil
    var head = DecodedEvent(kind: .stringDef)
    var hasHead = false

    mutating func decodeNext() -> ChunkDecodeStep { decoder!.decodeNext(into: &head) }

    mutating func reserve(_ n: Int) {
        guard n > capacity else { return }
        buffer?.deallocate()
        capacity = max(n, 64 << 10)
        buffer = .allocate(byteCount: capacity, alignment: 16)
    }
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
        self.init(path: f.path, header: header, file: f.file, streams: f.streams, chunks: chunks, damage: f.damage,
                  payloadBytes: bytes, largestPayload: largest, firstNs: first == .max ? 0 : first, lastNs: last)
    }
}
