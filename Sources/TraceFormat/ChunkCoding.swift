// Encoding events into a chunk and decoding them back, by the spec table.
// The recorder's hot path writes the same bytes by hand (and a test holds the two together);
// everything else that writes events (kernel stream, tests, tools) uses ChunkBuilder.

/// Builds one chunk of one stream.
public struct ChunkBuilder {
    public private(set) var payload: [UInt8] = []
    public private(set) var eventCount: UInt32 = 0
    public let pid: UInt32
    public let tid: UInt32
    public let startNs: UInt64
    public let startTicks: UInt64
    private var lastTicks: UInt64
    private var prevAsyncID: UInt64 = 0
    private var firstAsyncIDOfEvent: UInt64 = 0
    private var strings: [String: UInt64] = [:]

    public init(pid: UInt32, tid: UInt32, startNs: UInt64, startTicks: UInt64, reserve: Int = 64 << 10) {
        self.pid = pid
        self.tid = tid
        self.startNs = startNs
        self.startTicks = startTicks
        self.lastTicks = startTicks
        payload.reserveCapacity(reserve)
    }

    public var isEmpty: Bool { eventCount == 0 }
    public var byteCount: Int { payload.count }

    /// The id of `s` in this chunk, defining it (a `stringDef` event) the first time.
    public mutating func intern(_ s: String, ticks: UInt64) -> UInt64 {
        if let id = strings[s] { return id }
        let id = UInt64(strings.count)
        strings[s] = id
        beginEvent(.stringDef, ticks: ticks)
        appendVarint(id, to: &payload)
        let bytes = Array(s.utf8)
        appendVarint(UInt64(bytes.count), to: &payload)
        payload.append(contentsOf: bytes)
        return id
    }

    /// Starts an event; ticks earlier than the previous event's are clamped (deltas are unsigned).
    public mutating func beginEvent(_ kind: EventKind, ticks: UInt64) {
        let t = max(ticks, lastTicks)
        payload.append(kind.rawValue)
        appendVarint(t - lastTicks, to: &payload)
        lastTicks = t
        eventCount += 1
        firstAsyncIDOfEvent = 0
    }

    public mutating func putUnsigned(_ v: UInt64) { appendVarint(v, to: &payload) }
    public mutating func putSigned(_ v: Int64) { appendVarint(zigzag(v), to: &payload) }
    public mutating func putStringID(_ id: UInt64) { appendVarint(id, to: &payload) }

    public mutating func putAsyncID(_ id: UInt64) {
        appendVarint(zigzag(Int64(bitPattern: id &- prevAsyncID)), to: &payload)
        prevAsyncID = id
        if firstAsyncIDOfEvent == 0 { firstAsyncIDOfEvent = id }
    }

    public mutating func putRelatedID(_ id: UInt64) {
        appendVarint(zigzag(Int64(bitPattern: id &- firstAsyncIDOfEvent)), to: &payload)
    }

    public mutating func putList(_ values: some Collection<UInt64>) {
        appendVarint(UInt64(values.count), to: &payload)
        for v in values { appendVarint(v, to: &payload) }
    }

    /// The finished chunk: header and payload, ready to append to a trace file.
    public func seal(sequence: UInt64, endNs: UInt64, endTicks: UInt64, droppedCumulative: UInt64,
                     flags: ChunkFlags = []) -> [UInt8] {
        var header = ChunkHeader(flags: flags, payloadLength: UInt32(payload.count), eventCount: eventCount,
                                 pid: pid, tid: tid, sequence: sequence, startNs: startNs, endNs: max(endNs, startNs),
                                 startTicks: startTicks, endTicks: max(endTicks, lastTicks),
                                 droppedCumulative: droppedCumulative)
        var out = [UInt8](repeating: 0, count: TraceFileFormat.chunkHeaderSize)
        out.reserveCapacity(TraceFileFormat.chunkHeaderSize + payload.count)
        out.withUnsafeMutableBytes { header.store(to: $0.baseAddress!) }
        header.crc = out.withUnsafeBytes { h in
            payload.withUnsafeBytes { ChunkHeader.computeCRC(header: h.baseAddress!, payload: $0) }
        }
        out.withUnsafeMutableBytes { header.store(to: $0.baseAddress!) }
        out.append(contentsOf: payload)
        return out
    }
}

