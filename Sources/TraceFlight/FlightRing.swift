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

/// A sealed chunk (header and payload) as it was written.
public struct FlightChunk: Sendable {
    public let bytes: [UInt8]
    public let header: ChunkHeader
    public var key: FlightStreamKey { FlightStreamKey(header) }
    public init(bytes: [UInt8], header: ChunkHeader) {
        self.bytes = bytes
        self.header = header
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

    public init(limits: FlightLimits) { self.limits = limits }

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
            evict(&s, nowNs: nowNs, incoming: chunk.bytes.count)
            s.chunks.append(chunk)
            s.stats.chunksKept += 1
            s.stats.bytesKept += chunk.bytes.count
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
            guard s.stats.bytesKept + incoming > limits.keepBytes || c.header.endNs < cutoff else { break }
            s.stats.bytesKept -= c.bytes.count
            s.stats.chunksKept -= 1
            s.stats.chunksEvicted += 1
            s.stats.bytesEvicted += UInt64(c.bytes.count)
            s.head += 1
            if !c.header.isKernel { Self.fold(c, into: &s) }
        }
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
            return st
        }
    }

    /// A chunk leaving the window: its inits and destroys update what is alive before the window.
    static func fold(_ chunk: FlightChunk, into s: inout State) {
        chunk.bytes.withUnsafeBytes { raw in
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
        return FlightSnapshot(chunks: Array(s.chunks[s.head...]), identities: s.identities, live: live)
    }

    /// Thread name and program from a stream's first chunk (threadInfo, processInfo).
    static func identity(of chunk: FlightChunk) -> FlightStreamIdentity {
        var id = FlightStreamIdentity()
        chunk.bytes.withUnsafeBytes { raw in
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
