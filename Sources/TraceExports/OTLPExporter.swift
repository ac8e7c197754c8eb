// OpenTelemetry traces: OTLP/protobuf ExportTraceServiceRequest messages (opentelemetry-proto's
// collector/trace/v1 and trace/v1), encoded by hand like the Perfetto export.
//
// The model (docs/exports.md, "OpenTelemetry"):
// - every callback is a span (kind INTERNAL, named by its resource's type); a resource's first callback is a
//   child of the callback that created the resource (the trigger) in its trace; every later callback of a
//   resource (the next accept, read or tick, a task's next resumption), and the first of one created outside
//   any callback, starts a trace of its own, linked to the resource's previous callback: a trace is one event
//   and what it caused (a request on a connection), not a server's whole life;
// - spans recorded through the distributed-tracing bridge (spanBegin/spanAttribute/spanEnd) keep their own
//   trace and span ids (trace.id, span.id, parent.span.id attributes), kind, status, events and links;
//   callbacks of the span's execution context (or of resources descending from it) begun while it is open
//   join its trace, and the callback the span began in gets a part ("<type>") inside it from the span's
//   begin: a blocking callback shows up inside the request that suffered it;
// - syscalls of a callback at least `syscallThresholdNs` long are span events;
// - callbacks at least `blockingThresholdNs` long are marked: asynctrace.blocking = true, status ERROR;
//   loop stalls (a loop thread's stretch between two epoll waits, as long) are spans of their own, status
//   ERROR, linked to the callbacks that ran in them;
// - one Resource per thread: service.name, process.pid, process.executable.name, process.command_line,
//   thread.id, thread.name (spans carry thread.id too).
// Ids are derived from the trace (its pid and start time) and the order of events: the same trace exports
// the same ids. Memory is bounded: spans are batched into requests of at most `maxSpansPerRequest` spans
// or about `maxBytesPerRequest` bytes; only open callbacks, live resources and open spans are kept.
import TraceFormat
import TraceReader
import TraceText

/// What the OTLP export makes spans of, and how it batches them (docs/exports.md, "OpenTelemetry").
public struct OTLPOptions: Sendable {
    /// service.name; nil: the traced program's name.
    public var serviceName: String?
    /// Callbacks at least this long are marked blocking (status ERROR); loop stalls as long become spans (ns).
    public var blockingThresholdNs: UInt64 = 10_000_000
    /// Syscalls of a callback at least this long become span events (ns).
    public var syscallThresholdNs: UInt64 = 100_000
    /// Most spans in one ExportTraceServiceRequest.
    public var maxSpansPerRequest = 8_192
    /// About the most bytes in one request (a request is sent once it passes this).
    public var maxBytesPerRequest = 2 << 20
    /// --otlp-endpoint: how long a batch is retried before the export gives up.
    public var retryForMs = 60_000
    /// Span events kept per span (syscalls, a tracer's events); the rest are counted as dropped.
    public static let maxEventsPerSpan = 32

    /// The defaults: 10 ms blocking, 100 µs syscall events, 8,192 spans or 2 MiB per request, 60 s of retries.
    public init() {}
}

/// Where each finished ExportTraceServiceRequest goes (a file, an OTLP/HTTP endpoint).
public protocol OTLPRequestSink: AnyObject {
    /// `spans`: how many spans the request holds.
    func send(_ request: UnsafeRawBufferPointer, spans: Int) throws(ExportError)
}

/// Writes requests one after another: protobuf concatenation merges repeated fields, so the file is itself one
/// ExportTraceServiceRequest whose resource_spans are all the batches'.
public final class OTLPFileSink: OTLPRequestSink {
    let out: OutputFile
    /// A sink appending to `output`.
    public init(output: OutputFile) { out = output }
    public func send(_ request: UnsafeRawBufferPointer, spans: Int) throws(ExportError) {
        out.write(request)
        if let f = out.failure { throw f }
    }
}

/// Turns the timeline into OpenTelemetry spans (OTLP/protobuf ExportTraceServiceRequests) for a
/// `OTLPRequestSink`: callbacks, a tracer's spans and loop stalls. Ids derive from the trace, so the same
/// trace exports the same ids. Call `flush()` after the pass.
public final class OTLPExporter: TimelineSink {
    let options: OTLPOptions
    let sink: OTLPRequestSink
    /// Mixed into every derived id, so two traces' ids differ.
    let seed: UInt64
    let monotonicStartNs: UInt64
    let realtimeStartNs: UInt64

