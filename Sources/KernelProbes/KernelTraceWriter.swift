import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Writing the trace file failed.
public struct TraceWriteError: Error, CustomStringConvertible, Sendable {
    /// The write's errno.
    public let errno: Int32
    public var description: String { "cannot write the trace file: \(errorText(errno))" }
}

/// Writes kernel events into a trace file as the kernel stream (flags .kernel, tid 0, ticks == ns),
/// each chunk whole with one write() on an O_APPEND descriptor, so it interleaves safely with the
/// program's chunks. Events are held back `holdbackNs` so that late records still land in time order.
public struct KernelTraceWriter {
    /// The trace file (O_APPEND; not closed by the writer).
    public let fd: Int32
    /// The traced root process: the kernel stream's pid.
    public let rootPid: UInt32
    /// Events are held back this long before they are encoded, so that records committed late
    /// by another CPU still land in time order (chunk deltas are unsigned).
    public var holdbackNs: UInt64 = 20_000_000
    /// Most events in one chunk.
    public var maxEventsPerChunk = 16_384
    static let maxStackCopiesPerChunk = 256
    /// Events in chunks written.
    public private(set) var eventsWritten: UInt64 = 0
    /// Chunks written.
    public private(set) var chunksWritten: UInt64 = 0
    /// Events in chunks that could not be written (disk full, I/O error): counted, not retried, so
    /// memory stays bounded; the chunk's sequence number is used anyway, so readers see the gap.
    public private(set) var eventsLost: UInt64 = 0
    /// Chunks that could not be written.
    public private(set) var chunksLost: UInt64 = 0
    /// The first write error (0: none).
    public private(set) var firstWriteError: Int32 = 0
    private var pending: [KernelEvent] = []
    private var sequence: UInt64 = 0
    private var finished = false
    /// Stacks and mappings of cpuSample/mapping events (the session's `samples.tables`).
    public var sampleTables: SampleTables?
    private var wroteSampling = false
    /// Stack ids already defined in this stream (a bit per id).
    private var definedStacks: [UInt64] = []
    /// The caller chains of the stacks defined in this stream (the bases of their definitions).
    private var callers = CallerChains()
    /// Stacks defined on a base (the rest of those defined: with every frame their own).
    private(set) var stacksExtended: UInt64 = 0
    /// Per thread, its last stack copy in the chunk being written (the base of the next one's delta).
    private var lastCopy: [UInt32: (timeNs: UInt64, copy: StackCopy)] = [:]
    /// Stack copies written whole, and as deltas (stackCopyDelta).
    public private(set) var copiesWhole: UInt64 = 0
    /// Stack copies written as deltas (stackCopyDelta).
    public private(set) var copiesAsDelta: UInt64 = 0
    /// Flight recorder: sealed chunks go here instead of to `fd`, every chunk defines the stacks its
    /// samples use (any chunk may begin a dump), and what is alive is tracked for `stateChunk`.
    private var flightSink: (([UInt8]) -> Void)?
    private var flightState: KernelFlightState?

    /// `fd` must be open with O_APPEND; the writer does not close it.
    public init(fd: Int32, rootPid: UInt32) {
        self.fd = fd
        self.rootPid = rootPid
    }

    /// Events waiting to be written.
    public var pendingCount: Int { pending.count }

    /// Makes this a flight recorder's kernel stream: chunks go to `sink`; what ended more than
    /// `retentionNs` ago is forgotten.
    public mutating func recordForFlight(retentionNs: UInt64, sink: @escaping ([UInt8]) -> Void) {
        flightSink = sink
        flightState = KernelFlightState(retentionNs: retentionNs)
    }

