// Encoding events into a chunk and decoding them back, by the spec table.
// The recorder's hot path writes the same bytes by hand (and a test holds the two together);
// everything else that writes events (kernel stream, tests, tools) uses ChunkBuilder.

/// Builds one chunk of one stream.
public struct ChunkBuilder {
    /// The encoded events so far (no header; `seal` adds it).
    public private(set) var payload: [UInt8] = []
    /// Events begun so far, `stringDef`s included.
    public private(set) var eventCount: UInt32 = 0
    /// The stream's process id (goes into the header).
    public let pid: UInt32
    /// The stream's thread id (0 for a kernel stream).
    public let tid: UInt32
    /// The chunk's start time (CLOCK_MONOTONIC ns), the header's first calibration point.
    public let startNs: UInt64
    /// The tick count at `startNs` (ticks == ns for writers that read the monotonic clock).
    public let startTicks: UInt64
    private var lastTicks: UInt64
    private var prevAsyncID: UInt64 = 0
    private var firstAsyncIDOfEvent: UInt64 = 0
    private var prevPid: UInt64 = 0
    private var prevTid: UInt64 = 0
    private var prevStackID: UInt64 = 0
    private var strings: [String: UInt64] = [:]

    /// An empty chunk starting at `startNs`/`startTicks`; `reserve` is the payload capacity to allocate up front, in bytes.
    public init(pid: UInt32, tid: UInt32, startNs: UInt64, startTicks: UInt64, reserve: Int = 64 << 10) {
        self.pid = pid
        self.tid = tid
        self.startNs = startNs
        self.startTicks = startTicks
        self.lastTicks = startTicks
        payload.reserveCapacity(reserve)
    }

    /// Whether no event has been begun.
    public var isEmpty: Bool { eventCount == 0 }
    /// Payload bytes so far (the sealed chunk adds the 80-byte header).
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

    /// Appends an `ArgEncoding.unsigned` argument.
    public mutating func putUnsigned(_ v: UInt64) { appendVarint(v, to: &payload) }
    /// Appends an `ArgEncoding.signed` argument (zigzag).
    public mutating func putSigned(_ v: Int64) { appendVarint(zigzag(v), to: &payload) }
    /// Appends an `ArgEncoding.string` argument: an id from `intern(_:ticks:)` (intern before `beginEvent`).
    public mutating func putStringID(_ id: UInt64) { appendVarint(id, to: &payload) }

    /// Appends an `ArgEncoding.asyncID` argument (delta against the chunk's previous async id).
    public mutating func putAsyncID(_ id: UInt64) {
        appendVarint(zigzag(Int64(bitPattern: id &- prevAsyncID)), to: &payload)
        prevAsyncID = id
        if firstAsyncIDOfEvent == 0 { firstAsyncIDOfEvent = id }
    }

    /// Appends an `ArgEncoding.relatedID` argument (delta against this event's first async id).
    public mutating func putRelatedID(_ id: UInt64) {
        appendVarint(zigzag(Int64(bitPattern: id &- firstAsyncIDOfEvent)), to: &payload)
    }

    /// Appends an `ArgEncoding.pid` argument (delta against the chunk's previous pid argument).
    public mutating func putPid(_ pid: UInt64) {
        appendVarint(zigzag(Int64(bitPattern: pid &- prevPid)), to: &payload)
        prevPid = pid
    }

    /// Appends an `ArgEncoding.tid` argument (delta against the chunk's previous tid argument).
    public mutating func putTid(_ tid: UInt64) {
        appendVarint(zigzag(Int64(bitPattern: tid &- prevTid)), to: &payload)
        prevTid = tid
    }

    /// Appends an `ArgEncoding.stackID` argument (delta against the chunk's previous stackID argument).
    public mutating func putStackID(_ id: UInt64) {
        appendVarint(zigzag(Int64(bitPattern: id &- prevStackID)), to: &payload)
        prevStackID = id
    }

    /// Appends an `ArgEncoding.list` argument: the count, then each value.
    public mutating func putList(_ values: some Collection<UInt64>) {
        appendVarint(UInt64(values.count), to: &payload)
        for v in values { appendVarint(v, to: &payload) }
    }

