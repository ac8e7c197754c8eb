// A node worker thread has one name in every section of the report. Recorded on a server using a
// worker_threads MessageChannel, the worker's blocking callback said "node (worker 1) (tid 9616 …)" while
// EVENT LOOP, LOOP STALLS and THREADS called the same thread "node (tid 9616 …)", the kernel's comm, which
// node does not set for its workers: nothing told the user that row was the worker. Its async ids read as the
// worker knows them.
import Foundation
import Testing

@Suite(.serialized) struct NodeThreadNameTests {
    static let kernelCapable = getuid() == 0 && FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux")

    /// A worker whose timer callback spins 60 ms (a blocking callback and a loop stall on the worker).
    static let program = #"""
        const { Worker } = require('worker_threads');
        const w = new Worker(`
          setTimeout(function spin() { const t = Date.now(); while (Date.now() - t < 60) {} }, 20);
        `, { eval: true });
        w.on('exit', () => {});
        """#

    @Test func aWorkerThreadHasItsNodeNameInEverySection() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try #require(Self.kernelCapable, "KERNEL TEST SKIPPED: not root or no BTF (the kernel's thread names are the point)")
        try withRecordedNodeScript(Self.program, file: "names.js", node: node, record: ["--sample-rate", "0"], report: ["--threshold", "30ms"]) { r in
            let (trace, rec, json) = (r.trace, r.record, r.json)
            #expect(rec.status == 0, "record: \(rec.stderr)")

            let blocking = json["blocking"] as? [[String: Any]] ?? []
            let spin = try #require(blocking.first { $0["type"] as? String == "Timeout" }, "\(blocking)")
            let tid = try #require((spin["tid"] as? NSNumber)?.uint64Value)
            #expect(spin["thread"] as? String == "node (worker 1)", "\(spin)")

            let threads = json["threads"] as? [[String: Any]] ?? []
            let row = try #require(threads.first { ($0["tid"] as? NSNumber)?.uint64Value == tid }, "\(threads)")
            #expect(row["name"] as? String == "node (worker 1)", "THREADS: \(row)")
            let stalls = json["stalls"] as? [[String: Any]] ?? []
            for s in stalls where (s["tid"] as? NSNumber)?.uint64Value == tid {
                #expect(s["thread"] as? String == "node (worker 1)", "LOOP STALLS: \(s)")
            }
            // The main thread keeps its own name.
            let main = threads.first { ($0["tid"] as? NSNumber)?.uint64Value == ($0["pid"] as? NSNumber)?.uint64Value }
            #expect(main?["name"] as? String == "node", "\(String(describing: main))")

            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--threshold", "30ms"]).stdout
            let threadRows = text.split(separator: "\n").filter { $0.contains("(tid \(tid) ") }
            #expect(!threadRows.isEmpty)
            for line in threadRows { #expect(line.contains("node (worker 1) (tid \(tid) "), "\(line)") }

            // Its callbacks' async ids as the worker knows them (async_hooks.executionAsyncId() there), not the
            // trace's key for them (the worker's ids are moved to threadId × 2^32 + id): "async id 4294967303".
            let id = try #require((spin["async_id"] as? NSNumber)?.uint64Value)
            #expect(id >> 32 == 1, "\(spin)")
            #expect(text.contains("▶ Timeout (async id \(id & 0xFFFF_FFFF) in worker 1) blocked node (worker 1)"), "\(text)")
            #expect(!text.contains("async id \(id)"), "\(text)")
        }
    }
}