    /// Spans handed to the sink.
    public private(set) var spans: UInt64 = 0
    /// Requests handed to the sink.
    public private(set) var requests: UInt64 = 0
    /// Spans made of callbacks.
    public private(set) var callbackSpans: UInt64 = 0
    /// Spans recorded by a tracer (the distributed-tracing bridge).
    public private(set) var tracerSpans: UInt64 = 0
    /// Spans made of loop stalls.
    public private(set) var stallSpans: UInt64 = 0
    /// Callbacks at or above `OTLPOptions.blockingThresholdNs`.
    public private(set) var blockingCallbacks: UInt64 = 0
    /// Syscall span events left out past `OTLPOptions.maxEventsPerSpan` per span.
    public private(set) var droppedEvents: UInt64 = 0
    /// Spans not delivered after the sink failed.
    public private(set) var undelivered: UInt64 = 0
    /// The sink's first error; nothing is sent after it (`undelivered` counts what was lost).
    public private(set) var failure: ExportError?

    final class ThreadState {
        let thread: TimelineThread
        var batch = ProtoBuffer(capacity: 1 << 14)
        var batchSpans = 0
        var open: [OpenCallback] = []
        /// Span events of the open callbacks (each an encoded Span.events field), innermost last.
        var events = ProtoBuffer(capacity: 1024)
        var eventTimes: [(ts: UInt64, offset: Int)] = []
        var syscallBegin: UInt64 = 0
        var syscallName = -1
        var syscallFd: Int64 = -1
        var syscallRet: Int64 = 0
        var syscallSize: UInt64 = 0
        var inEpoll = false
        var lastEpollEnd: UInt64 = 0
        /// Callbacks ended since the last epoll wait (the links of a stall span), bounded.
        var sinceEpoll: [(hi: UInt64, lo: UInt64, span: UInt64)] = []
        var stalls: UInt64 = 0
        init(_ t: TimelineThread) { thread = t }
    }

    struct OpenCallback {
        var spanID: UInt64
        var traceHi: UInt64
        var traceLo: UInt64
        var parent: UInt64
        /// The causal parent when the span was adopted into a tracer span's trace (a link; 0: none).
        var linkHi: UInt64 = 0
        var linkLo: UInt64 = 0
        var linkSpan: UInt64 = 0
        var start: UInt64
        var asyncID: UInt64
        var trigger: UInt64
        var name: Int
        var eventsStart: Int
        var eventTimesStart: Int
        var events = 0
        var dropped: UInt32 = 0
        var syscalls: UInt64 = 0
        /// A tracer span that began inside this callback (its part of the callback goes into the span's trace).
        var hosted: SpanKey?
        var hostedAt: UInt64 = 0
    }

    struct ResourceInfo {
        var trigger: UInt64
        /// The callback that created it (0: none), and that callback's trace.
        var creatorSpan: UInt64 = 0
        var traceHi: UInt64 = 0
        var traceLo: UInt64 = 0
        var callbacks: UInt32 = 0
        /// Its latest callback's span.
        var lastHi: UInt64 = 0
        var lastLo: UInt64 = 0
        var lastSpan: UInt64 = 0
    }

    struct SpanKey: Hashable {
        var pid: UInt32
        var recorded: UInt64
    }

    struct TracerSpan {
        var thread: Int
        var name: String
        var begin: UInt64
        var context: UInt64
        var traceHi: UInt64
        var traceLo: UInt64
        var spanID: UInt64
        var parent: UInt64 = 0
        var frozen = false
        var kind: UInt64 = 1
        var statusCode: UInt64 = 0
        var statusMessage = ""
        var attributes: [(String, String)] = []
        var droppedAttributes: UInt32 = 0
        var events: [(ts: UInt64, name: String, message: String)] = []
        var droppedEvents: UInt32 = 0
        var links: [(hi: UInt64, lo: UInt64, span: UInt64)] = []
        var hostedBy = 0
    }

    @exclusivity(unchecked) private var threads: [ThreadState] = []
    @exclusivity(unchecked) private var resources = IDTable<ResourceInfo>()
    @exclusivity(unchecked) private var nameBytes: [[UInt8]] = []
    @exclusivity(unchecked) private var scratch = ProtoBuffer(capacity: 4096)
    @exclusivity(unchecked) private var inner = ProtoBuffer(capacity: 1024)
    @exclusivity(unchecked) private var request = ProtoBuffer(capacity: 1 << 16)
    @exclusivity(unchecked) private var pendingSpans = 0
    @exclusivity(unchecked) private var pendingBytes = 0
    @exclusivity(unchecked) private var callbackCounter: UInt64 = 0
    @exclusivity(unchecked) private var openTracer: [SpanKey: TracerSpan] = [:]
    @exclusivity(unchecked) private var tracerByContext: [UInt64: [UInt64]] = [:]
    /// Tracer spans that ended while a callback they began in was still running: their final ids and end.
    @exclusivity(unchecked) private var endedHosted: [SpanKey: (hi: UInt64, lo: UInt64, span: UInt64, end: UInt64)] = [:]

