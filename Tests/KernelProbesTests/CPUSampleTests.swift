// CPU samples with stacks, end to end: programs written and compiled here with known call chains,
// recorded by the real `asynctrace record` on the real kernel, named by TraceSymbols.
import Foundation
import Testing
import TraceReader
import TraceSymbols


/// Records `program args` with `asynctrace record` (extra record options first); the samples, read back.
private func recordSamples(_ program: [String], options: [String] = [], name: String) throws -> TraceSamples {
    TraceSamples(reader: try TraceReader(path: try recordTrace(program, options: options, name: name)))
}

/// A C program that burns 0.6 s of its own CPU time (CPU time, not wall time: the number of samples must not
/// depend on how busy the machine is) in burn_leaf <- burn_middle <- burn_outer <- main.
private let burnSource = """
    #include <stdio.h>
    #include <time.h>
    static double now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
    __attribute__((noinline)) double burn_leaf(double x) {
        volatile double acc[2] = {0, 0};  /* stack use: gcc gives a leaf a frame only then */
        for (int i = 0; i < 100000; i++) { x = x * 1.0000001 + 0.5; acc[i & 1] = x; }
        return x + acc[0];
    }
    __attribute__((noinline)) double burn_middle(double x) { double r = burn_leaf(x); __asm__ volatile(""); return r + 1; }
    __attribute__((noinline)) double burn_outer(double x) { double r = burn_middle(x); __asm__ volatile(""); return r + 1; }
    int main(void) { double t0 = now(), x = 1; while (now() - t0 < 0.6) x = burn_outer(x); printf("%f\\n", x); return 0; }
    """


@Suite(.serialized) struct CPUSampleTests {
    @Test func framePointerStacksNameTheCallChainInOrder() throws {
        try requireKernel("framePointerStacksNameTheCallChainInOrder")
        // A leaf function that uses no stack gets no frame from gcc even with -fno-omit-frame-pointer,
        // and a frame-pointer walk then skips its caller (docs/kernel-probes.md); burn_leaf uses stack.
        let exe = try compileC(burnSource, name: "burn-fp", flags: ["-O2", "-fno-omit-frame-pointer"])
        let data = try recordSamples([exe], name: "burn-fp")
        let mine = data.samples.filter { s in data.frames(of: s).contains { data.frame($0).function == "burn_leaf" } }
        #expect(mine.count >= 50, "\(data.samples.count) samples, \(mine.count) in burn_leaf")
        let profile = CodeProfile(data, samples: mine)
        let top = try #require(profile.stacks.first)
        let names = top.frames.prefix(4).map { data.frame($0).name }
        #expect(names == ["burn_leaf", "burn_middle", "burn_outer", "main"], "\(names)")
        #expect(top.samples * 10 >= mine.count * 9, "the full chain in \(top.samples) of \(mine.count)")
        #expect(data.frame(top.frames[0]).module == exe)
    }

    @Test func withoutFramePointersTheLeafIsStillNamed() throws {
        try requireKernel("withoutFramePointersTheLeafIsStillNamed")
        let exe = try compileC(burnSource, name: "burn-nofp", flags: ["-O2", "-fomit-frame-pointer"])
        let data = try recordSamples([exe], name: "burn-nofp")
        let leaf = data.samples.filter { s in data.frames(of: s).first.map { data.frame($0).function == "burn_leaf" } ?? false }
        // The program is on the CPU nearly all of its 0.6 s; the machine may be busy.
        #expect(leaf.count >= 50, "\(data.samples.count) samples, \(leaf.count) with burn_leaf innermost")
    }

