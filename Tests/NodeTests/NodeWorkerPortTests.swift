// A worker's parentPort (and a port passed in its workerData) exists before the preload runs in the
// worker, so Node's init for it never reached the hooks. The callbacks of a worker pool, which are
// `parentPort.on('message', ...)`, were reported as "(untracked) (async id 4294967300)" with causal chain
// "?" (a server handing CPU work to a worker over a MessageChannel: its 416 ms blocking callback).
import Foundation
import Testing

@Suite(.serialized) struct NodeWorkerPortTests {
    static let program = #"""
        const { Worker, MessageChannel } = require('worker_threads');
        const { port1, port2 } = new MessageChannel();
        const w = new Worker(`
          const { parentPort, workerData } = require('worker_threads');
          function spin(n) { const t = Date.now(); while (Date.now() - t < n) {} }
          parentPort.on('message', (n) => { spin(n); parentPort.postMessage('parent'); });
          workerData.port.on('message', (n) => { spin(n); workerData.port.postMessage('channel'); });
        `, { eval: true, workerData: { port: port2 }, transferList: [port2] });
        let replies = 0;
        function done() { if (++replies === 2) setTimeout(() => { port1.close(); w.terminate(); }, 100); }
        w.on('message', done);
        port1.on('message', done);
        w.postMessage(40);
        port1.postMessage(30);
        """#

    @Test func aWorkersPortCallbacksHaveTheirTypeAndTheWorkerAsCause() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(Self.program, file: "ports.js", node: node, record: ["--no-kernel"], report: ["--threshold", "20ms"]) { r in
            let (rec, json) = (r.record, r.json)
            #expect(rec.status == 0, "record: \(rec.stderr)")
            let blocking = json["blocking"] as? [[String: Any]] ?? []
            let onWorker = blocking.filter { ($0["thread"] as? String)?.contains("(worker 1)") == true }
            #expect(onWorker.count == 2, "the two spins on the worker: \(blocking)")
            for c in onWorker {
                #expect(c["type"] as? String == "MESSAGEPORT", "\(c)")
                let chain = c["causal_chain"] as? [String] ?? []
                #expect(chain == ["WORKER", "MESSAGEPORT"] || chain.last == "MESSAGEPORT" && chain.contains("WORKER"), "\(chain)")
            }
            let types = json["resources"] as? [[String: Any]] ?? []
            #expect(!types.contains { $0["type"] as? String == "(untracked)" }, "\(types)")
        }
    }
}
