// A flight recorder's dump: the kept window written out as a complete trace, which every reader
// and command takes like any recording. See docs/trace-format.md, "Flight-recorder dumps".
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

public struct FlightDumpError: Error, CustomStringConvertible, Sendable {
    public let errno: Int32
    public var description: String { "cannot write the dump: \(String(cString: strerror(errno)))" }
}

/// What a dump holds.
public struct FlightDumpSummary: Sendable {
    public var chunks = 0
    public var events: UInt64 = 0
    public var bytes: UInt64 = 0
    public var streams = 0
    /// The window: from the earliest chunk start written to the dump's time.
    public var startNs: UInt64 = 0
    public var endNs: UInt64 = 0
}

public enum FlightDump {
    /// Writes the window `ring` keeps at `nowNs` to `fd` as a trace: a file header, then per stream its
    /// chunks whose end is inside the window. Each stream starts where a reader can decode it:
    /// - sequence numbers restart at 0 and dropped counts at the window's start (what was dropped
    ///   before the window is not this trace's loss; a gap inside it still shows, explained or not);
    /// - a user stream whose first chunk left the window gets a chunk of its own first, stamped at
    ///   the window's start, with its threadInfo (and processInfo) again, and an init for each
    ///   resource it created before the window that is still alive (a thread with such resources
    ///   but no chunk in the window gets that chunk alone);
    /// - the kernel stream's first chunk, if it left the window, is replaced by `kernelState(t)`:
    ///   a sealed kernel chunk (sequence 0) re-stating at `t` what is still alive (thread names,
    ///   fds, mappings), built by the kernel writer;
    /// - `perfMaps(t)`, a final chunk of its own stream stamped at the window's start `t`, holds the traced
    ///   processes' perf maps (they name JIT frames: a trace reads no /tmp map);
    /// - each stream's last chunk is marked final: the dump ends there.
    /// Chunks are otherwise written as they are, so a dump costs copying (and re-checksumming) bytes.
    public static func write(
        to fd: Int32, ring: FlightRing, rootPid: UInt32, program: String, nowNs: UInt64,
        realtimeNowNs: UInt64, kernelState: ((UInt64) -> [UInt8]?)? = nil, perfMaps: ((UInt64) -> [UInt8]?)? = nil
    ) throws(FlightDumpError) -> FlightDumpSummary {
        var out = DumpOutput(fd: fd)
        let snapshot = ring.snapshot(nowNs: nowNs)
        return try write(
            snapshot, keepNs: ring.limits.keepNs, to: &out, rootPid: rootPid, program: program, nowNs: nowNs,
            realtimeNowNs: realtimeNowNs, kernelState: kernelState, perfMaps: perfMaps, live: false
        ).summary
    }