    @Test func aFrameInAStrippedLibraryShowsModuleAndOffset() throws {
        try requireKernel("aFrameInAStrippedLibraryShowsModuleAndOffset")
        let lib = try compileC(
            """
            #include <time.h>
            static double now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
            __attribute__((noinline)) static double hidden_burn(double x) { for (int i = 0; i < 100000; i++) x = x * 1.0000001 + 0.5; return x; }
            double stripped_entry(void) { double t0 = now(), x = 1; while (now() - t0 < 0.5) x = hidden_burn(x); return x; }
            """, name: "libstrippedburn.so", flags: ["-O2", "-shared", "-fPIC", "-s"])
        let main = try compileC(
            """
            #include <stdio.h>
            double stripped_entry(void);
            int main(void) { printf("%f\\n", stripped_entry()); return 0; }
            """, name: "stripped-main", flags: ["-O2", "-Wl,-rpath," + (lib as NSString).deletingLastPathComponent],
            libraries: [lib])
        let data = try recordSamples([main], name: "stripped")
        let inLib = data.samples.compactMap { data.frames(of: $0).first.map(data.frame) }.filter { $0.module == lib }
        #expect(inLib.count >= 40, "\(data.samples.count) samples, \(inLib.count) innermost in the library")
        let unnamed = inLib.filter { $0.function == nil }
        #expect(unnamed.count * 2 >= inLib.count)
        if let f = unnamed.first {
            #expect(f.name.hasPrefix("libstrippedburn.so+0x"), "\(f.name)")
            #expect(f.offset > 0 && f.offset < 1 << 20)
        }
    }

