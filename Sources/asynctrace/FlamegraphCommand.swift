// `asynctrace flamegraph`: where the time went, as an interactive SVG.
import ArgumentParser
import TraceExports
import TraceReader

struct FlamegraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flamegraph",
        abstract: "Render an interactive flame graph (SVG) of the time spent in callbacks.",
        discussion: """
            --by callback  thread → resource type → (nested callbacks) → syscalls made inside
            --by causal    the trigger chain as the stack: what one connection caused is one tower
            --weight busy  time inside callbacks; wall: all time, including loop phases and epoll waits
            Open the SVG in a browser: hover for times, click a frame to zoom, "Search" to highlight.
            Exit codes: 0 done, 1 the trace could not be read or the output not written, 64 bad usage.
            """
    )

    @Argument(help: "The trace file.")
    var path: String

    @Option(name: .shortAndLong, help: "Output SVG (default: the trace's name with .svg).")
    var output: String?

    @Option(name: .long, help: "callback or causal.")
    var by: StackGrouping = .callback

    @Option(name: .long, help: "busy or wall.")
    var weight: StackWeight = .busy

    func run() throws {
        let reader: TraceReader
        do { reader = try TraceReader(path: path) } catch {
            writeStderr("asynctrace flamegraph: \(error)\n")
            throw ExitCode(1)
        }
        let out = output ?? defaultOutput(path, "svg")
        let progress = TerminalProgress(label: "flamegraph")
        do {
            let s = try Flamegraph.write(reader: reader, to: out, grouping: by, weight: weight, progress: { progress.update($0) })
            progress.finish()
            for w in s.warnings { writeStderr("asynctrace flamegraph: warning: \(w)\n") }
            writeStderr("asynctrace flamegraph: \(out): \(s.frames) frames, \(s.events) events\n")
        } catch {
            progress.finish()
            writeStderr("asynctrace flamegraph: \(error)\n")
            throw ExitCode(1)
        }
    }
}