    /// For a flight recorder's dump whose window starts at `atNs` after this stream's first chunk:
    /// a sealed chunk with sequence 0 that says again, at `atNs`, what a reader needs from before
    /// the window: sampling, every mapping seen, the names of threads alive then and the fds open then.
    public func stateChunk(atNs: UInt64) -> [UInt8] {
        var b = ChunkBuilder(pid: rootPid, tid: 0, startNs: atNs, startTicks: atNs, reserve: 4096)
        if let tables = sampleTables, tables.periodNs > 0 {
            b.beginEvent(.sampling, ticks: atNs)
            b.putUnsigned(tables.periodNs)
            b.putUnsigned(tables.kernelStacks ? 1 : 0)
        }
        for e in flightState?.events(atNs: atNs) ?? [] { Self.encode(e, into: &b) }
        if let tables = sampleTables {
            for m in tables.mappings {
                let path = b.intern(m.path, ticks: atNs)
                b.beginEvent(.mapping, ticks: atNs)
                b.putUnsigned(UInt64(m.pid))
                b.putUnsigned(m.start)
                b.putUnsigned(m.end)
                b.putUnsigned(m.fileOffset)
                b.putStringID(path)
                b.putList(m.buildID.lazy.map { UInt64($0) })
            }
        }
        return b.seal(sequence: 0, endNs: atNs, endTicks: atNs, droppedCumulative: 0, flags: .kernel)
    }

    /// A perf map's text goes into `perfMap` events of whole lines up to this many bytes each.
    static let perfMapPartBytes = 1 << 20
    /// And into chunks of up to about this many bytes of it (far below TraceFileFormat.maxPayloadBytes).
    static let perfMapChunkBytes = 8 << 20

    /// `text` (whole lines) in parts of whole lines of at most `perfMapPartBytes` (a longer line is a part of its own, cut).
    static func perfMapParts(_ text: [UInt8]) -> [ArraySlice<UInt8>] {
        var parts: [ArraySlice<UInt8>] = []
        var start = text.startIndex
        while start < text.endIndex {
            var end = min(start + perfMapPartBytes, text.endIndex)
            if end < text.endIndex, let nl = text[start..<end].lastIndex(of: UInt8(ascii: "\n")) { end = nl + 1 }
            parts.append(text[start..<end])
            start = end
        }
        return parts
    }

    private static func encodePerfMap(pid: UInt32, _ part: ArraySlice<UInt8>, atNs: UInt64, into b: inout ChunkBuilder) {
        let text = b.intern(String(decoding: part, as: UTF8.self), ticks: atNs)
        b.beginEvent(.perfMap, ticks: atNs)
        b.putUnsigned(UInt64(pid))
        b.putStringID(text)
    }

    /// The stream (chunk header tid, kernel) the perf maps' copies go in: its own, so that they can be timed at
    /// the recording's start and come before every sample a reader streaming by time names with them.
    package static let perfMapStreamTid: UInt32 = 1

    /// Writes copies of the traced processes' perf maps (whole lines) as `perfMap` events, timed `startNs` (the
    /// recording's start) in a stream of their own (`perfMapStreamTid`) whose last chunk is final. A flight
    /// recorder's dumps carry the maps in their state chunk instead: nothing is written then.
    package mutating func writePerfMaps(_ maps: [(pid: UInt32, text: [UInt8])], startNs: UInt64) {
        guard flightSink == nil, maps.contains(where: { !$0.text.isEmpty }) else { return }
        var chunks: [ChunkBuilder] = []
        var bytes = 0
        for (pid, text) in maps {
            for part in Self.perfMapParts(text) {
                if chunks.isEmpty || bytes + part.count > Self.perfMapChunkBytes {
                    chunks.append(
                        ChunkBuilder(
                            pid: rootPid, tid: Self.perfMapStreamTid, startNs: startNs, startTicks: startNs,
                            reserve: min(part.count + 4096, Self.perfMapChunkBytes)))
                    bytes = 0
                }
                Self.encodePerfMap(pid: pid, part, atNs: startNs, into: &chunks[chunks.count - 1])
                bytes += part.count
            }
        }
        for (i, b) in chunks.enumerated() {
            var flags: ChunkFlags = .kernel
            if i == chunks.count - 1 { flags.insert(.final) }
            emit(b.seal(sequence: UInt64(i), endNs: startNs, endTicks: startNs, droppedCumulative: 0, flags: flags), events: Int(b.eventCount))
        }
    }