    /// An exporter for the trace with `header` (its pid and start times seed the ids), sending to `sink`.
    public init(sink: OTLPRequestSink, header: FileHeader, options: OTLPOptions = OTLPOptions()) {
        self.sink = sink
        self.options = options
        monotonicStartNs = header.monotonicStartNs
        realtimeStartNs = header.realtimeStartNs
        seed = mix(UInt64(header.pid) << 32 ^ header.monotonicStartNs ^ 0x6F74_6C70)
    }

    // MARK: - ids and time

    @inline(__always)
    private func derivedSpanID(_ n: UInt64, _ domain: UInt64) -> UInt64 {
        let v = mix(seed ^ mix(n ^ domain))
        return v == 0 ? 1 : v
    }

    @inline(__always)
    private func derivedTraceID(_ n: UInt64, _ domain: UInt64) -> (UInt64, UInt64) {
        let hi = mix(seed &+ mix(n ^ domain ^ 0x7472_6163_6500_0000))
        return (hi, mix(hi ^ n ^ domain) | 1)
    }

    /// CLOCK_MONOTONIC -> Unix time via the file header's pair of clocks (saturating: the fields are file data).
    @inline(__always)
    private func unix(_ ts: UInt64) -> UInt64 {
        ts >= monotonicStartNs
            ? realtimeStartNs &+ min(ts - monotonicStartNs, UInt64.max - realtimeStartNs)
            : realtimeStartNs - min(monotonicStartNs - ts, realtimeStartNs)
    }

    static func resourceKey(_ pid: UInt32, _ asyncID: UInt64) -> UInt64 { UInt64(pid) << 44 ^ asyncID }