    /// The window of `snapshot` as a trace into `out`. `live`: the start of a live feed (FlightFeed),
    /// whose streams go on: no chunk is marked final, and where each stream's numbering starts is returned.
    static func write(
        _ snapshot: FlightSnapshot, keepNs: UInt64?, to out: inout DumpOutput, rootPid: UInt32, program: String,
        nowNs: UInt64, realtimeNowNs: UInt64, kernelState: ((UInt64) -> [UInt8]?)?, perfMaps: ((UInt64) -> [UInt8]?)? = nil,
        live isLive: Bool
    ) throws(FlightDumpError) -> (summary: FlightDumpSummary, starts: [FlightStreamKey: FlightFeedStart]) {
        let (all, identities, live) = (snapshot.chunks, snapshot.identities, snapshot.live)
        let cutoff = keepNs.map { nowNs > $0 ? nowNs - $0 : 0 } ?? 0
        let chunks = all.filter { $0.header.endNs >= cutoff }

        // Per stream: first kept sequence and its dropped count, the index of its last chunk.
        struct StreamPlan {
            var firstSequence: UInt64
            var droppedBase: UInt64
            var firstStartNs: UInt64
            var lastIndex: Int
            var prefixed = false
        }
        var plans: [FlightStreamKey: StreamPlan] = [:]
        var windowStart = nowNs
        for (i, c) in chunks.enumerated() {
            let h = c.header
            windowStart = min(windowStart, h.startNs)
            if var p = plans[c.key] {
                if h.sequence < p.firstSequence {
                    p.firstSequence = h.sequence
                    p.droppedBase = h.droppedCumulative
                    p.firstStartNs = h.startNs
                }
                p.lastIndex = i
                plans[c.key] = p
            } else {
                plans[c.key] = StreamPlan(
                    firstSequence: h.sequence, droppedBase: h.droppedCumulative, firstStartNs: h.startNs,
                    lastIndex: i)
            }
        }
        if chunks.isEmpty, let keep = keepNs { windowStart = nowNs > keep ? nowNs - keep : 0 }

        var summary = FlightDumpSummary()
        summary.startNs = windowStart
        summary.endNs = nowNs
        let header = FileHeader(
            pid: rootPid, monotonicStartNs: windowStart,
            realtimeStartNs: realtimeNowNs &- (nowNs &- windowStart), program: program
        ).encode()
        try out.append(header)

        // The streams' openings.
        var opened: Set<FlightStreamKey> = []
        let kernelKey = FlightStreamKey(pid: rootPid, tid: 0, kernel: true)
        if let kernelState, plans[kernelKey]?.firstSequence != 0 {
            let at = plans[kernelKey]?.firstStartNs ?? windowStart
            if var state = kernelState(at), state.count >= TraceFileFormat.chunkHeaderSize {
                let isOnly = plans[kernelKey] == nil
                if isOnly && !isLive { try reseal(&state) { $0.flags.insert(.final) } }
                try out.append(state)
                summary.chunks += 1
                opened.insert(kernelKey)
                if !isOnly { plans[kernelKey]!.prefixed = true }
            }
        }
        if let perfMaps, let chunk = perfMaps(windowStart), chunk.count >= TraceFileFormat.chunkHeaderSize {
            try out.append(chunk)
            summary.chunks += 1
        }
        // User streams: identity again, and the resources created before the window that are
        // still alive at its start (an init each, stamped at the window's start).
        var openings = Set(plans.keys.filter { !$0.kernel && plans[$0]!.firstSequence != 0 })
        openings.formUnion(live.keys)
        for key in openings.sorted(by: { ($0.pid, $0.tid) < ($1.pid, $1.tid) }) {
            let plan = plans[key]
            let id = identities[key] ?? FlightStreamIdentity()
            let resources = (live[key] ?? []).sorted { $0.asyncID < $1.asyncID }
            guard id.threadName != nil || id.program != nil || !resources.isEmpty else { continue }
            let at = windowStart
            var b = ChunkBuilder(pid: key.pid, tid: key.tid, startNs: at, startTicks: at, reserve: 256 + resources.count * 12)
            if let program = id.program {
                let s = b.intern(program, ticks: at)
                b.beginEvent(.processInfo, ticks: at)
                b.putUnsigned(id.parentPid)
                b.putStringID(s)
            }
            if let name = id.threadName {
                let s = b.intern(name, ticks: at)
                b.beginEvent(.threadInfo, ticks: at)
                b.putStringID(s)
            }
            for r in resources {
                let type = b.intern(r.type, ticks: at)
                b.beginEvent(.initResource, ticks: at)
                b.putAsyncID(r.asyncID)
                b.putStringID(type)
                b.putRelatedID(r.triggerAsyncID)
            }
            try out.append(b.seal(sequence: 0, endNs: at, endTicks: at, droppedCumulative: 0, flags: plan == nil && !isLive ? .final : []))
            summary.chunks += 1
            opened.insert(key)
            if plan != nil { plans[key]!.prefixed = true }
        }

        for (i, c) in chunks.enumerated() {
            // On disk: the segments before this chunk's are read; the ring may remove them now.
            if let segment = c.segment { snapshot.pins?.releaseBefore(segment) }
            let plan = plans[c.key]!
            var h = c.header
            h.sequence = h.sequence &- plan.firstSequence &+ (plan.prefixed ? 1 : 0)
            h.droppedCumulative = h.droppedCumulative >= plan.droppedBase ? h.droppedCumulative - plan.droppedBase : 0
            if i == plan.lastIndex && !isLive { h.flags.insert(.final) }
            try out.append(chunk: c, header: h)
            summary.chunks += 1
            summary.events &+= UInt64(h.eventCount)
        }
        try out.finish()
        snapshot.pins?.releaseAll()
        summary.streams = plans.count
        summary.bytes = out.written
        var starts: [FlightStreamKey: FlightFeedStart] = [:]
        for (key, p) in plans { starts[key] = FlightFeedStart(firstSequence: p.firstSequence, droppedBase: p.droppedBase, prefixed: p.prefixed) }
        // Streams that got only an opening: their first chunk to come follows it.
        for key in opened where plans[key] == nil { starts[key] = FlightFeedStart(firstSequence: nil, droppedBase: nil, prefixed: true) }
        return (summary, starts)
    }