    /// For a flight recorder's dump whose window starts at `atNs`: the perf-map stream (`writePerfMaps`) as one final
    /// chunk at `atNs`, with as much of `maps` as `perfMapChunkBytes` holds (nil: none). Also `cut`: maps left out in part.
    package func perfMapChunk(_ maps: [(pid: UInt32, text: [UInt8])], atNs: UInt64) -> (chunk: [UInt8], cut: Int)? {
        guard maps.contains(where: { !$0.text.isEmpty }) else { return nil }
        var b = ChunkBuilder(pid: rootPid, tid: Self.perfMapStreamTid, startNs: atNs, startTicks: atNs, reserve: 1 << 16)
        var bytes = 0, cut = 0
        for (pid, text) in maps {
            for part in Self.perfMapParts(text) {
                guard bytes + part.count <= Self.perfMapChunkBytes else {
                    cut += 1
                    break
                }
                bytes += part.count
                Self.encodePerfMap(pid: pid, part, atNs: atNs, into: &b)
            }
        }
        var flags: ChunkFlags = .kernel
        flags.insert(.final)
        return (b.seal(sequence: 0, endNs: atNs, endTicks: atNs, droppedCumulative: 0, flags: flags), cut)
    }

    /// Adds events to write (in any order; they are sorted by time when written).
    public mutating func add(_ events: [KernelEvent]) {
        pending.append(contentsOf: events)
    }

    /// Lets `body` append events straight into the pending buffer (no copy).
    public mutating func receive(_ body: (inout [KernelEvent]) -> Void) {
        body(&pending)
    }

    /// Encodes and appends the pending events older than `nowNs - holdbackNs` (all of them if
    /// `final`); `droppedCumulative` is the probes' drop count so far. The final flush ends the
    /// stream with a `.final` chunk (empty if nothing is left).
    public mutating func flush(nowNs: UInt64, droppedCumulative: UInt64, final: Bool = false) {
        guard !finished else { return }
        // Records of one CPU arrive in order; only interleavings across CPUs need sorting.
        if zip(pending, pending.dropFirst()).contains(where: { $0.timestampNs > $1.timestampNs }) {
            pending.sort { $0.timestampNs < $1.timestampNs }
        }
        var ready = pending.count
        if !final {
            let cutoff = nowNs > holdbackNs ? nowNs - holdbackNs : 0
            ready = pending.partitioningIndex { $0.timestampNs > cutoff }
        }
        var start = 0
        while start < ready {
            var end = min(start + maxEventsPerChunk, ready)
            // A stack copy can take up to ~32 KB: bound them per chunk so a chunk stays far below
            // TraceFileFormat.maxPayloadBytes.
            var copies = 0
            for i in start..<end where pending[i].stackCopy != 0 {
                copies += 1
                if copies > Self.maxStackCopiesPerChunk { end = i; break }
            }
            let isLast = final && end == ready
            writeChunk(pending[start..<end], droppedCumulative: droppedCumulative, final: isLast, at: isLast ? nowNs : 0)
            start = end
        }
        pending.removeFirst(ready)
        if final {
            if ready == 0 { writeChunk(pending[0..<0], droppedCumulative: droppedCumulative, final: true, at: nowNs) }
            finished = true
        }
    }

    private mutating func writeChunk(
        _ events: ArraySlice<KernelEvent>, droppedCumulative: UInt64, final: Bool,
        at emptyTime: UInt64 = 0
    ) {
        let start = events.first?.timestampNs ?? emptyTime
        // The final chunk ends when recording stopped, not at the last event: readers take the latest chunk
        // end as the recording's end (a process idle at the end has its last event long before).
        let end = max(events.last?.timestampNs ?? emptyTime, final ? emptyTime : 0)
        var b = ChunkBuilder(pid: rootPid, tid: 0, startNs: start, startTicks: start, reserve: events.count * 24 + 64)
        lastCopy.removeAll(keepingCapacity: true)  // a delta's base is in its own chunk: chunks decode on their own
        if flightSink != nil {
            definedStacks.removeAll(keepingCapacity: true)
            callers.removeAll()
            for e in events { flightState?.note(e) }
        }
        if !wroteSampling, let tables = sampleTables, tables.periodNs > 0 {
            b.beginEvent(.sampling, ticks: start)
            b.putUnsigned(tables.periodNs)
            b.putUnsigned(tables.kernelStacks ? 1 : 0)
            wroteSampling = true
        }
        for e in events {
            if e.kind == .cpuSample || e.kind == .mapping || e.kind == .waitStack { encodeSampleEvent(e, into: &b) } else { Self.encode(e, into: &b) }
        }
        var flags: ChunkFlags = .kernel
        if final { flags.insert(.final) }
        let bytes = b.seal(
            sequence: sequence, endNs: end, endTicks: end, droppedCumulative: droppedCumulative,
            flags: flags)
        sequence += 1
        emit(bytes, events: events.count)
    }

