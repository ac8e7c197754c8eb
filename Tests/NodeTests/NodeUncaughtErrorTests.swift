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

    /// Promises rejected in a timer's callback (the Timeout is destroyed at its end) and by fs.promises (the
    /// FSREQPROMISE's callback rejects), no handler: node reports each after that callback, outside every
    /// callback (async id 0), and the report said "thrown in the program's top level".
    static let rejections = [
        (
            "Timeout", "scheduleCheck",
            #"""
            function scheduleCheck() {
              setTimeout(function check() { Promise.reject(new Error('nobody handled this')); }, 10);
            }
            scheduleCheck();
            """#
        ),
        (
            "FSREQPROMISE", "Timeout.readLater",
            #"""
            function start() {
              setTimeout(function readLater() { require('fs').promises.readFile('/nonexistent/asynctrace-test'); }, 10);
            }
            start();
            """#
        ),
    ]

    @Test(arguments: 0..<2) func anUnhandledRejectionIsNamedByTheCallbackItCameOutOf(_ which: Int) throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let (type, function, program) = Self.rejections[which]
        try withRecordedNodeScript(program, file: "rejection.js", node: node, record: ["--no-kernel"]) { r in
            #expect(r.record.status == 1, "node exits with 1 after an unhandled rejection: \(r.record.stderr)")
            let errors = r.json["uncaught_errors"] as? [[String: Any]] ?? []
            let e = try #require(errors.first, "uncaught_errors: \(r.json["uncaught_errors"] ?? "missing")")
            #expect(e["type"] is NSNull && (e["async_id"] as? NSNumber)?.intValue == 0, "\(e)")
            let after = try #require(e["after"] as? [String: Any], "\(e)")
            #expect(after["type"] as? String == type, "\(e)")
            #expect((after["causal_chain"] as? [String] ?? []).last == type, "\(e)")
            let site = (after["created_at"] as? [[String: Any]] ?? []).first ?? [:]
            let (siteFunction, siteFile) = (site["function"] as? String ?? "", site["file"] as? String ?? "")
            #expect(siteFunction.hasPrefix(function), "\(e)")
            #expect(siteFile.hasSuffix("/rejection.js") && (site["line"] as? NSNumber)?.intValue == 2, "\(e)")

            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace]).stdout
            #expect(!text.contains("top level") && text.contains("thrown in  no recorded callback"), "\(text)")
            #expect(text.contains("after      \(type) (async id \((after["async_id"] as? NSNumber)?.intValue ?? -1))"), "\(text)")
            #expect(text.contains("created at \(function)"), "\(text)")
        }
    }
}
