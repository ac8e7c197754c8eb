// The entry point of `asynctrace export`: one pass over the trace into the chosen format.
import TraceReader

public enum ExportFormat: String, Sendable, CaseIterable {
    case perfetto, chrome, speedscope, folded

    public var defaultExtension: String {
        switch self {
        case .perfetto: "perfetto-trace"
        case .chrome: "json"
        case .speedscope: "speedscope.json"
        case .folded: "folded"
        }
    }
}

public struct ExportSummary: Sendable {
    public var format: ExportFormat
    public var outputPath: String
    /// Trace events read.
    public var events: UInt64
    public var bytesWritten: UInt64
    public var callbacks: UInt64
    public var syscalls: UInt64
    public var threads: Int
    /// Things the user should know (size warnings, damage in the trace).
    public var warnings: [String]

    public var bytesPerEvent: Double { events == 0 ? 0 : Double(bytesWritten) / Double(events) }
}

public enum TraceExport {
    /// Exports `reader`'s trace to `outputPath` ("-": standard output).
    public static func run(reader: TraceReader, format: ExportFormat, outputPath: String,
                           grouping: StackGrouping = .callback, weight: StackWeight = .busy,
                           chromeWarnBytes: UInt64 = ChromeTraceExporter.warnAboveBytes,
                           progress: ((Double) -> Void)? = nil) throws(ExportError) -> ExportSummary {
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
                warnings.append("speedscope: \(sink.threadsLeftOut) threads past the first \(SpeedscopeExporter.maxSpooledThreads) "
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
        }
        try out.close()
        if format == .chrome && out.bytesWritten > chromeWarnBytes {
            warnings.append("\(outputPath) is \(out.bytesWritten / 1_000_000) MB; browsers (chrome://tracing) give up on JSON "
                + "traces above ~500 MB: use --format perfetto and ui.perfetto.dev instead")
        }
        for d in reader.damage + timeline.decodeDamage { warnings.append("damaged trace: \(d.message)") }
        return ExportSummary(format: format, outputPath: outputPath, events: timeline.stats.events,
                             bytesWritten: out.bytesWritten, callbacks: timeline.stats.callbacks,
                             syscalls: timeline.stats.syscalls, threads: timeline.threads.count, warnings: warnings)
    }

    static func spoolDirectory(for outputPath: String) -> String {
        if outputPath == "-" { return "/tmp" }
        guard let slash = outputPath.lastIndex(of: "/") else { return "." }
        let dir = String(outputPath[..<slash])
        return dir.isEmpty ? "/" : dir
    }
}

public enum Flamegraph {
    public struct Summary: Sendable {
        public var events: UInt64
        public var frames: Int
        public var totalWeight: UInt64
        public var warnings: [String]
    }

    static let noSamplesWarning = "the trace has no CPU samples (record with --sample-rate > 0, as root or with CAP_PERFMON)"

    /// Aggregates the trace by stack and renders the SVG.
    public static func build(reader: TraceReader, grouping: StackGrouping, weight: StackWeight,
                             progress: ((Double) -> Void)? = nil) -> (tree: StackTree, timeline: Timeline) {
        let timeline = Timeline(reader: reader)
        var sink = StackAggregator(grouping: grouping, weight: weight)
        timeline.run(into: &sink, progress: progress)
        return (sink.tree, timeline)
    }

    public static func write(reader: TraceReader, to path: String, grouping: StackGrouping, weight: StackWeight,
                             progress: ((Double) -> Void)? = nil) throws(ExportError) -> Summary {
        let out = try OutputFile(path: path, sparing: reader.fileIdentity)
        let (tree, timeline) = build(reader: reader, grouping: grouping, weight: weight, progress: progress)
        let what = switch grouping {
        case .callback: "by callback"
        case .causal: "by causal chain"
        case .code: "by callback and code"
        }
        let time = grouping == .code ? "sampled CPU time" : weight == .busy ? "time in callbacks" : "wall time"
        var o = FlamegraphSVG.Options(title: "asynctrace: \(reader.header.program.isEmpty ? reader.path : reader.header.program)",
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
        return Summary(events: timeline.stats.events, frames: tree.nodes.count - 1, totalWeight: tree.totalWeight,
                       warnings: warnings)
    }
}
