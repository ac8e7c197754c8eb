// The k-way merge: one decoded chunk per stream in memory, a small heap keyed by each stream's
// next timestamp. Memory is (streams × largest chunk), whatever the trace's length.
import TraceFormat

/// One event and the stream (index into `TraceReader.streams`) it came from.
public struct TraceEvent: Sendable {
    /// Index into `TraceReader.streams` of the stream the event came from.
    public var stream: Int
    /// The decoded event: kind, time, arguments, text and list.
    public var event: DecodedEvent

    /// The event's kind (`event.kind`).
    @inline(__always) public var kind: EventKind { event.kind }
    /// CLOCK_MONOTONIC ns; never decreases within a stream.
    @inline(__always) public var timestampNs: UInt64 { event.timestampNs }
}

/// One event lent by `TraceEventIterator.forEachView`: a view into the reader's decode buffer,
/// valid only during the call (copying it copies a pointer, not the event).
public struct EventView {
    /// Index into `TraceReader.streams`.
    public let stream: Int
    @usableFromInline let pointer: UnsafePointer<RawEvent>
    @usableFromInline let lists: UnsafePointer<UInt64>?

    /// The event's kind, time and numeric arguments (its text and list are `textID` and `list`).
    @inlinable @inline(__always) public var event: RawEvent { pointer.pointee }
    /// The event's kind.
    @inlinable @inline(__always) public var kind: EventKind { pointer.pointee.kind }
    /// CLOCK_MONOTONIC ns; never decreases within a stream.
    @inlinable @inline(__always) public var timestampNs: UInt64 { pointer.pointee.timestampNs }
    /// Numeric argument `i` (0..<9) as unsigned; the kind's spec (`EventSpec`) says which index means what.
    @inlinable @inline(__always) public func u(_ i: Int) -> UInt64 { pointer.pointee.u(i) }
    /// Numeric argument `i` (0..<9) as signed (negative results such as `-errno`).
    @inlinable @inline(__always) public func s(_ i: Int) -> Int64 { pointer.pointee.s(i) }
    /// The string argument as an id of `TraceEventIterator.string(_:)` (stable for the whole pass); -1: none.
    @inlinable @inline(__always) public var textID: Int { Int(pointer.pointee.textID) }
    /// The list argument (empty if none).
    @inlinable @inline(__always) public var list: UnsafeBufferPointer<UInt64> {
        let e = pointer.pointee
        guard let lists, e.listCount > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: lists + Int(e.listStart), count: Int(e.listCount))
    }
}

/// The events of a trace's selected streams in time order (a k-way merge over the streams' chunks),
/// decoded in batches; memory is one decoded chunk per stream. Made by `TraceReader.events(streams:)`.
public final class TraceEventIterator: IteratorProtocol, Sequence {
    /// The reader whose file this iterator reads.
    public let reader: TraceReader
    /// Damage found while decoding (chunks that passed their checksum but held undecodable events).
    public private(set) var damage: [TraceDamage] = []
    /// Payload bytes of chunks loaded so far (compare with `reader.payloadBytes` for progress).
    public var bytesRead: UInt64 { progress.pointee.bytes }
    /// Events returned so far.
    public var eventsRead: UInt64 { progress.pointee.events }

    /// Events decoded per stream at a time: big enough to amortize the calls, small enough to stay in cache.
    static let batchCapacity = 512

    // Hot state lives behind pointers: class properties would pay a dynamic exclusivity check per access.
    private let cursors: UnsafeMutablePointer<StreamCursor>
    private let cursorCount: Int
    private let heapStream: UnsafeMutablePointer<Int>
    private let heapTime: UnsafeMutablePointer<UInt64>
    private var heapCount: Int
    private let progress: UnsafeMutablePointer<(bytes: UInt64, events: UInt64)>
    /// The strings of every chunk read so far, each once; events name them by index.
    private let stringTable: UnsafeMutablePointer<StringTable>

