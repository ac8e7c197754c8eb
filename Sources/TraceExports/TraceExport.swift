// The entry point of `asynctrace export`: one pass over the trace into the chosen format.
import TraceReader

/// The formats `asynctrace export` writes.
public enum ExportFormat: String, Sendable, CaseIterable {
    /// Perfetto protobuf, Chrome JSON, speedscope JSON, folded stacks, OTLP/protobuf.
    case perfetto, chrome, speedscope, folded, otlp

    /// The file name extension used when no output path is given.
    public var defaultExtension: String {
        switch self {
        case .perfetto: "perfetto-trace"
        case .chrome: "json"
        case .speedscope: "speedscope.json"
        case .folded: "folded"
        case .otlp: "otlp.pb"
        }
    }
}

/// What an export wrote, for the command's closing line.
public struct ExportSummary: Sendable {
    /// The format written.
    public var format: ExportFormat
    /// Where (a path, "-", or an OTLP endpoint).
    public var outputPath: String
    /// Trace events read.
    public var events: UInt64
    /// Bytes written (or sent to the endpoint).
    public var bytesWritten: UInt64
    /// Callbacks in the timeline.
    public var callbacks: UInt64
    /// Kernel syscalls in the timeline.
    public var syscalls: UInt64
    /// Threads in the timeline.
    public var threads: Int
    /// OTLP: spans written or sent, and in how many requests.
    public var spans: UInt64 = 0
    /// OTLP: requests written or sent.
    public var requests: UInt64 = 0
    /// OTLP: callbacks marked blocking.
    public var blockingCallbacks: UInt64 = 0
    /// OTLP: loop stalls exported as spans.
    public var stalls: UInt64 = 0
    /// OTLP: a tracer's spans exported.
    public var tracerSpans: UInt64 = 0
    /// Things the user should know (size warnings, damage in the trace).
    public var warnings: [String]

    /// `bytesWritten / events` (0 when there were no events).
    public var bytesPerEvent: Double { events == 0 ? 0 : Double(bytesWritten) / Double(events) }
}

/// The entry point of `asynctrace export`: one pass over the trace into the chosen format.
public enum TraceExport {
    /// Exports `reader`'s trace to `outputPath` ("-": standard output).
    public static func run(
        reader: TraceReader, format: ExportFormat, outputPath: String,
        grouping: StackGrouping = .callback, weight: StackWeight = .busy,
        chromeWarnBytes: UInt64 = ChromeTraceExporter.warnAboveBytes,
        otlp: OTLPOptions = OTLPOptions(), otlpEndpoint: OTLPEndpoint? = nil,
        progress: ((Double) -> Void)? = nil
    ) throws(ExportError) -> ExportSummary {
        if let otlpEndpoint {
            precondition(format == .otlp, "an OTLP endpoint is for the otlp format")
            let sender = OTLPHTTPSender(endpoint: otlpEndpoint)
            sender.maxRetryMs = otlp.retryForMs
            defer { sender.close() }
            return try runOTLP(
                reader: reader, sink: sender, outputPath: otlpEndpoint.description, bytes: { sender.bytesSent },
                options: otlp, progress: progress)
        }
        if format == .otlp {
            let out = try OutputFile(path: outputPath, uncached: true, sparing: reader.fileIdentity)
            let summary = try runOTLP(
                reader: reader, sink: OTLPFileSink(output: out), outputPath: outputPath,
                bytes: { out.bytesWritten }, options: otlp, progress: progress)
            try out.close()
            var s = summary
            s.bytesWritten = out.bytesWritten
            return s
        }
        let out = try OutputFile(path: outputPath, uncached: true, sparing: reader.fileIdentity)
        let timeline = Timeline(reader: reader)
        let base = reader.firstNs
        var warnings: [String] = []
        switch format {
        case .perfetto:
            var sink = PerfettoExporter(output: out)
            timeline.run(into: &sink, progress: progress)
        case .chrome:
            var sink = ChromeTraceExporter(output: out, baseNs: base)
            timeline.run(into: &sink, progress: progress)
            sink.finish(timeline: timeline)
        case .speedscope:
            var sink = SpeedscopeExporter(output: out, baseNs: base, spoolDirectory: spoolDirectory(for: outputPath))
            timeline.run(into: &sink, progress: progress)
            try sink.finish(timeline: timeline)
            if sink.threadsLeftOut > 0 {
                warnings.append(
                    "speedscope: \(sink.threadsLeftOut) threads past the first \(SpeedscopeExporter.maxSpooledThreads) "
                        + "(\(sink.slicesLeftOut) slices) were left out; --format perfetto has them all")
            }
        case .folded:
            var sink = StackAggregator(grouping: grouping, weight: weight)
            timeline.run(into: &sink, progress: progress)
            FoldedStacks.write(sink.tree, to: out)
            if grouping == .code && sink.sampleCount == 0 {
                warnings.append(Flamegraph.noSamplesWarning)
            } else if sink.tree.totalWeight == 0 && weight == .busy {
                warnings.append("no time was spent in callbacks (a kernel-only trace?); --weight wall counts all time")
            }
        case .otlp:
            preconditionFailure("handled above")
        }
        try out.close()
        if format == .chrome && out.bytesWritten > chromeWarnBytes {
            warnings.append(
                "\(outputPath) is \(out.bytesWritten / 1_000_000) MB; browsers (chrome://tracing) give up on JSON "
                    + "traces above ~500 MB: use --format perfetto and ui.perfetto.dev instead")
        }
        for d in reader.damage + timeline.decodeDamage { warnings.append("damaged trace: \(d.message)") }
        return ExportSummary(
            format: format, outputPath: outputPath, events: timeline.stats.events,
            bytesWritten: out.bytesWritten, callbacks: timeline.stats.callbacks,
            syscalls: timeline.stats.syscalls, threads: timeline.threads.count, warnings: warnings)
    }

