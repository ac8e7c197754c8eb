// Spans (spanBegin/spanEnd, with spanAttribute): how long each took and what ran inside it. A callback
// is inside a span when it ran (ended) while the span was open and its resource is the span's execution
// context or descends from it (the trigger chain): the task that began a request's span, the child tasks
// it created, the I/O they started. Syscalls are those of the callbacks, as the callbacks section has them.
import TraceFormat

/// One span, as the report shows it.
public struct SpanRecord: Sendable {
    /// The span's id (unique within its process).
    public var spanID: UInt64
    /// The span's name.
    public var name: String
    /// The process id.
    public var pid: UInt32
    /// The thread the span began on.
    public var tid: UInt32
    /// That thread's name, where known.
    public var threadName: String?
    /// When it began (CLOCK_MONOTONIC ns).
    public var startNs: UInt64
    /// nil: the span never ended in the trace.
    public var durationNs: UInt64?
    /// The async id current where the span began, and its type.
    public var executionAsyncID: UInt64
    /// The execution resource's type name, where known.
    public var executionType: String?
    /// The spanAttribute events, in order, as (key, value).
    public var attributes: [(key: String, value: String)]
    /// The enclosing span's id (its `span.id` attribute for a tracer's spans), if known.
    public var parentSpanID: UInt64?
    /// Callbacks inside the span (ended while it was open, in its execution context or descending from it).
    public var callbacksInside: UInt64 = 0
    /// Their total time (ns).
    public var callbackNsInside: UInt64 = 0
    /// Callbacks inside by resource type: (type, count, total ns), largest total first (at most 5).
    public var insideByType: [(type: String, count: UInt64, ns: UInt64)] = []
    /// The longest callback inside, with its syscalls.
    public var longestInside: CallbackRecord?

    /// The value of the attribute `key` (the first one), or nil.
    public func attribute(_ key: String) -> String? { attributes.first { $0.key == key }?.value }
}

/// The spans of a trace: how many began and ended, and the slowest with what ran inside them.
public struct SpanSummary: Sendable {
    /// spanBegin events.
    public var begun: UInt64 = 0
    /// spanEnd events that matched an open span.
    public var ended: UInt64 = 0
    /// Spans still open at the end of the trace (or of the window).
    public var openAtEnd: UInt64 = 0
    /// The slowest spans (open ones count with the time until the trace's end), at most `top`.
    public var slowest: [SpanRecord] = []
    /// No spans.
    public init() {}
}

struct SpanKey: Hashable {
    var pid: UInt32
    var spanID: UInt64
}

struct OpenSpan {
    var record: SpanRecord
    var byType: [Int32: (count: UInt64, ns: UInt64)] = [:]
}

struct SpanTracker {
    static let maxOpen = 100_000
    static let maxAncestors = 64
    var open: [SpanKey: OpenSpan] = [:]
    /// Open spans by (pid, execution async id): a finished callback walks its ancestors through this.
    var byContext: [ResourceKey: [UInt64]] = [:]
    var summary = SpanSummary()
    var slowest: TopN<SpanRecord>
    var droppedOpen: UInt64 = 0

    init(top: Int) { slowest = TopN(limit: top) }

    mutating func begin(
        pid: UInt32, tid: UInt32, threadName: String?, spanID: UInt64, name: String, executionAsyncID: UInt64,
        executionType: String?, ns: UInt64
    ) {
        summary.begun &+= 1
        guard open.count < Self.maxOpen else { droppedOpen &+= 1; return }
        let record = SpanRecord(
            spanID: spanID, name: name, pid: pid, tid: tid, threadName: threadName, startNs: ns,
            durationNs: nil, executionAsyncID: executionAsyncID, executionType: executionType,
            attributes: [], parentSpanID: nil)
        let key = SpanKey(pid: pid, spanID: spanID)
        if open[key] != nil { remove(key) }
        open[key] = OpenSpan(record: record)
        byContext[ResourceKey(pid: pid, asyncID: executionAsyncID), default: []].append(spanID)
    }