    /// A sealed chunk of `events` events to the flight recorder or the file; what cannot be written is counted.
    private mutating func emit(_ bytes: [UInt8], events: Int) {
        if let flightSink {
            flightSink(bytes)
            chunksWritten += 1
            eventsWritten += UInt64(events)
            return
        }
        do {
            try Self.appendWhole(bytes, to: fd)
        } catch {
            eventsLost += UInt64(events)
            chunksLost += 1
            if firstWriteError == 0 { firstWriteError = error.errno }
            return
        }
        chunksWritten += 1
        eventsWritten += UInt64(events)
    }

    /// Encodes one event by the spec table (EventKinds.swift).
    public static func encode(_ e: KernelEvent, into b: inout ChunkBuilder) {
        switch e.kind {
        case .syscall:
            b.beginEvent(.syscall, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.tid))
            b.putUnsigned(UInt64(e.nr))
            b.putSigned(Int64(e.fd))
            b.putUnsigned(e.size)
            b.putSigned(e.ret)
            b.putUnsigned(e.durationNs)
        case .epollWait:
            b.beginEvent(.epollWait, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.tid))
            b.putUnsigned(UInt64(e.nr))
            b.putSigned(Int64(e.fd))
            b.putUnsigned(e.size)
            b.putSigned(Int64(e.timeoutMs))
            b.putSigned(e.ret)
            b.putUnsigned(e.durationNs)
            b.putUnsigned(UInt64(e.epollDataCount))
            for i in 0..<Int(e.epollDataCount) { b.putUnsigned(e.epollDataStorage[i]) }
        case .processFork:
            b.beginEvent(.processFork, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.childPid))
        case .processExit:
            b.beginEvent(.processExit, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putSigned(Int64(e.exitCode))
        case .threadName, .wakerName:
            let name = b.intern(e.detail, ticks: e.timestampNs)
            b.beginEvent(e.kind == .threadName ? .threadName : .wakerName, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.tid))
            b.putStringID(name)
        case .processTitle:
            let title = b.intern(e.detail, ticks: e.timestampNs)
            b.beginEvent(.processTitle, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.parentPid))
            b.putStringID(title)
        case .threadExit:
            b.beginEvent(.threadExit, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.tid))
        case .offCPU:
            b.beginEvent(.offCPU, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.tid))
            b.putUnsigned(UInt64(e.offCPUState) | UInt64(e.offCPUSyscall) << 8)
            b.putUnsigned(e.blockedNs)
            b.putUnsigned(e.runqueueNs)
            b.putUnsigned(UInt64(e.wakerPid))
            b.putUnsigned(UInt64(e.wakerTid))
        case .fdOpen:
            let detail = b.intern(e.detail, ticks: e.timestampNs)
            b.beginEvent(.fdOpen, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.tid))
            b.putSigned(Int64(e.fd))
            b.putUnsigned(UInt64(e.fdKind))
            b.putSigned(Int64(e.sourceFd))
            b.putStringID(detail)
        case .loopPhase:
            b.beginEvent(.loopPhase, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.tid))
            b.putUnsigned(UInt64(e.loopPhase))
            b.putUnsigned(e.startsIteration ? 1 : 0)
        case .cpuSample, .mapping, .waitStack:
            break  // encodeSampleEvent: they need the sample tables
        }
    }

    /// A sample or wait stack, preceded by the stackDef of each of its stacks the stream has not defined yet; or a mapping.
    private mutating func encodeSampleEvent(_ e: KernelEvent, into b: inout ChunkBuilder) {
        guard let tables = sampleTables else { return }
        if e.kind == .mapping {
            guard Int(e.mappingIndex) < tables.mappings.count else { return }
            let m = tables.mappings[Int(e.mappingIndex)]
            let path = b.intern(m.path, ticks: e.timestampNs)
            b.beginEvent(.mapping, ticks: e.timestampNs)
            b.putUnsigned(UInt64(m.pid))
            b.putUnsigned(m.start)
            b.putUnsigned(m.end)
            b.putUnsigned(m.fileOffset)
            b.putStringID(path)
            b.putList(m.buildID.lazy.map { UInt64($0) })
            return
        }
        // A sample's new user stack goes into the sample itself (userSampleNewStack) when it has no kernel stack;
        // any other new stack is defined before the event (stackCompact).
        var newUserStack: CompactStack.Encoded?
        for id in [e.userStack, e.kernelStack] where id != 0 {
            let word = Int(id / 64), bit = UInt64(1) << (id % 64)
            if word >= definedStacks.count { definedStacks.append(contentsOf: repeatElement(0, count: word + 1 - definedStacks.count)) }
            guard definedStacks[word] & bit == 0 else { continue }
            definedStacks[word] |= bit
            let definition = compact(stack: id, tables)
            if definition.base != 0 { stacksExtended += 1 }
            callers.add(id, tables.stacks.frames(id))
            if id == e.userStack && e.kind == .cpuSample && e.kernelStack == 0 {
                newUserStack = definition
                continue
            }
            b.beginEvent(.stackCompact, ticks: e.timestampNs)
            b.putUnsigned(UInt64(id))
            b.putSigned(definition.base)
            b.putUnsigned(definition.shape)
            b.putList(definition.frames)
        }
        if e.stackCopy != 0, let copy = tables.stackCopies.removeValue(forKey: e.stackCopy) {
            // A thread sampled again in the same code leaves mostly the same words: write what changed.
            if let base = lastCopy[e.tid], base.timeNs <= e.timestampNs, let delta = copy.encodedDelta(from: base.copy),
                delta.count < copy.words.count * 2
            {
                b.beginEvent(.stackCopyDelta, ticks: e.timestampNs)
                b.putUnsigned(UInt64(e.pid))
                b.putUnsigned(UInt64(e.tid))
                b.putUnsigned(copy.ip)
                b.putUnsigned(copy.sp)
                b.putUnsigned(copy.bp)
                b.putUnsigned(UInt64(copy.bytes))
                b.putUnsigned(e.timestampNs - base.timeNs)
                b.putList(delta)
                copiesAsDelta += 1
            } else {
                b.beginEvent(.stackCopy, ticks: e.timestampNs)
                b.putUnsigned(UInt64(e.pid))
                b.putUnsigned(UInt64(e.tid))
                b.putUnsigned(copy.ip)
                b.putUnsigned(copy.sp)
                b.putUnsigned(copy.bp)
                b.putUnsigned(UInt64(copy.bytes))
                b.putList(copy.encodedWords)
                copiesWhole += 1
            }
            lastCopy[e.tid] = (e.timestampNs, copy)
        }
        if e.kind == .waitStack {
            b.beginEvent(.waitStack, ticks: e.timestampNs)
            b.putUnsigned(UInt64(e.pid))
            b.putUnsigned(UInt64(e.tid))
            b.putUnsigned(UInt64(e.userStack))
            b.putUnsigned(UInt64(e.waitCause))
            b.putUnsigned(e.waitCause == 0 ? UInt64(e.nr) : UInt64(e.offCPUState) | UInt64(e.offCPUSyscall) << 8)
            b.putSigned(Int64(e.fd))
            b.putUnsigned(e.durationNs)
            return
        }
        // pid, tid and stack as differences from the chunk's previous sample: one byte each while a thread keeps running.
        if e.kernelStack == 0 {
            b.beginEvent(newUserStack == nil ? .userSample : .userSampleNewStack, ticks: e.timestampNs)
            b.putPid(UInt64(e.pid))
            b.putTid(UInt64(e.tid))
            b.putStackID(UInt64(e.userStack))
            if let definition = newUserStack {
                b.putSigned(definition.base)
                b.putUnsigned(definition.shape)
                b.putList(definition.frames)
            }
        } else {
            b.beginEvent(.sample, ticks: e.timestampNs)
            b.putPid(UInt64(e.pid))
            b.putTid(UInt64(e.tid))
            b.putStackID(UInt64(e.userStack))
            b.putUnsigned(UInt64(e.kernelStack))
        }
    }

    /// Stack `id`'s definition in the fewest bytes: on one of the recent stacks that share the most callers
    /// with it (stacks of one program differ near the leaf and share their callers: a new stack then costs
    /// its new frames), or on none.
    private func compact(stack id: UInt32, _ tables: SampleTables) -> CompactStack.Encoded {
        let frames = tables.stacks.frames(id)
        let methods = tables.unwindMethods[id]
        // Without a base every method list can be said; a method code above 7 (none is) would lose the methods.
        var best =
            CompactStack.encode(id: id, frames: frames, methods: methods, baseID: 0, baseFrames: [], baseMethods: nil)
            ?? CompactStack.encode(id: id, frames: frames, methods: nil, baseID: 0, baseFrames: [], baseMethods: nil)!
        for base in callers.recentSharingTheMost(frames, stacks: tables.stacks) {
            if let e = CompactStack.encode(
                id: id, frames: frames, methods: methods, baseID: base, baseFrames: tables.stacks.frames(base),
                baseMethods: tables.unwindMethods[base]),
                e.size < best.size
            {
                best = e
            }
        }
        return best
    }

    /// One write() for the whole chunk; a short write (disk full) is completed, then reported.
    static func appendWhole(_ bytes: [UInt8], to fd: Int32) throws(TraceWriteError) {
        var err: Int32 = 0
        bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    err = errno
                    return
                }
                if n == 0 { err = EIO; return }
                off += n
            }
        }
        if err != 0 { throw TraceWriteError(errno: err) }
    }
}


