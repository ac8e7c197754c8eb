// A flight recorder's memory: the most recent chunks of every stream, bounded by age and by bytes.
// Chunks are kept whole, exactly as their writers sealed them; a dump (FlightDump) turns what is
// kept into a complete trace file. Shared by `asynctrace record --flight-recorder` (program and
// kernel streams) and the in-process recorder.
import AsyncHooks
import CRecorderSupport
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// How much a flight recorder keeps: chunks older than `keepNs` (by their end) and, past
/// `keepBytes`, the oldest chunks are let go.
public struct FlightLimits: Sendable, Equatable {
    public var keepNs: UInt64?
    public var keepBytes: Int
    public init(keepNs: UInt64?, keepBytes: Int) {
        self.keepNs = keepNs
        self.keepBytes = keepBytes
    }

    /// The default: the last 30 s, at most 1 GiB.
    public static let defaultKeepNs: UInt64 = 30_000_000_000
    public static let defaultCapBytes = 1 << 30

    /// `--keep`: a duration ("30s"), a size ("512MiB") or both ("30s,512MiB"); with a duration
    /// only, memory is capped at 1 GiB all the same. nil when a part cannot be read.
    public static func parse(_ text: String) -> FlightLimits? {
        var limits = FlightLimits(keepNs: nil, keepBytes: 0)
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.count <= 2 else { return nil }
        for part in parts.map({ String($0).trimmingSpaces }) {
            if let ns = Quantities.duration(part), ns > 0, limits.keepNs == nil {
                limits.keepNs = ns
            } else if let b = Quantities.byteSize(part), b >= 1 << 20, b <= 1 << 40, limits.keepBytes == 0 {
                limits.keepBytes = Int(b)
            } else {
                return nil
            }
        }
        if limits.keepBytes == 0 { limits.keepBytes = defaultCapBytes }
        return limits
    }
}

extension String {
    var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

/// One stream of a trace: a thread of a process, or the kernel stream.
public struct FlightStreamKey: Hashable, Sendable {
    public var pid: UInt32
    public var tid: UInt32
    public var kernel: Bool
    public init(pid: UInt32, tid: UInt32, kernel: Bool) {
        self.pid = pid
        self.tid = tid
        self.kernel = kernel
    }
    public init(_ h: ChunkHeader) {
        pid = h.pid
        tid = h.tid
        kernel = h.isKernel
    }
}

/// A sealed chunk (header and payload) as it was written: in memory, or in a segment file of a
/// window on disk.
public struct FlightChunk: Sendable {
    public let header: ChunkHeader
    let memory: [UInt8]?
    let segment: FlightSegment?
    let offset: Int
    /// Its size, header included.
    public let byteCount: Int
    public var key: FlightStreamKey { FlightStreamKey(header) }
    public init(bytes: [UInt8], header: ChunkHeader) {
        memory = bytes
        segment = nil
        offset = 0
        byteCount = bytes.count
        self.header = header
    }
    init(header: ChunkHeader, segment: FlightSegment, offset: Int, byteCount: Int) {
        memory = nil
        self.segment = segment
        self.offset = offset
        self.byteCount = byteCount
        self.header = header
    }

    /// Its bytes (read back from its segment when on disk; nil if that read fails).
    public var bytes: [UInt8]? {
        if let memory { return memory }
        var out = [UInt8](repeating: 0, count: byteCount)
        let ok = out.withUnsafeMutableBytes { copyBytes(to: $0.baseAddress!) }
        return ok ? out : nil
    }

