// `asynctrace flamegraph`: where the time went, as an interactive SVG.
import ArgumentParser
import TraceExports

struct FlamegraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flamegraph",
        abstract: "Render an interactive flame graph (SVG) of the time spent in callbacks.",
        discussion: """
            --by callback  thread → resource type → (nested callbacks) → syscalls
                           made inside
            --by causal    the trigger chain as the stack: what one connection
                           caused is one tower
            --by code      CPU samples: the trigger chain of the running callback,
                           then the functions on the CPU inside it (named from the
                           recorded binaries, Node's perf map; record samples at
                           999 Hz unless --sample-rate 0)
            --weight busy  time inside callbacks; wall: all time, including loop
                           phases and epoll waits
            Open the SVG in a browser: hover for times, click a frame to zoom,
            "Search" to highlight.
            Exit codes: 0 done, 1 the trace could not be read or the output not
            written, 64 bad usage.
            """
    )

    @Argument(help: "The trace file.")
    var path: String

    @Option(name: .shortAndLong, help: "Output SVG (default: the trace's name with .svg).")
    var output: String?

    @OptionGroup var stacks: StackOptions

    func run() throws {
        let out = output ?? defaultOutput(path, "svg")
        try convertTrace(
            command: "flamegraph", path: path, progressLabel: "flamegraph",
            { reader, progress in
                try Flamegraph.write(reader: reader, to: out, grouping: stacks.by, weight: stacks.weight, progress: progress)
            }, warnings: { $0.warnings }, summary: { "\(out): \($0.frames) frames, \($0.events) events" })
    }
}
