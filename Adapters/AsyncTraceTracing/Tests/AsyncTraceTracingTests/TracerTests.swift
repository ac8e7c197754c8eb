// The bridge end to end: a tracer bootstrapped in this process, Swift tasks observed by
// AsyncTraceConcurrency.install(), the recorder writing a real trace file, and the trace read back
// through the analyses and the text report.
import AsyncHooks
import AsyncTraceConcurrency
import AsyncTraceRecorder
import AsyncTraceTracing
import Foundation
import Instrumentation
import Testing
import TraceAnalyses
import TraceReader
import TraceReports
import Tracing

@Suite(.serialized) struct TracerTests {
    @Test func spanTreeAppearsInTheReportWithWhatRanInside() async throws {
        let path = NSTemporaryDirectory() + "asynctrace-tracing-\(getpid()).atrace"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let payload = NSTemporaryDirectory() + "asynctrace-tracing-\(getpid()).bin"
        _ = FileManager.default.createFile(atPath: payload, contents: Data(repeating: 7, count: 4 << 20))
        defer { try? FileManager.default.removeItem(atPath: payload) }

        try TraceRecorder.start(path: path)
        try AsyncTraceConcurrency.install()
        InstrumentationSystem.bootstrap(AsyncTraceTracer())

        for i in 0..<4 {
            // Request 3's span is renamed once "routed" (as Hummingbird's TracingMiddleware does).
            try await withSpan(i == 3 ? "HTTP GET route not found" : "GET /api/item/\(i)", ofKind: .server) { span in
                if i == 3 { span.operationName = "GET /api/item/3" }
                span.attributes["http.method"] = "GET"
                span.attributes["http.target"] = "/api/item/\(i)"
                try await withSpan("db.query") { _ in
                    try await Task.sleep(nanoseconds: 1_000_000)
                }
                if i == 2 {  // the slow one: a child task reads a file, then waits
                    let n = await Task { (try? Data(contentsOf: URL(fileURLWithPath: payload)).count) ?? 0 }.value
                    span.attributes["bytes"] = n
                    try await Task.sleep(nanoseconds: 30_000_000)
                }
            }
        }
        TraceRecorder.stop()

        let reader = try TraceReader(path: path)
        let analysis = analyzeTrace(reader)
        let spans = analysis.spans
        #expect(spans.begun == 8 && spans.ended == 8 && spans.openAtEnd == 0, "\(spans.begun) \(spans.ended) \(spans.openAtEnd)")
        let byName = Dictionary(grouping: spans.slowest, by: \.name)
        // The slowest is the slow request, with its ids, attributes and the task that read the file inside it.
        let slow = try #require(spans.slowest.first)
        #expect(slow.name == "GET /api/item/2")
        #expect((slow.durationNs ?? 0) >= 30_000_000)
        #expect(slow.attribute("trace.id")?.count == 32)
        #expect(slow.attribute("span.id")?.count == 16)
        #expect(slow.attribute("http.method") == "GET")
        #expect(slow.attribute("bytes") == String(4 << 20))
        #expect(slow.executionType == "SwiftTask")
        #expect(slow.callbacksInside >= 3, "the request's task runs, the child task's run, db.query's runs")
        #expect(slow.insideByType.contains { $0.type == "SwiftTask" })
        // Children: each db.query span has its request as parent and shares its trace id.
        let queries = byName["db.query"] ?? []
        let requests = spans.slowest.filter { $0.name.hasPrefix("GET ") }
        #expect(queries.count == 4 && requests.count == 4)
        for q in queries {
            let parent = requests.first { $0.spanID == q.parentSpanID }
            #expect(parent != nil, "db.query's parent is a request span")
            #expect(parent?.attribute("trace.id") == q.attribute("trace.id"))
            #expect(q.attribute("parent.span.id") == parent?.attribute("span.id"))
        }
        #expect(Set(requests.compactMap { $0.attribute("trace.id") }).count == 4, "each request is a trace of its own")
        #expect(byName["GET /api/item/3"]?.count == 1 && byName["HTTP GET route not found"] == nil, "a renamed span has its last name")

        let text = TextReport.render(analysis)
        if ProcessInfo.processInfo.environment["ASYNCTRACE_TEST_PRINT"] != nil { print(text) }
        #expect(text.contains("SPANS: 8 begun, 8 ended"))
        #expect(text.contains("▶ GET /api/item/2"))
        let json = JSONReport.render(analysis)
        #expect(json.contains("\"spans\": [") || json.contains("\"spans\":["))
        #expect(json.contains("\"name\": \"GET /api/item/2\"") || json.contains("\"name\":\"GET /api/item/2\""))
    }

    @Test func traceparentRoundTrips() {
        struct DictInjector: Injector { func inject(_ v: String, forKey k: String, into c: inout [String: String]) { c[k] = v } }
        struct DictExtractor: Extractor { func extract(key: String, from c: [String: String]) -> String? { c[key] } }
        let tracer = AsyncTraceTracer()
        let span = tracer.startSpan("outgoing", context: .topLevel)
        var headers: [String: String] = [:]
        tracer.inject(span.context, into: &headers, using: DictInjector())
        span.end()
        var incoming = InstrumentationContext.topLevel
        tracer.extract(headers, into: &incoming, using: DictExtractor())
        #expect(incoming.asyncTraceSpan?.traceID == span.context.asyncTraceSpan?.traceID)
        #expect(incoming.asyncTraceSpan?.spanID == span.context.asyncTraceSpan?.spanID)
        var garbage = InstrumentationContext.topLevel
        tracer.extract(["traceparent": "00-zz-12-01"], into: &garbage, using: DictExtractor())
        #expect(garbage.asyncTraceSpan == nil)
    }
}
