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
    public private(set) var bytesRead: UInt64 = 0
    /// Events returned so far.
    public private(set) var eventsRead: UInt64 = 0

    private var cursors: [StreamCursor] = []
    private var heapStream: [Int] = []
    private var heapTime: [UInt64] = []

    init(reader: TraceReader, selected: Set<Int>?) {
        self.reader = reader
        for s in reader.streams.indices where selected?.contains(s) ?? true {
            let c = StreamCursor(stream: s, chunks: reader.chunks[s])
            if c.advance(self) {
                heapStream.append(cursors.count)
                heapTime.append(c.head.timestampNs)
            }
            cursors.append(c)
        }
        if heapStream.count > 1 {
            for i in stride(from: heapStream.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        }
    }

    public func next() -> TraceEvent? {
        guard let top = heapStream.first else { return nil }
        let c = cursors[top]
        let event = TraceEvent(stream: c.stream, event: c.head)
        if c.advance(self) {
            heapTime[0] = c.head.timestampNs
        } else {
            let last = heapStream.count - 1
            heapStream[0] = heapStream[last]
            heapTime[0] = heapTime[last]
            heapStream.removeLast()
            heapTime.removeLast()
        }
        if heapStream.count > 1 { siftDown(0) }
        eventsRead &+= 1
        return event
    }

    @inline(__always)
    private func less(_ a: Int, _ b: Int) -> Bool {
        heapTime[a] < heapTime[b] || (heapTime[a] == heapTime[b] && heapStream[a] < heapStream[b])
    }

    private func siftDown(_ start: Int) {
        var i = start
        let n = heapStream.count
        while true {
            let l = 2 * i + 1
            if l >= n { return }
            var m = l
            if l + 1 < n && less(l + 1, l) { m = l + 1 }
            if !less(m, i) { return }
            heapStream.swapAt(i, m)
            heapTime.swapAt(i, m)
            i = m
        }
    }

    fileprivate func loaded(bytes: Int) { bytesRead &+= UInt64(bytes) }
    fileprivate func report(_ d: TraceDamage) { damage.append(d) }
}

/// One stream's position: its current chunk (header + payload in `buffer`) and next event.
private final class StreamCursor {
    let stream: Int
    let chunks: [ChunkEntry]
    var nextChunk = 0
    var buffer: ByteBuffer
    var decoder: ChunkDecoder?
    var current: ChunkEntry?
    var head = DecodedEvent(kind: .stringDef)
    var lastNs: UInt64 = 0

    init(stream: Int, chunks: [ChunkEntry]) {
        self.stream = stream
        self.chunks = chunks
        let largest = chunks.reduce(0) { max($0, Int($1.header.payloadLength)) }
        buffer = ByteBuffer(capacity: TraceFileFormat.chunkHeaderSize + largest)
    }

    /// Moves `head` to the stream's next event (stringDef bookkeeping is consumed, not returned).
    @inline(__always)
    func advance(_ it: TraceEventIterator) -> Bool {
        while true {
            if decoder != nil {
                switch decoder!.next() {
                case .success(let e)?:
                    if e.kind == .stringDef { continue }
                    head = e
                    // Chunks convert ticks to ns separately; keep the stream's order across chunk seams.
                    if head.timestampNs < lastNs { head.timestampNs = lastNs } else { lastNs = head.timestampNs }
                    return true
                case .failure(let error)?:
                    undecodable(it, error)
                    decoder = nil
                case nil:
                    if let c = current, decoder!.decoded != c.header.eventCount {
                        undecodable(it, .malformed(offset: Int(c.header.payloadLength)))
                    }
                    decoder = nil
                }
            }
            guard nextChunk < chunks.count else { return false }
            load(chunks[nextChunk], it)
            nextChunk += 1
        }
    }

    private func load(_ c: ChunkEntry, _ it: TraceEventIterator) {
        current = c
        let size = TraceFileFormat.chunkHeaderSize
        let total = size + Int(c.header.payloadLength)
        let n = it.reader.file.read(into: buffer.pointer, count: total, at: c.offset)
        guard n == total, let h = ChunkHeader.load(from: buffer.pointer), h.sequence == c.header.sequence,
              h.payloadLength == c.header.payloadLength else {
            lost(it, c, decodedSoFar: 0, why: "could not be read again (the file changed while it was being read)")
            return
        }
        it.loaded(bytes: Int(c.header.payloadLength))
        decoder = ChunkDecoder(header: h, payload: UnsafeRawBufferPointer(start: buffer.pointer + size,
                                                                         count: Int(h.payloadLength)))
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
        lost(it, c, decodedSoFar: UInt64(decoder?.decoded ?? 0), why: why)
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
