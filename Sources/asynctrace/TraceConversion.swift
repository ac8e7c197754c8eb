// What `export` and `flamegraph` share: open the trace, run one streaming pass with a progress
// line, and say what happened under the command's own name.
import ArgumentParser
import TraceExports
import TraceReader

/// The stack options of folded exports and flame graphs.
struct StackOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "callback (thread → resource type → callback), causal (the trigger chain), or code (the trigger chain, then the sampled code inside it: CPU samples)."
    )
    var by: StackGrouping = .callback

    @Option(name: .long, help: "busy (time inside callbacks) or wall (all time, including loop phases and waits).")
    var weight: StackWeight = .busy
}

/// Opens `path`, runs `work` over it with a terminal progress line, prints the result's warnings
/// and `summary`; any failure is one line on stderr and exit code 1.
func convertTrace<Result>(
    command: String, path: String, progressLabel: String,
    _ work: (TraceReader, @escaping (Double) -> Void) throws -> Result,
    warnings: (Result) -> [String], summary: (Result) -> String?
) throws {
    let reader: TraceReader
    do { reader = try TraceReader(path: path) } catch {
        writeStderr("asynctrace \(command): \(error)\n")
        throw ExitCode(1)
    }
    let progress = TerminalProgress(label: progressLabel)
    do {
        let result = try work(reader) { progress.update($0) }
        progress.finish()
        for w in warnings(result) { writeStderr("asynctrace \(command): warning: \(w)\n") }
        if let line = summary(result) { writeStderr("asynctrace \(command): \(line)\n") }
    } catch {
        progress.finish()
        writeStderr("asynctrace \(command): \(error)\n")
        throw ExitCode(1)
    }
}

/// `app.atrace` + `json` → `app.json`.
func defaultOutput(_ tracePath: String, _ ext: String) -> String {
    var base = tracePath
    if base.hasSuffix(".atrace") { base.removeLast(7) }
    return base + "." + ext
}
