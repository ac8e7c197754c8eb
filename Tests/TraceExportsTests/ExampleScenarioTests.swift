// Every example scenario, recorded for real (the runtime's own events through ASYNCTRACE_OUTPUT), exported
// to every format (Perfetto, Chrome JSON, speedscope, folded stacks, flame graph SVG, HTML report), each output
// checked by the third-party schema or tool; one recording with the kernel probes (asynctrace record) so
// syscalls nest inside the callbacks that made them.
import Foundation
import Testing
import TraceExports
import TraceReader

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
        }
        #expect(r["error"] == nil, "\(name) \(format): \(r["error"] ?? "")")
    }
    for grouping in StackGrouping.allCases {
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

    @Test func blockingScenarioWithKernelProbesShowsTheSyscallInsideTheBlockingCallback() throws {
        if geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
            print("KERNEL TEST SKIPPED: export of a kernel recording: needs root and /sys/kernel/btf/vmlinux")
            return
        }
        let dir = ScratchDirectory("example-kernel")
        let trace = dir.file("blocking.atrace")
        let rec = try runTool([Repo.executable("asynctrace")!, "record", "-o", trace, "--",
                               Repo.executable("asynctrace-examples")!, "blocking"], timeout: 60)
        #expect(rec.status == 0, "record failed: \(rec.stderr.suffix(800))")
        let reader = try TraceReader(path: trace)
        #expect(reader.hasKernelEvents)
        let perfetto = try exportAndValidateEverything(trace, in: dir, name: "blocking-kernel")
        // Kernel syscalls nest inside the callbacks that made them, on the callback's thread.
        let nesting = Set(perfetto["nesting"] as? [String] ?? [])
        #expect(nesting.contains("TCPWRAP > read") || nesting.contains("TCPWRAP > recvfrom"), "\(nesting)")
        #expect(nesting.contains("epoll wait (loop) > epoll_wait") || nesting.contains("epoll wait (loop) > epoll_pwait"))
        #expect((perfetto["flows_terminated"] as? Int ?? 0) > 0)

        // The HTML report names the 200 ms blocking callback and the syscall it blocked in.
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
        // The longest: ~200 ms, most of it inside one syscall.
        if let first = rows.first {
            #expect(first.contains(" ms"), "\(first)")
            #expect(first.contains("read") , "\(first)")
        }
        #expect(try Browser.screenshot(page, to: Browser.artifacts + "/report-blocking.png"))
    }
}
