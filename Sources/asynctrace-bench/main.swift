// asynctrace-bench: every performance figure in README comes from here.
// Prints one JSON object per line: {"benchmark": NAME, "ns_per_op": X, "ops_per_s": Y, ...}.
// Usage: swift run -c release asynctrace-bench [GROUP ...]   (no group: all)

#if canImport(Glibc)
import Glibc
#endif

/// `onDemand` groups are not part of "all" (profiling loops, subsets of other groups).
let onDemand: Set<String> = ["core-profile", "reader-quick"]
// A worker run of `flight` is this binary under `asynctrace record`: it must not run the other groups.
if getenv(FlightBench.workerVariable) != nil { FlightBench.run() }

let groups: [(name: String, run: () -> Void)] = [
    ("core", runCoreBenchmarks),
    ("core-profile", runCoreProfile),
    ("kernel", KernelBench.run),
    ("runtime", RuntimeBench.run),
    ("reader", ReaderBenchmarks.run),
    ("reader-quick", ReaderBenchmarks.runQuick),  // the 10 M part of `reader` only
    ("net", NetBench.run),
    ("export", ExportBench.run),
    ("concurrency", ConcurrencyBench.run),
    ("node", NodeBench.run),
    ("probes", ProbeCostBench.run),
    ("stacks", StacksBench.run),
    ("flight", FlightBench.run),
    ("top", TopBench.run),
]

let wanted = Set(CommandLine.arguments.dropFirst())
if wanted.contains("--help") || wanted.contains("-h") {
    print("usage: asynctrace-bench [GROUP ...]\ngroups: \(groups.map(\.name).joined(separator: ", "))")
} else {
    for g in groups where wanted.isEmpty ? !onDemand.contains(g.name) : wanted.contains(g.name) { g.run() }
}