    /// Copies its `byteCount` bytes to `to`; false if they cannot be read.
    func copyBytes(to: UnsafeMutableRawPointer) -> Bool {
        if let memory {
            memory.withUnsafeBytes { to.copyMemory(from: $0.baseAddress!, byteCount: byteCount) }
            return true
        }
        return segment!.read(offset, byteCount, into: to)
    }
}

/// What a reader needs at the start of a user stream whose first chunk has left the window: its
/// thread name, and for a process's first stream the program (from that first chunk).
public struct FlightStreamIdentity: Sendable {
    public var threadName: String?
    public var program: String?
    public var parentPid: UInt64 = 0
}

/// A program's resource whose `init` has left the window and whose `destroy` has not.
public struct FlightLiveResource: Sendable {
    public var asyncID: UInt64
    public var type: String
    public var triggerAsyncID: UInt64
    /// The thread whose stream held the init.
    public var tid: UInt32
}

struct LiveKey: Hashable {
    var pid: UInt32
    var asyncID: UInt64
}

/// What a ring keeps at one moment: its chunks (in arrival order; storage shared, not copied), the
/// streams' identities, and the resources created before the window that are still alive.
public struct FlightSnapshot: Sendable {
    public var chunks: [FlightChunk]
    public var identities: [FlightStreamKey: FlightStreamIdentity]
    public var live: [FlightStreamKey: [FlightLiveResource]]
    /// On disk: the segments it reads, kept until they are read.
    var pins: FlightPins?
}

/// Counters of a flight recorder.
public struct FlightStatistics: Sendable, Equatable {
    public var chunksKept = 0
    public var bytesKept = 0
    public var chunksEvicted: UInt64 = 0
    public var bytesEvicted: UInt64 = 0
    /// Messages that were not a valid chunk (bad magic, length or checksum): counted, never kept.
    public var rejected: UInt64 = 0
    /// The most bytes ever kept at once.
    public var peakBytes = 0
    /// Resources created before the window and still alive (restated in a dump), and how many
    /// could not be remembered past the cap.
    public var liveResources = 0
    public var liveResourcesNotKept: UInt64 = 0
    /// On disk (`--keep-on-disk`): bytes of the segment files (what the bound limits), the most at
    /// once, segments created, and chunks not kept (no room while a dump read the oldest segment, a
    /// chunk larger than the bound allows, or a failed write: `diskErrno`).
    public var diskBytes = 0
    public var peakDiskBytes = 0
    public var segmentsCreated = 0
    public var chunksNotKept: UInt64 = 0
    public var diskErrno: Int32 = 0
}

public final class FlightRing: @unchecked Sendable {
    struct State {
        var chunks: [FlightChunk] = []
        var head = 0
        var stats = FlightStatistics()
        var identities: [FlightStreamKey: FlightStreamIdentity] = [:]
        var live: [LiveKey: FlightLiveResource] = [:]
        /// Destroys folded before their init (the init was on another thread whose chunk left later).
        var destroyedEarly: Set<LiveKey> = []
        /// Live feeds (`asynctrace top` attached): each chunk kept is also handed to them.
        var observers: [Int: (FlightChunk) -> Void] = [:]
        var nextObserver = 0
    }

    /// At most this many resources created before the window are remembered (a leak must not
    /// grow the recorder without bound); the rest are counted.
    static let maxLiveResources = 500_000

    public let limits: FlightLimits
    private let state = LockedValue(State())
    /// The window on disk, if any (changed only under `state`'s lock).
    public let disk: FlightDiskWindow?

    public init(limits: FlightLimits) {
        self.limits = limits
        disk = nil
    }

    /// A window on disk: the chunks go to segment files of `disk`, whose total size (headers included,
    /// and segments a dump still reads) never exceeds `limits.keepBytes`. Segments are a sixteenth of
    /// that (256 KiB to 64 MiB); one segment's room is left free for dumps, which keep the segments
    /// they read until they have read them.
    public init(limits: FlightLimits, disk: FlightDiskWindow) {
        self.limits = limits
        self.disk = disk
        disk.segmentBytes = min(max(limits.keepBytes / 16, 256 << 10), 64 << 20)
    }

    /// On disk: the file header each new segment starts with (the recording's pid and program).
    public func setSegmentHeader(_ header: FileHeader) {
        guard let disk else { return }
        state.withLock { _ in disk.header = header.encode() }
    }

