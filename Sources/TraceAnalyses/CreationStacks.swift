// Where resources were created: the creation stacks a recorder writes after init (stackDef in the
// thread's stream, then creationStack), named by the code regions the trace holds (mapping events of
// the recorder and of the kernel stream), for open-at-exit groups and blocking callbacks.
import TraceFormat
import TraceReader
import TraceSymbols

/// The trace's creation stacks (each distinct (pid, addresses) once) and its code regions.
struct CreationStackTable: Sendable {
    struct Key: Hashable, Sendable {
        var pid: UInt32
        var addresses: [UInt64]
    }
    var stacks: [Key] = []
    var index: [Key: Int32] = [:]
    /// (stream << 32 | stream's stack id) -> index.
    var byStreamID: [UInt64: Int32] = [:]
    var mappings: [(pid: UInt32, mapping: Symbolizer.Mapping)] = []
    /// The perf maps copied into the trace (`perfMap`), in order, up to `Symbolizer.maxCopiedPerfMapBytes` in all.
    var perfMaps: [(pid: UInt32, text: [UInt8])] = []
    var perfMapBytes = 0
    /// The trace carries its perf maps (format 13 and later): /tmp's are not read.
    var perfMapsInTrace = false
    /// Bounds: a crafted trace cannot make these grow without limit.
    static let maxStacks = 1 << 18
    static let maxMappings = 1 << 16
    static let maxFrames = 64

    mutating func define(stream: Int, pid: UInt32, id: UInt64, addresses: some Sequence<UInt64>) {
        guard id > 0, id <= UInt64(UInt32.max) else { return }
        let key = Key(pid: pid, addresses: Array(addresses.prefix(Self.maxFrames)))
        guard !key.addresses.isEmpty else { return }
        let i: Int32
        if let known = index[key] {
            i = known
        } else {
            guard stacks.count < Self.maxStacks else { return }
            i = Int32(stacks.count)
            stacks.append(key)
            index[key] = i
        }
        byStreamID[UInt64(stream) << 32 | id] = i
    }

    func stack(stream: Int, id: UInt64) -> Int32? {
        id <= UInt64(UInt32.max) ? byStreamID[UInt64(stream) << 32 | id] : nil
    }

    mutating func addMapping(pid: UInt32, _ m: Symbolizer.Mapping) {
        guard mappings.count < Self.maxMappings else { return }
        mappings.append((pid, m))
    }
}

extension TraceAnalyzer {
    /// stackDef of a user stream, creationStack, and every stream's mappings.
    mutating func creationStackEvent(stream s: Int, pid: UInt32, _ ev: borrowing DecodedEvent) {
        switch ev.kind {
        case .stackDef:
            guard !reader.streams[s].isKernel else { return }
            creationStacks.define(stream: s, pid: pid, id: ev.u(0), addresses: ev.list)
        case .creationStack:
            guard let i = creationStacks.stack(stream: s, id: ev.u(1)) else {
                creationStacksUndefined &+= 1
                return
            }
            resources.setCreationStack(ResourceKey(pid: pid, asyncID: ev.u(0)), i)
        case .perfMap:
            // Bounded in bytes, as the symbolizer bounds them: one chunk's string may be named by any number of events.
            let text = ev.text.utf8
            guard text.count <= Symbolizer.maxCopiedPerfMapBytes - creationStacks.perfMapBytes else { return }
            creationStacks.perfMapBytes += text.count
            creationStacks.perfMaps.append((UInt32(truncatingIfNeeded: ev.u(0)), Array(text)))
        case .mapping:
            guard ev.u(1) < ev.u(2) else { return }
            creationStacks.addMapping(
                pid: UInt32(truncatingIfNeeded: ev.u(0)),
                .init(
                    start: ev.u(1), end: ev.u(2), fileOffset: ev.u(3), path: ev.text,
                    buildID: ev.list.prefix(64).map { UInt8(truncatingIfNeeded: $0) }, timeNs: ev.timestampNs))
        default:
            break
        }
    }
}

