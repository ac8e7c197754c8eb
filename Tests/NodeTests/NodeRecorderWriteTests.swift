// The Node preload writes its batches from the program's threads, each write a callback of its own
// ("asynctrace (batch write)", async id 2^32 − 1): listed among the program's callbacks (its loop paid for it),
// it read like one of the program's, "asynctrace (batch write) (async id 4294967295) blocked node for 31.8 ms".
import Foundation
import Testing

@Suite(.serialized) struct NodeRecorderWriteTests {
    @Test func theRecordersOwnWritesSaySo() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let program = "setTimeout(function later() {}, 30);\n"
        let report = ["--threshold", "0ms", "--top", "1000"]
        try withRecordedNodeScript(program, file: "writes.js", node: node, record: ["--no-kernel"], report: report) { r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            let callbacks = r.json["slowest_callbacks"] as? [[String: Any]] ?? []
            let writes = callbacks.filter { $0["type"] as? String == "asynctrace (batch write)" }
            #expect(!writes.isEmpty, "\(callbacks)")
            for w in writes { #expect(w["label"] as? String == "the recorder's own", "\(w)") }
            let timeout = try #require(callbacks.first { $0["type"] as? String == "Timeout" }, "\(callbacks)")
            #expect(timeout["label"] is NSNull, "the program's own callbacks have no such label: \(timeout)")
            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace] + report).stdout
            #expect(text.contains("asynctrace (batch write) (async id 4294967295, the recorder's own)"), "\(text)")
        }
    }
}