    // MARK: - the timeline

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        if self.timeline == nil { self.timeline = timeline }
        threads.append(ThreadState(thread))
    }

    public func resource(_ change: ResourceChange, timeline: Timeline) {
        let key = Self.resourceKey(change.pid, change.asyncID)
        switch change.kind {
        case .created:
            resources.insert(key, ResourceInfo(trigger: change.trigger))
        case .destroyed:
            resources.remove(key)
        case .fd:
            break
        }
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        let s = threads[op.thread]
        switch op.kind {
        case .begin:
            switch op.slice {
            case .callback: callbackBegins(op, s, timeline)
            case .syscall:
                s.syscallBegin = op.timestampNs
                s.syscallName = op.name
                s.syscallFd = op.fd
                s.syscallRet = op.ret
                s.syscallSize = op.size
                if op.isLoopWait {
                    s.inEpoll = true
                    if s.lastEpollEnd != 0 && op.timestampNs &- s.lastEpollEnd >= options.blockingThresholdNs
                        && op.timestampNs > s.lastEpollEnd
                    {
                        stall(s, from: s.lastEpollEnd, to: op.timestampNs, timeline)
                    }
                }
            default: break
            }
        case .end:
            switch op.slice {
            case .callback: callbackEnds(op, s, timeline)
            case .syscall: syscallEnds(at: op.timestampNs, s, timeline)
            default: break
            }
        case .instant:
            if op.slice == .initResource, let top = s.open.last {
                _ = resources.update(Self.resourceKey(s.thread.pid, op.asyncID)) { r in
                    r.creatorSpan = top.spanID
                    r.traceHi = top.traceHi
                    r.traceLo = top.traceLo
                }
            }
        case .counter:
            break
        }
    }

    private func callbackBegins(_ op: TimelineOp, _ s: ThreadState, _ timeline: Timeline) {
        callbackCounter &+= 1
        let id = derivedSpanID(callbackCounter, 0x6362)
        let pid = s.thread.pid
        let key = Self.resourceKey(pid, op.asyncID)
        let info = resources[key]
        var cb = OpenCallback(
            spanID: id, traceHi: 0, traceLo: 0, parent: 0, start: op.timestampNs, asyncID: op.asyncID,
            trigger: op.triggerID, name: op.name, eventsStart: s.events.count, eventTimesStart: s.eventTimes.count)
        if let info, info.callbacks == 0, info.creatorSpan != 0 {
            // A resource's first callback continues the trace of the callback that created it.
            (cb.traceHi, cb.traceLo, cb.parent) = (info.traceHi, info.traceLo, info.creatorSpan)
        } else {
            // Its later callbacks (the next accept, read, tick, a task's next resumption) each start a trace,
            // linked to the previous one: a server's trace is one event and what it caused, not its whole life.
            (cb.traceHi, cb.traceLo) = derivedTraceID(callbackCounter, 0x726f6f74)
            if let info, info.lastSpan != 0 { (cb.linkHi, cb.linkLo, cb.linkSpan) = (info.lastHi, info.lastLo, info.lastSpan) }
        }
        if !tracerByContext.isEmpty, let key = enclosingTracerSpan(pid: pid, asyncID: op.asyncID) {
            openTracer[key]!.frozen = true
            let span = openTracer[key]!
            if cb.traceHi != span.traceHi || cb.traceLo != span.traceLo {
                if cb.parent != 0 { (cb.linkHi, cb.linkLo, cb.linkSpan) = (cb.traceHi, cb.traceLo, cb.parent) }
                (cb.traceHi, cb.traceLo, cb.parent) = (span.traceHi, span.traceLo, span.spanID)
            }
        }
        if info != nil {
            _ = resources.update(key) { r in
                r.callbacks &+= 1
                (r.lastHi, r.lastLo, r.lastSpan) = (cb.traceHi, cb.traceLo, cb.spanID)
            }
        }
        s.open.append(cb)
    }

    /// The innermost open tracer span whose execution context is the resource or one of its ancestors.
    private func enclosingTracerSpan(pid: UInt32, asyncID: UInt64) -> SpanKey? {
        var id = asyncID
        for _ in 0..<64 {
            if let list = tracerByContext[Self.resourceKey(pid, id)], let last = list.last { return SpanKey(pid: pid, recorded: last) }
            guard let info = resources[Self.resourceKey(pid, id)], info.trigger > 1, info.trigger != id else { return nil }
            id = info.trigger
        }
        return nil
    }

    private func syscallEnds(at ts: UInt64, _ s: ThreadState, _ timeline: Timeline) {
        if s.inEpoll {
            s.inEpoll = false
            s.lastEpollEnd = ts
            s.sinceEpoll.removeAll(keepingCapacity: true)
        }
        guard !s.open.isEmpty else { return }
        let last = s.open.count - 1
        s.open[last].syscalls &+= 1
        let duration = ts &- s.syscallBegin
        guard duration >= options.syscallThresholdNs, ts >= s.syscallBegin, s.syscallName >= 0 else { return }
        guard s.open[last].events < OTLPOptions.maxEventsPerSpan else {
            s.open[last].dropped &+= 1
            return
        }
        s.open[last].events += 1
        inner.reset()
        inner.fixed64(1, unix(s.syscallBegin))
        inner.bytes(2, name(s.syscallName, timeline))
        keyValue(&inner, 3, "asynctrace.duration_ns", int: Int64(bitPattern: duration))
        if s.syscallFd >= 0 { keyValue(&inner, 3, "asynctrace.fd", int: s.syscallFd) }
        keyValue(&inner, 3, "asynctrace.return_value", int: s.syscallRet)
        if s.syscallSize != 0 { keyValue(&inner, 3, "asynctrace.size", int: Int64(bitPattern: s.syscallSize)) }
        s.eventTimes.append((s.syscallBegin, s.events.count))
        s.events.message(11, inner)
    }

    private func callbackEnds(_ op: TimelineOp, _ s: ThreadState, _ timeline: Timeline) {
        guard let cb = s.open.popLast() else { return }
        let end = max(op.timestampNs, cb.start)
        let duration = end - cb.start
        let blocking = duration >= options.blockingThresholdNs
        if blocking { blockingCallbacks &+= 1 }
        callbackSpans &+= 1
        encodeCallback(
            cb, s, traceHi: cb.traceHi, traceLo: cb.traceLo, spanID: cb.spanID, parent: cb.parent, start: cb.start,
            end: end, eventsFrom: cb.eventsStart, blocking: blocking, duration: duration,
            link: cb.linkSpan != 0 ? (cb.linkHi, cb.linkLo, cb.linkSpan) : nil, timeline)
        if let key = cb.hosted { hostedPart(cb, key, s, end: end, blocking: blocking, duration: duration, timeline) }
        s.events.truncate(to: cb.eventsStart)
        if s.eventTimes.count > cb.eventTimesStart { s.eventTimes.removeSubrange(cb.eventTimesStart...) }
        if s.sinceEpoll.count < 16 { s.sinceEpoll.append((cb.traceHi, cb.traceLo, cb.spanID)) }
    }

    /// The part of a callback after a tracer span began in it, as a span in the tracer span's trace.
    private func hostedPart(
        _ cb: OpenCallback, _ key: SpanKey, _ s: ThreadState, end: UInt64, blocking: Bool, duration: UInt64,
        _ timeline: Timeline
    ) {
        var ids: (hi: UInt64, lo: UInt64, span: UInt64, end: UInt64)
        if let open = openTracer[key] {
            openTracer[key]!.hostedBy -= 1
            ids = (open.traceHi, open.traceLo, open.spanID, end)
        } else if let ended = endedHosted.removeValue(forKey: key) {
            ids = ended
        } else {
            return
        }
        guard ids.hi != cb.traceHi || ids.lo != cb.traceLo else { return }
        let start = max(cb.hostedAt, cb.start)
        let partEnd = max(start, min(end, ids.end))
        // Events of the part: those that began after it did.
        var from = s.events.count
        for (ts, offset) in s.eventTimes[cb.eventTimesStart...] where ts >= start {
            from = offset
            break
        }
        callbackSpans &+= 1
        encodeCallback(
            cb, s, traceHi: ids.hi, traceLo: ids.lo, spanID: derivedSpanID(cb.spanID, 0x7061_7274), parent: ids.span,
            start: start, end: partEnd, eventsFrom: from, blocking: blocking, duration: duration,
            link: (cb.traceHi, cb.traceLo, cb.spanID), timeline)
    }

    private func encodeCallback(
        _ cb: OpenCallback, _ s: ThreadState, traceHi: UInt64, traceLo: UInt64, spanID: UInt64, parent: UInt64,
        start: UInt64, end: UInt64, eventsFrom: Int, blocking: Bool, duration: UInt64,
        link: (UInt64, UInt64, UInt64)?, _ timeline: Timeline
    ) {
        scratch.reset()
        scratch.id128(1, traceHi, traceLo)
        scratch.id64(2, spanID)
        if parent != 0 { scratch.id64(4, parent) }
        scratch.bytes(5, name(cb.name, timeline))
        scratch.varint(6, 1)  // SPAN_KIND_INTERNAL
        scratch.fixed64(7, unix(start))
        scratch.fixed64(8, unix(end))
        keyValue(&scratch, 9, "thread.id", int: Int64(s.thread.tid))
        keyValue(&scratch, 9, "asynctrace.async_id", int: Int64(bitPattern: cb.asyncID))
        keyValue(&scratch, 9, "asynctrace.trigger_async_id", int: Int64(bitPattern: cb.trigger))
        if cb.syscalls > 0 { keyValue(&scratch, 9, "asynctrace.syscalls", int: Int64(bitPattern: cb.syscalls)) }
        if blocking { keyValue(&scratch, 9, "asynctrace.blocking", bool: true) }
        if s.events.count > eventsFrom { scratch.append(s.events.base + eventsFrom, s.events.count - eventsFrom) }
        if cb.dropped > 0 {
            scratch.varint(12, UInt64(cb.dropped))
            droppedEvents &+= UInt64(cb.dropped)
        }
        if let (hi, lo, span) = link {
            inner.reset()
            inner.id128(1, hi, lo)
            inner.id64(2, span)
            scratch.message(13, inner)
        }
        if blocking {
            inner.reset()
            inner.string(
                2, "blocked its thread for \(Formatting.duration(duration)) (callback at least \(Formatting.duration(options.blockingThresholdNs)))")
            inner.varint(3, 2)  // STATUS_CODE_ERROR
            scratch.message(15, inner)
        }
        add(s)
    }

    /// A loop stall: its own trace, linked to the callbacks that ran in it.
    private func stall(_ s: ThreadState, from: UInt64, to: UInt64, _ timeline: Timeline) {
        s.stalls &+= 1
        let n = UInt64(s.thread.index) << 40 ^ s.stalls
        let (hi, lo) = derivedTraceID(n, 0x7374_616c)
        scratch.reset()
        scratch.id128(1, hi, lo)
        scratch.id64(2, derivedSpanID(n, 0x7374_616c))
        scratch.string(5, "loop stall")
        scratch.varint(6, 1)
        scratch.fixed64(7, unix(from))
        scratch.fixed64(8, unix(to))
        keyValue(&scratch, 9, "thread.id", int: Int64(s.thread.tid))
        keyValue(&scratch, 9, "asynctrace.stall", bool: true)
        keyValue(&scratch, 9, "asynctrace.callbacks", int: Int64(s.sinceEpoll.count))
        for (h, l, span) in s.sinceEpoll {
            inner.reset()
            inner.id128(1, h, l)
            inner.id64(2, span)
            scratch.message(13, inner)
        }
        inner.reset()
        inner.string(2, "the loop did not wait for events for \(Formatting.duration(to - from))")
        inner.varint(3, 2)
        scratch.message(15, inner)
        stallSpans &+= 1
        add(s)
    }

    // MARK: - tracer spans

    public func span(_ change: SpanChange, timeline: Timeline) {
        let key = SpanKey(pid: change.pid, recorded: change.spanID)
        switch change.kind {
        case .begin:
            guard openTracer[key] == nil, change.thread >= 0, change.thread < threads.count else { return }
            let n = UInt64(change.pid) << 40 ^ change.spanID
            let (hi, lo) = derivedTraceID(n, 0x7370_616e)
            var span = TracerSpan(
                thread: change.thread, name: change.text.isEmpty ? "span" : change.text, begin: change.timestampNs,
                context: change.executionAsyncID, traceHi: hi, traceLo: lo, spanID: derivedSpanID(n, 0x7370_616e))
            // The callback it began in: its part from here on belongs to the span's trace.
            let s = threads[change.thread]
            if let i = s.open.lastIndex(where: { $0.asyncID == change.executionAsyncID }), s.open[i].hosted == nil {
                s.open[i].hosted = key
                s.open[i].hostedAt = change.timestampNs
                span.hostedBy = 1
            }
            openTracer[key] = span
            tracerByContext[Self.resourceKey(change.pid, change.executionAsyncID), default: []].append(change.spanID)
        case .attribute:
            guard openTracer[key] != nil else { return }
            attribute(&openTracer[key]!, change.text, at: change.timestampNs)
        case .end:
            guard let span = openTracer.removeValue(forKey: key) else { return }
            let ctx = Self.resourceKey(change.pid, span.context)
            tracerByContext[ctx]?.removeAll { $0 == change.spanID }
            if tracerByContext[ctx]?.isEmpty == true { tracerByContext.removeValue(forKey: ctx) }
            if span.hostedBy > 0 && endedHosted.count < 100_000 {
                endedHosted[key] = (span.traceHi, span.traceLo, span.spanID, change.timestampNs)
            }
            encodeTracer(span, end: max(change.timestampNs, span.begin), timeline)
        }
    }

    private func attribute(_ span: inout TracerSpan, _ text: String, at ts: UInt64) {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let key = parts.first.map(String.init) ?? ""
        let value = parts.count > 1 ? String(parts[1]) : ""
        switch key {
        case "trace.id":
            if !span.frozen, let (hi, lo) = parseHex128(value) { (span.traceHi, span.traceLo) = (hi, lo) }
        case "span.id":
            if !span.frozen, let id = parseHex64(value) { span.spanID = id }
        case "parent.span.id":
            if let id = parseHex64(value) { span.parent = id }
        case "parent.span":
            break  // the parent's id in the trace file; parent.span.id is its OpenTelemetry id
        case "kind":
            switch value {
            case "server": span.kind = 2
            case "client": span.kind = 3
            case "producer": span.kind = 4
            case "consumer": span.kind = 5
            default: span.kind = 1
            }
        case "name":
            if !value.isEmpty { span.name = String(value.prefix(1024)) }
        case "status":
            if value.hasPrefix("ok") {
                span.statusCode = 1
            } else if value.hasPrefix("error") {
                span.statusCode = 2
                span.statusMessage = value.firstIndex(of: ":").map { String(value[value.index(after: $0)...].drop { $0 == " " }.prefix(1024)) } ?? ""
            }
        case "error", "event":
            guard span.events.count < OTLPOptions.maxEventsPerSpan else { span.droppedEvents &+= 1; return }
            if key == "error" {
                span.statusCode = 2
                if span.statusMessage.isEmpty { span.statusMessage = String(value.prefix(1024)) }
                span.events.append((ts, "exception", String(value.prefix(4096))))
            } else {
                span.events.append((ts, String(value.prefix(1024)), ""))
            }
        case "link":
            let ids = value.split(separator: "/")
            if ids.count == 2, span.links.count < 32, let (hi, lo) = parseHex128(String(ids[0])), let s = parseHex64(String(ids[1])) {
                span.links.append((hi, lo, s))
            }
        default:
            guard span.attributes.count < 64 else { span.droppedAttributes &+= 1; return }
            span.attributes.append((String(key.prefix(256)), String(value.prefix(4096))))
        }
    }

    private func encodeTracer(_ span: TracerSpan, end: UInt64, _ timeline: Timeline) {
        let s = threads[span.thread]
        scratch.reset()
        scratch.id128(1, span.traceHi, span.traceLo)
        scratch.id64(2, span.spanID)
        if span.parent != 0 { scratch.id64(4, span.parent) }
        scratch.string(5, span.name)
        scratch.varint(6, span.kind)
        scratch.fixed64(7, unix(span.begin))
        scratch.fixed64(8, unix(end))
        keyValue(&scratch, 9, "thread.id", int: Int64(s.thread.tid))
        keyValue(&scratch, 9, "asynctrace.execution_async_id", int: Int64(bitPattern: span.context))
        for (k, v) in span.attributes { keyValue(&scratch, 9, k, string: v) }
        if span.droppedAttributes > 0 { scratch.varint(10, UInt64(span.droppedAttributes)) }
        for e in span.events {
            inner.reset()
            inner.fixed64(1, unix(e.ts))
            inner.string(2, e.name)
            if !e.message.isEmpty { keyValue(&inner, 3, "exception.message", string: e.message) }
            scratch.message(11, inner)
        }
        if span.droppedEvents > 0 { scratch.varint(12, UInt64(span.droppedEvents)) }
        for l in span.links {
            inner.reset()
            inner.id128(1, l.hi, l.lo)
            inner.id64(2, l.span)
            scratch.message(13, inner)
        }
        if span.statusCode != 0 {
            inner.reset()
            if !span.statusMessage.isEmpty { inner.string(2, span.statusMessage) }
            inner.varint(3, span.statusCode)
            scratch.message(15, inner)
        }
        tracerSpans &+= 1
        add(s)
    }

    // MARK: - batches

    /// Adds the span in `scratch` to its thread's batch; sends the batch when it is full.
    private func add(_ s: ThreadState) {
        if failure != nil {
            undelivered &+= 1
            return
        }
        s.batch.message(2, scratch)  // ScopeSpans.spans
        s.batchSpans += 1
        spans &+= 1
        pendingSpans += 1
        pendingBytes += scratch.count + 4
        if pendingSpans >= options.maxSpansPerRequest || pendingBytes >= options.maxBytesPerRequest { flush() }
    }

    /// Sends what is batched as one request (called at the end too).
    public func flush() {
        guard pendingSpans > 0 else { return }
        request.reset()
        var resource = ProtoBuffer(capacity: 512)
        var scope = ProtoBuffer(capacity: 64)  // InstrumentationScope
        scope.string(1, "asynctrace")
        for s in threads where s.batchSpans > 0 {
            resource.reset()
            resourceAttributes(s.thread, &resource)
            let scopeSpansLength = 1 + varintLength(UInt64(scope.count)) + scope.count + s.batch.count
            let resourceSpansLength =
                1 + varintLength(UInt64(resource.count)) + resource.count
                + 1 + varintLength(UInt64(scopeSpansLength)) + scopeSpansLength
            request.tag(1, 2)  // ExportTraceServiceRequest.resource_spans
            request.rawVarint(UInt64(resourceSpansLength))
            request.message(1, resource)  // ResourceSpans.resource
            request.tag(2, 2)  // ResourceSpans.scope_spans
            request.rawVarint(UInt64(scopeSpansLength))
            request.message(1, scope)  // ScopeSpans.scope
            request.append(s.batch.base, s.batch.count)
            s.batch.reset()
            s.batchSpans = 0
        }
        let n = pendingSpans
        pendingSpans = 0
        pendingBytes = 0
        do throws(ExportError) {
            try sink.send(UnsafeRawBufferPointer(start: request.base, count: request.count), spans: n)
            requests &+= 1
        } catch {
            failure = error
            spans &-= UInt64(n)
            undelivered &+= UInt64(n)
        }
    }

    private func resourceAttributes(_ t: TimelineThread, _ r: inout ProtoBuffer) {
        let command = String(commandLine(pid: t.pid).prefix(4096))
        let executable = Self.executableName(command)
        keyValue(&r, 1, "service.name", string: options.serviceName ?? (executable.isEmpty ? "unknown_service" : executable))
        keyValue(&r, 1, "process.pid", int: Int64(t.pid))
        if !executable.isEmpty { keyValue(&r, 1, "process.executable.name", string: executable) }
        if !command.isEmpty { keyValue(&r, 1, "process.command_line", string: command) }
        keyValue(&r, 1, "thread.id", int: Int64(t.tid))
        // The thread's name now (a threadInfo event may have renamed it since it was added).
        let name = timeline.flatMap { t.index < $0.threads.count ? $0.threads[t.index].name : nil } ?? t.name
        keyValue(&r, 1, "thread.name", string: name.map { $0.isEmpty ? "thread \(t.tid)" : String($0.prefix(1024)) } ?? "thread \(t.tid)")
        keyValue(&r, 1, "telemetry.sdk.name", string: "asynctrace")
        keyValue(&r, 1, "telemetry.sdk.language", string: "swift")
    }

    private var timeline: Timeline?

    private func commandLine(pid: UInt32) -> String {
        if let p = timeline?.processes.first(where: { $0.pid == pid }), !p.program.isEmpty { return p.program }
        return ""
    }

    static func executableName(_ command: String) -> String {
        let first = command.split(separator: " ", maxSplits: 1).first.map(String.init) ?? command
        return first.split(separator: "/").last.map(String.init) ?? first
    }

    // MARK: - encoding helpers

    private func name(_ id: Int, _ timeline: Timeline) -> [UInt8] {
        if id >= 0 && id < nameBytes.count && !nameBytes[id].isEmpty { return nameBytes[id] }
        guard id >= 0 && id < timeline.names.count else { return Array("callback".utf8) }
        if id >= nameBytes.count { nameBytes.append(contentsOf: repeatElement([], count: id - nameBytes.count + 1)) }
        let text = timeline.names[id]
        nameBytes[id] = Array((text.isEmpty ? "callback" : String(text.prefix(1024))).utf8)
        return nameBytes[id]
    }
}

