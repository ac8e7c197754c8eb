// node started by a shell: `record -- sh -c 'node app.js'` injects no hooks (the program is sh), and the report
// said only "kernel-only trace (the program emitted no async events)", as for a program that has no callbacks
// to record. It now says that node ran without the hooks and how to get them; with --node it has them, and
// node's perf map too (its JS functions were unnamed in CPU samples: the perf map flags went to node by name only).
import Foundation
import Testing

@Suite(.serialized) struct NodeWrapperTests {
    static let program = "setTimeout(function slow() { const t = Date.now(); while (Date.now() - t < 150) {} }, 10);\n"

    /// `record [extra] -- /bin/sh -c 'node SCRIPT; true'` (the `; true` keeps sh from exec'ing node itself), then
    /// `report --json` and the text report.
    func recordThroughAShell(_ extra: [String]) throws -> (json: [String: Any], text: String, status: Int32) {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-wrapper-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/app.js", trace = dir + "/app.atrace"
        try Self.program.write(toFile: script, atomically: true, encoding: .utf8)
        let cli = NodeRepo.executable("asynctrace")
        let rec = try runNodeTool(
            [cli, "record"] + extra + ["-o", trace, "--", "/bin/sh", "-c", "\"$0\" \"$1\"; true", node, script])
        let json = try runNodeTool([cli, "report", trace, "--json"]).stdout
        let text = try runNodeTool([cli, "report", trace]).stdout
        return ((try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]) ?? [:], text, rec.status)
    }

    @Test func nodeStartedByAShellWithoutTheHooksIsSaidSo() throws {
        if getuid() != 0 || !FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux") {
            print("KERNEL TEST SKIPPED: node started by a shell is seen by the kernel probes: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let without = try recordThroughAShell([])
        #expect(without.status == 0)
        let trace = try #require(without.json["trace"] as? [String: Any], "\(without.json)")
        let pids = trace["node_without_hooks"] as? [Int] ?? []
        #expect(pids.count == 1, "\(trace)")
        #expect(!(trace["processes"] as? [Int] ?? []).isEmpty)
        #expect(without.text.contains("node ran without the Node.js hooks (pid \(pids.first ?? -1))"), "\(without.text)")
        #expect(without.text.contains("add --node"), "\(without.text)")

        let with = try recordThroughAShell(["--node"])
        #expect(with.status == 0)
        #expect((with.json["trace"] as? [String: Any])?["node_without_hooks"] as? [Int] == [], "\(with.json["trace"] ?? "-")")
        #expect(!with.text.contains("without the Node.js hooks"), "\(with.text)")
        #expect(((with.json["events"] as? [String: Any])?["before"] as? Int ?? 0) > 0, "--node: node's callbacks are recorded")
        // And its JS functions are named, as for `record node app.js` (node's perf map): the spin is under slow().
        let slow = (with.json["blocking"] as? [[String: Any]] ?? []).first { $0["type"] as? String == "Timeout" }
        let hot = slow?["hot_function"] as? [String: Any]
        #expect(hot?["function"] as? String == "slow", "the Timeout's hot code: \(slow?["hot_function"] ?? "none")")
    }
}
