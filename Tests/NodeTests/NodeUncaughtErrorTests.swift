// A program that dies of an uncaught exception: the preload records it (uncaughtExceptionMonitor), and the
// report said nothing of it, in no section and no field; a process that ended by it looked like one that ended
// by itself. The report now names the error, the callback that threw it and where that callback's resource
// was made.
import Foundation
import Testing

@Suite(.serialized) struct NodeUncaughtErrorTests {
    static let program = #"""
        const net = require('net');
        function connectLater() {
          setTimeout(function explode() { throw new TypeError('config.port is not a number: ' + 'x'.repeat(400)); }, 10);
        }
        const server = net.createServer().listen(0, '127.0.0.1', function listening() { connectLater(); });
        """#

    @Test func anUncaughtExceptionIsNamedWithItsCallbackAndWhereItWasCreated() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(Self.program, file: "uncaught.js", node: node, record: ["--sample-rate", "0"]) { r in
            #expect(r.record.status == 1, "node exits with 1 after an uncaught exception: \(r.record.stderr)")
            let errors = r.json["uncaught_errors"] as? [[String: Any]] ?? []
            #expect(errors.count == 1, "\(errors)")
            #expect((r.json["uncaught_errors_not_listed"] as? NSNumber)?.intValue == 0)
            let e = try #require(errors.first, "uncaught_errors: \(r.json["uncaught_errors"] ?? "missing")")
            let message = e["message"] as? String ?? ""
            #expect(message.hasPrefix("TypeError: config.port is not a number: xxx"), "\(e)")
            #expect(message.count <= 256, "the recorder bounds the message: \(message.count)")
            #expect(e["type"] as? String == "Timeout", "\(e)")
            // listen's callback runs in a tick after the server's: TickObject → TCPSERVERWRAP → TickObject → Timeout.
            let chain = e["causal_chain"] as? [String] ?? []
            #expect(chain.last == "Timeout" && chain.contains("TCPSERVERWRAP"), "\(e)")
            let site = (e["created_at"] as? [[String: Any]] ?? []).first
            #expect(site?["function"] as? String == "connectLater", "\(e)")
            #expect((site?["file"] as? String ?? "").hasSuffix("/uncaught.js") && (site?["line"] as? NSNumber)?.intValue == 3, "\(e)")

            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace]).stdout
            #expect(text.contains("UNCAUGHT ERRORS: 1 error thrown by a callback and never caught"), "\(text)")
            #expect(text.contains("thrown in  Timeout (async id \((e["async_id"] as? NSNumber)?.intValue ?? -1))"), "\(text)")
            #expect(text.contains("created at connectLater (uncaught.js:3)"), "\(text)")
            let html = r.dir + "/uncaught.html"
            #expect(try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace, "--html", "-o", html]).status == 0)
            let page = (try? String(contentsOfFile: html, encoding: .utf8)) ?? ""
            #expect(
                page.contains("<h2 id=\"uncaught\">") && page.contains("TypeError: config.port is not a number"), "no uncaught errors on the page")
        }
    }
}
