// Chrome's JSON trace format (chrome://tracing, Perfetto UI's JSON importer).
// Slices become complete ("X") events written when they end; flows use the v2 binding
// (`bind_id` with `flow_out` on the source and `flow_in` on the target); "M" events name processes and threads.

public final class ChromeTraceExporter: TimelineSink {
    /// Browsers give up on JSON traces much larger than this.
    public static let warnAboveBytes: UInt64 = 500_000_000

    let out: OutputFile
    let baseNs: UInt64
    private var names = QuotedNames()
    private var stacks: [[TimelineOp]] = []
    private var first = true
    public private(set) var eventsWritten: UInt64 = 0

    /// Timestamps are written relative to `baseNs` (µs), so they stay short.
    public init(output: OutputFile, baseNs: UInt64) {
        self.out = output
        self.baseNs = baseNs
        out.write("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")
    }

    public func finish(timeline: Timeline) {
        out.write("\n],\"otherData\":{\"exporter\":\"asynctrace\",\"trace\":")
        out.write(JSONText.quoted(timeline.reader.path))
        out.write(",\"base_monotonic_ns\":")
        out.write(uint: baseNs)
        out.write("}}\n")
    }

    @inline(__always)
    private func open() {
        if first { first = false } else { out.write(byte: UInt8(ascii: ",")); out.write(byte: 10) }
        eventsWritten &+= 1
    }

    @inline(__always)
    private func rel(_ ns: UInt64) -> UInt64 { ns > baseNs ? ns - baseNs : 0 }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        stacks.append([])
        if !timeline.threads.dropLast().contains(where: { $0.pid == thread.pid }) {
            open()
            out.write("{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":")
            out.write(uint: UInt64(process.pid))
            out.write(",\"tid\":0,\"args\":{\"name\":")
            out.write(JSONText.quoted(process.program.isEmpty ? "pid \(process.pid)" : process.program))
            out.write("}}")
        }
        open()
        out.write("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":")
        out.write(uint: UInt64(thread.pid))
        out.write(",\"tid\":")
        out.write(uint: UInt64(thread.tid))
        out.write(",\"args\":{\"name\":")
        out.write(JSONText.quoted(thread.name.map { $0.isEmpty ? "thread \(thread.tid)" : $0 } ?? "thread \(thread.tid)"))
        out.write("}}")
    }

    private func head(_ ph: String, _ op: TimelineOp, timeline: Timeline) {
        open()
        out.write("{\"ph\":\"")
        out.write(ph)
        out.write("\",\"name\":")
        names.write(op.name, timeline.names, to: out)
        out.write(",\"cat\":\"")
        out.write(op.slice.category)
        out.write("\",\"pid\":")
        let th = timeline.threads[op.thread]
        out.write(uint: UInt64(th.pid))
        out.write(",\"tid\":")
        out.write(uint: UInt64(th.tid))
        out.write(",\"ts\":")
        out.write(microsFromNanos: rel(op.timestampNs))
    }

    private func flow(_ id: UInt64, out isOut: Bool) {
        out.write(",\"bind_id\":\"0x")
        out.write(String(id, radix: 16))
        out.write(isOut ? "\",\"flow_out\":true" : "\",\"flow_in\":true")
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        switch op.kind {
        case .begin:
            stacks[op.thread].append(op)
        case .end:
            guard let b = stacks[op.thread].popLast() else { return }
            head("X", b, timeline: timeline)
            out.write(",\"dur\":")
            // Both ends relative and clamped alike (a syscall may have begun before the trace's first chunk).
            out.write(microsFromNanos: rel(op.timestampNs) - rel(b.timestampNs))
            switch b.slice {
            case .callback:
                out.write(",\"args\":{\"async_id\":")
                out.write(uint: b.asyncID)
                out.write(",\"trigger_async_id\":")
                out.write(uint: b.triggerID)
                out.write(",\"type\":")
                names.write(b.typeName, timeline.names, to: out)
                out.write("}")
                // One binding per event: the trigger flow (first callback) wins over an epoll-ready flow.
                if b.flowIn != 0 { flow(b.flowIn, out: false) } else if b.flowIn2 != 0 { flow(b.flowIn2, out: false) }
            case .syscall:
                out.write(",\"args\":{\"fd\":")
                out.write(int: b.fd)
                out.write(",\"ret\":")
                out.write(int: b.ret)
                out.write("}")
            case .poll:
                out.write(",\"args\":{\"timeout_ms\":")
                out.write(int: b.ret)
                out.write("}")
            default:
                break
            }
            out.write("}")
        case .instant:
            if op.flowOut != 0 {
                // A zero-length complete event, so the flow has a slice to bind to.
                head("X", op, timeline: timeline)
                out.write(",\"dur\":0,\"args\":{\"async_id\":")
                out.write(uint: op.asyncID)
                if op.slice == .ready {
                    out.write(",\"fd\":")
                    out.write(int: op.fd)
                }
                out.write("}")
                flow(op.flowOut, out: true)
                out.write("}")
            } else {
                head("i", op, timeline: timeline)
                out.write(",\"s\":\"t\"}")
            }
        case .counter:
            head("C", op, timeline: timeline)
            out.write(",\"args\":{\"value\":")
            out.write(int: op.counterValue)
            out.write("}}")
        }
    }
}
