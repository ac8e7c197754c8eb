// A Node program killed while idle (Ctrl-C, SIGTERM, `record --duration`): every batch write the preload
// recorded around itself is closed in the trace. (An aiohttp-like server recorded with --duration showed
// its last batch write as "asynctrace (batch write) blocked node for at least 2.27 s", the top blocking
// callback, and two of them open at exit.)
import Foundation
import Testing
import TraceFormat
import TraceReader

@Suite(.serialized) struct NodeIdleKillTests {
    /// Busy for ~30 timer callbacks (batch writes happen), then idle for a second, then killed by SIGTERM
    /// (node's default action: no exit handler runs).
    static let program = #"""
        let n = 0;
        const busy = setInterval(() => {
          const t = Date.now(); while (Date.now() - t < 1) {}
          if (++n === 30) {
            clearInterval(busy);
            setTimeout(() => process.kill(process.pid, 'SIGTERM'), 1000);
          }
        }, 2);
        """#

    @Test func aProgramKilledWhileIdleLeavesNoBatchWriteOpen() throws {
        try expectNoBatchWriteOpen(Self.program, status: 128 + SIGTERM)
    }

    /// Killed while busy, right after a batch went out: that write's after and destroy wait in the preload's
    /// buffer for the next batch, which never comes (SIGKILL). Its batch arrived, so the recorder closes it.
    static let busyProgram = #"""
        const end = Date.now() + 300;
        (function spin() {
          const t = Date.now(); while (Date.now() - t < 1) {}
          if (Date.now() < end) setImmediate(spin); else process.kill(process.pid, 'SIGKILL');
        })();
        """#

    @Test func aProgramKilledWhileBusyLeavesNoBatchWriteOpen() throws {
        try expectNoBatchWriteOpen(Self.busyProgram, status: 128 + SIGKILL)
    }

    /// A callback that blocked the loop, and the process killed right after it (a cluster worker's kill(), SIGTERM
    /// under load): the blocking callback still says where its resource was made. Its site went out with the
    /// next batch, which the kill lost: a gzipSync handler of a killed cluster worker had no "created at".
    @Test func aBlockingCallbackOfAKilledProgramKeepsItsCreationSite() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let program = #"""
            function startWork() {
              setTimeout(function spin() {
                const t = Date.now(); while (Date.now() - t < 30) {}
                setImmediate(() => process.kill(process.pid, 'SIGKILL'));
              }, 20);
            }
            startWork();
            """#
        try withRecordedNodeScript(program, file: "killsite.js", node: node, record: ["--no-kernel"], report: []) { r in
            #expect(r.record.status == 128 + SIGKILL, "record: \(r.record.stderr)")
            let blocking = r.json["blocking"] as? [[String: Any]] ?? []
            let spin = try #require(blocking.first { $0["type"] as? String == "Timeout" }, "\(blocking)")
            let site = (spin["created_at"] as? [[String: Any]] ?? []).first
            #expect(site?["function"] as? String == "startWork" && (site?["line"] as? NSNumber)?.intValue == 2, "\(spin)")
        }
    }

    /// Records `program` (kernel probes off: the preload's events are the subject), expects record's exit status
    /// `status`, batch writes in the trace, each closed, and none open at exit in the report.
    func expectNoBatchWriteOpen(_ program: String, status: Int32) throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(program, file: "killed.js", node: node, record: ["--no-kernel"], report: []) { r in
            let (trace, rec, json) = (r.trace, r.record, r.json)
            #expect(rec.status == status, "record: \(rec.stderr)")

            let reader = try TraceReader(path: trace)
            var batchWriteIDs = Set<UInt64>()
            var open: [UInt64: Int] = [:]  // async id -> befores not yet matched by an after
            var batchWrites = 0
            reader.events().forEach { _, e in
                switch e.kind {
                case .initResource:
                    if e.text == "asynctrace (batch write)" { batchWriteIDs.insert(e.u(0)) }
                case .before:
                    if batchWriteIDs.contains(e.u(0)) { batchWrites += 1 }
                    open[e.u(0), default: 0] += 1
                case .after:
                    open[e.u(0), default: 0] -= 1
                default: break
                }
            }
            #expect(batchWrites > 0, "the busy part should have made the preload write batches")
            for (id, n) in open where batchWriteIDs.contains(id) {
                #expect(n == 0, "batch write \(id): \(n) before(s) without an after")
            }

            // The report agrees: no batch write open at exit or unfinished.
            let openAtExit = json["open_at_exit"] as? [[String: Any]] ?? []
            #expect(!openAtExit.contains { $0["type"] as? String == "asynctrace (batch write)" }, "\(openAtExit)")
            let unfinished = (json["blocking"] as? [[String: Any]] ?? []).filter { $0["unfinished"] as? Bool == true }
            #expect(!unfinished.contains { $0["type"] as? String == "asynctrace (batch write)" }, "\(unfinished)")
        }
    }
}
