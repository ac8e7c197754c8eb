// A request queued in libuv's thread pool behind slow work gets its callback late though its own work is short,
// and the report said nothing of why (the loop idled meanwhile). With UV_THREADPOOL_SIZE=1, a readFile queued
// behind three pbkdf2 calls waits for all three; with 4 threads it gets one at once. The program sets the size in
// process.env before its first pool request, as libuv reads it then (the preload reads it there too).
import Foundation
import Testing

@Suite(.serialized) struct NodePoolWaitTests {
    static let program = #"""
        process.env.UV_THREADPOOL_SIZE = 'THREADS';
        const crypto = require('crypto'), fs = require('fs');
        for (let i = 0; i < 3; i++) {
          crypto.pbkdf2('secret', 'salt', 100000, 64, 'sha512', () => {});
        }
        fs.readFile(__filename, function read() {});
        """#

    @Test(arguments: [1, 4]) func aRequestQueuedBehindSlowWorkSaysItWaitedForThePool(_ threads: Int) throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let file = "pool\(threads).js"
        let program = Self.program.replacingOccurrences(of: "THREADS", with: String(threads))
        try withRecordedNodeScript(program, file: file, node: node, record: ["--no-kernel"]) { r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            let pool = r.json["pool_waits"] as? [String: Any] ?? [:]
            let waits = pool["longest"] as? [[String: Any]] ?? []
            let read = waits.first { $0["type"] as? String == "FSREQCALLBACK" }
            guard threads == 1 else {
                #expect(read == nil, "a free thread took it at once: \(waits)")
                return
            }
            let wait = try #require(read, "\(r.json["pool_waits"] ?? "absent")")
            #expect(wait["pool_threads"] as? Int == 1 && wait["ahead_at_queueing"] as? Int == 3, "\(wait)")
            #expect((wait["queue_ns"] as? Int ?? 0) >= 10_000_000, "\(wait)")
            let ahead = wait["ahead"] as? [[String: Any]] ?? []
            #expect(ahead.count == 1 && ahead.first?["type"] as? String == "PBKDF2REQUEST" && ahead.first?["count"] as? Int == 3, "\(ahead)")
            let site = (ahead.first?["created_at"] as? [[String: Any]])?.first
            #expect(site?["file"] as? String == r.script && site?["line"] as? Int == 4, "where the pbkdf2 calls were made: \(ahead)")
            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace]).stdout
            #expect(text.contains("behind 3 requests in a pool of 1 thread, it got one when 3 of them had completed"), "\(text)")
            #expect(text.contains("waited for 3× PBKDF2REQUEST, created at"), "\(text)")
        }
    }
}
