// `asynctrace export`: the trace in the formats other tools read.
import ArgumentParser
import TraceExports
import TraceReader

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

    @Option(name: .long, help: "Folded stacks only: callback (thread → type → callback) or causal (trigger chain).")
    var by: StackGrouping = .callback

    @Option(name: .long, help: "Folded stacks only: busy (time in callbacks) or wall (all time).")
    var weight: StackWeight = .busy

    func run() throws {
        let reader: TraceReader
        do { reader = try TraceReader(path: path) } catch {
            writeStderr("asynctrace export: \(error)\n")
            throw ExitCode(1)
        }
        let out = output ?? defaultOutput(path, format.defaultExtension)
        let progress = TerminalProgress(label: "exporting \(format.rawValue)")
        do {
            let s = try TraceExport.run(reader: reader, format: format, outputPath: out, grouping: by, weight: weight,
                                        progress: { progress.update($0) })
            progress.finish()
            for w in s.warnings { writeStderr("asynctrace export: warning: \(w)\n") }
            if out != "-" {
                writeStderr("asynctrace export: \(out): \(s.bytesWritten) bytes, \(s.events) events, "
                    + "\(s.callbacks) callbacks, \(s.syscalls) syscalls, \(s.threads) threads\n")
            }
        } catch {
            progress.finish()
            writeStderr("asynctrace export: \(error)\n")
            throw ExitCode(1)
        }
    }
}

/// `app.atrace` + `json` → `app.json`.
func defaultOutput(_ tracePath: String, _ ext: String) -> String {
    var base = tracePath
    if base.hasSuffix(".atrace") { base.removeLast(7) }
    return base + "." + ext
}
