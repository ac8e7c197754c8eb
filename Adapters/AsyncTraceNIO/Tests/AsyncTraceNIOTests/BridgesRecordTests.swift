// `AsyncTraceBridges.channelHandler()`, the one line that adds both bridges (asynctrace-nio-bridges: an HTTP
// server with a span per request through `InstrumentationSystem.tracer`), recorded by `asynctrace record`:
// the spans (its tracer was installed at the first connection) and the channels, each span begun in its
// channel's callback; an application with its own tracer keeps it.
import Foundation
import Testing

@Suite(.serialized) struct BridgesRecordTests {
    /// Sends `requests` GETs on each of `connections` connections to a recorded asynctrace-nio-bridges.
    func recordServer(_ extra: [String], connections: Int, requests: Int) throws -> [String: Any] {
        try #require(access(asynctraceCLI(), X_OK) == 0, "the asynctrace CLI is built: \(asynctraceCLI())")
        let server = try #require(builtExecutable("asynctrace-nio-bridges"))
        let trace = FileManager.default.temporaryDirectory.appendingPathComponent("asynctrace-nio-bridges-\(getpid()).atrace").path
        defer { unlink(trace) }
        let (record, _, port) = try startRecorded([server, "--connections", String(connections)] + extra, trace: trace)
        for c in 0..<connections {
            let fd = try connectLoopback(port)
            for r in 0..<requests {
                let request = Array("GET /c\(c)/r\(r) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
                _ = write(fd, request, request.count)
                var response = [UInt8]()
                var buf = [UInt8](repeating: 0, count: 1024)
                while !String(decoding: response, as: UTF8.self).hasSuffix("hello world\n") {
                    let n = read(fd, &buf, buf.count)
                    guard n > 0 else { break }
                    response += buf[0..<n]
                }
                #expect(String(decoding: response, as: UTF8.self).hasPrefix("HTTP/1.1 200 OK"))
            }
            close(fd)
        }
        record.waitUntilExit()  // the server exits after the last connection closes
        #expect(record.terminationStatus == 0)
        return try reportJSON(trace)
    }

    @Test func oneLineRecordsTheSpansAndTheChannels() throws {
        if let reason = kernelSkipReason() {
            print("KERNEL TEST SKIPPED: oneLineRecordsTheSpansAndTheChannels: \(reason)")
            try Test.cancel("kernel test skipped: \(reason)")
        }
        let connections = 3, requests = 20
        let root = try recordServer([], connections: connections, requests: requests)
        let summary = try #require(root["spans_summary"] as? [String: Any])
        #expect(summary["begun"] as? Int == connections * requests, "\(summary)")
        #expect(summary["ended"] as? Int == connections * requests, "\(summary)")
        let spans = try #require(root["spans"] as? [[String: Any]])
        #expect(!spans.isEmpty)
        for span in spans {
            #expect((span["name"] as? String)?.hasPrefix("GET /c") == true, "\(span)")
            // Begun inside the channel's read (the request's last part arrived): the channel is its context.
            #expect(span["execution_type"] as? String == "NIOSocketChannel", "\(span)")
            let attributes = span["attributes"] as? [String: Any] ?? [:]
            #expect((attributes["trace.id"] as? String)?.count == 32, "\(span)")
        }
        let resources = try #require(root["resources"] as? [[String: Any]])
        let channels = try #require(resources.first { $0["type"] as? String == "NIOSocketChannel" }, "\(resources)")
        #expect(channels["count"] as? Int == connections)
        let attribution = try #require(root["attribution"] as? [String: Any])
        let onResourceFDs = try #require(attribution["on_resource_fds"] as? Int)
        let byOwner = try #require(attribution["on_resource_fds_by_owner"] as? Int)
        #expect(onResourceFDs >= 2 * connections * requests, "\(attribution)")
        #expect(Double(byOwner) >= 0.99 * Double(onResourceFDs), "\(attribution)")
    }

    @Test func anApplicationsOwnTracerIsLeftAlone() throws {
        if let reason = kernelSkipReason() {
            print("KERNEL TEST SKIPPED: anApplicationsOwnTracerIsLeftAlone: \(reason)")
            try Test.cancel("kernel test skipped: \(reason)")
        }
        // The server bootstraps NoOpTracer before the first connection: bootstrapping again would trap.
        let root = try recordServer(["--own-tracer"], connections: 2, requests: 5)
        let summary = try #require(root["spans_summary"] as? [String: Any])
        #expect(summary["begun"] as? Int == 0, "\(summary)")
        let resources = try #require(root["resources"] as? [[String: Any]])
        let channels = try #require(resources.first { $0["type"] as? String == "NIOSocketChannel" }, "\(resources)")
        #expect(channels["count"] as? Int == 2)
    }
}