    @Test func nodeJSFunctionsAreNamedWithFileAndLine() throws {
        try requireKernel("nodeJSFunctionsAreNamedWithFileAndLine")
        guard let node = which("node") else { Issue.record("node is not installed"); return }
        let script = temporaryPath("burn-\(UUID().uuidString.prefix(8)).js")
        try """
        'use strict';
        function handleHash(n) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003; return x; }
        function serve() { const t = process.cpuUsage().user; let s = 0; while (process.cpuUsage().user - t < 700000) s += handleHash(20000); return s; }
        console.log(serve());
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let data = try recordSamples([node, script], name: "node-burn")
        let leaves = data.samples.compactMap { data.frames(of: $0).first.map(data.frame) }
        let named = leaves.filter { $0.function == "handleHash" }
        #expect(named.count >= 30, "\(data.samples.count) samples, \(named.count) in handleHash")
        #expect(named.allSatisfy { $0.file == script && $0.line == 2 }, "\(named.first.map(\.description) ?? "-")")
        // The caller is named too (interpreted or optimized, V8 keeps frame pointers in JS frames).
        let withCaller = data.samples.filter { s in
            let f = data.frames(of: s).map { data.frame($0).function ?? "" }
            return f.count > 1 && f[0] == "handleHash" && f[1] == "serve"
        }
        #expect(withCaller.count * 2 >= named.count, "\(withCaller.count) of \(named.count) with serve as caller")
    }

    /// The issue's "done when": a Node server with a CPU-heavy handler; the report's blocking callbacks name
    /// the handler's JS function with its file:line, in text and JSON (blocking[].stacks[].frames[]).
    @Test func reportNamesTheJSFunctionThatBlocked() throws {
        try requireKernel("reportNamesTheJSFunctionThatBlocked")
        guard let node = which("node"), let exe = builtExecutable("asynctrace") else { Issue.record("node or asynctrace missing"); return }
        let script = temporaryPath("server-\(UUID().uuidString.prefix(8)).js")
        try """
        const http = require('http');
        function handleHash(n) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003; return x; }
        const server = http.createServer((req, res) => { res.end(String(handleHash(4e6))); });
        server.listen(0, () => {
          const port = server.address().port; let left = 12;
          const next = () => http.get({port, path: '/'}, r => { r.resume(); r.on('end', () => { if (--left > 0) next(); else server.close(); }); });
          next();
        });
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let trace = temporaryPath("server.atrace")
        let rec = try runTool(exe, ["record", "-o", trace, "--", node, script])
        #expect(rec.status == 0, "\(rec.output)")
        let json = try runTool(exe, ["report", "--json", "--threshold", "5ms", trace])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output.prefix(300))")
        let blocking = try #require(root["blocking"] as? [[String: Any]])
        let stacked = blocking.filter { ($0["type"] as? String) == "HTTPINCOMINGMESSAGE" }
        #expect(!stacked.isEmpty, "\(blocking.map { $0["type"] ?? "" })")
        let top = stacked.compactMap { ($0["stacks"] as? [[String: Any]])?.first }
        #expect(top.count * 2 >= stacked.count, "most blocking handlers have a sampled stack")
        for st in top {
            let frames = try #require(st["frames"] as? [[String: Any]])
            let first = try #require(frames.first)
            #expect(
                first["function"] as? String == "handleHash" && first["file"] as? String == script && first["line"] as? Int == 2,
                "\(first)")
            #expect((st["samples"] as? Int ?? 0) > 0 && (st["ns"] as? Int ?? 0) > 0)
        }
        let text = try runTool(exe, ["report", "--threshold", "5ms", trace]).output
        #expect(text.contains("on CPU in handleHash (\((script as NSString).lastPathComponent):2) ← "), "\(text.prefix(2000))")
    }

    @Test func sampleRateZeroRecordsNoSamples() throws {
        try requireKernel("sampleRateZeroRecordsNoSamples")
        let exe = try compileC(burnSource, name: "burn-off", flags: ["-O2"])
        let data = try recordSamples([exe], options: ["--sample-rate", "0"], name: "burn-off")
        #expect(data.samples.isEmpty)
    }

    /// A program that reads the time in a loop spends its time in the kernel's vDSO, which no file holds: its
    /// samples' innermost frame was '[vdso]+0xc01' (each Python, Node and Go server reading clocks). The recorder
    /// keeps the vDSO's build id, so a reader on the same kernel names it from its own vDSO, in the report's stacks
    /// and in `profile`.
    @Test func timeReadsInTheVDSOAreNamed() throws {
        try requireKernel("timeReadsInTheVDSOAreNamed")
        guard let asynctrace = builtExecutable("asynctrace") else { throw TestFailure("asynctrace was not built") }
        let exe = try compileC(
            """
            #include <stdio.h>
            #include <time.h>
            static double seconds(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec + t.tv_nsec / 1e9; }
            int main(void) {
                /* 300 ms of its own CPU time, whatever the load, nearly all of it reading CLOCK_MONOTONIC. */
                double end = seconds(CLOCK_THREAD_CPUTIME_ID) + 0.3, last = 0;
                long reads = 0;
                while (reads % 4096 != 0 || seconds(CLOCK_THREAD_CPUTIME_ID) < end) { last = seconds(CLOCK_MONOTONIC); reads++; }
                printf("%ld %f\\n", reads, last);
                return 0;
            }
            """, name: "vdso-clock", flags: ["-O1"])
        let trace = try recordTrace([exe], name: "vdso-clock")
        let json = try runTool(asynctrace, ["report", "--json", trace])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output.prefix(300))")
        let threads = try #require(root["threads"] as? [[String: Any]])
        let frames = threads.flatMap { t in ((t["stacks"] as? [[String: Any]]) ?? []).flatMap { ($0["frames"] as? [[String: Any]]) ?? [] } }
        let vdso = frames.filter { $0["module"] as? String == "[vdso]" }
        #expect(!vdso.isEmpty, "the loop's samples are in the vDSO: \(frames.map { $0["name"] ?? "-" })")
        for f in vdso {
            let function = f["function"] as? String ?? ""
            #expect(function.hasSuffix("clock_gettime"), "\(f)")
        }
        let profile = try runTool(asynctrace, ["profile", trace])
        let top = profile.output.split(separator: "\n").first { $0.contains("%") && $0.contains("[vdso]") }
        #expect(top?.contains("clock_gettime  [vdso]") == true, "\(profile.output.prefix(800))")
    }
}