    init(reader: TraceReader, selected: Set<Int>?) {
        self.reader = reader
        let chosen = reader.streams.indices.filter { selected?.contains($0) ?? true }
        cursorCount = chosen.count
        cursors = .allocate(capacity: Swift.max(1, chosen.count))
        heapStream = .allocate(capacity: Swift.max(1, chosen.count))
        heapTime = .allocate(capacity: Swift.max(1, chosen.count))
        progress = .allocate(capacity: 1)
        progress.initialize(to: (0, 0))
        stringTable = .allocate(capacity: 1)
        stringTable.initialize(to: StringTable())
        heapCount = 0
        for (i, s) in chosen.enumerated() {
            (cursors + i).initialize(to: StreamCursor(stream: s, chunks: reader.chunks[s], batchCapacity: Self.batchCapacity))
            if cursors[i].refill(self) {
                heapStream[heapCount] = i
                heapTime[heapCount] = cursors[i].headNs
                heapCount += 1
            }
        }
        if heapCount > 1 {
            for i in stride(from: heapCount / 2 - 1, through: 0, by: -1) { siftDown(i, heapCount) }
        }
    }

    deinit {
        for i in 0..<cursorCount { cursors[i].release() }
        cursors.deinitialize(count: cursorCount)
        cursors.deallocate()
        heapStream.deallocate()
        heapTime.deallocate()
        progress.deallocate()
        stringTable.deinitialize(count: 1)
        stringTable.deallocate()
    }

    /// The string with id `id` (an `EventView.textID`).
    public func string(_ id: Int) -> String { stringTable.pointee.strings[id] }

    /// How many strings `string(_:)` knows so far (ids are 0..<stringCount).
    public var stringCount: Int { stringTable.pointee.strings.count }

    /// The next event in time order (a copy, text resolved), or nil at the end; `forEachView(_:)` avoids the copy.
    public func next() -> TraceEvent? {
        guard heapCount > 0 else { return nil }
        let c = cursors + heapStream[0]
        let raw = c.pointee.events + c.pointee.pos
        var e = DecodedEvent(kind: .stringDef)
        e.assignNumbers(from: raw.pointee)
        if raw.pointee.textID >= 0 { e.text = string(Int(raw.pointee.textID)) }
        if raw.pointee.listCount > 0 {
            e.list = Array(c.pointee.lists.values(start: raw.pointee.listStart, count: raw.pointee.listCount))
        }
        let event = TraceEvent(stream: c.pointee.stream, event: e)
        c.pointee.pos += 1
        progress.pointee.events &+= 1
        headMoved()
        return event
    }

    /// The top cursor's position moved: refill it if its batch is used up, and restore the heap.
    @inline(__always)
    private func headMoved() {
        var n = heapCount
        let c = cursors + heapStream[0]
        if c.pointee.pos < c.pointee.count {
            heapTime[0] = c.pointee.headNs
        } else if c.pointee.refill(self) {
            heapTime[0] = c.pointee.headNs
        } else {
            n -= 1
            heapStream[0] = heapStream[n]
            heapTime[0] = heapTime[n]
            heapCount = n
        }
        if n > 1 { siftDown(0, n) }
    }

    /// Calls `body` with every remaining event in time order, lending each in place (nothing is copied:
    /// the fastest way through a trace). The view is only valid during the call.
    public func forEachView(_ body: (EventView) throws -> Void) rethrows {
        while heapCount > 0 {
            let top = heapStream[0]
            let c = cursors + top
            // The smallest head among the other streams bounds the run this stream can deliver alone.
            var limitNs = UInt64.max
            var limitStream = Int.max
            if heapCount > 1 {
                var m = 1
                if heapCount > 2 && less(2, 1) { m = 2 }
                limitNs = heapTime[m]
                limitStream = heapStream[m]
            }
            let events = UnsafePointer(c.pointee.events)
            let count = c.pointee.count
            let stream = c.pointee.stream
            let lists = UnsafePointer(c.pointee.lists.base)
            var p = c.pointee.pos
            do {
                repeat {
                    p += 1
                    try body(EventView(stream: stream, pointer: events + (p - 1), lists: lists))
                } while p < count && (events[p].timestampNs < limitNs || (events[p].timestampNs == limitNs && top < limitStream))
            } catch {
                progress.pointee.events &+= UInt64(p - c.pointee.pos)
                c.pointee.pos = p
                headMoved()
                throw error
            }
            progress.pointee.events &+= UInt64(p - c.pointee.pos)
            c.pointee.pos = p
            headMoved()
        }
    }

