// (Here, not in the root package's tests: it records in process, and the root tests share one process in
// which other suites record too.)
// Spans through every view: recorded in this process (AsyncHooks spans, an async AsyncResource scope,
// attributes), then the report's JSON spans[] and the Perfetto and Chrome exports, checked by the validators.
import AsyncHooks
import AsyncTraceRecorder
import Foundation
import Testing
import TraceAnalyses
import TraceExports
import TraceReader
import TraceReports
import TraceExports

// In TracerTests' serialized suite: both record in this process, one at a time.
extension TracerTests {
    @Test func spansAppearInTheReportJSONAndTheExports() async throws {
        let dir = NSTemporaryDirectory() + "asynctrace-spans-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if ProcessInfo.processInfo.environment["ASYNCTRACE_TEST_KEEP"] == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let trace = dir + "/spans.atrace"
        try TraceRecorder.start(path: trace)
        let outer = AsyncHooks.beginSpan("request")
        AsyncHooks.setSpanAttribute(outer, key: "trace.id", value: "4bf92f3577b34da6a3ce929d0e0e4736")
        AsyncHooks.setSpanAttribute(outer, key: "http.route", value: "/api/report")
        let worker = AsyncResource("WORKER")
        try await worker.runInScope {  // an async scope: recorded as a span named after the type
            _ = worker.runInScope { usleep(2_000) }  // a callback inside it, on this thread
            try await Task.sleep(nanoseconds: 3_000_000)
        }
        let inner = AsyncHooks.beginSpan("db.query")
        AsyncHooks.setSpanAttribute(inner, key: "parent.span", value: String(outer.rawValue))
        usleep(1_000)
        AsyncHooks.endSpan(inner)
        AsyncHooks.endSpan(outer)
        _ = AsyncHooks.beginSpan("never ended")
        TraceRecorder.stop()

        let analysis = analyzeTrace(try TraceReader(path: trace))
        #expect(analysis.spans.begun == 4 && analysis.spans.ended == 3 && analysis.spans.openAtEnd == 1)
        let names = Set(analysis.spans.slowest.map(\.name))
        #expect(names == ["request", "WORKER", "db.query", "never ended"])
        let scope = try #require(analysis.spans.slowest.first { $0.name == "WORKER" })
        #expect((scope.durationNs ?? 0) >= 3_000_000, "the async scope covers the await")
        #expect(scope.attribute("asyncID") == String(worker.asyncID.rawValue))
        let query = try #require(analysis.spans.slowest.first { $0.name == "db.query" })
        #expect(query.parentSpanID == outer.rawValue)

        // JSON
        let json = try JSONSerialization.jsonObject(with: Data(JSONReport.render(analysis).utf8)) as? [String: Any]
        let spans = try #require(json?["spans"] as? [[String: Any]])
        #expect(spans.count == 4)
        let request = try #require(spans.first { $0["name"] as? String == "request" })
        #expect(request["trace_id"] as? String == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect((request["attributes"] as? [String: Any])?["http.route"] as? String == "/api/report")

        // Perfetto: a track per span, the attributes on the slice.
        let pf = dir + "/t.pftrace"
        _ = try export(trace, .perfetto, to: pf)
        let p = try validate("perfetto_check.py", [pf])
        #expect(p["error"] == nil, "\(p["error"] ?? "")")
        let pspans = (p["spans"] as? [[String: Any]]) ?? []
        #expect(Set(pspans.compactMap { $0["name"] as? String }) == names)
        let pRequest = pspans.first { $0["name"] as? String == "request" }
        #expect((pRequest?["args"] as? [String: Any])?["http.route"] as? String == "/api/report")

        // Chrome: async b/e events.
        let ch = dir + "/t.json"
        _ = try export(trace, .chrome, to: ch)
        let c = try validate("chrome_check.py", [ch])
        #expect(c["error"] == nil, "\(c["error"] ?? "")")
        #expect(c["async_spans"] as? Int == 4)
    }
}

/// The root package's export validators (Python, with the perfetto package tools/install-deps.sh installs).
func validate(_ script: String, _ args: [String]) throws -> [String: Any] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", root.appendingPathComponent("Tests/TraceExportsTests/validators/" + script).path] + args
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [
        "error": "validator printed no JSON: \(String(decoding: data.prefix(2000), as: UTF8.self))"
    ]
}

func export(_ trace: String, _ format: ExportFormat, to out: String) throws {
    _ = try TraceExport.run(reader: try TraceReader(path: trace), format: format, outputPath: out, grouping: .callback, weight: .busy)
}
