// Perfetto's native protobuf trace (TracePacket stream), written by hand.
// Layout: sequence 1 holds the track descriptors (process, threads, counters); each thread then has its
// own packet sequence whose first packet clears the incremental state and sets defaults (the thread's
// track, a sequence-scoped incremental clock), so every later packet carries only a timestamp delta,
// the sequence id and a TrackEvent with interned names — a dozen bytes for a slice end.
// Events are encoded straight into the output buffer (one reserve per packet, no intermediate buffers).
// Size: the ready fds a kernel epoll wait returned start their flows on the epoll_wait slice itself
// (no instant per fd), and flow ids are recycled once their flow ended, so they stay one-byte varints.

import TraceReader

/// Field numbers of perfetto/trace/trace_packet.proto and friends (the subset we write).
private enum F {
    static let tracePacket: UInt32 = 1  // Trace.packet
    // TracePacket
    static let timestamp: UInt32 = 8
    static let clockSnapshot: UInt32 = 6
    static let sequenceID: UInt32 = 10
    static let trackEvent: UInt32 = 11
    static let internedData: UInt32 = 12
    static let sequenceFlags: UInt32 = 13
    static let defaults: UInt32 = 59
    static let timestampClockID: UInt32 = 58
    static let trackDescriptor: UInt32 = 60
    static let firstPacketOnSequence: UInt32 = 87
    // TrackEvent
    static let debugAnnotations: UInt32 = 4
    static let type: UInt32 = 9
    static let nameIID: UInt32 = 10
    static let trackUUID: UInt32 = 11
    static let counterValue: UInt32 = 30
    // The varint forms (flow_ids_old, terminating_flow_ids_old): trace_processor reads both, and
    // small ids cost 3 bytes here against 9 for the fixed64 fields 47/48.
    static let flowIDs: UInt32 = 36
    static let terminatingFlowIDs: UInt32 = 42
    // InternedData
    static let eventNames: UInt32 = 2
    static let annotationNames: UInt32 = 3
    static let annotationStrings: UInt32 = 29
}

/// Writes the timeline as Perfetto's native protobuf trace (ui.perfetto.dev): track descriptors, then
/// one packet sequence per thread with interned names and delta timestamps, flows between slices.
public final class PerfettoExporter: TimelineSink {
    static let incrementalClock: UInt64 = 64
    static let monotonic: UInt64 = 3
    static let descriptorSequence: UInt64 = 1

    /// Debug annotation names, interned with these iids on every sequence.
    enum Annotation: UInt64, CaseIterable {
        case asyncID = 1, trigger, fd, ret, timeoutMs, wakerTid
        var name: String {
            switch self {
            case .wakerTid: "waker_tid"
            case .asyncID: "async_id"
            case .trigger: "trigger_async_id"
            case .fd: "fd"
            case .ret: "ret"
            case .timeoutMs: "timeout_ms"
            }
        }
    }

    struct Sequence {
        var started = false
        var lastTs: UInt64 = 0
        var names = Bitset()
    }

    struct Bitset {
        var words: [UInt64] = []
        @inline(__always) func contains(_ i: Int) -> Bool {
            let w = i >> 6
            return w < words.count && words[w] & (UInt64(1) << UInt64(i & 63)) != 0
        }

        @inline(__always) mutating func insert(_ i: Int) -> Bool {
            let w = i >> 6
            if w >= words.count { words.append(contentsOf: repeatElement(0, count: w - words.count + 1)) }
            let bit = UInt64(1) << UInt64(i & 63)
            if words[w] & bit != 0 { return false }
            words[w] |= bit
            return true
        }
    }