extension ProtoBuffer {
    @inline(__always)
    mutating func bytes(_ field: UInt32, _ array: [UInt8]) {
        array.withUnsafeBufferPointer { bytes(field, $0.baseAddress ?? UnsafePointer(base), $0.count) }
    }
}

// KeyValue {key, AnyValue} appended as the attributes field of the message being built: `field` is 9 in a
// Span, 3 in a Span.Event, 1 in a Resource.
@inline(__always)
private func keyValueHeader(_ b: inout ProtoBuffer, field: UInt32, keyCount: Int, valueLength: Int) {
    let kvLength = 1 + varintLength(UInt64(keyCount)) + keyCount + 1 + varintLength(UInt64(valueLength)) + valueLength
    b.tag(field, 2)
    b.rawVarint(UInt64(kvLength))
    b.tag(1, 2)
    b.rawVarint(UInt64(keyCount))
}

func keyValue(_ b: inout ProtoBuffer, _ field: UInt32, _ key: StaticString, int v: Int64) {
    let value = UInt64(bitPattern: v)
    let anyLength = 1 + varintLength(value)
    keyValueHeader(&b, field: field, keyCount: key.utf8CodeUnitCount, valueLength: anyLength)
    b.append(key)
    b.tag(2, 2)
    b.rawVarint(UInt64(anyLength))
    b.varint(3, value)  // AnyValue.int_value
}

