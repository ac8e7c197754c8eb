// Chrome's JSON trace format (chrome://tracing, Perfetto UI's JSON importer).
// Slices become complete ("X") events written when they end; flows use the v2 binding
// (`bind_id` with `flow_out` on the source and `flow_in` on the target); "M" events name processes and threads.
import TraceText

/// Writes the timeline as Chrome's JSON trace format (chrome://tracing, Perfetto UI's JSON importer):
/// complete ("X") events, v2 flows, and "M" events naming processes and threads. Call `finish` after the pass.
public final class ChromeTraceExporter: TimelineSink {
    /// Browsers give up on JSON traces much larger than this.
    public static let warnAboveBytes: UInt64 = 500_000_000

    let out: OutputFile
    let baseNs: UInt64
    // Per-event state: no dynamic exclusivity checks.
    @exclusivity(unchecked) private var names = QuotedNames()
    /// `,"cat":"…","pid":P,"tid":T,"ts":` by (thread × 8 + slice kind), built once.
    @exclusivity(unchecked) private var middles = ByteArena()
    /// Per thread: `{"ph":…,"name":"…","cat":…,"ts":` by (name, slice kind, phase), one copy per event.
    @exclusivity(unchecked) private var prefixes: [ByteArena] = []
    /// Names with ids below this get a cached prefix (bounds the per-thread tables; marks may name thousands).
    static let prefixedNames = 4096
    /// Lookup slots all threads' prefix caches may hold together (8 bytes each): a trace of 65,536 threads
    /// would otherwise grow a cache per thread (367 MB seen); past the budget heads are built uncached.
    static let prefixSlotBudget = 4 << 20
    @exclusivity(unchecked) private var prefixSlotsLeft = ChromeTraceExporter.prefixSlotBudget
    /// Processes whose process_name record was written, and the name written.
    @exclusivity(unchecked) private var processesNamed: [UInt32: String] = [:]
    @exclusivity(unchecked) private var stacks = PerThreadStacks<TimelineOp>()
    @exclusivity(unchecked) private var first = true
    /// JSON events written so far.
    @exclusivity(unchecked) public private(set) var eventsWritten: UInt64 = 0

    /// Timestamps are written relative to `baseNs` (µs), so they stay short.
    public init(output: OutputFile, baseNs: UInt64) {
        self.out = output
        self.baseNs = baseNs
        out.write("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")
    }

    deinit {
        names.deallocate()
        middles.deallocate()
        stacks.deallocate()
        for p in prefixes { p.deallocate() }
    }

    /// Open spans: name and attributes so far (Chrome's async events take their args at the end).
    @exclusivity(unchecked) private var openSpans: [UInt64: (name: String, args: [(String, String)])] = [:]

    /// Spans as async events ("b"/"e", one id per span, category "span"), so they need not nest.
    public func span(_ change: SpanChange, timeline: Timeline) {
        let key = UInt64(change.pid) << 40 ^ change.spanID
        let tid = timeline.threads[change.thread].tid
        switch change.kind {
        case .begin:
            openSpans[key] = (change.text, [("execution_async_id", String(change.executionAsyncID))])
            writeSpan("b", name: change.text, key: key, pid: change.pid, tid: tid, ts: change.timestampNs, args: [])
        case .attribute:
            guard openSpans[key] != nil, openSpans[key]!.args.count < 64 else { return }
            let parts = change.text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            openSpans[key]!.args.append((String(parts[0]), parts.count > 1 ? String(parts[1]) : ""))
        case .end:
            guard let s = openSpans.removeValue(forKey: key) else { return }
            writeSpan("e", name: s.name, key: key, pid: change.pid, tid: tid, ts: change.timestampNs, args: s.args)
        }
    }

    private func writeSpan(_ ph: String, name: String, key: UInt64, pid: UInt32, tid: UInt32, ts: UInt64, args: [(String, String)]) {
        var text = "{\"ph\":\"\(ph)\",\"cat\":\"span\",\"name\":" + JSONWriter.quote(name)
        text += ",\"id\":\"0x" + String(key, radix: 16) + "\",\"pid\":\(pid),\"tid\":\(tid),\"ts\":"
        let ns = rel(ts)
        text += "\(ns / 1000).\(String(ns % 1000 + 1000).dropFirst())"
        if !args.isEmpty {
            text += ",\"args\":{" + args.map { JSONWriter.quote($0.0) + ":" + JSONWriter.quote($0.1) }.joined(separator: ",") + "}"
        }
        text += "}"
        var w = out.reserve(2)
        open(&w)
        out.commit(w)
        out.write(text)
    }