    /// On disk: removes this recording's segments (the recording has ended; its dumps are written).
    public func removeSegments() {
        guard let disk else { return }
        state.withLock { s in
            s.stats.chunksKept = 0
            s.stats.bytesKept = 0
            s.chunks = []
            s.head = 0
            for segment in disk.segments where !segment.unlinked { disk.unlink(segment) }
        }
    }

    func unpin(_ segments: [FlightSegment]) {
        guard let disk else { return }
        state.withLock { _ in for segment in segments { disk.unpin(segment) } }
    }

    /// Takes a copy of a sealed chunk (e.g. a message received from a program's recorder). A
    /// message that is not one whole chunk with a correct checksum is rejected and counted: the
    /// ring holds only chunks a reader can decode.
    /// A program's message claiming the kernel stream, or ending more than 10 s in the future,
    /// is rejected too: only the recorder writes the kernel stream, and a window is of the past.
    @discardableResult
    public func add(_ message: UnsafeRawBufferPointer, nowNs: UInt64) -> Bool {
        guard message.count >= TraceFileFormat.chunkHeaderSize, let base = message.baseAddress,
            let h = ChunkHeader.load(from: base), !h.isKernel, h.endNs <= nowNs &+ 10_000_000_000,
            Int(h.payloadLength) == message.count - TraceFileFormat.chunkHeaderSize, h.hasOrderedClock,
            flightChunkCRC(header: base, payload: base + TraceFileFormat.chunkHeaderSize, count: Int(h.payloadLength)) == h.crc
        else {
            state.withLock { $0.stats.rejected += 1 }
            return false
        }
        add(FlightChunk(bytes: Array(message), header: h), nowNs: nowNs)
        return true
    }

    /// Keeps `chunk` (already checked: from this process's own writers).
    public func add(_ chunk: FlightChunk, nowNs: UInt64) {
        var identity: FlightStreamIdentity?
        if chunk.header.sequence == 0 && !chunk.header.isKernel { identity = Self.identity(of: chunk) }
        state.withLock { s in
            if let identity { s.identities[chunk.key] = identity }
            // Room first: the bound holds at every moment, not just between chunks.
            evict(&s, nowNs: nowNs, incoming: chunk.byteCount)
            var kept = chunk
            if let disk {
                guard let stored = store(chunk, on: disk, &s) else {
                    disk.chunksNotKept += 1
                    for o in s.observers.values { o(chunk) }  // a live viewer still gets it
                    return
                }
                kept = stored
            }
            s.chunks.append(kept)
            s.stats.chunksKept += 1
            s.stats.bytesKept += chunk.byteCount
            s.stats.peakBytes = max(s.stats.peakBytes, s.stats.bytesKept)
            for o in s.observers.values { o(chunk) }
        }
    }

    /// The window now (as `snapshot`) and, from the same moment on, every chunk the ring takes
    /// handed to `observer` (on the adding thread, under the ring's lock: it must not call the
    /// ring). Nothing is missed or seen twice between the two. Returns a token for `stopObserving`.
    public func snapshotAndObserve(nowNs: UInt64, _ observer: @escaping (FlightChunk) -> Void)
        -> (snapshot: FlightSnapshot, token: Int)
    {
        state.withLock { s in
            let snap = snapshot(&s, nowNs: nowNs)
            let token = s.nextObserver
            s.nextObserver += 1
            s.observers[token] = observer
            return (snap, token)
        }
    }

    public func stopObserving(_ token: Int) {
        state.withLock { _ = $0.observers.removeValue(forKey: token) }
    }

    /// Lets go of chunks past the limits (also called as time passes with nothing added).
    public func evict(nowNs: UInt64) {
        state.withLock { evict(&$0, nowNs: nowNs) }
    }