/// One decoded event. Numeric arguments are in spec order (string arguments as their id);
/// `text` is the event's string argument resolved, `list` its list argument.
public struct DecodedEvent: Sendable {
    public var kind: EventKind
    public var ticks: UInt64
    public var timestampNs: UInt64
    /// Fixed-size storage: a plain tuple copies inline, which keeps the reader's per-event copies cheap.
    @usableFromInline var argStorage: (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64)
    public var text: String
    public var list: [UInt64]

    public init(kind: EventKind, ticks: UInt64 = 0, timestampNs: UInt64 = 0) {
        self.kind = kind
        self.ticks = ticks
        self.timestampNs = timestampNs
        self.argStorage = (0, 0, 0, 0, 0, 0, 0, 0, 0)
        self.text = ""
        self.list = []
    }

    /// The numeric arguments in spec order (EventSpecs.maxArgs of them; unused ones are 0).
    public var args: InlineArray<9, Int64> {
        get {
            var a = InlineArray<9, Int64>(repeating: 0)
            for i in 0..<9 { a[i] = arg(i) }
            return a
        }
        set {
            for i in 0..<9 { setArg(i, newValue[i]) }
        }
    }

    @inlinable @inline(__always)
    public func arg(_ i: Int) -> Int64 {
        precondition(i >= 0 && i < 9, "argument index out of range")
        return withUnsafeBytes(of: argStorage) { $0.load(fromByteOffset: i * 8, as: Int64.self) }
    }

    @inlinable @inline(__always)
    public mutating func setArg(_ i: Int, _ v: Int64) {
        precondition(i >= 0 && i < 9, "argument index out of range")
        withUnsafeMutableBytes(of: &argStorage) { $0.storeBytes(of: v, toByteOffset: i * 8, as: Int64.self) }
    }

    @inlinable @inline(__always) public func u(_ i: Int) -> UInt64 { UInt64(bitPattern: arg(i)) }
    @inlinable @inline(__always) public func s(_ i: Int) -> Int64 { arg(i) }
}

public enum ChunkDecodeError: Error, Equatable, Sendable {
    /// The payload ended inside an event.
    case truncatedEvent(offset: Int)
    /// A kind this version does not know (written by a newer writer, or damage the CRC missed).
    case unknownKind(UInt8, offset: Int)
    /// A string id used before its definition.
    case undefinedString(UInt64, offset: Int)
    case malformed(offset: Int)
}

/// What `ChunkDecoder.decodeNext(into:)` found.
public enum ChunkDecodeStep: Sendable {
    case event
    case end
    case failure(ChunkDecodeError)
}

/// Argument encodings per kind code, flat: `[count, enc0, enc1, ...]` in rows of 16 (count 0xFF: no such kind).
/// A pointer table so the decoder's inner loop touches no arrays of structs with strings in them.
nonisolated(unsafe) private let argEncodingTable: UnsafeMutablePointer<UInt8> = {
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 256 * 16)
    p.initialize(repeating: 0, count: 256 * 16)
    for code in 0..<256 { p[code * 16] = 0xFF }
    for spec in EventSpecs.all {
        let row = p + Int(spec.kind.rawValue) * 16
        row[0] = UInt8(spec.args.count)
        for (i, a) in spec.args.enumerated() { row[1 + i] = a.encoding.rawValue }
    }
    return p
}()

/// Decodes the events of one chunk, in order.
public struct ChunkDecoder {
    public let header: ChunkHeader
    private var cursor: ByteCursor
    private var ticks: UInt64
    private var prevAsyncID: UInt64 = 0
    private let table: UnsafePointer<UInt8>
    /// ns per tick, computed once per chunk (same value `ChunkHeader.nanoseconds` computes per call).
    private let identityClock: Bool
    private let nsPerTick: Double
    public private(set) var strings: [String] = []
    public private(set) var decoded: UInt32 = 0

