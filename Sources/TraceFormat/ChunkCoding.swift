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
    public var args: InlineArray<9, Int64>
    public var text: String
    public var list: [UInt64]

    public init(kind: EventKind, ticks: UInt64 = 0, timestampNs: UInt64 = 0) {
        self.kind = kind
        self.ticks = ticks
        self.timestampNs = timestampNs
        self.args = InlineArray(repeating: 0)
        self.text = ""
        self.list = []
    }

    @inline(__always) public func u(_ i: Int) -> UInt64 { UInt64(bitPattern: args[i]) }
    @inline(__always) public func s(_ i: Int) -> Int64 { args[i] }
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

/// Decodes the events of one chunk, in order.
public struct ChunkDecoder {
    public let header: ChunkHeader
    private var cursor: ByteCursor
    private var ticks: UInt64
    private var prevAsyncID: UInt64 = 0
    public private(set) var strings: [String] = []
    public private(set) var decoded: UInt32 = 0

    /// `payload` must stay valid while decoding.
    public init(header: ChunkHeader, payload: UnsafeRawBufferPointer) {
        self.header = header
        self.cursor = ByteCursor(payload)
        self.ticks = header.startTicks
    }

    public var isAtEnd: Bool { cursor.isAtEnd }

    public mutating func next() -> Result<DecodedEvent, ChunkDecodeError>? {
        if cursor.isAtEnd { return nil }
        let start = cursor.offset
        guard let k = cursor.readByte() else { return nil }
        guard let spec = EventSpecs.byCode[Int(k)] else { return .failure(.unknownKind(k, offset: start)) }
        guard let delta = cursor.readVarint() else { return .failure(.truncatedEvent(offset: start)) }
        ticks &+= delta
        var e = DecodedEvent(kind: spec.kind, ticks: ticks, timestampNs: header.nanoseconds(forTicks: ticks))
        var firstID: UInt64 = 0
        var i = 0
        for arg in spec.args {
            switch arg.encoding {
            case .unsigned, .signed, .string:
                guard let v = cursor.readVarint() else { return .failure(.truncatedEvent(offset: start)) }
                if arg.encoding == .signed {
                    e.args[i] = unzigzag(v)
                } else {
                    e.args[i] = Int64(bitPattern: v)
                }
                if arg.encoding == .string {
                    guard v < UInt64(strings.count) else { return .failure(.undefinedString(v, offset: start)) }
                    e.text = strings[Int(v)]
                }
            case .asyncID:
                guard let v = cursor.readVarint() else { return .failure(.truncatedEvent(offset: start)) }
                let id = prevAsyncID &+ UInt64(bitPattern: unzigzag(v))
                prevAsyncID = id
                if firstID == 0 { firstID = id }
                e.args[i] = Int64(bitPattern: id)
            case .relatedID:
                guard let v = cursor.readVarint() else { return .failure(.truncatedEvent(offset: start)) }
                e.args[i] = Int64(bitPattern: firstID &+ UInt64(bitPattern: unzigzag(v)))
            case .bytes:
                guard let n = cursor.readVarint(), n <= UInt64(cursor.remaining),
                      let b = cursor.readBytes(Int(n)) else { return .failure(.truncatedEvent(offset: start)) }
                e.text = String(decoding: b, as: UTF8.self)
                e.args[i] = Int64(n)
            case .list:
                guard let n = cursor.readVarint(), n <= UInt64(cursor.remaining) else {
                    return .failure(.truncatedEvent(offset: start))
                }
                var l: [UInt64] = []
                l.reserveCapacity(Int(n))
                for _ in 0..<n {
                    guard let v = cursor.readVarint() else { return .failure(.truncatedEvent(offset: start)) }
                    l.append(v)
                }
                e.list = l
                e.args[i] = Int64(n)
            }
            i += 1
        }
        if spec.kind == .stringDef {
            guard e.args[0] == Int64(strings.count) else { return .failure(.malformed(offset: start)) }
            strings.append(e.text)
        }
        decoded += 1
        return .success(e)
    }
}