    /// The OTLP pass: spans batched into requests for `sink` (a file or an endpoint).
    static func runOTLP(
        reader: TraceReader, sink: OTLPRequestSink, outputPath: String, bytes: () -> UInt64, options: OTLPOptions,
        progress: ((Double) -> Void)?
    ) throws(ExportError) -> ExportSummary {
        let timeline = Timeline(reader: reader)
        let exporter = OTLPExporter(sink: sink, header: reader.header, options: options)
        var s = exporter
        timeline.run(into: &s, progress: progress)
        exporter.flush()
        if let failure = exporter.failure {
            throw ExportError(
                "\(failure.message) (\(exporter.spans) spans delivered in \(exporter.requests) requests, "
                    + "\(exporter.undelivered) not delivered)")
        }
        var warnings: [String] = []
        if exporter.droppedEvents > 0 {
            warnings.append(
                "otlp: \(exporter.droppedEvents) syscall span events past \(OTLPOptions.maxEventsPerSpan) per span were left out "
                    + "(counted in dropped_events_count); raise --syscall-threshold to keep the longest")
        }
        for d in reader.damage + timeline.decodeDamage { warnings.append("damaged trace: \(d.message)") }
        var summary = ExportSummary(
            format: .otlp, outputPath: outputPath, events: timeline.stats.events, bytesWritten: bytes(),
            callbacks: timeline.stats.callbacks, syscalls: timeline.stats.syscalls,
            threads: timeline.threads.count, warnings: warnings)
        summary.spans = exporter.spans
        summary.requests = exporter.requests
        summary.blockingCallbacks = exporter.blockingCallbacks
        summary.stalls = exporter.stallSpans
        summary.tracerSpans = exporter.tracerSpans
        return summary
    }

    static func spoolDirectory(for outputPath: String) -> String {
        if outputPath == "-" { return "/tmp" }
        guard let slash = outputPath.lastIndex(of: "/") else { return "." }
        let dir = String(outputPath[..<slash])
        return dir.isEmpty ? "/" : dir
    }
}

/// Flame graphs (`asynctrace flamegraph`): time aggregated by stack, drawn as a `FlamegraphSVG`.
public enum Flamegraph {
    /// What a flame graph holds.
    public struct Summary: Sendable {
        /// Trace events read.
        public var events: UInt64
        /// Frames in the tree (the root not counted).
        public var frames: Int
        /// All time drawn (ns).
        public var totalWeight: UInt64
        /// Things the user should know (no samples, no time in callbacks, damage).
        public var warnings: [String]
    }

    static let noSamplesWarning = "the trace has no CPU samples (record with --sample-rate > 0, as root or with CAP_PERFMON)"

    /// Aggregates the trace by stack in one timeline pass: the tree, and the timeline (its names and stats).
    public static func build(
        reader: TraceReader, grouping: StackGrouping, weight: StackWeight,
        progress: ((Double) -> Void)? = nil
    ) -> (tree: StackTree, timeline: Timeline) {
        let timeline = Timeline(reader: reader)
        var sink = StackAggregator(grouping: grouping, weight: weight)
        timeline.run(into: &sink, progress: progress)
        return (sink.tree, timeline)
    }

    /// Aggregates `reader`'s trace by stack and writes the SVG to `path`; throws when the output
    /// cannot be created or written, or is the trace itself.
    public static func write(
        reader: TraceReader, to path: String, grouping: StackGrouping, weight: StackWeight,
        progress: ((Double) -> Void)? = nil
    ) throws(ExportError) -> Summary {
        let out = try OutputFile(path: path, sparing: reader.fileIdentity)
        let (tree, timeline) = build(reader: reader, grouping: grouping, weight: weight, progress: progress)
        let what =
            switch grouping {
            case .callback: "by callback"
            case .causal: "by causal chain"
            case .code: "by callback and code"
            }
        let time = grouping == .code ? "sampled CPU time" : weight == .busy ? "time in callbacks" : "wall time"
        var o = FlamegraphSVG.Options(
            title: "asynctrace: \(reader.header.program.isEmpty ? reader.path : reader.header.program)",
            subtitle: "\(what), \(time), \(FlamegraphSVG.formatWeight(tree.totalWeight, "ns")) in total")
        o.unit = "ns"
        out.write(FlamegraphSVG.render(tree, options: o))
        try out.close()
        var warnings: [String] = []
        if grouping == .code {
            if tree.totalWeight == 0 { warnings.append(noSamplesWarning) }
        } else if tree.totalWeight == 0 && weight == .busy {
            warnings.append("no time was spent in callbacks (a kernel-only trace?); --weight wall counts all time")
        }
        for d in reader.damage + timeline.decodeDamage { warnings.append("damaged trace: \(d.message)") }
        return Summary(
            events: timeline.stats.events, frames: tree.nodes.count - 1, totalWeight: tree.totalWeight,
            warnings: warnings)
    }
}
