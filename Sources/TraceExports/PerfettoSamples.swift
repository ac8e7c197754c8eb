// CPU samples in the Perfetto export: PerfSample packets with their callstacks interned the way
// Perfetto's profilers write them (InternedData function_names, source_paths, mapping_paths,
// mappings, frames, callstacks), on a sequence of their own. Perfetto's UI draws them on each
// thread's track and as flame graphs; trace_processor puts them into perf_sample / stack_profile_*.
// Stacks come named and unwound from TraceSamples (the same frames as `profile` and `--by code`).
import TraceFormat
import TraceReader
import TraceSymbols

private enum G {
    static let timestamp: UInt32 = 8
    static let sequenceID: UInt32 = 10
    static let internedData: UInt32 = 12
    static let sequenceFlags: UInt32 = 13
    static let timestampClockID: UInt32 = 58
    static let perfSample: UInt32 = 66
    static let firstPacketOnSequence: UInt32 = 87
    // InternedData
    static let functionNames: UInt32 = 5
    static let frames: UInt32 = 6
    static let callstacks: UInt32 = 7
    static let mappingPaths: UInt32 = 17
    static let sourcePaths: UInt32 = 18
    static let mappings: UInt32 = 19
}

/// The samples' side of PerfettoExporter: interning state of the samples sequence.
struct PerfettoSamples {
    static let sequence: UInt64 = 0x3FFF_FFFE
    static let monotonic: UInt64 = 3
    let data: TraceSamples
    private var started = false
    private var strings: [String: UInt64] = [:]  // function names, by text
    private var sourcePaths: [String: UInt64] = [:]
    private var mappingPaths: [String: UInt64] = [:]
    private var mappings: [String: UInt64] = [:]  // by module
    private var frames: [Int: UInt64] = [:]  // symbolizer frame id -> iid
    private var callstacks: [[UInt64]: UInt64] = [:]
    private var nextIID: UInt64 = 1
    private(set) var written = 0

    init() {
        data = TraceSamples()
        data.keepsSamples = false
    }

    private mutating func iid() -> UInt64 {
        defer { nextIID += 1 }
        return nextIID
    }

    /// Feeds one code event; for a sample, encodes its PerfSample packet into `p` and returns true.
    mutating func write(_ event: EventView, strings it: TraceEventIterator, into p: inout ProtoBuffer) -> Bool {
        guard let s = data.add(event, strings: it) else { return false }
        var interned = ProtoBuffer(capacity: 256)
        var scratch = ProtoBuffer(capacity: 128)
        // Outermost first (Perfetto's Callstack.frame_ids: "bottom frame first").
        let ids = data.frames(of: s)
        var frameIIDs: [UInt64] = []
        frameIIDs.reserveCapacity(ids.count)
        for id in ids.reversed() { frameIIDs.append(frameIID(id, &interned, &scratch)) }
        var callstack: UInt64 = 0
        if !frameIIDs.isEmpty {
            if let c = callstacks[frameIIDs] {
                callstack = c
            } else {
                callstack = iid()
                callstacks[frameIIDs] = callstack
                scratch.reset()
                scratch.varint(1, callstack)
                for f in frameIIDs { scratch.varint(2, f) }
                interned.message(G.callstacks, scratch)
            }
        }
        p.reset()
        p.varint(G.timestamp, s.timeNs)
        p.varint(G.timestampClockID, Self.monotonic)
        p.varint(G.sequenceID, Self.sequence)
        p.varint(G.sequenceFlags, started ? 2 : 3)  // SEQ_NEEDS_INCREMENTAL_STATE (| SEQ_INCREMENTAL_STATE_CLEARED first)
        if !started { p.bool(G.firstPacketOnSequence, true) }
        started = true
        if interned.count > 0 { p.message(G.internedData, interned) }
        scratch.reset()
        scratch.varint(2, UInt64(s.pid))
        scratch.varint(3, UInt64(s.tid))
        if callstack != 0 { scratch.varint(4, callstack) }
        scratch.varint(5, s.kernelStack != 0 && s.userStack == 0 ? 1 : 2)  // cpu_mode: MODE_KERNEL / MODE_USER
        p.message(G.perfSample, scratch)
        written += 1
        return true
    }

    private mutating func frameIID(_ id: Int, _ interned: inout ProtoBuffer, _ scratch: inout ProtoBuffer) -> UInt64 {
        if let f = frames[id] { return f }
        let frame = data.frame(id)
        let mapping = mappingIID(frame.module, &interned, &scratch)
        let name = stringIID(frame.name, table: \.strings, field: G.functionNames, &interned, &scratch)
        var source: UInt64 = 0
        if let file = frame.file { source = stringIID(file, table: \.sourcePaths, field: G.sourcePaths, &interned, &scratch) }
        let f = iid()
        frames[id] = f
        scratch.reset()
        scratch.varint(1, f)
        scratch.varint(2, name)
        scratch.varint(3, mapping)
        scratch.varint(4, frame.offset)
        if source != 0 { scratch.varint(5, source) }
        if let line = frame.line, line > 0, line <= Int(UInt32.max) { scratch.varint(6, UInt64(line)) }
        interned.message(G.frames, scratch)
        return f
    }

    private mutating func mappingIID(_ module: String, _ interned: inout ProtoBuffer, _ scratch: inout ProtoBuffer) -> UInt64 {
        if let m = mappings[module] { return m }
        let path = stringIID(module, table: \.mappingPaths, field: G.mappingPaths, &interned, &scratch)
        let m = iid()
        mappings[module] = m
        scratch.reset()
        scratch.varint(1, m)
        scratch.varint(7, path)  // path_string_ids
        interned.message(G.mappings, scratch)
        return m
    }

    private mutating func stringIID(
        _ s: String, table: WritableKeyPath<PerfettoSamples, [String: UInt64]>, field: UInt32,
        _ interned: inout ProtoBuffer, _ scratch: inout ProtoBuffer
    ) -> UInt64 {
        if let i = self[keyPath: table][s] { return i }
        let i = iid()
        self[keyPath: table][s] = i
        scratch.reset()
        scratch.varint(1, i)
        scratch.string(2, s)
        interned.message(field, scratch)
        return i
    }
}
