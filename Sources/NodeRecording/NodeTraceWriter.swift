// Node batches -> trace streams: one user stream per (pid, tid), written as chunks with
// TraceFormat's ChunkBuilder on the trace file's O_APPEND descriptor (one write per chunk, so they
// interleave safely with the kernel stream and other writers). Ticks are CLOCK_MONOTONIC ns.
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

public struct NodeRecordingStatistics: Sendable, Equatable {
    /// Node threads (main threads and workers of every process) that sent events.
    public var threads = 0
    public var processes = 0
    public var batches: UInt64 = 0
    public var events: UInt64 = 0
    /// Events the preloads dropped because the recorder fell behind (their cumulative counts, summed).
    public var droppedByNode: UInt64 = 0
    /// Batches missing from a thread's sequence (never seen: not explained by drops).
    public var missingBatches: UInt64 = 0
    /// Events of stopped workers that a thread above them could not write (the recorder was behind).
    public var lostAtWorkerStop: UInt64 = 0
    /// Batches taken from stopped workers by a thread above them (their unwritten events, recovered).
    public var takenBatches: UInt64 = 0
    /// Batches (or their prefixes) received a second time and skipped: a worker's batch a thread above it took
    /// while the worker wrote it too.
    public var repeatedBatches: UInt64 = 0
    /// Bytes that were not a valid batch (skipped).
    public var malformedBytes: UInt64 = 0
    /// Records the writer rejected (bad values; the rest of their batch is skipped).
    public var malformedRecords: UInt64 = 0
    /// Threads beyond `NodeTraceWriter.maxStreams` (their events are not recorded).
    public var refusedThreads = 0
    public var writeErrno: Int32 = 0
}

public struct NodeTraceWriter {
    public static let maxStreams = 4096
    /// A stream's chunk is sealed and written when its payload reaches this size.
    public var chunkBytes = 64 << 10
    public let fd: Int32
    public private(set) var statistics = NodeRecordingStatistics()

    private struct Stream {
        var pid: UInt32
        var tid: UInt32
        var builder: ChunkBuilder?
        var chunkSequence: UInt64 = 0
        var nextBatch: UInt64 = 0
        /// The slots of batch `nextBatch - 1` already processed (a batch may come twice, or its prefix first),
        /// and where its last record processed began if that was a plain `after` (else -1): the preload may
        /// turn that after into an after+destroy later, in place.
        var doneSlots = 0
        var lastAfterAt = -1
        /// The thread's nonce (0: none yet); another one means a new thread with this pid/tid.
        var nonce: UInt64 = 0
        /// Dropped: earlier threads with this pid/tid, this thread's header count, and losses a thread above it reported.
        var droppedBefore: UInt64 = 0
        var droppedByThread: UInt64 = 0
        var lost: UInt64 = 0
        var dropped: UInt64 { droppedBefore.addingSaturated(droppedByThread).addingSaturated(lost) }
        var lastNs: UInt64 = 0
        /// The thread's batch write whose after+destroy have not come (they go out with its next batch), if any.
        var openBatchWrite: UInt64?
        var clockOffsetNs: Double = 0
        var hasClock = false
        /// Type names by the preload's index (nil: not defined yet).
        var types: [String?] = []
        /// The open chunk's string id of each type index (-1: not interned in this chunk yet): an init
        /// then costs an array read, not a String hash.
        var typeStringIDs: [Int64] = []
    }

    private var streams: [UInt64: Stream] = [:]
    private var pids = Set<UInt32>()
    private var pending: [UInt8] = []
    /// Losses a batch reported for another thread (pid, tid, count), applied once the batch is done.
    private var lostReports: [(pid: UInt64, tid: UInt64, count: UInt64)] = []

    /// Flight recorder: sealed chunks go here instead of to `fd`.
    private let sink: (([UInt8]) -> Void)?

    /// `fd`: the trace file, open with O_APPEND; the writer does not close it.
    public init(fd: Int32) {
        self.fd = fd
        sink = nil
    }