    /// Calls `body` with every remaining event in time order as a `DecodedEvent` (text resolved, list
    /// copied into the event's reused storage; the event is only valid during the call).
    /// `forEachView` is faster.
    public func forEach(_ body: (_ stream: Int, _ event: borrowing DecodedEvent) throws -> Void) rethrows {
        var e = DecodedEvent(kind: .stringDef)
        try forEachView { v in
            let raw = v.pointer.pointee
            e.assignNumbers(from: raw)
            if raw.textID >= 0 {
                e.text = string(Int(raw.textID))
            } else if !e.text.isEmpty {
                e.text = ""
            }
            if raw.listCount > 0 {
                e.list.removeAll(keepingCapacity: true)
                e.list.append(contentsOf: v.list)
            } else if !e.list.isEmpty {
                e.list = []
            }
            try body(v.stream, e)
        }
    }

    @inline(__always)
    private func less(_ a: Int, _ b: Int) -> Bool {
        heapTime[a] < heapTime[b] || (heapTime[a] == heapTime[b] && heapStream[a] < heapStream[b])
    }

    @inline(__always)
    private func siftDown(_ start: Int, _ n: Int) {
        var i = start
        while true {
            let l = 2 * i + 1
            if l >= n { return }
            var m = l
            if l + 1 < n && less(l + 1, l) { m = l + 1 }
            if !less(m, i) { return }
            swap(&heapStream[i], &heapStream[m])
            swap(&heapTime[i], &heapTime[m])
            i = m
        }
    }

    /// Bytes of decode buffers the cursors hold (chunk buffer and event batch per stream), for tests.
    var decodeBufferBytes: Int {
        (0..<cursorCount).reduce(0) { n, i in
            n + TraceFileFormat.chunkHeaderSize + cursors[i].chunks.reduce(0) { Swift.max($0, Int($1.header.payloadLength)) }
                + cursors[i].capacity * MemoryLayout<RawEvent>.stride
        }
    }

    fileprivate func loaded(bytes: Int) { progress.pointee.bytes &+= UInt64(bytes) }
    fileprivate func report(_ d: TraceDamage) { damage.append(d) }
    fileprivate func intern(_ s: String) -> Int32 { stringTable.pointee.intern(s) }
}

/// Every distinct string of the chunks read so far, so an event's string is one small integer
/// for the whole pass (consumers can cache per id instead of hashing text per event).
private struct StringTable {
    var strings: [String] = []
    var ids: [String: Int32] = [:]

    mutating func intern(_ s: String) -> Int32 {
        if let id = ids[s] { return id }
        let id = Int32(strings.count)
        strings.append(s)
        ids[s] = id
        return id
    }
}

/// One stream's position: its current chunk (header + payload in `buffer`), decoded a batch at a time
/// into `events`; `pos` is the next event to deliver.
private struct StreamCursor {
    let stream: Int
    let chunks: [ChunkEntry]
    var nextChunk = 0
    let buffer: UnsafeMutableRawPointer
    var decoder: ChunkDecoder
    var active = false
    var current: ChunkEntry?
    let events: UnsafeMutablePointer<RawEvent>
    let capacity: Int
    var count = 0
    var pos = 0
    var lists = EventListBuffer()
    /// How the decoded batch ended (what to do once it is delivered).
    var batchEnd = ChunkBatch.End.end
    var floorNs: UInt64 = 0
    /// The current chunk's string ids -> the iterator's string ids.
    var stringIDs: [Int32] = []

    init(stream: Int, chunks: [ChunkEntry], batchCapacity: Int) {
        self.stream = stream
        self.chunks = chunks
        let largest = chunks.reduce(0) { max($0, Int($1.header.payloadLength)) }
        buffer = .allocate(byteCount: TraceFileFormat.chunkHeaderSize + largest, alignment: 16)
        // No bigger than the stream's largest chunk needs: a trace of many short streams (100,000 threads
        // of one event each) otherwise costs a page of decode buffer per stream. A header that understates
        // its count only makes the batches smaller.
        let most = chunks.reduce(0) { max($0, Int($1.header.eventCount)) }
        capacity = max(1, min(batchCapacity, most))
        events = .allocate(capacity: capacity)
        decoder = ChunkDecoder(
            header: ChunkHeader(
                pid: 0, tid: 0, sequence: 0, startNs: 0, endNs: 0, startTicks: 0,
                endTicks: 0, droppedCumulative: 0),
            payload: UnsafeRawBufferPointer(start: nil, count: 0))
    }