    /// Closes the JSON (the trace's path and base time go into `otherData`); call once, after `Timeline.run`.
    public func finish(timeline: Timeline) {
        out.write("\n],\"otherData\":{\"exporter\":\"asynctrace\",\"trace\":")
        out.write(JSONWriter.quote(timeline.reader.path))
        out.write(",\"base_monotonic_ns\":")
        out.write(uint: baseNs)
        out.write("}}\n")
    }

    /// The separator before every event but the first.
    @inline(__always)
    private func open(_ w: inout ByteWriter) {
        if first { first = false } else { w.put(",\n") }
        eventsWritten &+= 1
    }

    @inline(__always)
    private func rel(_ ns: UInt64) -> UInt64 { ns > baseNs ? ns - baseNs : 0 }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        stacks.addThread()
        prefixes.append(ByteArena(capacity: 64))  // grows as needed; a trace may have 65,536 threads
        var text = ""
        if processesNamed[thread.pid] == nil {
            text += processNameRecord(process)
        }
        if !text.isEmpty { text += ",\n" }
        text +=
            "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":\(thread.pid),\"tid\":\(thread.tid),\"args\":{\"name\":"
            + JSONWriter.quote(thread.name.map { $0.isEmpty ? "thread \(thread.tid)" : $0 } ?? "thread \(thread.tid)") + "}}"
        var w = out.reserve(2)
        open(&w)
        out.commit(w)
        out.write(text)
    }

    /// The process_name record of `process` (its title, else its program, else "pid N"), noted as written.
    private func processNameRecord(_ process: TimelineProcess) -> String {
        let name = process.displayName.isEmpty ? "pid \(process.pid)" : process.displayName
        processesNamed[process.pid] = name
        return "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":\(process.pid),\"tid\":0,\"args\":{\"name\":"
            + JSONWriter.quote(name) + "}}"
    }

    /// A process that took its title after it appeared (a forked child sets it right after the fork) is named
    /// again by it: the later process_name record is the one viewers show.
    public func finished(timeline: Timeline) {
        for process in timeline.processes {
            guard let written = processesNamed[process.pid], !process.displayName.isEmpty,
                written != process.displayName
            else { continue }
            var w = out.reserve(2)
            open(&w)
            out.commit(w)
            out.write(processNameRecord(process))
        }
    }

    private func middle(_ op: TimelineOp, timeline: Timeline) -> UnsafeRawBufferPointer {
        let key = op.thread * 8 + Int(op.slice.rawValue)
        if let m = middles.lookup(key) { return m }
        let th = timeline.threads[op.thread]
        return middles.store(key, Array(",\"cat\":\"\(op.slice.category)\",\"pid\":\(th.pid),\"tid\":\(th.tid),\"ts\":".utf8))
    }

    /// The cached `{"ph":…,"name":"…","cat":…,"pid":…,"tid":…,"ts":` of (thread, name, slice kind, phase).
    @inline(__always)
    private func prefix(_ ph: StaticString, _ phase: Int, _ op: TimelineOp, timeline: Timeline) -> UnsafeRawBufferPointer? {
        guard op.name < Self.prefixedNames else { return nil }
        let key = (op.name * 8 + Int(op.slice.rawValue)) * 4 + phase
        if let p = prefixes[op.thread].lookup(key) { return p }
        let grow = key + 1 - prefixes[op.thread].slots
        if grow > 0 {
            guard grow <= prefixSlotsLeft else { return nil }
            prefixSlotsLeft -= grow
        }
        var bytes = Array(UnsafeRawBufferPointer(start: ph.utf8Start, count: ph.utf8CodeUnitCount))
        bytes += names.get(op.name, timeline.names)
        bytes += middle(op, timeline: timeline)
        return prefixes[op.thread].store(key, bytes)
    }

    /// `{"ph":"X","name":"…","cat":…,"ts":T` with room for `extra` more bytes after it.
    @inline(__always)
    private func head(_ ph: StaticString, phase: Int, _ op: TimelineOp, extra: Int, timeline: Timeline) -> ByteWriter {
        if let pre = prefix(ph, phase, op, timeline: timeline) {
            var w = out.reserve(40 + pre.count + extra)
            open(&w)
            w.put(pre)
            w.put(microsFromNanos: rel(op.timestampNs))
            return w
        }
        let name = names.get(op.name, timeline.names)
        let mid = middle(op, timeline: timeline)  // another arena: `name` stays valid
        var w = out.reserve(40 + name.count + mid.count + extra)
        open(&w)
        w.put(ph)
        w.put(name)
        w.put(mid)
        w.put(microsFromNanos: rel(op.timestampNs))
        return w
    }

    @inline(__always)
    private func flow(_ w: inout ByteWriter, _ id: UInt64, out isOut: Bool) {
        w.put(",\"bind_id\":\"0x")
        w.put(hex: id)
        w.put(isOut ? "\",\"flow_out\":true" : "\",\"flow_in\":true")
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        switch op.kind {
        case .begin:
            stacks.push(op.thread, op)
        case .end:
            guard let b = stacks.pop(op.thread) else { return }
            // 240: the longest fixed text and numbers below (6 integers of ≤ 20 digits, a flow, punctuation).
            let type = b.slice == .callback ? names.get(b.typeName, timeline.names).count : 0
            var w = head("{\"ph\":\"X\",\"name\":", phase: 0, b, extra: 240 + type, timeline: timeline)
            w.put(",\"dur\":")
            // Both ends relative and clamped alike (a syscall may have begun before the trace's first chunk).
            w.put(microsFromNanos: rel(op.timestampNs) - rel(b.timestampNs))
            switch b.slice {
            case .callback:
                w.put(",\"args\":{\"async_id\":")
                w.put(uint: b.asyncID)
                w.put(",\"trigger_async_id\":")
                w.put(uint: b.triggerID)
                w.put(",\"type\":")
                // Fetched again: `head` may have added a name, moving the arena.
                w.put(names.get(b.typeName, timeline.names))
                w.put(UInt8(ascii: "}"))
                // One binding per event: the trigger flow (first callback) wins over an epoll-ready flow.
                if b.flowIn != 0 { flow(&w, b.flowIn, out: false) } else if b.flowIn2 != 0 { flow(&w, b.flowIn2, out: false) }
            case .syscall:
                w.put(",\"args\":{\"fd\":")
                w.put(int: b.fd)
                w.put(",\"ret\":")
                w.put(int: b.ret)
                w.put(UInt8(ascii: "}"))
            case .poll:
                w.put(",\"args\":{\"timeout_ms\":")
                w.put(int: b.ret)
                w.put(UInt8(ascii: "}"))
            default:
                break
            }
            w.put(UInt8(ascii: "}"))
            out.commit(w)
        case .instant:
            if op.flowOut != 0 {
                // A zero-length complete event, so the flow has a slice to bind to.
                var w = head("{\"ph\":\"X\",\"name\":", phase: 0, op, extra: 160, timeline: timeline)
                w.put(",\"dur\":0,\"args\":{\"async_id\":")
                w.put(uint: op.asyncID)
                if op.slice == .ready {
                    w.put(",\"fd\":")
                    w.put(int: op.fd)
                }
                w.put(UInt8(ascii: "}"))
                flow(&w, op.flowOut, out: true)
                w.put(UInt8(ascii: "}"))
                out.commit(w)
            } else {
                var w = head("{\"ph\":\"i\",\"name\":", phase: 1, op, extra: 16, timeline: timeline)
                w.put(",\"s\":\"t\"}")
                out.commit(w)
            }
        case .counter:
            var w = head("{\"ph\":\"C\",\"name\":", phase: 2, op, extra: 64, timeline: timeline)
            w.put(",\"args\":{\"value\":")
            w.put(int: op.counterValue)
            w.put("}}")
            out.commit(w)
        }
    }
}
