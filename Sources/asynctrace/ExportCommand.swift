// `asynctrace export`: the trace in the formats other tools read.
import ArgumentParser
import TraceExports
import TraceFormat

extension ExportFormat: ExpressibleByArgument {}
extension StackGrouping: ExpressibleByArgument {}
extension StackWeight: ExpressibleByArgument {}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Convert a trace for Perfetto, chrome://tracing, speedscope, flamegraph.pl or OpenTelemetry.",
        discussion: """
            Formats:
              perfetto    Perfetto's protobuf trace (open in ui.perfetto.dev, query
                          with trace_processor)
              chrome      Chrome's JSON trace format (chrome://tracing; large
                          traces: use perfetto)
              speedscope  speedscope's JSON (one evented profile per thread)
              folded      folded stacks for flamegraph.pl (weights in ns)
              otlp        OpenTelemetry traces (OTLP/protobuf): every callback a span,
                          syscalls >= --syscall-threshold as span events, blocking
                          callbacks and loop stalls with status ERROR, tracing-bridge
                          spans with their own trace ids; a Resource per thread
            The export streams: memory stays flat whatever the trace's size.
            OTLP goes in batches of at most --batch-spans spans (8192, ~2 MiB):
            in a file one ExportTraceServiceRequest after another (together
            they parse as one); with --otlp-endpoint one HTTP POST per batch to
            an OTLP/HTTP receiver such as an OpenTelemetry Collector
            (http://127.0.0.1:4318), retried with backoff on connection errors,
            429 and 502-504 (at most 8 tries, --otlp-retry-for per batch).
            Details: docs/exports.md.
            Exit codes: 0 done, 1 the trace could not be read or the output not written (or sent), 64 bad usage.
            """
    )

    @Argument(help: "The trace file.")
    var path: String

    @Option(name: .long, help: "perfetto, chrome, speedscope, folded or otlp.")
    var format: ExportFormat

    @Option(name: .shortAndLong, help: "Output file ('-': standard output; default: the trace's name with the format's extension).")
    var output: String?

    @OptionGroup(title: "Folded stacks only")
    var stacks: StackOptions

    @OptionGroup(title: "OpenTelemetry (otlp) only")
    var otlp: OTLPArguments

    func validate() throws {
        if otlp.otlpEndpoint != nil {
            if format != .otlp { throw ValidationError("--otlp-endpoint sends OTLP; use it with --format otlp") }
            if output != nil { throw ValidationError("--otlp-endpoint sends the spans instead of writing them; leave out -o/--output") }
        }
        try otlp.validate()
    }

    func run() throws {
        let endpoint = try otlp.endpoint()
        let out = output ?? defaultOutput(path, format.defaultExtension)
        let label = endpoint.map { "sending otlp to \($0)" } ?? "exporting \(format.rawValue)"
        try convertTrace(
            command: "export", path: path, progressLabel: label,
            { reader, progress in
                try TraceExport.run(
                    reader: reader, format: format, outputPath: out, grouping: stacks.by, weight: stacks.weight,
                    otlp: otlp.options(), otlpEndpoint: endpoint, progress: progress)
            }, warnings: { $0.warnings },
            summary: { s in
                if format == .otlp {
                    let target = endpoint.map { "sent to \($0)" } ?? "\(out): \(s.bytesWritten) bytes"
                    return endpoint == nil && out == "-"
                        ? nil
                        : "\(target), \(s.spans) spans in \(s.requests) requests "
                            + "(\(s.callbacks) callbacks, \(s.blockingCallbacks) blocking, \(s.stalls) loop stalls, "
                            + "\(s.tracerSpans) tracer spans), \(s.events) events"
                }
                return out == "-"
                    ? nil
                    : "\(out): \(s.bytesWritten) bytes, \(s.events) events, "
                        + "\(s.callbacks) callbacks, \(s.syscalls) syscalls, \(s.threads) threads"
            })
    }
}

struct OTLPArguments: ParsableArguments {
    @Option(
        name: .customLong("otlp-endpoint"),
        help: ArgumentHelp(
            "Send the spans to this OTLP/HTTP receiver instead of writing a file "
                + "(http://host[:port][/path]; port 4318 and path /v1/traces by default).", valueName: "url"))
    var otlpEndpoint: String?

    @Option(
        name: .customLong("service-name"),
        help: ArgumentHelp(
            "service.name of every resource (default: the traced program's name).",
            valueName: "name"))
    var serviceName: String?

    @Option(
        name: .customLong("threshold"),
        help: ArgumentHelp(
            "Callbacks and loop stalls at least this long are marked as blocking "
                + "(status ERROR), as in `report`.", valueName: "duration"))
    var threshold: String = "10ms"

    @Option(
        name: .customLong("syscall-threshold"),
        help: ArgumentHelp(
            "Syscalls at least this long become span events of their callback.",
            valueName: "duration"))
    var syscallThreshold: String = "100us"

    @Option(name: .customLong("batch-spans"), help: ArgumentHelp("At most this many spans per request (1 to 65536).", valueName: "n"))
    var batchSpans: Int = 8_192

    @Option(
        name: .customLong("otlp-retry-for"),
        help: ArgumentHelp(
            "Give up on a batch the endpoint keeps refusing (connection errors, "
                + "429, 502-504) after retrying this long.", valueName: "duration"))
    var retryFor: String = "60s"

    func validate() throws {
        if batchSpans < 1 || batchSpans > 65_536 { throw ValidationError("--batch-spans must be from 1 to 65536") }
        for (name, value) in [("--threshold", threshold), ("--syscall-threshold", syscallThreshold), ("--otlp-retry-for", retryFor)]
        where Quantities.duration(value) == nil {
            throw ValidationError("\(name) '\(value)' is not a duration; use for example 10ms, 250us, 1.5s or 800ns")
        }
        if let s = serviceName, s.isEmpty || s.utf8.count > 256 || s.unicodeScalars.contains(where: { $0.value < 0x20 }) {
            throw ValidationError("--service-name must be 1 to 256 bytes without control characters")
        }
        if let e = otlpEndpoint {
            do { _ = try OTLPEndpoint(parsing: e) } catch { throw ValidationError(error.message) }
        }
    }

    func endpoint() throws -> OTLPEndpoint? {
        guard let e = otlpEndpoint else { return nil }
        do { return try OTLPEndpoint(parsing: e) } catch { throw ValidationError(error.message) }
    }

    func options() -> OTLPOptions {
        var o = OTLPOptions()
        o.serviceName = serviceName
        o.blockingThresholdNs = Quantities.duration(threshold) ?? 10_000_000
        o.syscallThresholdNs = Quantities.duration(syscallThreshold) ?? 100_000
        o.maxSpansPerRequest = batchSpans
        o.retryForMs = Int(min(Quantities.duration(retryFor) ?? 60_000_000_000, 3_600_000_000_000) / 1_000_000)
        return o
    }
}
