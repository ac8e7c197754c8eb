// CPU samples in the exports, end to end: a C program with a known call chain recorded by the real
// `asynctrace record` on the real kernel, exported as Perfetto (PerfSample packets with interned
// callstacks, checked with Perfetto's published proto by the exports' validator), speedscope (sampled
// profiles, checked against speedscope's schema) and folded stacks by code (flamegraph.pl's line format).
import Foundation
import Testing


private let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

private func validator(_ script: String, _ args: [String]) throws -> [String: Any] {
    let r = try runTool("/usr/bin/env", ["python3", repoRoot + "/Tests/TraceExportsTests/validators/" + script] + args)
    guard let obj = try? JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any] else {
        throw TestFailure("\(script) printed no JSON (status \(r.status)): \(r.output.prefix(1500))")
    }
    if let e = obj["error"] { throw TestFailure("\(script): \(e)") }
    return obj
}

private let burnSource = """
    #include <stdio.h>
    #include <time.h>
    static double now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
    __attribute__((noinline)) double spin_leaf(double x) {
        volatile double acc[2] = {0, 0};
        for (int i = 0; i < 100000; i++) { x = x * 1.0000001 + 0.5; acc[i & 1] = x; }
        return x + acc[0];
    }
    __attribute__((noinline)) double spin_middle(double x) { double r = spin_leaf(x); __asm__ volatile(""); return r + 1; }
    __attribute__((noinline)) double spin_outer(double x) { double r = spin_middle(x); __asm__ volatile(""); return r + 1; }
    int main(void) { double t0 = now(), x = 1; while (now() - t0 < 0.5) x = spin_outer(x); printf("%f\\n", x); return 0; }
    """

@Suite(.serialized) struct CodeExportTests {
    @Test func perfettoSpeedscopeAndFoldedCarryTheSampledCallChain() throws {
        try requireKernel("perfettoSpeedscopeAndFoldedCarryTheSampledCallChain")
        guard let asynctrace = builtExecutable("asynctrace") else { throw TestFailure("asynctrace was not built") }
        let exe = try compileC(burnSource, name: "spin", flags: ["-O2", "-fno-omit-frame-pointer"])
        let trace = try recordTrace([exe], name: "spin")
        let chain = ["spin_leaf", "spin_middle", "spin_outer", "main"]

        // Perfetto: PerfSample packets on the program's thread, callstacks resolved through the interned frames.
        let pf = temporaryPath("spin.pftrace")
        #expect(try runTool(asynctrace, ["export", "--format", "perfetto", "-o", pf, trace]).status == 0)
        let p = try validator("perfetto_check.py", [pf])
        let perfSamples = p["perf_samples"] as? Int ?? 0
        #expect(perfSamples >= 50, "\(perfSamples) perf samples")
        let stacks = p["perf_sample_stacks"] as? [[String: Any]] ?? []
        let top = try #require(stacks.first)
        #expect(Array(((top["functions"] as? [String]) ?? []).prefix(4)) == chain, "\(top)")
        #expect((top["samples"] as? Int ?? 0) * 10 >= perfSamples * 8, "the chain in \(top["samples"] ?? 0) of \(perfSamples)")
        let byThread = p["perf_samples_by_thread"] as? [String: Int] ?? [:]
        #expect(byThread.count == 1, "\(byThread)")

        // speedscope: a sampled profile whose heaviest stack is the chain, weighted by the sampling period.
        let sp = temporaryPath("spin.speedscope.json")
        #expect(try runTool(asynctrace, ["export", "--format", "speedscope", "-o", sp, trace]).status == 0)
        let schema =
            FileManager.default.fileExists(atPath: repoRoot + "/../shared/schemas/speedscope-file-format-schema.json")
            ? repoRoot + "/../shared/schemas/speedscope-file-format-schema.json"
            : repoRoot + "/Tests/TraceExportsTests/Fixtures/speedscope-file-format-schema.json"
        let s = try validator("speedscope_check.py", [sp, schema])
        let sampled = try #require((s["sampled"] as? [String: [String: Any]])?.values.first, "\(s)")
        #expect(sampled["samples"] as? Int ?? 0 >= 50)
        let heaviest = try #require((sampled["top"] as? [[Any]])?.first?.first as? String)
        #expect(heaviest.hasPrefix(chain.joined(separator: " <- ")), "\(heaviest)")

        // Folded by code: flamegraph.pl's line format, the chain outermost first under the thread.
        let folded = temporaryPath("spin.folded")
        #expect(try runTool(asynctrace, ["export", "--format", "folded", "--by", "code", "-o", folded, trace]).status == 0)
        _ = try validator("folded_check.py", [folded])
        let text = try String(contentsOfFile: folded, encoding: .utf8)
        #expect(text.contains("main;spin_outer;spin_middle;spin_leaf "), "\(text.prefix(600))")
    }
}