    /// `payload` must stay valid while decoding.
    public init(header: ChunkHeader, payload: UnsafeRawBufferPointer) {
        self.header = header
        self.cursor = ByteCursor(payload)
        self.ticks = header.startTicks
        self.table = UnsafePointer(argEncodingTable)
        self.identityClock = header.startTicks == header.startNs && header.endTicks == header.endNs
        let spanTicks = header.endTicks &- header.startTicks
        self.nsPerTick = spanTicks > 0 ? Double(header.endNs &- header.startNs) / Double(spanTicks) : 0
    }

    public var isAtEnd: Bool { cursor.isAtEnd }

    public mutating func next() -> Result<DecodedEvent, ChunkDecodeError>? {
        var e = DecodedEvent(kind: .stringDef)
        switch decodeNext(into: &e) {
        case .event: return .success(e)
        case .end: return nil
        case .failure(let error): return .failure(error)
        }
    }

    @inline(__always)
    private func nanoseconds(_ t: UInt64) -> UInt64 {
        if identityClock { return t }
        guard nsPerTick > 0, t >= header.startTicks else { return header.startNs }
        return header.startNs &+ UInt64(Double(t - header.startTicks) * nsPerTick + 0.5)  // round half up, no libm call
    }

    /// Decodes the next event into `e`, reusing its storage (the fast path: no Result, no copy).
    /// On failure `e` is unspecified.
    public mutating func decodeNext(into e: inout DecodedEvent) -> ChunkDecodeStep {
        if cursor.isAtEnd { return .end }
        let start = cursor.offset
        guard let k = cursor.readByte() else { return .end }
        let row = table + Int(k) * 16
        let argCount = Int(row[0])
        guard argCount != 0xFF else { return .failure(.unknownKind(k, offset: start)) }
        guard let delta = cursor.readVarint() else { return .failure(.truncatedEvent(offset: start)) }
        ticks &+= delta
        e.kind = EventKind(rawValue: k)
        e.ticks = ticks
        e.timestampNs = nanoseconds(ticks)
        var hasText = false
        var hasList = false
        var firstID: UInt64 = 0
        var i = 0
        while i < argCount {
            guard let v = cursor.readVarint() else { return .failure(.truncatedEvent(offset: start)) }
            switch ArgEncoding(rawValue: row[1 + i]).unsafelyUnwrapped {
            case .unsigned:
                e.setArg(i, Int64(bitPattern: v))
            case .signed:
                e.setArg(i, unzigzag(v))
            case .string:
                guard v < UInt64(strings.count) else { return .failure(.undefinedString(v, offset: start)) }
                e.setArg(i, Int64(bitPattern: v))
                e.text = strings[Int(v)]
                hasText = true
            case .asyncID:
                let id = prevAsyncID &+ UInt64(bitPattern: unzigzag(v))
                prevAsyncID = id
                if firstID == 0 { firstID = id }
                e.setArg(i, Int64(bitPattern: id))
            case .relatedID:
                e.setArg(i, Int64(bitPattern: firstID &+ UInt64(bitPattern: unzigzag(v))))
            case .bytes:
                guard v <= UInt64(cursor.remaining), let b = cursor.readBytes(Int(v)) else {
                    return .failure(.truncatedEvent(offset: start))
                }
                e.text = String(decoding: b, as: UTF8.self)
                e.setArg(i, Int64(bitPattern: v))
                hasText = true
            case .list:
                guard v <= UInt64(cursor.remaining) else { return .failure(.truncatedEvent(offset: start)) }
                // Refill the event's own list: no allocation per event unless a consumer kept a copy.
                e.list.removeAll(keepingCapacity: true)
                e.list.reserveCapacity(Int(v))
                for _ in 0..<v {
                    guard let x = cursor.readVarint() else { return .failure(.truncatedEvent(offset: start)) }
                    e.list.append(x)
                }
                e.setArg(i, Int64(bitPattern: v))
                hasList = true
            }
            i += 1
        }
        while i < EventSpecs.maxArgs {
            e.setArg(i, 0)
            i += 1
        }
        if !hasText && !e.text.isEmpty { e.text = "" }
        if !hasList && !e.list.isEmpty { e.list = [] }
        if k == EventKind.stringDef.rawValue {
            guard e.arg(0) == Int64(strings.count) else { return .failure(.malformed(offset: start)) }
            strings.append(e.text)
        }
        decoded += 1
        return .event
    }
}