extension TraceAnalysis {
    /// Names the creation stacks of the open-at-exit groups and of the listed callbacks' resources;
    /// groups of one type whose stacks name the same code merge.
    public mutating func attachCreationStacks() {
        let table = creationStacks
        guard !table.stacks.isEmpty else { return }
        let symbolizer = Symbolizer()
        for m in table.mappings { symbolizer.addMapping(pid: m.pid, m.mapping) }
        if table.perfMapsInTrace { symbolizer.perfMapDirectory = nil }
        for p in table.perfMaps { symbolizer.addPerfMapText(pid: p.pid, p.text) }
        var named: [Int32: [CodeFrame]] = [:]
        func frames(_ i: Int32) -> [CodeFrame] {
            guard i >= 0, Int(i) < table.stacks.count else { return [] }
            if let f = named[i] { return f }
            let key = table.stacks[Int(i)]
            // Return addresses only (the capture starts in the recorder), each looked up inside its call.
            var ids = key.addresses.map { symbolizer.frame(pid: key.pid, address: $0, timeNs: .max, isReturnAddress: true) }
            if let bad = ids.firstIndex(where: { symbolizer.frames[$0].module == "[unknown]" }) { ids.removeSubrange(bad...) }
            let f = Self.withoutRecorderFrames(ids.map { symbolizer.frames[$0] })
            named[i] = f
            return f
        }
        for i in uncaughtErrors.indices where uncaughtErrors[i].createdAt.isEmpty {
            uncaughtErrors[i].createdAt = frames(uncaughtErrors[i].creationStack)
        }
        struct GroupKey: Hashable { var type: String; var frames: [CodeFrame]; var standardStream: Bool }
        var merged: [GroupKey: OpenResourceGroup] = [:]
        var order: [GroupKey] = []
        for var g in openAtExit {
            if g.creationStack >= 0 && g.createdAt.isEmpty { g.createdAt = frames(g.creationStack) }
            let k = GroupKey(type: g.type, frames: g.createdAt, standardStream: !g.standardStreams.isEmpty)
            if var m = merged[k] {
                m.count += g.count
                m.oldestInitNs = min(m.oldestInitNs, g.oldestInitNs)
                m.standardStreams = Array(Set(m.standardStreams + g.standardStreams)).sorted()
                merged[k] = m
            } else {
                merged[k] = g
                order.append(k)
            }
        }
        openAtExit = order.map { merged[$0]! }.sorted { ($0.count, $1.type, $1.createdAt.count) > ($1.count, $0.type, $0.createdAt.count) }
        for i in blocking.longest.indices where blocking.longest[i].creationStack >= 0 {
            blocking.longest[i].createdAt = frames(blocking.longest[i].creationStack)
        }
        for i in slowestCallbacks.indices where slowestCallbacks[i].creationStack >= 0 {
            slowestCallbacks[i].createdAt = frames(slowestCallbacks[i].creationStack)
        }
    }

    /// The stack from the code that asked for the resource: the capture begins inside the recorder
    /// and the hooks (cut after the last of their frames near the top), and a runtime's own frames
    /// between them and the program's code fold into the outermost one (the API the program called:
    /// "setInterval ← startHeartbeat ← main").
    static func withoutRecorderFrames(_ frames: [CodeFrame]) -> [CodeFrame] {
        func module(_ f: CodeFrame) -> Substring? {
            guard let function = f.function else { return nil }
            var name = Substring(function)
            // "function signature specialization <…> of static M.f", "merged M.f", "@objc closure …": M.
            if name.hasPrefix("function signature specialization") || name.hasPrefix("generic specialization") {
                var i = name.startIndex
                while i < name.endIndex, !name[i...].hasPrefix("> of ") { i = name.index(after: i) }
                if i < name.endIndex { name = name[name.index(i, offsetBy: 5)...] }
            }
            var stripped = true
            while stripped {
                stripped = false
                for prefix in ["static ", "@objc ", "@nonobjc ", "merged ", "outlined "] where name.hasPrefix(prefix) {
                    name = name.dropFirst(prefix.count)
                    stripped = true
                }
            }
            return name.firstIndex(of: ".").map { name[..<$0] }
        }
        let top = frames.prefix(24)
        var start = 0
        if let last = top.lastIndex(where: { module($0) == "AsyncTraceRecorder" || module($0) == "AsyncHooks" }) { start = last + 1 }
        var end = start
        while end < frames.count && module(frames[end]) == "AsyncTraceRuntime" { end += 1 }
        if end > start + 1 && end < frames.count && frames[end].function != nil { start = end - 1 }
        return Array(frames[start...])
    }
}