func keyValue(_ b: inout ProtoBuffer, _ field: UInt32, _ key: StaticString, bool v: Bool) {
    keyValueHeader(&b, field: field, keyCount: key.utf8CodeUnitCount, valueLength: 2)
    b.append(key)
    b.tag(2, 2)
    b.rawVarint(2)
    b.bool(2, v)  // AnyValue.bool_value
}

func keyValue(_ b: inout ProtoBuffer, _ field: UInt32, _ key: StaticString, string v: String) {
    keyValue(&b, field, key.withUTF8Buffer { String(decoding: $0, as: UTF8.self) }, string: v)
}

func keyValue(_ b: inout ProtoBuffer, _ field: UInt32, _ key: String, string v: String) {
    var k = key, v = v
    k.withUTF8 { k in
        v.withUTF8 { s in
            let anyLength = 1 + varintLength(UInt64(s.count)) + s.count
            keyValueHeader(&b, field: field, keyCount: k.count, valueLength: anyLength)
            if let p = k.baseAddress { b.append(p, k.count) }
            b.tag(2, 2)
            b.rawVarint(UInt64(anyLength))
            b.tag(1, 2)  // AnyValue.string_value
            b.rawVarint(UInt64(s.count))
            if let p = s.baseAddress { b.append(p, s.count) }
        }
    }
}

/// 32 hex digits, not all zero (W3C trace-id).
func parseHex128(_ s: String) -> (UInt64, UInt64)? {
    guard s.utf8.count == 32, let hi = UInt64(s.prefix(16), radix: 16), let lo = UInt64(s.suffix(16), radix: 16),
        s.utf8.allSatisfy({ isHexDigit($0) }), hi | lo != 0
    else { return nil }
    return (hi, lo)
}

/// 16 hex digits, not all zero (W3C parent-id).
func parseHex64(_ s: String) -> UInt64? {
    guard s.utf8.count == 16, s.utf8.allSatisfy({ isHexDigit($0) }), let v = UInt64(s, radix: 16), v != 0 else { return nil }
    return v
}

private func isHexDigit(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70) }

/// splitmix64's finalizer: a bijection, so distinct inputs give distinct ids.
@inline(__always)
func mix(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