    mutating func release() {
        buffer.deallocate()
        events.deallocate()
        lists.deallocate()
    }

    var headNs: UInt64 { events[pos].timestampNs }

    /// Decodes the stream's next batch (loading chunks and reporting damage as it goes); false at the stream's end.
    mutating func refill(_ it: TraceEventIterator) -> Bool {
        while true {
            if active {
                switch batchEnd {
                case .full:
                    lists.removeAll()
                    let b = decoder.decodeBatch(into: events, capacity: capacity, lists: &lists, floorNs: &floorNs)
                    batchEnd = b.end
                    count = b.count
                    pos = 0
                    if b.textEvents > 0 || stringIDs.count < decoder.strings.count { mapStrings(it) }
                    if b.count > 0 { return true }
                    continue
                case .failure(let error):
                    undecodable(it, error)
                    active = false
                case .end:
                    if let c = current, decoder.decoded != c.header.eventCount {
                        undecodable(it, .malformed(offset: Int(c.header.payloadLength)))
                    }
                    active = false
                }
            }
            count = 0
            pos = 0
            guard nextChunk < chunks.count else { return false }
            load(chunks[nextChunk], it)
            nextChunk += 1
        }
    }

    /// Gives the chunk's new strings the iterator's ids and rewrites the batch's string ids.
    private mutating func mapStrings(_ it: TraceEventIterator) {
        while stringIDs.count < decoder.strings.count { stringIDs.append(it.intern(decoder.strings[stringIDs.count])) }
        for i in 0..<count where events[i].textID >= 0 {
            events[i].textID = stringIDs[Int(events[i].textID)]
        }
    }

    private mutating func load(_ c: ChunkEntry, _ it: TraceEventIterator) {
        current = c
        let size = TraceFileFormat.chunkHeaderSize
        let total = size + Int(c.header.payloadLength)
        let n = it.reader.file.read(into: buffer, count: total, at: c.offset)
        guard n == total, let h = ChunkHeader.load(from: buffer), h.sequence == c.header.sequence,
            h.payloadLength == c.header.payloadLength
        else {
            lost(it, c, decodedSoFar: 0, why: "could not be read again (the file changed while it was being read)")
            return
        }
        it.loaded(bytes: Int(c.header.payloadLength))
        decoder = ChunkDecoder(
            header: h,
            payload: UnsafeRawBufferPointer(
                start: buffer + size,
                count: Int(h.payloadLength)))
        stringIDs.removeAll(keepingCapacity: true)
        batchEnd = .full
        active = true
    }

    private func undecodable(_ it: TraceEventIterator, _ error: ChunkDecodeError) {
        guard let c = current else { return }
        let why: String
        switch error {
        case .unknownKind(let k, let off):
            why = "holds an event of unknown kind 0x\(String(k, radix: 16)) at byte \(off) (written by a newer asynctrace?)"
        case .truncatedEvent(let off): why = "ends inside an event at byte \(off)"
        case .undefinedString(let id, let off): why = "uses string \(id) before defining it at byte \(off)"
        case .malformed(let off): why = "is malformed near byte \(off)"
        }
        lost(it, c, decodedSoFar: UInt64(decoder.decoded), why: why)
    }

    private func lost(_ it: TraceEventIterator, _ c: ChunkEntry, decodedSoFar: UInt64, why: String) {
        let key = it.reader.streams[stream].key
        let remaining = UInt64(c.header.eventCount) > decodedSoFar ? UInt64(c.header.eventCount) - decodedSoFar : 0
        let start = it.reader.header.monotonicStartNs
        it.report(
            TraceDamage(
                kind: .undecodable, fileOffset: c.offset,
                byteCount: UInt64(TraceFileFormat.chunkHeaderSize) + UInt64(c.header.payloadLength), stream: key,
                sequences: c.header.sequence...c.header.sequence, eventsLost: remaining, startNs: c.header.startNs,
                endNs: c.header.endNs,
                message: "chunk \(c.header.sequence) of \(key) \(why); its last ~\(Wording.grouped(remaining)) events "
                    + "(up to \(Wording.relative(c.header.endNs, from: start))) were skipped"))
    }
}