    private func evict(_ s: inout State, nowNs: UInt64, incoming: Int = 0) {
        let cutoff = limits.keepNs.map { nowNs > $0 ? nowNs - $0 : 0 } ?? 0
        while s.head < s.chunks.count {
            let c = s.chunks[s.head]
            // On disk the bound is on the segment files (`store`); here only age.
            let overBytes = disk == nil && s.stats.bytesKept + incoming > limits.keepBytes
            guard overBytes || c.header.endNs < cutoff else { break }
            dropHead(&s)
        }
        // Segments whose chunks have all left the window (the one being written stays).
        if let disk {
            while let oldest = disk.oldest, oldest !== disk.current,
                s.head == s.chunks.count || s.chunks[s.head].segment !== oldest
            {
                disk.unlink(oldest)
            }
        }
        compact(&s)
    }

    /// The oldest chunk leaves the window.
    private func dropHead(_ s: inout State) {
        let c = s.chunks[s.head]
        s.stats.bytesKept -= c.byteCount
        s.stats.chunksKept -= 1
        s.stats.chunksEvicted += 1
        s.stats.bytesEvicted += UInt64(c.byteCount)
        s.head += 1
        if !c.header.isKernel { Self.fold(c, into: &s) }
    }

    /// Writes `chunk` to the window's current segment (a new one when it is full), making room first
    /// by removing the oldest segments: the segment files never exceed the bound, one segment's room
    /// kept free for a dump that still reads the oldest. nil: no room (counted by the caller).
    private func store(_ chunk: FlightChunk, on disk: FlightDiskWindow, _ s: inout State) -> FlightChunk? {
        let n = chunk.byteCount
        func needed() -> Int {
            let rotate = disk.current.map { $0.size + n > disk.segmentBytes && $0.size > disk.header.count } ?? true
            return n + (rotate ? disk.header.count : 0)
        }
        let target = limits.keepBytes - disk.segmentBytes
        guard n + disk.header.count <= target else { return nil }  // larger than the window may ever hold
        while disk.usedBytes + needed() > target, let oldest = disk.oldest, oldest.pins == 0 {
            while s.head < s.chunks.count && s.chunks[s.head].segment === oldest { dropHead(&s) }
            disk.unlink(oldest)
        }
        compact(&s)
        guard disk.usedBytes + needed() <= limits.keepBytes else { return nil }
        if needed() > n || disk.current == nil {
            disk.current = nil
            guard let segment = disk.newSegment() else { return nil }
            disk.current = segment
        }
        let segment = disk.current!
        let offset = segment.size
        let ok: Bool
        if let memory = chunk.memory {
            ok = disk.write(memory, to: segment)
        } else {
            guard let bytes = chunk.bytes else { return nil }
            ok = disk.write(bytes, to: segment)
        }
        guard ok else { return nil }
        return FlightChunk(header: chunk.header, segment: segment, offset: offset, byteCount: n)
    }

    private func compact(_ s: inout State) {
        // Compact now and then: the array's front is dead weight.
        if s.head > 1024 && s.head * 2 > s.chunks.count {
            s.chunks.removeFirst(s.head)
            s.head = 0
        }
    }

    public var statistics: FlightStatistics {
        state.withLock { s in
            var st = s.stats
            st.liveResources = s.live.count
            if let disk {
                st.diskBytes = disk.usedBytes
                st.peakDiskBytes = disk.peakBytes
                st.segmentsCreated = disk.segmentsCreated
                st.chunksNotKept = disk.chunksNotKept
                st.diskErrno = disk.firstErrno
            }
            return st
        }
    }