    let out: OutputFile
    /// The TrackEvent being encoded (bounded: a few varint fields, ≤ 4 annotations, ≤ maxFlowsPerEvent flows).
    private let event: UnsafeMutablePointer<UInt8>
    static let eventCapacity = 512
    static let maxFlowsPerEvent = 16
    // Touched per event: no dynamic exclusivity checks.
    @exclusivity(unchecked) private var interned = ProtoBuffer()
    @exclusivity(unchecked) private var packet = ProtoBuffer()
    @exclusivity(unchecked) private var scratch = ProtoBuffer(capacity: 256)
    @exclusivity(unchecked) private var sequences: [Sequence] = []
    /// Processes whose track descriptor was written, and the title it had ("": none).
    @exclusivity(unchecked) private var describedProcesses: [UInt32: String] = [:]
    @exclusivity(unchecked) private var describedCounters: Set<UInt32> = []
    /// Per name id: 1 if it names an epoll wait syscall, 0 if not, -1 not yet known.
    @exclusivity(unchecked) private var epollName: [Int8] = []
    /// A kernel epoll wait's begin, held back until the ready instants that follow it are folded in.
    @exclusivity(unchecked) private var pending: TimelineOp?
    @exclusivity(unchecked) private var pendingFlows: [UInt64] = []
    /// Timeline flow id -> the id written (recycled after the flow ended; see `flowStarted`).
    @exclusivity(unchecked) private var flowIDs = IDTable<UInt64>()
    @exclusivity(unchecked) private var freeFlowIDs: [(id: UInt64, freedAt: UInt64)] = []
    @exclusivity(unchecked) private var freeHead = 0
    @exclusivity(unchecked) private var nextFlowID: UInt64 = 1
    /// TracePackets written so far.
    @exclusivity(unchecked) public private(set) var packets: UInt64 = 0
    /// Live resources whose trigger was annotated already (forgotten when they are destroyed).
    @exclusivity(unchecked) private var triggerWritten = IDTable<Void>()

    /// An exporter writing to `output`.
    public init(output: OutputFile) {
        self.out = output
        event = .allocate(capacity: Self.eventCapacity)
    }

    deinit { event.deallocate() }

    static func processUUID(_ pid: UInt32) -> UInt64 { 1 << 62 | UInt64(pid) }
    /// Small, so the uuid each counter value carries is a short varint (thread uuids are all ≥ 2^32).
    static func counterUUID(_ pid: UInt32) -> UInt64 { UInt64(pid) + 1 }
    static func threadUUID(_ pid: UInt32, _ tid: UInt32) -> UInt64 { UInt64(pid) << 32 | UInt64(tid) }

    /// CPU samples as PerfSample packets (created at the first code event).
    @exclusivity(unchecked) private var samples: PerfettoSamples?
    /// Samples written.
    public var samplesWritten: Int { samples?.written ?? 0 }

    public func code(_ event: EventView, thread: Int, strings: TraceEventIterator, timeline: Timeline) {
        if samples == nil { samples = PerfettoSamples() }
        if samples!.write(event, strings: strings, into: &packet) { writePacket() }
    }

    // MARK: - packets