    /// The finished chunk: header and payload, ready to append to a trace file.
    public func seal(
        sequence: UInt64, endNs: UInt64, endTicks: UInt64, droppedCumulative: UInt64,
        flags: ChunkFlags = []
    ) -> [UInt8] {
        var header = ChunkHeader(
            flags: flags, payloadLength: UInt32(payload.count), eventCount: eventCount,
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
    /// The event's kind.
    public var kind: EventKind
    /// The writer's clock at the event (ticks; equal to ns for the kernel stream).
    public var ticks: UInt64
    /// The event's time (CLOCK_MONOTONIC ns), mapped from `ticks` by the chunk's calibration points.
    public var timestampNs: UInt64
    /// Fixed-size storage: a plain tuple copies inline, which keeps the reader's per-event copies cheap.
    @usableFromInline var argStorage: EventArgs
    /// The string argument, resolved (empty if the kind has none).
    public var text: String
    /// The list argument (empty if the kind has none).
    public var list: [UInt64]

    /// An event of `kind` with no arguments, text or list.
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

    /// Numeric argument `i` (0..<9) in spec order; traps on an index out of range.
    @inlinable @inline(__always)
    public func arg(_ i: Int) -> Int64 {
        precondition(i >= 0 && i < 9, "argument index out of range")
        return withUnsafeBytes(of: argStorage) { $0.load(fromByteOffset: i * 8, as: Int64.self) }
    }

    /// Sets numeric argument `i` (0..<9); traps on an index out of range.
    @inlinable @inline(__always)
    public mutating func setArg(_ i: Int, _ v: Int64) {
        precondition(i >= 0 && i < 9, "argument index out of range")
        withUnsafeMutableBytes(of: &argStorage) { $0.storeBytes(of: v, toByteOffset: i * 8, as: Int64.self) }
    }

    /// Numeric argument `i` as unsigned (its bit pattern).
    @inlinable @inline(__always) public func u(_ i: Int) -> UInt64 { UInt64(bitPattern: arg(i)) }
    /// Numeric argument `i` as signed.
    @inlinable @inline(__always) public func s(_ i: Int) -> Int64 { arg(i) }
}

extension DecodedEvent {
    /// Takes `raw`'s kind, time and numeric arguments (text and list are the caller's to set).
    @inlinable @inline(__always)
    public mutating func assignNumbers(from raw: RawEvent) {
        kind = raw.kind
        ticks = raw.ticks
        timestampNs = raw.timestampNs
        argStorage = raw.argStorage
    }
}

/// The nine numeric argument slots of an event.
public typealias EventArgs = (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64)

/// One decoded event with no references in it (no string, no array), so copying it costs no
/// reference counting: the reader's fast path decodes whole runs of these into flat buffers.
/// The string argument is an id (`textID`), the list argument a range of a list buffer.
public struct RawEvent: Sendable {
    /// The event's kind.
    public var kind: EventKind
    /// The writer's clock at the event (ticks; equal to ns for the kernel stream).
    public var ticks: UInt64
    /// The event's time (CLOCK_MONOTONIC ns).
    public var timestampNs: UInt64
    @usableFromInline var argStorage: EventArgs
    /// The string argument: an index into `ChunkDecoder.strings` (the reader maps it to its own table); -1: none.
    public var textID: Int32
    /// The list argument: `listCount` values from `listStart` in the decoder's list buffer.
    public var listStart: Int32
    /// How many values of the decoder's list buffer from `listStart` are the list argument (0: none).
    public var listCount: Int32

    /// An event of `kind` with no arguments, no text (`textID` -1) and no list.
    public init(kind: EventKind) {
        self.kind = kind
        ticks = 0
        timestampNs = 0
        argStorage = (0, 0, 0, 0, 0, 0, 0, 0, 0)
        textID = -1
        listStart = 0
        listCount = 0
    }

    /// Numeric argument `i` (0..<9) in spec order; traps on an index out of range.
    @inlinable @inline(__always)
    public func arg(_ i: Int) -> Int64 {
        precondition(i >= 0 && i < 9, "argument index out of range")
        return withUnsafeBytes(of: argStorage) { $0.load(fromByteOffset: i * 8, as: Int64.self) }
    }

    /// Numeric argument `i` as unsigned (its bit pattern).
    @inlinable @inline(__always) public func u(_ i: Int) -> UInt64 { UInt64(bitPattern: arg(i)) }
    /// Numeric argument `i` as signed.
    @inlinable @inline(__always) public func s(_ i: Int) -> Int64 { arg(i) }
}

/// A growable buffer of list-argument values that the decoder appends to and the caller owns
/// (and frees with `deallocate()`); events refer to it by offset.
public struct EventListBuffer {
    /// The values' storage (nil until the first value; freed by `deallocate()`).
    public private(set) var base: UnsafeMutablePointer<UInt64>?
    /// Values held.
    public private(set) var count = 0
    /// Values the storage has room for.
    public private(set) var capacity = 0

    /// An empty buffer (allocates nothing).
    public init() {}

    /// Forgets the values, keeping the storage.
    @inline(__always) public mutating func removeAll() { count = 0 }

    /// Room for `n` more values.
    @inline(__always) mutating func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    private mutating func grow(_ needed: Int) {
        let newCapacity = Swift.max(needed, capacity * 2, 64)
        let p = UnsafeMutablePointer<UInt64>.allocate(capacity: newCapacity)
        if let base {
            p.update(from: base, count: count)
            base.deallocate()
        }
        base = p
        capacity = newCapacity
    }

    /// The caller guarantees room (`reserve`).
    @inline(__always) mutating func appendUnchecked(_ v: UInt64) {
        base.unsafelyUnwrapped[count] = v
        count += 1
    }

    /// `count` values from `start` (a `RawEvent`'s `listStart`/`listCount`); valid until the buffer grows or is freed.
    public func values(start: Int32, count n: Int32) -> UnsafeBufferPointer<UInt64> {
        UnsafeBufferPointer(start: base.map { $0 + Int(start) }, count: base == nil ? 0 : Int(n))
    }

    /// Frees the storage; the buffer is empty and usable again.
    public mutating func deallocate() {
        base?.deallocate()
        base = nil
        count = 0
        capacity = 0
    }
}

/// Why an event of a chunk could not be decoded (offsets are into the chunk's payload, at the event's start).
public enum ChunkDecodeError: Error, Equatable, Sendable {
    /// The payload ended inside an event.
    case truncatedEvent(offset: Int)
    /// A kind this version does not know (written by a newer writer, or damage the CRC missed).
    case unknownKind(UInt8, offset: Int)
    /// A string id used before its definition.
    case undefinedString(UInt64, offset: Int)
    /// Bytes in an event other than `stringDef`, or a `stringDef` whose id is not the chunk's next one.
    case malformed(offset: Int)
}

/// What `ChunkDecoder.decodeNext(into:)` found.
public enum ChunkDecodeStep: Sendable {
    /// One event was decoded.
    case event
    /// The payload ended; no event.
    case end
    /// The next event could not be decoded; nothing after it can be.
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
    /// The header of the chunk being decoded.
    public let header: ChunkHeader
    private let bytes: UnsafePointer<UInt8>?
    private let count: Int
    private var state: DecodeState
    private let table: UnsafePointer<UInt8>
    /// ns per tick, computed once per chunk (same value `ChunkHeader.nanoseconds` computes per call).
    private let identityClock: Bool
    private let nsPerTick: Double
    /// The chunk's string table so far (indexed by `RawEvent.textID`).
    public private(set) var strings: [String] = []
    /// Events decoded so far, `stringDef`s included.
    public var decoded: UInt32 { state.decoded }

    /// The decoder's moving parts, copied into locals while a batch is decoded (so they live in registers).
    private struct DecodeState {
        var offset = 0
        var ticks: UInt64
        var prevAsyncID: UInt64 = 0
        var prevPid: UInt64 = 0
        var prevTid: UInt64 = 0
        var prevStackID: UInt64 = 0
        var decoded: UInt32 = 0
    }

    /// `payload` must stay valid while decoding.
    public init(header: ChunkHeader, payload: UnsafeRawBufferPointer) {
        self.header = header
        self.bytes = payload.baseAddress.map { UnsafePointer($0.assumingMemoryBound(to: UInt8.self)) }
        self.count = payload.baseAddress == nil ? 0 : payload.count
        self.state = DecodeState(ticks: header.startTicks)
        self.table = UnsafePointer(argEncodingTable)
        self.identityClock = header.startTicks == header.startNs && header.endTicks == header.endNs
        // A clock running backwards (a hostile header) maps every event to the chunk's start.
        self.nsPerTick =
            header.endTicks > header.startTicks && header.endNs >= header.startNs
            ? Double(header.endNs - header.startNs) / Double(header.endTicks - header.startTicks) : 0
    }

    /// Whether the payload has been read to its end.
    public var isAtEnd: Bool { state.offset >= count }

    /// The next event (`stringDef`s included), a decoding failure, or nil at the payload's end.
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
        // Round half up without a libm call; saturates where a hostile tick value would overflow.
        return ChunkHeader.adding(header.startNs, Double(t - header.startTicks) * nsPerTick + 0.5)
    }

    /// Decodes the next event into `e`, reusing its storage (text resolved, list copied).
    /// On failure `e` is unspecified.
    public mutating func decodeNext(into e: inout DecodedEvent) -> ChunkDecodeStep {
        var raw = RawEvent(kind: .stringDef)
        var lists = EventListBuffer()
        defer { lists.deallocate() }
        var st = state
        let step = withUnsafeMutablePointer(to: &raw) { decodeRaw(into: $0, lists: &lists, &st) }
        state = st
        guard case .event = step else { return step }
        e.assignNumbers(from: raw)
        if raw.textID >= 0 {
            e.text = strings[Int(raw.textID)]
        } else if !e.text.isEmpty {
            e.text = ""
        }
        if raw.listCount > 0 {
            // Refill the event's own list: no allocation per event unless a consumer kept a copy.
            e.list.removeAll(keepingCapacity: true)
            e.list.append(contentsOf: lists.values(start: raw.listStart, count: raw.listCount))
        } else if !e.list.isEmpty {
            e.list = []
        }
        return .event
    }

    /// Decodes up to `capacity` events into `events`, skipping `stringDef` bookkeeping (its strings go to
    /// `strings`); list arguments are appended to `lists`. Timestamps are kept from going below `floorNs`,
    /// which ends as the last event's. `textEvents` counts events with a string argument.
    public mutating func decodeBatch(
        into events: UnsafeMutablePointer<RawEvent>, capacity: Int,
        lists: inout EventListBuffer, floorNs: inout UInt64
    ) -> ChunkBatch {
        var n = 0
        var textEvents = 0
        var floor = floorNs
        var st = state
        defer {
            floorNs = floor
            state = st
        }
        while n < capacity {
            let e = events + n
            switch decodeRaw(into: e, lists: &lists, &st) {
            case .event:
                if e.pointee.kind == .stringDef { continue }
                if e.pointee.textID >= 0 { textEvents += 1 }
                // Chunks convert ticks to ns separately; keep the stream's order across chunk seams.
                if e.pointee.timestampNs < floor { e.pointee.timestampNs = floor } else { floor = e.pointee.timestampNs }
                n += 1
            case .end:
                return ChunkBatch(count: n, textEvents: textEvents, end: .end)
            case .failure(let error):
                return ChunkBatch(count: n, textEvents: textEvents, end: .failure(error))
            }
        }
        return ChunkBatch(count: n, textEvents: textEvents, end: .full)
    }

    /// A varint at `offset`, or nil if it runs past the payload or overflows 64 bits.
    @inline(__always)
    private func readVarint(_ offset: inout Int) -> UInt64? {
        let p = bytes.unsafelyUnwrapped
        let i = offset
        // Far enough from the end that a whole varint (10 bytes at most) can be read unchecked.
        if i &+ maxVarintBytes <= count {
            let b0 = p[i]
            if b0 < 0x80 {
                offset = i &+ 1
                return UInt64(b0)
            }
            let b1 = p[i &+ 1]
            if b1 < 0x80 {
                offset = i &+ 2
                return UInt64(b0 & 0x7f) | UInt64(b1) << 7
            }
        } else if i >= count {
            return nil
        }
        return readVarintSlow(&offset)
    }

    private func readVarintSlow(_ offset: inout Int) -> UInt64? {
        decodeVarint(bytes.unsafelyUnwrapped, count: count, offset: &offset)
    }

    /// The one decoding routine: the next event (stringDef included) into `e`. Every read is bounds-checked
    /// (the payload may be damaged in ways its checksum did not catch); failures leave `st` unspecified.
    @inline(__always)
    private mutating func decodeRaw(
        into e: UnsafeMutablePointer<RawEvent>, lists: inout EventListBuffer,
        _ st: inout DecodeState
    ) -> ChunkDecodeStep {
        let start = st.offset
        guard start < count else { return .end }
        let k = bytes.unsafelyUnwrapped[start]
        st.offset = start &+ 1
        let row = table + Int(k) &* 16
        let argCount = Int(row[0])
        guard argCount != 0xFF else { return .failure(.unknownKind(k, offset: start)) }
        guard let delta = readVarint(&st.offset) else { return .failure(.truncatedEvent(offset: start)) }
        st.ticks &+= delta
        e.pointee.kind = EventKind(rawValue: k)
        e.pointee.ticks = st.ticks
        e.pointee.timestampNs = nanoseconds(st.ticks)
        e.pointee.argStorage = (0, 0, 0, 0, 0, 0, 0, 0, 0)
        e.pointee.textID = -1
        e.pointee.listStart = 0
        e.pointee.listCount = 0
        let args = UnsafeMutableRawPointer(e) + MemoryLayout<RawEvent>.offset(of: \RawEvent.argStorage).unsafelyUnwrapped
        var definedText: String? = nil
        var firstID: UInt64 = 0
        var i = 0
        while i < argCount {
            guard let v = readVarint(&st.offset) else { return .failure(.truncatedEvent(offset: start)) }
            let value: Int64
            switch row[1 &+ i] {
            case ArgEncoding.unsigned.rawValue:
                value = Int64(bitPattern: v)
            case ArgEncoding.signed.rawValue:
                value = unzigzag(v)
            case ArgEncoding.asyncID.rawValue:
                let id = st.prevAsyncID &+ UInt64(bitPattern: unzigzag(v))
                st.prevAsyncID = id
                if firstID == 0 { firstID = id }
                value = Int64(bitPattern: id)
            case ArgEncoding.relatedID.rawValue:
                value = Int64(bitPattern: firstID &+ UInt64(bitPattern: unzigzag(v)))
            case ArgEncoding.pid.rawValue:
                st.prevPid &+= UInt64(bitPattern: unzigzag(v))
                value = Int64(bitPattern: st.prevPid)
            case ArgEncoding.tid.rawValue:
                st.prevTid &+= UInt64(bitPattern: unzigzag(v))
                value = Int64(bitPattern: st.prevTid)
            case ArgEncoding.stackID.rawValue:
                st.prevStackID &+= UInt64(bitPattern: unzigzag(v))
                value = Int64(bitPattern: st.prevStackID)
            case ArgEncoding.string.rawValue:
                guard v < UInt64(strings.count) else { return .failure(.undefinedString(v, offset: start)) }
                e.pointee.textID = Int32(truncatingIfNeeded: v)
                value = Int64(bitPattern: v)
            case ArgEncoding.bytes.rawValue:
                guard v <= UInt64(count - st.offset) else { return .failure(.truncatedEvent(offset: start)) }
                let b = UnsafeBufferPointer(start: bytes.unsafelyUnwrapped + st.offset, count: Int(v))
                st.offset += Int(v)
                definedText = String(decoding: b, as: UTF8.self)
                value = Int64(bitPattern: v)
            default:  // .list
                guard v <= UInt64(count - st.offset) else { return .failure(.truncatedEvent(offset: start)) }
                lists.reserve(Int(v))
                e.pointee.listStart = Int32(truncatingIfNeeded: lists.count)
                for _ in 0..<v {
                    guard let x = readVarint(&st.offset) else { return .failure(.truncatedEvent(offset: start)) }
                    lists.appendUnchecked(x)
                }
                e.pointee.listCount = Int32(truncatingIfNeeded: v)
                value = Int64(bitPattern: v)
            }
            args.storeBytes(of: value, toByteOffset: i &* 8, as: Int64.self)
            i &+= 1
        }
        if let definedText {
            // Only stringDef carries bytes: the string joins the chunk's table under the next id.
            guard k == EventKind.stringDef.rawValue, e.pointee.arg(0) == Int64(strings.count) else {
                return .failure(.malformed(offset: start))
            }
            e.pointee.textID = Int32(truncatingIfNeeded: strings.count)
            strings.append(definedText)
        }
        st.decoded &+= 1
        return .event
    }
}

/// What `ChunkDecoder.decodeBatch` decoded: `count` events, then how the batch ended.
public struct ChunkBatch: Sendable {
    /// How a batch ended.
    public enum End: Sendable {
        /// The buffer is full; the chunk may hold more.
        case full
        /// The chunk's payload ended.
        case end
        /// An undecodable event: the events before it are in the batch, nothing after it is.
        case failure(ChunkDecodeError)
    }

    /// Events decoded into the caller's buffer.
    public var count: Int
    /// Of those, events with a string argument (`textID` >= 0).
    public var textEvents: Int
    /// Why the batch stopped.
    public var end: End
}
