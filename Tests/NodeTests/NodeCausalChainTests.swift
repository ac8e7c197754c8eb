// A callback at the end of a long chain of callbacks (a stream pumped through setImmediate, a retry loop):
// its causal chain is cut after 32 steps. The cut was silent, so the 32nd ancestor read as the root cause,
// and the text listed 32 names: "Immediate → Immediate → … (32 times)".
import Foundation
import Testing

@Suite(.serialized) struct NodeCausalChainTests {
    static let program = #"""
        let steps = 0;
        function step() {
          if (++steps < 50) { setImmediate(step); return; }
          const t = Date.now(); while (Date.now() - t < 40) {}  // the 50th Immediate blocks
        }
        setTimeout(function start() { setImmediate(step); }, 5);
        """#

    @Test func aChainCutAfter32StepsSaysSoAndItsRunsAreCounted() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(
            Self.program, file: "chain.js", node: node, record: ["--no-kernel"], report: ["--threshold", "30ms", "--top", "100"]
        ) { r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            let blocking = r.json["blocking"] as? [[String: Any]] ?? []
            let c = try #require(blocking.first { $0["type"] as? String == "Immediate" }, "blocking: \(blocking)")
            let chain = c["causal_chain"] as? [String] ?? []
            #expect(chain.first == "…" && chain.count == 33 && chain.dropFirst().allSatisfy { $0 == "Immediate" }, "\(chain)")

            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace, "--threshold", "30ms", "--top", "100"]).stdout
            #expect(text.contains("caused by  … → Immediate ×32\n"), "\(text)")
            // A chain that reaches its root keeps it: the Timeout that started the first Immediate.
            let start = try #require(
                (r.json["slowest_callbacks"] as? [[String: Any]] ?? []).first { ($0["causal_chain"] as? [String])?.count == 2 }, "\(r.json)")
            #expect(start["causal_chain"] as? [String] == ["Timeout", "Immediate"], "\(start)")
        }
    }
}