    private func writePacket() {
        var w = out.reserve(11 + packet.count)
        w.put(0x0A)  // Trace.packet
        w.varint(UInt64(packet.count))
        w.put(UnsafeRawBufferPointer(start: packet.base, count: packet.count))
        out.commit(w)
        packets &+= 1
    }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        sequences.append(Sequence())
        if describedProcesses[process.pid] == nil { describe(process) }
        var d = ProtoBuffer(capacity: 256)
        d.varint(1, Self.threadUUID(thread.pid, thread.tid))
        d.varint(5, Self.processUUID(thread.pid))
        scratch.reset()
        scratch.int(1, Int64(thread.pid))
        scratch.int(2, Int64(thread.tid))
        scratch.string(
            5,
            thread.name.map { $0.isEmpty ? "thread \(thread.tid)" : $0 }
                ?? (thread.hasUserStream ? "thread \(thread.tid)" : "thread \(thread.tid) (kernel only)"))
        d.message(4, scratch)
        descriptorPacket(d)
    }

    /// The process's track descriptor: its title as its name where it has one ("postgres: checkpointer"), else
    /// its program's file name; the command line.
    private func describe(_ process: TimelineProcess) {
        describedProcesses[process.pid] = process.title ?? ""
        var d = ProtoBuffer(capacity: 256)
        d.varint(1, Self.processUUID(process.pid))
        scratch.reset()
        scratch.int(1, Int64(process.pid))
        if let title = process.title {
            scratch.string(6, title)
            if !process.program.isEmpty { scratch.string(2, process.program) }
        } else if !process.program.isEmpty {
            scratch.string(6, processName(process.program))
            scratch.string(2, process.program)
        }
        d.message(3, scratch)
        descriptorPacket(d)
    }

    /// A process that took its title after it appeared (a forked child sets it right after the fork) is
    /// described again with it: the later descriptor names the track.
    public func finished(timeline: Timeline) {
        for process in timeline.processes {
            guard let written = describedProcesses[process.pid], let title = process.title, title != written else { continue }
            describe(process)
        }
    }

    private func processName(_ program: String) -> String {
        let first = program.split(separator: " ", maxSplits: 1).first.map(String.init) ?? program
        return first.split(separator: "/").last.map(String.init) ?? first
    }

    private func descriptorPacket(_ d: borrowing ProtoBuffer) {
        packet.reset()
        packet.varint(F.sequenceID, Self.descriptorSequence)
        packet.message(F.trackDescriptor, d)
        writePacket()
    }

    /// The first two packets of a thread's sequence: state cleared + defaults + annotation names, then the
    /// clock snapshot that anchors the incremental clock at `ts` (on CLOCK_MONOTONIC, the trace clock).
    private func startSequence(_ t: Int, thread: TimelineThread, at ts: UInt64) {
        let seq = UInt64(t + 2)
        packet.reset()
        packet.varint(F.sequenceID, seq)
        packet.varint(F.sequenceFlags, 1)  // SEQ_INCREMENTAL_STATE_CLEARED
        packet.bool(F.firstPacketOnSequence, true)
        var defaults = ProtoBuffer(capacity: 64)
        defaults.varint(F.timestampClockID, Self.incrementalClock)
        scratch.reset()
        scratch.varint(11, Self.threadUUID(thread.pid, thread.tid))  // TrackEventDefaults.track_uuid
        defaults.message(11, scratch)
        packet.message(F.defaults, defaults)
        interned.reset()
        for a in Annotation.allCases {
            scratch.reset()
            scratch.varint(1, a.rawValue)
            scratch.string(2, a.name)
            interned.message(F.annotationNames, scratch)
        }
        packet.message(F.internedData, interned)
        writePacket()

        packet.reset()
        packet.varint(F.timestamp, ts)
        packet.varint(F.timestampClockID, Self.monotonic)
        packet.varint(F.sequenceID, seq)
        var snapshot = ProtoBuffer(capacity: 64)
        scratch.reset()
        scratch.varint(1, Self.monotonic)
        scratch.varint(2, ts)
        snapshot.message(1, scratch)
        scratch.reset()
        scratch.varint(1, Self.incrementalClock)
        scratch.varint(2, ts)
        scratch.bool(3, true)
        snapshot.message(1, scratch)
        snapshot.varint(2, Self.monotonic)  // primary_trace_clock
        packet.message(F.clockSnapshot, snapshot)
        writePacket()
        sequences[t].started = true
        sequences[t].lastTs = ts
    }

    @inline(__always)
    private func resourceKey(_ t: Int, _ asyncID: UInt64, _ timeline: Timeline) -> UInt64 {
        UInt64(timeline.threads[t].pid) << 44 ^ asyncID
    }

    public func resource(_ change: ResourceChange, timeline: Timeline) {
        if change.kind == .destroyed { triggerWritten.remove(UInt64(change.pid) << 44 ^ change.asyncID) }
    }

    // MARK: - spans

    /// Spans go on a sequence of their own (their events arrive in time order, but not in each thread's
    /// own order with its syscalls), each on a track of its own under its process: they need not nest.
    static let spanSequence: UInt64 = 0x3FFF_FFFF
    @exclusivity(unchecked) private var spanSequenceStarted = false
    @exclusivity(unchecked) private var spanLastTs: UInt64 = 0
    @exclusivity(unchecked) private var spanNames = Bitset()
    @exclusivity(unchecked) private var spanAnnotationNames: [String: UInt64] = [:]
    @exclusivity(unchecked) private var spanStrings: [String: UInt64] = [:]
    @exclusivity(unchecked) private var openSpanAttributes: [UInt64: [(String, String)]] = [:]

    static func spanTrackUUID(_ pid: UInt32, _ spanID: UInt64) -> UInt64 {
        1 << 61 | (UInt64(pid) & 0xF_FFFF) << 40 | spanID & 0xFF_FFFF_FFFF
    }

    public func span(_ change: SpanChange, timeline: Timeline) {
        let track = Self.spanTrackUUID(change.pid, change.spanID)
        switch change.kind {
        case .attribute:
            guard openSpanAttributes[track] != nil, openSpanAttributes[track]!.count < 64 else { return }
            let parts = change.text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            openSpanAttributes[track]!.append((String(parts[0]), parts.count > 1 ? String(parts[1]) : ""))
            return
        case .begin:
            guard openSpanAttributes[track] == nil else { return }
            openSpanAttributes[track] = [("execution_async_id", String(change.executionAsyncID))]
            var d = ProtoBuffer(capacity: 128)
            d.varint(1, track)
            d.varint(5, Self.processUUID(change.pid))
            d.string(2, change.text.isEmpty ? "span" : change.text)
            descriptorPacket(d)
        case .end:
            guard openSpanAttributes[track] != nil else { return }
        }
        let ts = max(change.timestampNs, spanLastTs)
        if !spanSequenceStarted { startSpanSequence(at: ts) }
        interned.reset()
        var w = ByteWriter(event)
        w.put(0x48)  // type
        w.put(change.kind == .begin ? 1 : 2)
        w.put(0x58)  // track_uuid
        w.varint(track)
        if change.kind == .begin {
            let id = timeline.names.id(change.text.isEmpty ? "span" : change.text)
            if spanNames.insert(id) {
                scratch.reset()
                scratch.varint(1, UInt64(id + 1))
                scratch.string(2, timeline.names[id])
                interned.message(F.eventNames, scratch)
            }
            w.put(0x50)  // name_iid
            w.varint(UInt64(id + 1))
            // The attributes (ids, parent, the tracer's) arrive after the begin: written on the begin of the
            // next packet is not possible, so the begin carries the execution context and the end the rest.
            spanAnnotations(openSpanAttributes[track]!.prefix(1), &w)
        } else {
            spanAnnotations(openSpanAttributes.removeValue(forKey: track)!.dropFirst().prefix(16), &w)
        }
        let eventLength = w.p - event
        let delta = ts &- spanLastTs
        spanLastTs = ts
        let internedLength = interned.count
        var length = 1 + varintLength(delta) + 1 + varintLength(Self.spanSequence) + 1 + varintLength(UInt64(eventLength)) + eventLength
        if internedLength > 0 { length += 1 + varintLength(UInt64(internedLength)) + internedLength }
        var o = out.reserve(length + 11)
        o.put(0x0A)
        o.varint(UInt64(length))
        o.put(0x40)
        o.varint(delta)
        o.put(0x50)
        o.varint(Self.spanSequence)
        if internedLength > 0 {
            o.put(0x62)
            o.varint(UInt64(internedLength))
            o.put(UnsafeRawBufferPointer(start: interned.base, count: internedLength))
        }
        o.put(0x5A)
        o.varint(UInt64(eventLength))
        o.put(UnsafeRawBufferPointer(start: event, count: eventLength))
        out.commit(o)
        packets &+= 1
    }

    /// Debug annotations {name_iid, string_value_iid}, interned on the span sequence (bounded: 256 names,
    /// 4096 strings; past that the rest are left out). Written only while the event stays within its buffer.
    private func spanAnnotations<C: Collection>(_ list: C, _ w: inout ByteWriter) where C.Element == (String, String) {
        for (key, value) in list {
            guard let k = internSpan(key, in: &spanAnnotationNames, limit: 256, field: F.annotationNames),
                let v = internSpan(String(value.prefix(256)), in: &spanStrings, limit: 4096, field: F.annotationStrings)
            else { continue }
            let inner = 1 + varintLength(k) + 2 + varintLength(v)
            guard (w.p - event) + inner + 12 < Self.eventCapacity else { return }
            w.put(0x22)  // debug_annotations
            w.varint(UInt64(inner))
            w.put(0x08)  // name_iid
            w.varint(k)
            w.put(0x88); w.put(0x01)  // string_value_iid (17)
            w.varint(v)
        }
    }

    private func internSpan(_ s: String, in table: inout [String: UInt64], limit: Int, field: UInt32) -> UInt64? {
        if let id = table[s] { return id }
        guard table.count < limit else { return nil }
        // Annotation name iids 1...5 are the thread sequences' names; the span sequence has its own table.
        let id = UInt64(table.count + 1)
        table[s] = id
        scratch.reset()
        scratch.varint(1, id)
        scratch.string(2, s)  // InternedString.str and DebugAnnotationName.name: both length-delimited field 2
        interned.message(field, scratch)
        return id
    }

    private func startSpanSequence(at ts: UInt64) {
        packet.reset()
        packet.varint(F.sequenceID, Self.spanSequence)
        packet.varint(F.sequenceFlags, 1)  // SEQ_INCREMENTAL_STATE_CLEARED
        packet.bool(F.firstPacketOnSequence, true)
        var defaults = ProtoBuffer(capacity: 32)
        defaults.varint(F.timestampClockID, Self.incrementalClock + 1)
        packet.message(F.defaults, defaults)
        writePacket()
        packet.reset()
        packet.varint(F.timestamp, ts)
        packet.varint(F.timestampClockID, Self.monotonic)
        packet.varint(F.sequenceID, Self.spanSequence)
        var snapshot = ProtoBuffer(capacity: 64)
        scratch.reset()
        scratch.varint(1, Self.monotonic)
        scratch.varint(2, ts)
        snapshot.message(1, scratch)
        scratch.reset()
        scratch.varint(1, Self.incrementalClock + 1)
        scratch.varint(2, ts)
        scratch.bool(3, true)
        snapshot.message(1, scratch)
        snapshot.varint(2, Self.monotonic)
        packet.message(F.clockSnapshot, snapshot)
        writePacket()
        spanSequenceStarted = true
        spanLastTs = ts
    }

    // MARK: - flows

    /// The id a new flow is written with: a recycled one when trace_processor has surely closed it (its flow
    /// ended before `ts`: packets are sorted by time before import), else a fresh one.
    private func flowStarted(_ flow: UInt64, at ts: UInt64) -> UInt64 {
        let id: UInt64
        if freeHead < freeFlowIDs.count && freeFlowIDs[freeHead].freedAt < ts {
            id = freeFlowIDs[freeHead].id
            freeHead += 1
            if freeHead == freeFlowIDs.count {
                freeFlowIDs.removeAll(keepingCapacity: true)
                freeHead = 0
            }
        } else {
            id = nextFlowID
            nextFlowID &+= 1
        }
        flowIDs.insert(flow, id)
        return id
    }

    /// The id a flow was written with; it becomes free for flows starting after `ts`.
    private func flowEnded(_ flow: UInt64, at ts: UInt64) -> UInt64? {
        guard let id = flowIDs.remove(flow) else { return nil }
        if freeHead > 4096 && freeHead * 2 > freeFlowIDs.count {
            freeFlowIDs.removeFirst(freeHead)
            freeHead = 0
        }
        freeFlowIDs.append((id, ts))
        return id
    }

    // MARK: - events

    @inline(__always)
    private func isEpollWait(_ name: Int, _ timeline: Timeline) -> Bool {
        if name < epollName.count && epollName[name] >= 0 { return epollName[name] == 1 }
        if name >= epollName.count { epollName.append(contentsOf: repeatElement(-1, count: name - epollName.count + 1)) }
        let yes = timeline.isEpollWait(name)
        epollName[name] = yes ? 1 : 0
        return yes
    }

    @inline(__always)
    private func name(_ id: Int, thread t: Int, timeline: Timeline, _ w: inout ByteWriter) {
        // A read first: the insert (a mutation of nested arrays) only for a name new on this sequence.
        if !sequences[t].names.contains(id) && sequences[t].names.insert(id) {
            scratch.reset()
            scratch.varint(1, UInt64(id + 1))
            scratch.string(2, timeline.names[id])
            interned.message(F.eventNames, scratch)
        }
        w.put(0x50)  // name_iid
        w.varint(UInt64(id + 1))
    }

    /// A DebugAnnotation {name_iid, int_value} (iids are < 128: one byte).
    @inline(__always)
    private func annotate(_ a: Annotation, _ v: Int64, _ w: inout ByteWriter) {
        let value = UInt64(bitPattern: v)
        w.put(0x22)  // debug_annotations
        w.varint(UInt64(3 + varintLength(value)))
        w.put(0x08)
        w.put(UInt8(truncatingIfNeeded: a.rawValue))
        w.put(0x20)
        w.varint(value)
    }

    @inline(__always)
    private func terminate(_ flow: UInt64, at ts: UInt64, _ w: inout ByteWriter) {
        guard let id = flowEnded(flow, at: ts) else { return }
        w.put(0xD0); w.put(0x02)  // terminating_flow_ids_old (42)
        w.varint(id)
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        if let p = pending {
            // The ready fds of the epoll wait just begun: their flows start on the wait's slice.
            if op.kind == .instant && op.slice == .ready && op.thread == p.thread && op.flowOut != 0
                && pendingFlows.count < Self.maxFlowsPerEvent
            {
                pendingFlows.append(op.flowOut)
                return
            }
            pending = nil
            write(p, timeline: timeline)
            pendingFlows.removeAll(keepingCapacity: true)
        }
        if op.kind == .begin && op.slice == .syscall && isEpollWait(op.name, timeline) {
            pending = op
            return
        }
        write(op, timeline: timeline)
    }

    private func write(_ op: TimelineOp, timeline: Timeline) {
        let t = op.thread
        if !sequences[t].started { startSequence(t, thread: timeline.threads[t], at: op.timestampNs) }
        interned.reset()
        var w = ByteWriter(event)
        switch op.kind {
        case .begin:
            w.put(0x48)  // type
            w.put(1)  // TYPE_SLICE_BEGIN
            name(op.name, thread: t, timeline: timeline, &w)
            switch op.slice {
            case .callback:
                // The slice's name is the resource type; a "type" annotation would repeat it in every callback.
                annotate(.asyncID, Int64(bitPattern: op.asyncID), &w)
                // The trigger belongs to the resource: written on its first callback only.
                let key = resourceKey(t, op.asyncID, timeline)
                if triggerWritten[key] == nil {
                    triggerWritten.insert(key, ())
                    annotate(.trigger, Int64(bitPattern: op.triggerID), &w)
                }
                if op.flowIn != 0 { terminate(op.flowIn, at: op.timestampNs, &w) }
                if op.flowIn2 != 0 { terminate(op.flowIn2, at: op.timestampNs, &w) }
            case .syscall:
                // epoll waits: the flows say what came back; fd (the epoll fd) and count add little.
                if isEpollWait(op.name, timeline) {
                    for f in pendingFlows {
                        w.put(0xA0); w.put(0x02)  // flow_ids_old (36)
                        w.varint(flowStarted(f, at: op.timestampNs))
                    }
                } else {
                    if op.fd >= 0 { annotate(.fd, op.fd, &w) }
                    annotate(.ret, op.ret, &w)
                }
            case .poll:
                // int64 annotations cost 10 bytes when negative: -1 (no timeout) is left out.
                if op.ret >= 0 { annotate(.timeoutMs, op.ret, &w) }
            case .offCPU:
                // Blocked/runnable state slices ("blocked in read", "runnable (preempted)") and who woke the thread.
                if op.fd > 0 { annotate(.wakerTid, op.fd, &w) }
            default:
                break
            }
        case .end:
            w.put(0x48)
            w.put(2)  // TYPE_SLICE_END
        case .instant:
            w.put(0x48)
            w.put(3)  // TYPE_INSTANT
            name(op.name, thread: t, timeline: timeline, &w)
            // An init's flow leads to the new resource's first callback, which carries its async id and trigger;
            // ready instants (user-only traces): the name says the fd, the flow leads to the callback.
            if op.slice == .initResource && op.flowOut == 0 {
                annotate(.asyncID, Int64(bitPattern: op.asyncID), &w)
            }
            if op.flowOut != 0 {
                w.put(0xA0); w.put(0x02)  // flow_ids_old (36)
                w.varint(flowStarted(op.flowOut, at: op.timestampNs))
            }
        case .counter:
            let pid = timeline.threads[t].pid
            if describedCounters.insert(pid).inserted {
                // Described on first use, so processes without resources (kernel-only) get no empty counter track.
                var d = ProtoBuffer(capacity: 64)
                d.varint(1, Self.counterUUID(pid))
                d.varint(5, Self.processUUID(pid))
                d.string(2, timeline.names[op.name])
                scratch.reset()
                d.message(8, scratch)  // CounterDescriptor (defaults: a plain counter)
                descriptorPacket(d)
            }
            w.put(0x48)
            w.put(4)  // TYPE_COUNTER
            w.put(0x58)  // track_uuid
            w.varint(Self.counterUUID(pid))
            w.put(0xF0); w.put(0x01)  // counter_value (30)
            w.varint(UInt64(bitPattern: op.counterValue))
        }
        let eventLength = w.p - event
        // The packet goes straight to the output: its length is the sum of its fields'.
        let delta = op.timestampNs &- sequences[t].lastTs
        sequences[t].lastTs = op.timestampNs
        let seq = UInt64(t + 2)
        let internedLength = interned.count
        var length = 1 + varintLength(delta) + 1 + varintLength(seq) + 1 + varintLength(UInt64(eventLength)) + eventLength
        if internedLength > 0 { length += 1 + varintLength(UInt64(internedLength)) + internedLength }
        var o = out.reserve(length + 11)
        o.put(0x0A)  // Trace.packet
        o.varint(UInt64(length))
        o.put(0x40)  // timestamp
        o.varint(delta)
        o.put(0x50)  // trusted_packet_sequence_id
        o.varint(seq)
        if internedLength > 0 {
            o.put(0x62)  // interned_data
            o.varint(UInt64(internedLength))
            o.put(UnsafeRawBufferPointer(start: interned.base, count: internedLength))
        }
        o.put(0x5A)  // track_event
        o.varint(UInt64(eventLength))
        o.put(UnsafeRawBufferPointer(start: event, count: eventLength))
        out.commit(o)
        packets &+= 1
    }
}

@inline(__always)
func varintLength(_ v: UInt64) -> Int {
    // 1 byte per started group of 7 significant bits (at least one).
    let bits = 64 - (v | 1).leadingZeroBitCount
    return (bits + 6) / 7
}
