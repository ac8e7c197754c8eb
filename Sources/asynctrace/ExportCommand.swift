// `asynctrace export`: the trace in the formats other tools read.
import ArgumentParser
import TraceExports

extension ExportFormat: ExpressibleByArgument {}
extension StackGrouping: ExpressibleByArgument {}
extension StackWeight: ExpressibleByArgument {}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Convert a trace for Perfetto, chrome://tracing, speedscope or flamegraph.pl.",
        discussion: """
            Formats:
              perfetto    Perfetto's protobuf trace (open in ui.perfetto.dev, query with trace_processor)
              chrome      Chrome's JSON trace format (chrome://tracing; large traces: use perfetto)
              speedscope  speedscope's JSON (one evented profile per thread)
              folded      folded stacks for flamegraph.pl (weights in ns)
            The export streams: memory stays flat whatever the trace's size.
            Exit codes: 0 done, 1 the trace could not be read or the output not written, 64 bad usage.
            """
    )

    @Argument(help: "The trace file.")
    var path: String

    @Option(name: .long, help: "perfetto, chrome, speedscope or folded.")
    var format: ExportFormat

    @Option(name: .shortAndLong, help: "Output file ('-': standard output; default: the trace's name with the format's extension).")
    var output: String?

    @OptionGroup(title: "Folded stacks only")
    var stacks: StackOptions

    func run() throws {
        let out = output ?? defaultOutput(path, format.defaultExtension)
        try convertTrace(command: "export", path: path, progressLabel: "exporting \(format.rawValue)", { reader, progress in
            try TraceExport.run(reader: reader, format: format, outputPath: out, grouping: stacks.by, weight: stacks.weight,
                                progress: progress)
        }, warnings: { $0.warnings }, summary: { s in
            out == "-" ? nil : "\(out): \(s.bytesWritten) bytes, \(s.events) events, "
                + "\(s.callbacks) callbacks, \(s.syscalls) syscalls, \(s.threads) threads"
        })
    }
}
