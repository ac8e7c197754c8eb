// Perfetto's native protobuf trace (TracePacket stream), written by hand.
// Layout: sequence 1 holds the track descriptors (process, threads, counters); each thread then has its
// own packet sequence whose first packet clears the incremental state and sets defaults (the thread's
// track, a sequence-scoped incremental clock), so every later packet carries only a timestamp delta,
// the sequence id and a TrackEvent with interned names — a dozen bytes for a slice end.

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

public final class PerfettoExporter: TimelineSink {
    static let incrementalClock: UInt64 = 64
    static let monotonic: UInt64 = 3
    static let descriptorSequence: UInt64 = 1

    /// Debug annotation names, interned with these iids on every sequence.
    enum Annotation: UInt64, CaseIterable {
        case asyncID = 1, trigger, type, fd, ret, size, timeoutMs
        var name: String {
            switch self {
            case .asyncID: "async_id"
            case .trigger: "trigger_async_id"
            case .type: "type"
            case .fd: "fd"
            case .ret: "ret"
            case .size: "size"
            case .timeoutMs: "timeout_ms"
            }
        }
    }

    struct Sequence {
        var started = false
        var lastTs: UInt64 = 0
        var names = Bitset()
        var strings = Bitset()
    }

    struct Bitset {
        var words: [UInt64] = []
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
    private var header = ProtoBuffer(capacity: 64)
    private var packet = ProtoBuffer()
    private var event = ProtoBuffer()
    private var interned = ProtoBuffer()
    private var scratch = ProtoBuffer(capacity: 256)
    private var sequences: [Sequence] = []
    private var describedProcesses: Set<UInt32> = []
    private var describedCounters: Set<UInt32> = []
    public private(set) var packets: UInt64 = 0

    public init(output: OutputFile) {
        self.out = output
    }

    static func processUUID(_ pid: UInt32) -> UInt64 { 1 << 62 | UInt64(pid) }
    /// Small, so the uuid each counter value carries is a short varint (thread uuids are all ≥ 2^32).
    static func counterUUID(_ pid: UInt32) -> UInt64 { UInt64(pid) + 1 }
    static func threadUUID(_ pid: UInt32, _ tid: UInt32) -> UInt64 { UInt64(pid) << 32 | UInt64(tid) }

    // MARK: - packets

    private func writePacket() {
        header.reset()
        header.tag(F.tracePacket, 2)
        header.rawVarint(UInt64(packet.count))
        out.write(header.base, count: header.count)
        out.write(packet.base, count: packet.count)
        packets &+= 1
    }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        sequences.append(Sequence())
        if describedProcesses.insert(process.pid).inserted {
            var d = ProtoBuffer(capacity: 256)
            d.varint(1, Self.processUUID(process.pid))
            scratch.reset()
            scratch.int(1, Int64(process.pid))
            if !process.program.isEmpty {
                scratch.string(6, processName(process.program))
                scratch.string(2, process.program)
            }
            d.message(3, scratch)
            descriptorPacket(d)
        }
        var d = ProtoBuffer(capacity: 256)
        d.varint(1, Self.threadUUID(thread.pid, thread.tid))
        d.varint(5, Self.processUUID(thread.pid))
        scratch.reset()
        scratch.int(1, Int64(thread.pid))
        scratch.int(2, Int64(thread.tid))
        scratch.string(5, thread.name.map { $0.isEmpty ? "thread \(thread.tid)" : $0 }
            ?? (thread.hasUserStream ? "thread \(thread.tid)" : "thread \(thread.tid) (kernel only)"))
        d.message(4, scratch)
        descriptorPacket(d)
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

    // MARK: - events

    @inline(__always)
    private func name(_ id: Int, thread t: Int, timeline: Timeline) {
        if sequences[t].names.insert(id) {
            scratch.reset()
            scratch.varint(1, UInt64(id + 1))
            scratch.string(2, timeline.names[id])
            interned.message(F.eventNames, scratch)
        }
        event.varint(F.nameIID, UInt64(id + 1))
    }

