// Every example scenario, recorded for real (the runtime's own events through ASYNCTRACE_OUTPUT), exported
// to every format (Perfetto, Chrome JSON, speedscope, folded stacks, flame graph SVG, HTML report), each output
// checked by the third-party schema or tool; one recording with the kernel probes (asynctrace record) so
// syscalls nest inside the callbacks that made them.
import Foundation
import Testing
import TraceExports
import TraceReader
import TraceSymbols

enum Examples {
    /// The scenario names `asynctrace-examples --help` lists (so new scenarios are covered without editing this).
    static let scenarios: [String] = {
        guard let exe = Repo.executable("asynctrace-examples"), let r = try? runTool([exe, "--help"]) else { return [] }
        var names: [String] = []
        var inList = false
        for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("scenarios:") { inList = true; continue }
            guard inList else { continue }
            if !line.hasPrefix("  ") { if !names.isEmpty { break } else { continue } }
            if let name = line.split(separator: " ").first { names.append(String(name)) }
        }
        return names
    }()

    static func record(_ scenario: String, to path: String) throws -> ToolResult {
        try runTool([Repo.executable("asynctrace-examples")!, scenario], environment: ["ASYNCTRACE_OUTPUT": path], timeout: 60)
    }
}

/// Exports `trace` to every format and checks each with its validator; returns the perfetto summary.
func exportAndValidateEverything(_ trace: String, in dir: ScratchDirectory, name: String) throws -> [String: Any] {
    let reader = try TraceReader(path: trace)
    var iterated: UInt64 = 0  // the reader's event count includes string definitions, which it consumes itself
    let it = reader.events()
    while it.next() != nil { iterated += 1 }
    var perfetto: [String: Any] = [:]
    for format in ExportFormat.allCases {
        let out = dir.file("\(name).\(format.defaultExtension)")
        let s = try TraceExport.run(reader: reader, format: format, outputPath: out)
        #expect(s.events == iterated, "\(name) \(format): read \(s.events) of \(iterated) events")
        let r: [String: Any]
        switch format {
        case .perfetto:
            r = try validate("perfetto_check.py", [out])
            perfetto = r
            if r["error"] == nil {
                let callbackSlices = (r["callback_args"] as? [Any])?.count ?? -1
                #expect(UInt64(callbackSlices) == s.callbacks, "\(name): \(callbackSlices) callback slices, \(s.callbacks) callbacks")
            }
        case .chrome: r = try validate("chrome_check.py", [out])
        case .speedscope: r = try validate("speedscope_check.py", [out, Repo.speedscopeSchema])
        case .folded:
            r = try validate("folded_check.py", [out])
            if r["error"] == nil { #expect((r["total"] as? Int ?? 0) > 0, "\(name): no time in callbacks") }
        case .otlp:
            // Every span parses with opentelemetry-proto, ids are well-formed, every parent exists.
            r = try validate("otlp_check.py", [out])
            if r["error"] == nil {
                #expect(UInt64(r["spans"] as? Int ?? -1) == s.spans, "\(name): \(r["spans"] ?? "?") spans read back, \(s.spans) written")
                #expect(s.spans >= s.callbacks, "\(name): \(s.spans) spans for \(s.callbacks) callbacks")
            }
        }
        #expect(r["error"] == nil, "\(name) \(format): \(r["error"] ?? "")")
    }
    // By code only where there are CPU samples (a kernel recording that ran long enough).
    let sampled = !TraceSamples(reader: reader).samples.isEmpty
    for grouping in StackGrouping.allCases where grouping != .code || sampled {
        let svg = dir.file("\(name)-\(grouping.rawValue).svg")
        _ = try Flamegraph.write(reader: reader, to: svg, grouping: grouping, weight: .busy)
        let r = try validate("svg_check.py", [svg])
        #expect(r["error"] == nil, "\(name) flamegraph \(grouping): \(r["error"] ?? "")")
        #expect((r["frame_count"] as? Int ?? 0) > 0)
        // The folded stacks of both groupings and weights, drawn by Brendan Gregg's flamegraph.pl itself.
        for weight in StackWeight.allCases {
            let folded = dir.file("\(name)-\(grouping.rawValue)-\(weight.rawValue).folded")
            _ = try TraceExport.run(reader: reader, format: .folded, outputPath: folded, grouping: grouping, weight: weight)
            try FlamegraphPL.expectAccepts(folded, svg: folded + ".svg", "\(name) folded \(grouping) \(weight)")
        }
    }
    // The HTML report: the same numbers as the text and JSON reports, and it renders with all its sections.
    let page = try expectHTMLReportMatchesJSONAndText(trace, in: dir, name: name, options: ["--threshold", "100us"])
    try expectHTMLReportRenders(page, name)
    return perfetto
}

@Suite struct ExampleScenarioTests {
    @Test func theExamplesListScenarios() {
        #expect(Examples.scenarios.count >= 7, "\(Examples.scenarios)")
        #expect(Examples.scenarios.contains("blocking"))
    }

    @Test(arguments: Examples.scenarios)
    func everyFormatOfARecordedScenarioValidates(_ scenario: String) throws {
        let dir = ScratchDirectory("example-\(scenario)")
        let trace = dir.file("\(scenario).atrace")
        let run = try Examples.record(scenario, to: trace)
        #expect(run.status == 0, "\(scenario) exited \(run.status): \(run.stderr.suffix(500))")
        let reader = try TraceReader(path: trace)
        #expect(reader.damage.isEmpty)
        #expect(reader.eventCount > 10)
        _ = try exportAndValidateEverything(trace, in: dir, name: scenario)
    }

    /// The same with the kernel probes (`asynctrace record`): syscalls become slices nested in the callbacks
    /// that made them, and epoll's ready fds start flows.
    @Test(arguments: Examples.scenarios)
    func everyFormatOfAKernelRecordingValidates(_ scenario: String) throws {
        if geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
            print("KERNEL TEST SKIPPED: export of a kernel recording of \(scenario): needs root and /sys/kernel/btf/vmlinux")
            try Test.cancel("kernel test skipped: needs root and /sys/kernel/btf/vmlinux")
        }
        let dir = ScratchDirectory("example-kernel-\(scenario)")
        let trace = dir.file("\(scenario).atrace")
        let rec = try runTool(
            [
                Repo.executable("asynctrace")!, "record", "-o", trace, "--",
                Repo.executable("asynctrace-examples")!, scenario,
            ], timeout: 60)
        #expect(rec.status == 0, "record \(scenario) failed: \(rec.stderr.suffix(800))")
        let reader = try TraceReader(path: trace)
        #expect(reader.hasKernelEvents && reader.hasUserEvents && reader.damage.isEmpty)
        let perfetto = try exportAndValidateEverything(trace, in: dir, name: "\(scenario)-kernel")
        // Kernel syscalls nest inside the callbacks that made them, on the callback's thread.
        let nesting = Set(perfetto["nesting"] as? [String] ?? [])
        let callbacks = Set((perfetto["callback_args"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        let loopSlices: Set<Substring> = ["epoll wait (loop)"]
        let syscallInCallback = nesting.contains { n in
            let parts = n.components(separatedBy: " > ")
            return parts.count == 2 && callbacks.contains(parts[0]) && !callbacks.contains(parts[1])
                && !loopSlices.contains(Substring(parts[1])) && !parts[1].hasSuffix(" phase")
        }
        #expect(syscallInCallback, "\(scenario): no syscall nested in a callback: \(nesting.sorted())")
        #expect(
            nesting.contains("epoll wait (loop) > epoll_wait") || nesting.contains("epoll wait (loop) > epoll_pwait"),
            "\(scenario): \(nesting.sorted())")
        // Flows from epoll's ready fds to the callbacks they woke (timers, stalls and leak use only timers: no fds).
        if !["timers", "stalls", "leak"].contains(scenario) { #expect((perfetto["flows_terminated"] as? Int ?? 0) > 0, "\(scenario): no flows") }
        if scenario == "blocking" { try blockingCallbackIsNamedWithItsSyscall(reader, perfetto: perfetto, in: dir) }
    }

    /// An unmodified program (no async events, only what the kernel probes saw): syscall slices per thread in
    /// every format; the folded stacks by wall time (busy time is time inside callbacks, and there are none).
    @Test func unmodifiedProgramExportsEveryFormat() throws {
        if geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
            print("KERNEL TEST SKIPPED: export of a kernel-only recording: needs root and /sys/kernel/btf/vmlinux")
            try Test.cancel("kernel test skipped: needs root and /sys/kernel/btf/vmlinux")
        }
        let dir = ScratchDirectory("kernel-only")
        let trace = dir.file("python.atrace")
        let script =
            "import os, select\nr, w = os.pipe()\nep = select.epoll()\nep.register(r, select.EPOLLIN)\n"
            + "for i in range(40):\n    os.write(w, b'x')\n    ep.poll(1)\n    os.read(r, 1)\n"
            // Some CPU in python's own code, and a process still alive when a loaded recorder reads its maps
            // after the exec (they are read from /proc when the exec record is taken: a process gone by then
            // leaves its frames unnamed, module unknown).
            + "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.4:\n    sum(range(1000))\n"
        let rec = try runTool(
            [Repo.executable("asynctrace")!, "record", "-o", trace, "--", "/usr/bin/python3", "-S", "-c", script],
            timeout: 60)
        #expect(rec.status == 0, "record failed: \(rec.stderr.suffix(800))")
        let reader = try TraceReader(path: trace)
        #expect(reader.hasKernelEvents && !reader.hasUserEvents)
        let perfetto = try validate(
            "perfetto_check.py",
            [
                {
                    let o = dir.file("p.perfetto-trace")
                    _ = try TraceExport.run(reader: reader, format: .perfetto, outputPath: o); return o
                }()
            ])
        #expect(perfetto["error"] == nil, "\(perfetto["error"] ?? "")")
        // No callbacks: only the scheduler's off-CPU states nest, inside the syscall the thread blocked in.
        let nesting = Set(perfetto["nesting"] as? [String] ?? [])
        #expect(
            nesting.allSatisfy { pair in
                let p = pair.components(separatedBy: " > ")
                return p.count == 2 && (p[1] == "blocked in " + p[0] || p[1].hasPrefix("runnable"))
            }, "only off-CPU states nest: \(nesting)")
        let chrome = dir.file("p.json"), speedscope = dir.file("p.speedscope.json")
        _ = try TraceExport.run(reader: reader, format: .chrome, outputPath: chrome)
        _ = try TraceExport.run(reader: reader, format: .speedscope, outputPath: speedscope)
        let c = try validate("chrome_check.py", [chrome])
        #expect(c["error"] == nil, "\(c["error"] ?? "")")
        let sp = try validate("speedscope_check.py", [speedscope, Repo.speedscopeSchema])
        #expect(sp["error"] == nil, "\(sp["error"] ?? "")")
        let byThread = (c["complete_by_thread"] as? [String: [String: Int]] ?? [:]).values
        #expect(byThread.contains { ($0["epoll_wait"] ?? 0) + ($0["epoll_pwait"] ?? 0) >= 40 && ($0["write"] ?? 0) >= 40 }, "\(byThread)")
        // Folded by wall time: each thread's syscalls, drawn by flamegraph.pl; by busy time: on CPU, syscalls and
        // off-CPU reasons, without the idle epoll waits.
        let wall = dir.file("wall.folded"), busy = dir.file("busy.folded")
        _ = try TraceExport.run(reader: reader, format: .folded, outputPath: wall, weight: .wall)
        let drawn = try FlamegraphPL.expectAccepts(wall, svg: wall + ".svg", "kernel-only wall")
        #expect(drawn?.frames.contains { $0.name == "write" && $0.samples > 0 } == true)
        _ = try TraceExport.run(reader: reader, format: .folded, outputPath: busy, weight: .busy)
        let busyLines = try String(contentsOfFile: busy, encoding: .utf8).split(separator: "\n")
        #expect(busyLines.contains { $0.contains(";on CPU") } && busyLines.contains { $0.contains(";write ") })
        // The default flame graph of a kernel-only trace names code too: the samples below "on CPU" (python's
        // own functions).
        let onCPU = busyLines.filter { $0.contains(";on CPU") }
        #expect(onCPU.contains { $0.contains(";on CPU;") && ($0.contains(";_Py") || $0.contains(";Py")) }, "\(onCPU.prefix(10))")
        // A loop's idle epoll wait is no frame of its own; a CPU sample taken in libc's epoll_wait code is on-CPU
        // time below "on CPU" (it landed there under load: the fresh CI run failed on it).
        let waitFrames = busyLines.filter { line in
            !line.contains(";on CPU;") && (line.contains(";epoll_wait") || line.contains(";epoll_pwait"))
        }
        #expect(waitFrames.isEmpty, "idle waits are not busy: \(waitFrames.prefix(5))")
        _ = try FlamegraphPL.expectAccepts(busy, svg: busy + ".svg", "kernel-only busy")
        // By code: the CPU samples name python's own functions (its .dynsym), under the thread; flamegraph.pl draws them.
        let code = dir.file("code.folded")
        _ = try TraceExport.run(reader: reader, format: .folded, outputPath: code, grouping: .code)
        let drawnCode = try FlamegraphPL.expectAccepts(code, svg: code + ".svg", "kernel-only code")
        #expect(
            drawnCode?.frames.contains { $0.name.hasPrefix("_Py") || $0.name.hasPrefix("Py") } == true,
            "\(drawnCode?.frames.prefix(20).map(\.name) ?? [])")
        // The HTML report: the kernel-only analyses, the same numbers as JSON and text; the flame graph by wall time.
        let page = try expectHTMLReportMatchesJSONAndText(trace, in: dir, name: "kernel-only")
        let dom = try expectHTMLReportRenders(page, "kernel-only", screenshot: "report-kernel-only.png", callbacks: false)
        #expect(dom?.contains("Event loop (from waits for events in the kernel") == true)
        // Its syscalls are too short to be sure of a frame wide enough to draw; the thread's frame is always there.
        #expect(dom?.contains("<title>python3 (") == true, "the wall-time flame graph shows the thread")
    }

    /// The 200 ms callback of `blocking`: its read nests inside it, and the HTML report lists it first.
    func blockingCallbackIsNamedWithItsSyscall(_ reader: TraceReader, perfetto: [String: Any], in dir: ScratchDirectory) throws {
        let nesting = Set(perfetto["nesting"] as? [String] ?? [])
        #expect(nesting.contains("TCPWRAP > read") || nesting.contains("TCPWRAP > recvfrom"), "\(nesting)")
        let html = HTMLReport.render(reader: reader)
        let page = dir.file("report.html")
        try html.write(toFile: page, atomically: true, encoding: .utf8)
        guard Browser.binary != nil else {
            Issue.record("headless Chromium is not installed (tools/install-deps.sh installs chromium-headless-shell)")
            return
        }
        let dom = try Browser.dumpDOM(page)
        let rows = dom.components(separatedBy: "<tr class=\"blocking\"").dropFirst().map { String($0.prefix(while: { $0 != "\n" })) }
        #expect(!rows.isEmpty, "no blocking callback listed")
        // The longest: ~200 ms, most of it inside one read.
        if let first = rows.first {
            #expect(first.contains(">TCPWRAP<") && first.contains(" ms<"), "\(first)")
            #expect(first.contains("read(fd "), "\(first)")
        }
        #expect(try Browser.screenshot(page, to: Browser.artifacts + "/report-blocking.png"))
    }
}