    /// Changes a sealed chunk's header and checksums it again.
    static func reseal(_ bytes: inout [UInt8], _ change: (inout ChunkHeader) -> Void) throws(FlightDumpError) {
        let ok = bytes.withUnsafeMutableBytes { raw -> Bool in
            guard var h = ChunkHeader.load(from: raw.baseAddress!) else { return false }
            change(&h)
            h.crc = 0
            h.store(to: raw.baseAddress!)
            h.crc = flightChunkCRC(
                header: raw.baseAddress!, payload: raw.baseAddress! + TraceFileFormat.chunkHeaderSize,
                count: Int(h.payloadLength))
            h.store(to: raw.baseAddress!)
            return true
        }
        if !ok { throw FlightDumpError(errno: EINVAL) }
    }
}

/// Buffered writes of whole chunks (a few MiB per write()); with fd -1 everything stays in `buffer`.
struct DumpOutput {
    let fd: Int32
    var buffer: [UInt8] = []
    var written: UInt64 = 0
    static let flushBytes = 4 << 20

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(Self.flushBytes + (1 << 20))
    }

    mutating func append(_ bytes: [UInt8]) throws(FlightDumpError) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.flushBytes { try flush() }
    }

    /// The chunk with header `h` (sequence, dropped count, flags changed), checksummed again.
    mutating func append(chunk c: FlightChunk, header: ChunkHeader) throws(FlightDumpError) {
        guard Self.append(chunk: c, header: header, to: &buffer) else { throw FlightDumpError(errno: EIO) }
        if buffer.count >= Self.flushBytes { try flush() }
    }

    /// Appends the chunk `c` with header `header` to `buffer`, checksummed again; false (and nothing
    /// appended) if its bytes cannot be read from its segment.
    @discardableResult
    static func append(chunk c: FlightChunk, header: ChunkHeader, to buffer: inout [UInt8]) -> Bool {
        let at = buffer.count
        if let memory = c.memory {
            buffer.append(contentsOf: memory)
        } else {
            let ok = withUnsafeTemporaryAllocation(byteCount: c.byteCount, alignment: 16) { scratch -> Bool in
                guard c.copyBytes(to: scratch.baseAddress!) else { return false }
                buffer.append(contentsOf: UnsafeRawBufferPointer(scratch))
                return true
            }
            if !ok { return false }
        }
        var h = header
        h.crc = 0
        let payloadCount = c.byteCount - TraceFileFormat.chunkHeaderSize
        buffer.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress! + at
            h.store(to: base)
            h.crc = flightChunkCRC(header: base, payload: base + TraceFileFormat.chunkHeaderSize, count: payloadCount)
            h.store(to: base)
        }
        return true
    }

    mutating func flush() throws(FlightDumpError) {
        guard fd >= 0 else { return }
        var err: Int32 = 0
        buffer.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = Glibc.write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    err = n < 0 ? errno : EIO
                    return
                }
                off += n
            }
        }
        if err != 0 { throw FlightDumpError(errno: err) }
        written &+= UInt64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    mutating func finish() throws(FlightDumpError) { try flush() }
}