    /// A DebugAnnotation {name_iid, int_value}, written in place (its length is known up front).
    @inline(__always)
    private func annotate(_ a: Annotation, _ v: Int64) {
        let value = UInt64(bitPattern: v)
        event.tag(F.debugAnnotations, 2)
        event.rawVarint(UInt64(2 + varintLength(value) + 1))  // iids are < 128: one byte
        event.varint(1, a.rawValue)
        event.varint(4, value)
    }

    private func annotate(type id: Int, thread t: Int, timeline: Timeline) {
        if sequences[t].strings.insert(id) {
            scratch.reset()
            scratch.varint(1, UInt64(id + 1))
            scratch.string(2, timeline.names[id])
            interned.message(F.annotationStrings, scratch)
        }
        scratch.reset()
        scratch.varint(1, Annotation.type.rawValue)
        scratch.varint(17, UInt64(id + 1))  // string_value_iid
        event.message(F.debugAnnotations, scratch)
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        let t = op.thread
        if !sequences[t].started { startSequence(t, thread: timeline.threads[t], at: op.timestampNs) }
        event.reset()
        interned.reset()
        switch op.kind {
        case .begin:
            event.varint(F.type, 1)  // TYPE_SLICE_BEGIN
            name(op.name, thread: t, timeline: timeline)
            switch op.slice {
            case .callback:
                // The slice's name is the resource type; a "type" annotation would repeat it in every callback.
                annotate(.asyncID, Int64(bitPattern: op.asyncID))
                annotate(.trigger, Int64(bitPattern: op.triggerID))
                if op.flowIn != 0 { event.varint(F.terminatingFlowIDs, op.flowIn) }
                if op.flowIn2 != 0 { event.varint(F.terminatingFlowIDs, op.flowIn2) }
            case .syscall:
                // epoll waits: the ready instants inside say what came back; fd (the epoll fd) and count add little.
                if !timeline.isEpollWait(op.name) {
                    if op.fd >= 0 { annotate(.fd, op.fd) }
                    annotate(.ret, op.ret)
                }
            case .poll:
                // int64 annotations cost 10 bytes when negative: -1 (no timeout) is left out.
                if op.ret >= 0 { annotate(.timeoutMs, op.ret) }
            default:
                break
            }
        case .end:
            event.varint(F.type, 2)  // TYPE_SLICE_END
        case .instant:
            event.varint(F.type, 3)  // TYPE_INSTANT
            name(op.name, thread: t, timeline: timeline)
            if op.slice == .initResource {
                annotate(.asyncID, Int64(bitPattern: op.asyncID))
            }  // ready instants: the name says the fd, the flow leads to the callback
            if op.flowOut != 0 { event.varint(F.flowIDs, op.flowOut) }
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
            event.varint(F.type, 4)  // TYPE_COUNTER
            event.varint(F.trackUUID, Self.counterUUID(timeline.threads[t].pid))
            event.int(F.counterValue, op.counterValue)
        }
        // The packet is written straight to the output: its length is the sum of its fields'.
        let delta = op.timestampNs &- sequences[t].lastTs
        sequences[t].lastTs = op.timestampNs
        let seq = UInt64(t + 2)
        var length = 1 + varintLength(delta) + 1 + varintLength(seq) + 1 + varintLength(UInt64(event.count)) + event.count
        if interned.count > 0 { length += 1 + varintLength(UInt64(interned.count)) + interned.count }
        header.reset()
        header.tag(F.tracePacket, 2)
        header.rawVarint(UInt64(length))
        header.varint(F.timestamp, delta)
        header.varint(F.sequenceID, seq)
        if interned.count > 0 {
            header.tag(F.internedData, 2)
            header.rawVarint(UInt64(interned.count))
            out.write(header.base, count: header.count)
            out.write(interned.base, count: interned.count)
            header.reset()
        }
        header.tag(F.trackEvent, 2)
        header.rawVarint(UInt64(event.count))
        out.write(header.base, count: header.count)
        out.write(event.base, count: event.count)
        packets &+= 1
    }
}

@inline(__always)
func varintLength(_ v: UInt64) -> Int {
    // 1 byte per started group of 7 significant bits (at least one).
    let bits = 64 - (v | 1).leadingZeroBitCount
    return (bits + 6) / 7
}