    /// A chunk leaving the window: its inits and destroys update what is alive before the window.
    static func fold(_ chunk: FlightChunk, into s: inout State) {
        guard let bytes = chunk.bytes else { return }
        bytes.withUnsafeBytes { raw in
            var d = ChunkDecoder(header: chunk.header, payload: UnsafeRawBufferPointer(rebasing: raw[TraceFileFormat.chunkHeaderSize...]))
            var e = DecodedEvent(kind: .stringDef)
            while case .event = d.decodeNext(into: &e) {
                switch e.kind {
                case .initResource:
                    let key = LiveKey(pid: chunk.header.pid, asyncID: e.u(0))
                    if s.destroyedEarly.remove(key) != nil { continue }
                    if s.live.count >= maxLiveResources && s.live[key] == nil {
                        s.stats.liveResourcesNotKept += 1
                        continue
                    }
                    s.live[key] = FlightLiveResource(asyncID: e.u(0), type: e.text, triggerAsyncID: e.u(2), tid: chunk.header.tid)
                case .destroy:
                    let key = LiveKey(pid: chunk.header.pid, asyncID: e.u(0))
                    if s.live.removeValue(forKey: key) == nil && s.destroyedEarly.count < 65_536 { s.destroyedEarly.insert(key) }
                default:
                    break
                }
            }
        }
    }

    /// The chunks kept now (in arrival order) and the streams' identities: the chunks' storage is
    /// shared, not copied, so the ring can go on while a dump writes them.
    public func snapshot(nowNs: UInt64) -> FlightSnapshot {
        state.withLock { snapshot(&$0, nowNs: nowNs) }
    }

    private func snapshot(_ s: inout State, nowNs: UInt64) -> FlightSnapshot {
        evict(&s, nowNs: nowNs)
        var live: [FlightStreamKey: [FlightLiveResource]] = [:]
        for (k, r) in s.live { live[FlightStreamKey(pid: k.pid, tid: r.tid, kernel: false), default: []].append(r) }
        let chunks = Array(s.chunks[s.head...])
        var pins: FlightPins?
        if disk != nil {
            // The segments it reads stay until it has read them (released oldest first).
            var segments: [FlightSegment] = []
            for c in chunks where c.segment !== segments.last { segments.append(c.segment!) }
            for segment in segments { segment.pins += 1 }
            pins = FlightPins(ring: self, segments: segments)
        }
        return FlightSnapshot(chunks: chunks, identities: s.identities, live: live, pins: pins)
    }

    /// Thread name and program from a stream's first chunk (threadInfo, processInfo).
    static func identity(of chunk: FlightChunk) -> FlightStreamIdentity {
        var id = FlightStreamIdentity()
        guard let bytes = chunk.bytes else { return id }
        bytes.withUnsafeBytes { raw in
            var d = ChunkDecoder(header: chunk.header, payload: UnsafeRawBufferPointer(rebasing: raw[TraceFileFormat.chunkHeaderSize...]))
            var seen = 0
            while seen < 64, let r = d.next(), case .success(let e) = r {
                seen += 1
                if e.kind == .threadInfo && id.threadName == nil { id.threadName = e.text }
                if e.kind == .processInfo && id.program == nil {
                    id.program = e.text
                    id.parentPid = e.u(0)
                }
                if id.threadName != nil && id.program != nil { break }
            }
        }
        return id
    }
}

/// CRC32C of a chunk (its header with the CRC field zero, then the payload): the SSE4.2
/// instruction where the CPU has it, TraceFormat's table otherwise.
func flightChunkCRC(header: UnsafeRawPointer, payload: UnsafeRawPointer, count: Int) -> UInt32 {
    var h = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
    return withUnsafeMutableBytes(of: &h) { t in
        t.baseAddress!.copyMemory(from: header, byteCount: TraceFileFormat.chunkHeaderSize)
        t.storeBytes(of: UInt32(0), toByteOffset: 72, as: UInt32.self)
        var ok: Int32 = 0
        let c = trace_crc32c_hw(0, t.baseAddress!, TraceFileFormat.chunkHeaderSize, &ok)
        if ok != 0 { return trace_crc32c_hw(c, payload, count, &ok) }
        return ChunkHeader.computeCRC(header: t.baseAddress!, payload: UnsafeRawBufferPointer(start: payload, count: count))
    }
}