/// The defined stacks by each of their caller chains (their outermost 1, 2, 3, ... frames), so that a
/// new stack finds the recent defined ones sharing the most outer frames with it.
struct CallerChains {
    /// The last few stacks defined with one caller chain, the most recent first (0: none).
    struct Recent {
        var ids: (UInt32, UInt32, UInt32, UInt32)
        init(_ id: UInt32) { ids = (id, 0, 0, 0) }
        mutating func push(_ id: UInt32) { ids = (id, ids.0, ids.1, ids.2) }
        var all: [UInt32] { [ids.0, ids.1, ids.2, ids.3].filter { $0 != 0 } }
    }
    /// Hash of a stack's outermost n frames (for every n) -> the recent defined stacks with those outermost frames.
    private var byChain: [UInt64: Recent] = [:]
    /// Chains kept at most (then chains of new stacks are no longer added; those added still serve and
    /// still learn their recent stacks).
    static let maxChains = 1 << 19

    /// The chain hash after adding the next inner frame to `h`.
    @inline(__always) static func next(_ h: UInt64, _ frame: UInt64) -> UInt64 {
        var x = (h ^ frame) &* 0x9E37_79B9_7F4A_7C15
        x ^= x >> 29
        return x
    }

    mutating func add(_ id: UInt32, _ frames: [UInt64]) {
        var h: UInt64 = 0
        for f in frames.reversed() {
            h = Self.next(h, f)
            if byChain[h] != nil {
                byChain[h]!.push(id)
            } else if byChain.count < Self.maxChains {
                byChain[h] = Recent(id)
            }
        }
    }

    mutating func removeAll() { byChain.removeAll(keepingCapacity: true) }

    /// The recent defined stacks sharing the most outermost frames with `frames`, the most recent first
    /// (empty: none shares any).
    func recentSharingTheMost(_ frames: [UInt64], stacks: StackTable) -> [UInt32] {
        var h: UInt64 = 0
        var best: [UInt32] = []
        for (n, f) in frames.reversed().enumerated() {
            h = Self.next(h, f)
            guard let recent = byChain[h] else { break }
            // A hash is only a hint: the frames decide.
            let sharing = recent.all.filter { id in
                let candidate = stacks.frames(id)
                return candidate.count > n && candidate.suffix(n + 1).elementsEqual(frames.suffix(n + 1))
            }
            guard !sharing.isEmpty else { break }
            best = sharing
        }
        return best
    }
}

extension Array {
    /// The first index whose element satisfies `belongs` (the array must be partitioned by it).
    func partitioningIndex(where belongs: (Element) -> Bool) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if belongs(self[mid]) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
