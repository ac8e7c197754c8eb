// Chrome's JSON trace format (chrome://tracing, Perfetto UI's JSON importer).
// Slices become complete ("X") events written when they end; flows use the v2 binding
// (`bind_id` with `flow_out` on the source and `flow_in` on the target); "M" events name processes and threads.
import TraceReports

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
        out.write(JSONWriter.quote(timeline.reader.path))
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
        middles.append([[UInt8]?](repeating: nil, count: 8))
        if !timeline.threads.dropLast().contains(where: { $0.pid == thread.pid }) {
            open()
            out.write("{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":")
            out.write(uint: UInt64(process.pid))
            out.write(",\"tid\":0,\"args\":{\"name\":")
            out.write(JSONWriter.quote(process.program.isEmpty ? "pid \(process.pid)" : process.program))
            out.write("}}")
        }
        open()
        out.write("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":")
        out.write(uint: UInt64(thread.pid))
        out.write(",\"tid\":")
        out.write(uint: UInt64(thread.tid))
        out.write(",\"args\":{\"name\":")
        out.write(JSONWriter.quote(thread.name.map { $0.isEmpty ? "thread \(thread.tid)" : $0 } ?? "thread \(thread.tid)"))
        out.write("}}")
    }

    /// `,"cat":"…","pid":P,"tid":T,"ts":` per thread and slice kind, built once.
    private var middles: [[[UInt8]?]] = []

    private func head(_ ph: StaticString, _ op: TimelineOp, timeline: Timeline) {
        open()
        out.write(ph.utf8Start, count: ph.utf8CodeUnitCount)
        names.write(op.name, timeline.names, to: out)
        let k = Int(op.slice.rawValue)
        if middles[op.thread][k] == nil {
            let th = timeline.threads[op.thread]
            middles[op.thread][k] = Array(",\"cat\":\"\(op.slice.category)\",\"pid\":\(th.pid),\"tid\":\(th.tid),\"ts\":".utf8)
        }
        middles[op.thread][k]!.withUnsafeBytes { out.write($0) }
        out.write(microsFromNanos: rel(op.timestampNs))
    }

    private func flow(_ id: UInt64, out isOut: Bool) {
        out.write(",\"bind_id\":\"0x")
        var digits: [UInt8] = []
        var v = id
        repeat {
            let d = UInt8(v & 15)
            digits.append(d < 10 ? 48 + d : 87 + d)
            v >>= 4
        } while v > 0
        for d in digits.reversed() { out.write(byte: d) }
        out.write(isOut ? "\",\"flow_out\":true" : "\",\"flow_in\":true")
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        switch op.kind {
        case .begin:
            stacks[op.thread].append(op)
        case .end:
            guard let b = stacks[op.thread].popLast() else { return }
            head("{\"ph\":\"X\",\"name\":", b, timeline: timeline)
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
                head("{\"ph\":\"X\",\"name\":", op, timeline: timeline)
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
                head("{\"ph\":\"i\",\"name\":", op, timeline: timeline)
                out.write(",\"s\":\"t\"}")
            }
        case .counter:
            head("{\"ph\":\"C\",\"name\":", op, timeline: timeline)
            out.write(",\"args\":{\"value\":")
            out.write(int: op.counterValue)
            out.write("}}")
        }
    }
}
