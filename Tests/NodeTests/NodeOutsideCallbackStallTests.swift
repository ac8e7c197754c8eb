// A stall that no callback explains: an `async` handler that blocks after an `await` runs as a promise
// continuation, which Node's default mode does not record. On an HTTP server whose handler parsed a big JSON
// body after `for await (const chunk of req)`, the 371 ms stall had no "inside" line and nothing said why;
// the report now says how much of a stall ran outside every recorded callback (JSON in_callbacks_ns).
import Foundation
import Testing

@Suite(.serialized) struct NodeOutsideCallbackStallTests {
    static let kernelCapable = getuid() == 0 && FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux")

    static let program = #"""
        const { setTimeout: sleep } = require('timers/promises');
        function spin(ms) { const t = Date.now(); while (Date.now() - t < ms) {} }
        async function main() {
          await sleep(20);
          spin(120);                                  // an await's continuation: no callback recorded around it
          await sleep(20);
          setTimeout(function inTimer() { spin(60); }, 20);  // a Timeout's callback
        }
        main();
        """#

    @Test func aStallAfterAnAwaitSaysItRanOutsideEveryRecordedCallback() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try #require(Self.kernelCapable, "KERNEL TEST SKIPPED: not root or no BTF (stalls come from the kernel's epoll waits)")
        try withRecordedNodeScript(Self.program, file: "outside.js", node: node, record: ["--sample-rate", "0"], report: ["--threshold", "50ms"]) {
            r in
            let (trace, rec, json) = (r.trace, r.record, r.json)
            #expect(rec.status == 0, "record: \(rec.stderr)")
            let stalls = (json["stalls"] as? [[String: Any]] ?? []).filter { ($0["duration_ns"] as? NSNumber)?.uint64Value ?? 0 >= 50_000_000 }
            func ns(_ s: [String: Any], _ k: String) -> UInt64? { (s[k] as? NSNumber)?.uint64Value }
            // The spin after the await: at least 120 ms, almost none of it in a callback.
            // (Told apart by their time in callbacks, not their lengths: on a busy machine the Timeout's 60 ms spin
            // waited for a CPU past 115 ms and was taken for the continuation's.)
            let afterAwait = try #require(
                stalls.filter { (ns($0, "duration_ns") ?? 0) >= 115_000_000 }.min {
                    (ns($0, "in_callbacks_ns") ?? 0) < (ns($1, "in_callbacks_ns") ?? 0)
                },
                "stalls: \(stalls)")
            let inside = try #require(ns(afterAwait, "in_callbacks_ns"), "\(afterAwait)")
            #expect(inside < 20_000_000, "\(afterAwait)")
            #expect(afterAwait["ends_at_exit"] as? Bool == false, "the loop waited again after it: \(afterAwait)")
            // The Timeout's spin: all of it in its callback.
            let inTimer = try #require(stalls.first { (ns($0, "in_callbacks_ns") ?? 0) >= 55_000_000 }, "stalls: \(stalls)")
            #expect((ns(inTimer, "duration_ns") ?? 0) >= 55_000_000 && ns(inTimer, "start_ns") != ns(afterAwait, "start_ns"), "\(inTimer)")

            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--threshold", "50ms"]).stdout
            #expect(text.contains("outside every recorded callback"), "\(text)")
            #expect(text.contains("record --node-promises"), "\(text)")
        }
    }

    /// After its loop's last wait (the one of its cleanup, after the 'exit' handlers) node tears down, then
    /// waits once on another loop: that stretch, node's exit, read "code run between callbacks, such as promise
    /// continuations after an `await`" (285 ms of it on a loaded machine). Every stretch is listed here.
    @Test func theStretchOfAProgramsExitSaysSo() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try #require(Self.kernelCapable, "KERNEL TEST SKIPPED: not root or no BTF (stalls come from the kernel's epoll waits)")
        let report = ["--threshold", "0ms", "--top", "500"]
        try withRecordedNodeScript(
            "setTimeout(function last() {}, 20);\n", file: "exit.js", node: node, record: ["--sample-rate", "0"], report: report
        ) {
            r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            func ns(_ s: [String: Any], _ k: String) -> UInt64 { (s[k] as? NSNumber)?.uint64Value ?? 0 }
            let stalls = (r.json["stalls"] as? [[String: Any]] ?? []).filter { ($0["pid"] as? NSNumber) == ($0["tid"] as? NSNumber) }
            let exits = stalls.filter { $0["ends_at_exit"] as? Bool == true }
            let exit = try #require(exits.first, "stalls: \(stalls)")
            #expect(exits.count == 1 && stalls.allSatisfy { ns($0, "start_ns") <= ns(exit, "start_ns") }, "the main thread's last: \(stalls)")
            #expect(ns(exit, "in_callbacks_ns") == 0, "\(exit)")
            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace] + report).stdout
            #expect(text.contains("the program's exit after its last callback"), "\(text)")
        }
    }

    /// The JSON's loop and the HTML page say what the text says of a Node program's loop: its loop from the
    /// kernel's epoll waits (JSON `loop` was source "none", utilization 0.0, while the text said busy 16.5%),
    /// and its stalls (the HTML page had neither section for a program with callbacks).
    @Test func theJSONLoopAndTheHTMLPageShowANodeProgramsLoopAndStalls() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try #require(Self.kernelCapable, "KERNEL TEST SKIPPED: not root or no BTF (the loop comes from the kernel's epoll waits)")
        try withRecordedNodeScript(Self.program, file: "outside.js", node: node, record: ["--sample-rate", "0"], report: ["--threshold", "50ms"]) {
            r in
            let (trace, rec, json) = (r.trace, r.record, r.json)
            let html = r.dir + "/outside.html"
            #expect(rec.status == 0, "record: \(rec.stderr)")
            let loop = try #require(json["loop"] as? [String: Any])
            #expect(loop["source"] as? String == "kernel_epoll_waits", "\(loop)")
            #expect(((loop["utilization"] as? NSNumber)?.doubleValue ?? 0) > 0.1, "200 ms of spinning: \(loop)")
            #expect(try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--html", "--threshold", "50ms", "-o", html]).status == 0)
            let page = (try? String(contentsOfFile: html, encoding: .utf8)) ?? ""
            #expect(page.contains("<h2 id=\"loop\">"), "no event loop section")
            #expect(page.contains("<h2 id=\"stalls\">"), "no loop stalls section")
            #expect(page.contains("outside every recorded callback"))
            #expect(page.contains("inside Timeout (async id"), "the Timeout's stall names its callback")
        }
    }
}