    mutating func attribute(pid: UInt32, spanID: UInt64, text: String) {
        let key = SpanKey(pid: pid, spanID: spanID)
        guard open[key] != nil, open[key]!.record.attributes.count < 64 else { return }
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let (k, v) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : (text, "")
        // A tracer's rename (Hummingbird's TracingMiddleware names a request's span after its route only
        // once the router matched it): the span takes its last name.
        if k == "span.name" {
            open[key]!.record.name = v
            return
        }
        open[key]!.record.attributes.append((k, v))
        if k == "parent.span", let p = UInt64(v) { open[key]!.record.parentSpanID = p }
    }

    mutating func end(pid: UInt32, spanID: UInt64, ns: UInt64, typeName: (Int32) -> String) {
        let key = SpanKey(pid: pid, spanID: spanID)
        guard var s = open[key] else { return }
        remove(key)
        summary.ended &+= 1
        s.record.durationNs = ns >= s.record.startNs ? ns - s.record.startNs : 0
        finish(&s, typeName: typeName)
    }

    private mutating func finish(_ s: inout OpenSpan, typeName: (Int32) -> String) {
        s.record.insideByType = s.byType.map { (typeName($0.key), $0.value.count, $0.value.ns) }
            .sorted { ($0.2, $0.1) > ($1.2, $1.1) }.prefix(5).map { $0 }
        let d = s.record.durationNs ?? 0
        if slowest.admits(d) { slowest.offer(d, s.record) }
    }

    private mutating func remove(_ key: SpanKey) {
        guard let s = open.removeValue(forKey: key) else { return }
        let ctx = ResourceKey(pid: key.pid, asyncID: s.record.executionAsyncID)
        byContext[ctx]?.removeAll { $0 == key.spanID }
        if byContext[ctx]?.isEmpty == true { byContext.removeValue(forKey: ctx) }
    }

    /// A callback of `asyncID` (type `type`) ended after `durationNs`: credit every open span whose
    /// execution context is the callback's resource or one of its ancestors.
    mutating func callbackEnded(
        pid: UInt32, asyncID: UInt64, type: Int32, durationNs: UInt64, resources: ResourceTable,
        record: () -> CallbackRecord
    ) {
        guard !byContext.isEmpty else { return }
        var id = asyncID
        var credited: [UInt64] = []
        for _ in 0..<Self.maxAncestors {
            if let spans = byContext[ResourceKey(pid: pid, asyncID: id)] {
                for spanID in spans where !credited.contains(spanID) {
                    credited.append(spanID)
                    let key = SpanKey(pid: pid, spanID: spanID)
                    open[key]!.record.callbacksInside &+= 1
                    open[key]!.record.callbackNsInside &+= durationNs
                    let t = open[key]!.byType[type] ?? (0, 0)
                    open[key]!.byType[type] = (t.count &+ 1, t.ns &+ durationNs)
                    if durationNs > (open[key]!.record.longestInside?.durationNs ?? 0) || open[key]!.record.longestInside == nil {
                        open[key]!.record.longestInside = record()
                    }
                }
            }
            guard let info = resources.info(ResourceKey(pid: pid, asyncID: id)), info.trigger > 1, info.trigger != id else { break }
            id = info.trigger
        }
    }

    /// The summary at the end of the trace: spans still open count with their time so far.
    func finished(endNs: UInt64, typeName: (Int32) -> String) -> SpanSummary {
        var copy = self
        copy.summary.openAtEnd = UInt64(open.count) &+ droppedOpen
        for (_, s) in open {
            var s = s
            let d = endNs >= s.record.startNs ? endNs - s.record.startNs : 0
            s.record.insideByType = s.byType.map { (typeName($0.key), $0.value.count, $0.value.ns) }
                .sorted { ($0.2, $0.1) > ($1.2, $1.1) }.prefix(5).map { $0 }
            if copy.slowest.admits(d) { copy.slowest.offer(d, s.record) }
        }
        copy.summary.slowest = copy.slowest.sorted
        return copy.summary
    }
}
