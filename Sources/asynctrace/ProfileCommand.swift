// `asynctrace profile`: which code was on the CPU, from the trace's CPU samples (record --sample-rate).
import ArgumentParser
import TraceReader
import TraceSymbols

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Show the code the CPU samples of a trace were in: top functions and top stacks.",
        discussion: """
            Needs a trace recorded with CPU samples (record's default --sample-rate 999). Functions are named \
            from the files recorded in the trace's mappings (ELF .symtab/.dynsym, Swift and C++ demangled, \
            debug files under /usr/lib/debug/.build-id), JIT code (Node's JS, CPython 3.12+, Java) from the perf \
            maps the recorder copied into the trace (traces older than format 13: /tmp/perf-PID.map), kernel \
            frames from /proc/kallsyms. A frame nothing names shows as module+offset.
            Exit codes: 0 done, 1 the trace could not be read, 64 bad usage.
            """
    )

    @Argument(help: "The trace file.")
    var path: String

    @Option(help: "How many functions and stacks to list.")
    var top: Int = 10

    @Option(help: "Only samples of this process.")
    var pid: UInt32?

    mutating func validate() throws {
        guard top > 0 && top <= 10_000 else { throw ValidationError("--top must be between 1 and 10000") }
    }

    func run() throws {
        let reader: TraceReader
        do { reader = try TraceReader(path: path) } catch {
            writeStderr("asynctrace profile: \(error)\n")
            throw ExitCode(1)
        }
        let data = TraceSamples(reader: reader)
        let selected = data.samples.lazy.filter { pid == nil || $0.pid == pid }
        let profile = CodeProfile(data, samples: selected)
        var out = ""
        if profile.totalSamples == 0 {
            out += "no CPU samples in this trace (record with --sample-rate > 0, as root or with CAP_PERFMON)\n"
            print(out, terminator: "")
            return
        }
        out += "\(profile.totalSamples) CPU samples\n\nTOP FUNCTIONS (self = on the CPU in it, total = anywhere in the stack)\n"
        out += "   self%   total%  function\n"
        for f in profile.functions.prefix(top) {
            let frame = data.frame(f.frame)
            out += pad(percent(f.selfSamples, profile.totalSamples), 8) + " " + pad(percent(f.totalSamples, profile.totalSamples), 8)
            out +=
                "  \(frame.description)"
                + (frame.function == nil ? "" : frame.moduleName.hasPrefix("[") ? "  \(frame.moduleName)" : "  [\(frame.moduleName)]") + "\n"
        }
        out += "\nTOP STACKS (innermost first)\n"
        for s in profile.stacks.prefix(top) {
            out += "  " + CodeProfile.describe(s, of: profile.totalSamples, frames: data.frame, depth: 12) + "\n"
        }
        out += unwinding(data)
        if data.undefinedStacks > 0 {
            out += "\nwarning: \(data.undefinedStacks) samples refer to stacks the trace lost (a damaged chunk)\n"
        }
        if data.badStackExtensions > 0 {
            out += "warning: \(data.badStackExtensions) stack definitions extend a stack the trace lost or name frames it does not have\n"
        }
        if data.cutStacks > 0 { out += "warning: \(data.cutStacks) stacks cut at \(TraceSamples.maxStackFrames) frames\n" }
        if data.symbolizer.perfMapBytesNotKept > 0 {
            out +=
                "warning: \(data.symbolizer.perfMapBytesNotKept) bytes of perf maps in the trace were beyond the "
                + "\(Symbolizer.maxCopiedPerfMapBytes >> 20) MiB read: JIT frames named there stay unnamed\n"
        }
        print(out, terminator: "")
    }

    /// Per module: how the callers of its frames were found (CFI, stack scan, frame pointers) and
    /// how often unwinding ended there before the outermost frame.
    private func unwinding(_ data: TraceSamples) -> String {
        let tally = data.unwindTally
        guard !tally.isEmpty else { return "" }
        var out = "\nUNWINDING (frames whose caller each method found, per module; \(data.unwoundSamples) samples unwound from stack copies)\n"
        let rows = tally.sorted { $0.value.byMethod.reduce(0, +) + $0.value.stopped > $1.value.byMethod.reduce(0, +) + $1.value.stopped }
        for (module, t) in rows.prefix(max(top, 20)) {
            var parts: [String] = []
            for m in UnwindMethod.allCases where t.byMethod[m.rawValue] > 0 { parts.append("\(m.name) \(t.byMethod[m.rawValue])") }
            if t.stopped > 0 { parts.append("ended here \(t.stopped)") }
            let name = module.split(separator: "/").last.map(String.init) ?? module
            out += "  \(name): " + parts.joined(separator: ", ") + "\n"
        }
        if data.badStackCopies > 0 { out += "  \(data.badStackCopies) stack copies were malformed or unmatched (their frame-pointer stacks used)\n" }
        return out
    }

    private func percent(_ n: Int, _ total: Int) -> String {
        let v = Double(n) * 100 / Double(max(total, 1))
        return String(Int(v)) + "." + String(Int((v * 10).rounded()) % 10) + "%"
    }

    private func pad(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
}