    /// A flight recorder's Node streams: every sealed chunk is handed to `sink` (on the writer's thread).
    public init(sink: @escaping ([UInt8]) -> Void) {
        fd = -1
        self.sink = sink
    }

    /// Feeds bytes read from the FIFO (any split: a batch cut by a read completes with the next).
    /// Returns false when the recorder's stop message was read.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer, nowNs: UInt64) -> Bool {
        // Whole batches are decoded where they are read; only what a read cut off waits in `pending` (copied
        // there), not every byte read.
        var rest = bytes
        if !pending.isEmpty {
            // The cut batch first, completed with at most one batch's worth of the new bytes.
            let old = pending.count, add = min(bytes.count, NodeBatchProtocol.maxBatchBytes)
            var buffered = pending
            pending = []
            buffered.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<add]))
            let (used, keepGoing) = buffered.withUnsafeBytes { decode($0, nowNs: nowNs) }
            if !keepGoing || used < old {
                pending = Array(buffered[used...])
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[add...]))
                return keepGoing
            }
            rest = UnsafeRawBufferPointer(rebasing: bytes[(used - old)...])
        }
        let (used, keepGoing) = decode(rest, nowNs: nowNs)
        if used < rest.count { pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[used...])) }
        return keepGoing
    }

    /// Decodes the whole batches at the start of `p`: how many bytes were used, and false after the stop message.
    private mutating func decode(_ p: UnsafeRawBufferPointer, nowNs: UInt64) -> (used: Int, keepGoing: Bool) {
        var offset = 0
        while p.count - offset >= 8 {
            let first = p.loadUnaligned(fromByteOffset: offset, as: Double.self)
            if first == NodeBatchProtocol.stopMagic { return (offset + 8, false) }
            guard first == NodeBatchProtocol.magic else {
                statistics.malformedBytes += 8  // resynchronise on the next magic
                offset += 8
                continue
            }
            guard p.count - offset >= NodeBatchProtocol.headerSlots * 8 else { break }
            let used = p.loadUnaligned(fromByteOffset: offset + 40, as: Double.self)
            guard used >= Double(NodeBatchProtocol.headerSlots), used <= Double(NodeBatchProtocol.maxBatchBytes / 8),
                Double(Int(used)) == used
            else {
                statistics.malformedBytes += 8
                offset += 8
                continue
            }
            let length = Int(used) * 8
            guard p.count - offset >= length else { break }
            batch(UnsafeRawBufferPointer(rebasing: p[offset..<(offset + length)]), nowNs: nowNs)
            offset += length
            if !lostReports.isEmpty { applyLostReports() }
        }
        return (offset, true)
    }

    /// Writes every stream's pending events (chunks not yet full); `final` ends every stream with a final chunk.
    public mutating func flush(final: Bool = false) {
        for key in Array(streams.keys) {
            guard var s = streams[key] else { continue }
            // A batch write's after and destroy travel with the thread's next batch, which a thread killed or
            // still running when recording stops never sends. The batch arrived, so that write had returned and
            // its callback, which does nothing after it, ended: it is closed at the thread's last time rather
            // than left running (a blocking callback) and open at exit, the recorder's own resource.
            if final, let id = s.openBatchWrite {
                for k in [EventKind.after, .destroy] {
                    event(&s, k, ns: s.lastNs) { b, ticks in
                        b.beginEvent(k, ticks: ticks)
                        b.putAsyncID(id)
                    }
                }
                s.openBatchWrite = nil
            }
            if final || !(s.builder?.isEmpty ?? true) { seal(&s, final: final) }
            streams[key] = s
        }
    }

    // MARK: decoding

    /// A packed record's first slot, -(id × 8 + code): its kind (before, after, after+destroy, destroy, init) and id.
    @inline(__always) private static func packed(_ v: Double) -> (code: NodeBatchProtocol.Kind, id: UInt64)? {
        guard let u = integer(-v, min: 1) else { return nil }
        let code: NodeBatchProtocol.Kind
        switch u & 7 {
        case NodeBatchProtocol.packedBefore: code = .before
        case NodeBatchProtocol.packedAfter: code = .after
        case NodeBatchProtocol.packedAfterDestroy: code = .afterDestroy
        case NodeBatchProtocol.packedDestroy: code = .destroy
        case NodeBatchProtocol.packedInit: code = .initResource
        default: return nil
        }
        return (code, u >> 3)
    }

    @inline(__always) private static func integer(_ v: Double, min: Double = 0, max: Double = 9_007_199_254_740_992) -> UInt64? {
        // In range first (NaN fails it), so the conversion cannot trap; integral if it converts back exactly
        // (no libm rounding call per field).
        guard v >= min, v <= max else { return nil }
        let u = UInt64(v)
        return Double(u) == v ? u : nil
    }

    private mutating func batch(_ b: UnsafeRawBufferPointer, nowNs: UInt64) {
        let slots = b.count / 8
        @inline(__always) func slot(_ i: Int) -> Double { b.loadUnaligned(fromByteOffset: i * 8, as: Double.self) }
        guard let pid = Self.integer(slot(1), min: 1, max: 4_194_304), let tid = Self.integer(slot(2), min: 1, max: 4_194_304),
            let seq = Self.integer(slot(3)), let dropped = Self.integer(slot(4)), let mark = Self.integer(slot(7))
        else {
            statistics.malformedBytes += UInt64(b.count)
            return
        }
        // Taken out of the dictionary while its batch is decoded: a copy that shared the open chunk's
        // buffer with the dictionary's value would copy the whole chunk (up to 64 KB) at its first append.
        guard var s = takeStream(pid: pid, tid: tid) else { return }
        let key = pid << 32 | tid
        defer { streams[key] = s }
        let nonce = mark / 2
        if nonce != 0 && nonce != s.nonce {
            if s.nonce != 0 {
                // Another thread with this pid/tid (a reused id): its own sequence, types and clock.
                s.nextBatch = 0
                s.doneSlots = 0
                s.droppedBefore = s.droppedBefore.addingSaturated(s.droppedByThread)
                s.droppedByThread = 0
                s.types = []
                s.typeStringIDs = []
                s.hasClock = false
            }
            s.nonce = nonce
        }
        statistics.batches += 1
        if mark % 2 == 1 { statistics.takenBatches += 1 }
        var i = NodeBatchProtocol.headerSlots
        if seq + 1 < s.nextBatch {
            statistics.repeatedBatches += 1  // had it whole
            return
        } else if seq + 1 == s.nextBatch {
            // This batch again (taken by a thread above and written by the worker): only what is new in it.
            let at = s.lastAfterAt
            // (An after seen the first time: [after, time, id], or packed [-(id * 8 + after), time].)
            let packedAt = at >= 0 && at < slots && slot(at) < 0
            let afterDestroyID: UInt64? =
                at < 0 || at >= slots
                ? nil
                : packedAt
                    ? (at + 2 == s.doneSlots ? Self.packed(slot(at)).flatMap { $0.code == .afterDestroy ? $0.id : nil } : nil)
                    : (at + 3 == s.doneSlots && at + 2 < slots && slot(at) == Double(NodeBatchProtocol.Kind.afterDestroy.rawValue)
                        ? Self.integer(slot(at + 2)) : nil)
            if let id = afterDestroyID {
                // The after seen the first time became an after+destroy since: its destroy.
                event(&s, .destroy, ns: s.lastNs) { b, ticks in
                    b.beginEvent(.destroy, ticks: ticks)
                    b.putAsyncID(id)
                }
                s.lastAfterAt = -1
            }
            guard slots > s.doneSlots else {
                statistics.repeatedBatches += 1
                return
            }
            i = s.doneSlots
        } else if seq > s.nextBatch {
            statistics.missingBatches += seq - s.nextBatch
        }
        s.nextBatch = seq + 1
        s.doneSlots = slots
        if dropped > s.droppedByThread {
            statistics.droppedByNode += dropped - s.droppedByThread
            s.droppedByThread = dropped
        }

        // A string record's text: `n` code units from slot `at`, bounds-checked.
        func text(at: Int, count n: Double) -> String? {
            guard let n = Self.integer(n, max: Double(NodeBatchProtocol.maxStringUnits)), at + Int(n) <= slots else { return nil }
            var units: [UInt16] = []
            units.reserveCapacity(Int(n))
            for k in 0..<Int(n) {
                guard let u = Self.integer(slot(at + k), max: 65535) else { return nil }
                units.append(UInt16(u))
            }
            return String(decoding: units, as: UTF16.self)
        }
        while i < slots {
            let first = slot(i)
            let kind: NodeBatchProtocol.Kind
            // The fields in the plain records' order: a, c, then the init's type.
            let a: Double, c: Double, typeSlot: Double
            var consumed: Int
            if first < 0 {
                // A packed record: the async id is in the first slot.
                guard let p = Self.packed(first) else {
                    statistics.malformedRecords += 1
                    return
                }
                kind = p.code
                let fields = kind == .initResource ? 2 : kind == .destroy ? 0 : 1
                guard i + fields < slots else {
                    statistics.malformedRecords += 1
                    return
                }
                switch kind {
                case .initResource: (a, c, typeSlot) = (Double(p.id), slot(i + 1), slot(i + 2))
                case .destroy: (a, c, typeSlot) = (Double(p.id), 0, 0)
                default: (a, c, typeSlot) = (slot(i + 1), Double(p.id), 0)
                }
                consumed = 1 + fields
            } else {
                guard let k = Self.integer(first).flatMap({ NodeBatchProtocol.Kind(rawValue: Int($0)) }) else {
                    statistics.malformedRecords += 1
                    return
                }
                kind = k
                let fields: Int
                switch kind {
                case .initResource: fields = 3
                case .before, .after, .afterDestroy, .resourceFD, .clock, .string, .thread, .process, .uncaught, .site,
                    .socketAddresses:
                    fields = 2
                case .destroy, .promiseResolve, .end: fields = 1
                case .lost, .refState, .exitCalled, .threadPoolSize, .siteOverBudget: fields = 2
                }
                guard i + fields < slots else {
                    statistics.malformedRecords += 1
                    return
                }
                a = slot(i + 1)
                c = fields >= 2 ? slot(i + 2) : 0
                typeSlot = fields >= 3 ? slot(i + 3) : 0
                consumed = 1 + fields
            }
            s.lastAfterAt = kind == .after ? i : -1
            switch kind {
            case .initResource:
                guard let id = Self.integer(a), let trigger = Self.integer(c), let t = Self.integer(typeSlot, max: 65535),
                    Int(t) < s.types.count, let type = s.types[Int(t)]
                else { statistics.malformedRecords += 1; return }
                let typeIndex = Int(t)
                if typeIndex >= s.typeStringIDs.count {
                    s.typeStringIDs.append(contentsOf: repeatElement(-1, count: typeIndex + 1 - s.typeStringIDs.count))
                }
                let known = s.builder == nil ? -1 : s.typeStringIDs[typeIndex]
                var interned: UInt64 = 0
                event(&s, .initResource, ns: s.lastNs) { b, ticks in
                    let typeID = known >= 0 ? UInt64(known) : b.intern(type, ticks: ticks)
                    interned = typeID
                    b.beginEvent(.initResource, ticks: ticks)
                    b.putAsyncID(id)
                    b.putStringID(typeID)
                    b.putRelatedID(trigger)
                }
                // The event may have sealed the chunk (then the next one interns the type again).
                if s.builder != nil { s.typeStringIDs[typeIndex] = Int64(interned) }
            case .before, .after, .afterDestroy:
                // ms since the thread's time origin: at most ~285 years (so the ns below fit in a UInt64).
                guard s.hasClock, a >= 0, a <= 9e12, let id = Self.integer(c) else { statistics.malformedRecords += 1; return }
                let x = s.clockOffsetNs + a * 1e6
                let ns = x > 0 ? UInt64(x + 0.5) : 0
                let k: EventKind = kind == .before ? .before : .after
                event(&s, k, ns: ns) { b, ticks in
                    b.beginEvent(k, ticks: ticks)
                    b.putAsyncID(id)
                }
                if id & NodeBatchProtocol.batchWriteID == NodeBatchProtocol.batchWriteID {
                    s.openBatchWrite = kind == .before ? id : nil
                }
                if kind == .afterDestroy {
                    event(&s, .destroy, ns: s.lastNs) { b, ticks in
                        b.beginEvent(.destroy, ticks: ticks)
                        b.putAsyncID(id)
                    }
                }
            case .destroy, .promiseResolve:
                guard let id = Self.integer(a) else { statistics.malformedRecords += 1; return }
                if kind == .destroy && s.openBatchWrite == id { s.openBatchWrite = nil }
                let k: EventKind = kind == .destroy ? .destroy : .promiseResolve
                event(&s, k, ns: s.lastNs) { b, ticks in
                    b.beginEvent(k, ticks: ticks)
                    b.putAsyncID(id)
                }
            case .resourceFD:
                guard let id = Self.integer(a), let fd = Self.integer(c, max: 2_147_483_647) else {
                    statistics.malformedRecords += 1; return
                }
                event(&s, .resourceFD, ns: s.lastNs) { b, ticks in
                    b.beginEvent(.resourceFD, ticks: ticks)
                    b.putAsyncID(id)
                    b.putSigned(Int64(fd))
                }
            case .string, .thread, .process, .uncaught, .site, .socketAddresses:
                guard let t = text(at: i + 3, count: c) else { statistics.malformedRecords += 1; return }
                consumed += Int(c)  // validated by text(at:count:)
                switch kind {
                case .string:
                    guard let index = Self.integer(a, max: 65535) else { statistics.malformedRecords += 1; return }
                    if Int(index) >= s.types.count { s.types += repeatElement(nil, count: Int(index) + 1 - s.types.count) }
                    s.types[Int(index)] = t
                    if Int(index) < s.typeStringIDs.count { s.typeStringIDs[Int(index)] = -1 }
                case .thread:
                    event(&s, .threadInfo, ns: s.lastNs) { b, ticks in
                        let name = b.intern(t, ticks: ticks)
                        b.beginEvent(.threadInfo, ticks: ticks)
                        b.putStringID(name)
                    }
                case .process:
                    guard let ppid = Self.integer(a, max: 4_194_304) else { statistics.malformedRecords += 1; return }
                    event(&s, .processInfo, ns: s.lastNs) { b, ticks in
                        let program = b.intern(t, ticks: ticks)
                        b.beginEvent(.processInfo, ticks: ticks)
                        b.putUnsigned(ppid)
                        b.putStringID(program)
                    }
                case .site, .socketAddresses:
                    guard let id = Self.integer(a) else {
                        statistics.malformedRecords += 1
                        return
                    }
                    let prefix = kind == .site ? "created_at=" : "socket="
                    event(&s, .resourceAttribute, ns: s.lastNs) { b, ticks in
                        let attribute = b.intern(prefix + t, ticks: ticks)
                        b.beginEvent(.resourceAttribute, ticks: ticks)
                        b.putAsyncID(id)
                        b.putStringID(attribute)
                    }
                default:  // .uncaught
                    guard let id = Self.integer(a) else { statistics.malformedRecords += 1; return }
                    event(&s, .uncaughtError, ns: s.lastNs) { b, ticks in
                        let message = b.intern(t, ticks: ticks)
                        b.beginEvent(.uncaughtError, ticks: ticks)
                        b.putAsyncID(id)
                        b.putStringID(message)
                    }
                }
            case .clock:
                guard a.isFinite, abs(a) < 9.2e18, c.isFinite, c >= 0 else { statistics.malformedRecords += 1; return }
                s.clockOffsetNs = a
                s.hasClock = true
                s.lastNs = max(s.lastNs, UInt64(max(0, (a + c * 1e6).rounded())))
            case .refState, .exitCalled, .siteOverBudget:
                guard let id = Self.integer(a), let value = Self.integer(c, max: 1) else {
                    statistics.malformedRecords += 1
                    return
                }
                let attribute =
                    kind == .exitCalled
                    ? "process_exit=called" : kind == .siteOverBudget ? "created_at_missing=budget" : value == 1 ? "ref=1" : "ref=0"
                event(&s, .resourceAttribute, ns: s.lastNs) { b, ticks in
                    let text = b.intern(attribute, ticks: ticks)
                    b.beginEvent(.resourceAttribute, ticks: ticks)
                    b.putAsyncID(id)
                    b.putStringID(text)
                }
            case .threadPoolSize:
                guard let id = Self.integer(a), let threads = Self.integer(c, min: 1, max: 1024) else {
                    statistics.malformedRecords += 1
                    return
                }
                event(&s, .resourceAttribute, ns: s.lastNs) { b, ticks in
                    let text = b.intern("threadpool_size=\(threads)", ticks: ticks)
                    b.beginEvent(.resourceAttribute, ticks: ticks)
                    b.putAsyncID(id)
                    b.putStringID(text)
                }
            case .end:
                if let b = s.builder, !b.isEmpty { seal(&s, final: false) }
            case .lost:
                guard let thread = Self.integer(a, min: 1, max: 4_194_304), let count = Self.integer(c) else {
                    statistics.malformedRecords += 1
                    return
                }
                lostReports.append((UInt64(s.pid), thread, count))
            }
            i += consumed
        }
    }

    /// The stream of a thread, taken out of `streams` (the caller puts it back), made at its first batch
    /// (nil past `maxStreams`: refused and counted).
    private mutating func takeStream(pid: UInt64, tid: UInt64) -> Stream? {
        let key = pid << 32 | tid
        if let s = streams.removeValue(forKey: key) { return s }
        guard streams.count < Self.maxStreams else {
            statistics.refusedThreads += 1
            return nil
        }
        statistics.threads += 1
        if pids.insert(UInt32(pid)).inserted { statistics.processes += 1 }
        return Stream(pid: UInt32(pid), tid: UInt32(tid))
    }

    /// Losses reported by a thread above the lost one: counted on the lost thread's stream (made if it sent nothing),
    /// so its chunks' droppedCumulative, and the report, carry them.
    private mutating func applyLostReports() {
        for r in lostReports {
            statistics.lostAtWorkerStop = statistics.lostAtWorkerStop.addingSaturated(r.count)
            guard var s = takeStream(pid: r.pid, tid: r.tid) else { continue }
            s.lost = s.lost.addingSaturated(r.count)
            streams[r.pid << 32 | r.tid] = s
        }
        lostReports.removeAll()
    }

    /// Appends one event (`encode` writes it) to the stream's open chunk, opening one at `ns` if needed.
    private mutating func event(
        _ s: inout Stream, _ kind: EventKind, ns: UInt64,
        _ encode: (inout ChunkBuilder, UInt64) -> Void
    ) {
        let t = max(ns, s.lastNs)
        s.lastNs = t
        if s.builder == nil {
            s.builder = ChunkBuilder(pid: s.pid, tid: s.tid, startNs: t, startTicks: t, reserve: chunkBytes + 512)
        }
        encode(&s.builder!, t)
        statistics.events += 1
        if s.builder!.byteCount >= chunkBytes { seal(&s, final: false) }
    }

    private mutating func seal(_ s: inout Stream, final: Bool) {
        let b = s.builder ?? ChunkBuilder(pid: s.pid, tid: s.tid, startNs: s.lastNs, startTicks: s.lastNs, reserve: 0)
        let bytes = b.seal(
            sequence: s.chunkSequence, endNs: s.lastNs, endTicks: s.lastNs, droppedCumulative: s.dropped,
            flags: final ? [.final] : [])
        s.builder = nil
        for k in s.typeStringIDs.indices { s.typeStringIDs[k] = -1 }
        s.chunkSequence += 1
        if let sink {
            sink(bytes)
            return
        }
        guard statistics.writeErrno == 0 else { return }
        bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { statistics.writeErrno = n < 0 ? errno : EIO; return }
                off += n
            }
        }
    }
}
