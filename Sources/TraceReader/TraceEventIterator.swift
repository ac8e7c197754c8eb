// The k-way merge: one decoded chunk per stream in memory, a small heap keyed by each stream's
// next timestamp. Memory is (streams × largest chunk), whatever the trace's length.
import TraceFormat

/// One event and the stream (index into `TraceReader.streams`) it came from.
public struct TraceEvent: Sendable {
    public var stream: Int
    public var event: DecodedEvent

    @inline(__always) public var kind: EventKind { event.kind }
    /// CLOCK_MONOTONIC ns; never decreases within a stream.
    @inline(__always) public var timestampNs: UInt64 { event.timestampNs }
}

public final class TraceEventIterator: IteratorProtocol, Sequence {
    public let reader: TraceReader
    /// Damage found while decoding (chunks that passed their checksum but held undecodable events).
    public private(set) var damage: [TraceDamage] = []
    /// Payload bytes of chunks loaded so far (compare with `reader.payloadBytes` for progress).
    public var bytesRead: UInt64 { progress.pointee.bytes }
    /// Events returned so far.
    public var eventsRead: UInt64 { progress.pointee.events }

    // Hot state lives behind pointers: class properties would pay a dynamic exclusivity check per access.
    private let cursors: UnsafeMutablePointer<StreamCursor>
    private let cursorCount: Int
    private let heapStream: UnsafeMutablePointer<Int>
    private let heapTime: UnsafeMutablePointer<UInt64>
    private var heapCount: Int
    private let progress: UnsafeMutablePointer<(bytes: UInt64, events: UInt64)>

    init(reader: TraceReader, selected: Set<Int>?) {
        self.reader = reader
        let chosen = reader.streams.indices.filter { selected?.contains($0) ?? true }
        cursorCount = chosen.count
        cursors = .allocate(capacity: Swift.max(1, chosen.count))
        heapStream = .allocate(capacity: Swift.max(1, chosen.count))
        heapTime = .allocate(capacity: Swift.max(1, chosen.count))
        progress = .allocate(capacity: 1)
        progress.initialize(to: (0, 0))
        heapCount = 0
        for (i, s) in chosen.enumerated() {
            (cursors + i).initialize(to: StreamCursor(stream: s, chunks: reader.chunks[s]))
            if cursors[i].advance(self) {
                heapStream[heapCount] = i
                heapTime[heapCount] = cursors[i].head.timestampNs
                heapCount += 1
            }
        }
        if heapCount > 1 {
            for i in stride(from: heapCount / 2 - 1, through: 0, by: -1) { siftDown(i, heapCount) }
        }
    }

    deinit {
        for i in 0..<cursorCount { cursors[i].buffer.deallocate() }
        cursors.deinitialize(count: cursorCount)
        cursors.deallocate()
        heapStream.deallocate()
        heapTime.deallocate()
        progress.deallocate()
    }

    public func next() -> TraceEvent? {
        var n = heapCount
        guard n > 0 else { return nil }
        let c = cursors + heapStream[0]
        let event = TraceEvent(stream: c.pointee.stream, event: c.pointee.head)
        if c.pointee.advance(self) {
            heapTime[0] = c.pointee.head.timestampNs
        } else {
            n -= 1
            heapStream[0] = heapStream[n]
            heapTime[0] = heapTime[n]
            heapCount = n
        }
        if n > 1 { siftDown(0, n) }
        progress.pointee.events &+= 1
        return event
    }

    /// Calls `body` with every remaining event in time order, without copying events out of the
    /// decoder (faster than `next()`; the event is only valid during the call).
    public func forEach(_ body: (_ stream: Int, _ event: borrowing DecodedEvent) throws -> Void) rethrows {
        var n = heapCount
        defer { heapCount = n }
        while n > 0 {
            let c = cursors + heapStream[0]
            try body(c.pointee.stream, c.pointee.head)
            progress.pointee.events &+= 1
            if c.pointee.advance(self) {
                heapTime[0] = c.pointee.head.timestampNs
            } else {
                n -= 1
                heapStream[0] = heapStream[n]
                heapTime[0] = heapTime[n]
                heapCount = n
            }
            if n > 1 { siftDown(0, n) }
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

    fileprivate func loaded(bytes: Int) { progress.pointee.bytes &+= UInt64(bytes) }
    fileprivate func report(_ d: TraceDamage) { damage.append(d) }
}

/// One stream's position: its current chunk (header + payload in `buffer`) and next event.
private struct StreamCursor {
    let stream: Int
    let chunks: [ChunkEntry]
    var nextChunk = 0
    let buffer: UnsafeMutableRawPointer
    var decoder: ChunkDecoder
    var active = false
    var current: ChunkEntry?
    var head = DecodedEvent(kind: .stringDef)
    var lastNs: UInt64 = 0

    init(stream: Int, chunks: [ChunkEntry]) {
        self.stream = stream
        self.chunks = chunks
        let largest = chunks.reduce(0) { max($0, Int($1.header.payloadLength)) }
        buffer = .allocate(byteCount: TraceFileFormat.chunkHeaderSize + largest, alignment: 16)
        decoder = ChunkDecoder(header: ChunkHeader(pid: 0, tid: 0, sequence: 0, startNs: 0, endNs: 0, startTicks: 0,
                                                   endTicks: 0, droppedCumulative: 0),
                               payload: UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Moves `head` to the stream's next event (stringDef bookkeeping is consumed, not returned).
    @inline(__always)
    mutating func advance(_ it: TraceEventIterator) -> Bool {
        while true {
            if active {
                switch decoder.decodeNext(into: &head) {
                case .event:
                    if head.kind == .stringDef { continue }
                    // Chunks convert ticks to ns separately; keep the stream's order across chunk seams.
                    if head.timestampNs < lastNs { head.timestampNs = lastNs } else { lastNs = head.timestampNs }
                    return true
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
            guard nextChunk < chunks.count else { return false }
            load(chunks[nextChunk], it)
            nextChunk += 1
        }
    }

    private mutating func load(_ c: ChunkEntry, _ it: TraceEventIterator) {
        current = c
        let size = TraceFileFormat.chunkHeaderSize
        let total = size + Int(c.header.payloadLength)
        let n = it.reader.file.read(into: buffer, count: total, at: c.offset)
        guard n == total, let h = ChunkHeader.load(from: buffer), h.sequence == c.header.sequence,
              h.payloadLength == c.header.payloadLength else {
            lost(it, c, decodedSoFar: 0, why: "could not be read again (the file changed while it was being read)")
            return
        }
        it.loaded(bytes: Int(c.header.payloadLength))
        decoder = ChunkDecoder(header: h, payload: UnsafeRawBufferPointer(start: buffer + size,
                                                                         count: Int(h.payloadLength)))
        active = true
    }

    private func undecodable(_ it: TraceEventIterator, _ error: ChunkDecodeError) {
        guard let c = current else { return }
        let why: String
        switch error {
        case .unknownKind(let k, let off): why = "holds an event of unknown kind 0x\(String(k, radix: 16)) at byte \(off) (written by a newer asynctrace?)"
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
        it.report(TraceDamage(
            kind: .undecodable, fileOffset: c.offset,
            byteCount: UInt64(TraceFileFormat.chunkHeaderSize) + UInt64(c.header.payloadLength), stream: key,
            sequences: c.header.sequence...c.header.sequence, eventsLost: remaining, startNs: c.header.startNs,
            endNs: c.header.endNs,
            message: "chunk \(c.header.sequence) of \(key) \(why); its last ~\(Wording.grouped(remaining)) events "
                + "(up to \(Wording.relative(c.header.endNs, from: start))) were skipped"))
    }
}
