// A cluster worker gets each connection's fd from the primary in a recvmsg (round-robin scheduling): the kernel
// probes saw no accept or connect for it, and the worker's sockets had no address ('unknown', '-'). The preload of
// a process that can be handed sockets over IPC reads each socket's own addresses; the fd table shows them.
import Foundation
import Testing

@Suite(.serialized) struct NodeClusterSocketTests {
    static let program = #"""
        const cluster = require('cluster'), http = require('http');
        if (cluster.isPrimary) {
          const worker = cluster.fork();
          worker.on('message', (port) => {
            http.get({ port, host: '127.0.0.1', path: '/', agent: false }, (res) => {
              res.resume();
              res.on('end', () => worker.disconnect());
            });
          });
        } else {
          const server = http.createServer((req, res) => res.end('ok'));
          server.listen(0, '127.0.0.1', () => process.send(server.address().port));
        }
        """#

    @Test func aClusterWorkersSocketHasItsAddresses() throws {
        if getuid() != 0 || !FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux") {
            print("KERNEL TEST SKIPPED: the fd table comes from the kernel probes: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(Self.program, file: "cluster.js", node: node, record: [], report: ["--top", "1000"]) { r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            let primary = (r.json["trace"] as? [String: Any])?["pid"] as? Int
            let fds = r.json["fds"] as? [[String: Any]] ?? []
            let workerSockets = fds.filter { $0["pid"] as? Int != primary && $0["resource_type"] as? String == "TCPWRAP" }
            let socket = try #require(workerSockets.first, "the worker's connection: \(fds.filter { $0["resource_type"] as? String == "TCPWRAP" })")
            #expect(socket["kind"] as? String == "tcp", "\(socket)")
            let local = socket["local"] as? String ?? "", peer = socket["peer"] as? String ?? ""
            #expect(local.hasPrefix("127.0.0.1:") && peer.hasPrefix("127.0.0.1:"), "\(socket)")
            // The same connection as the primary's client socket sees it, the other way round.
            #expect(fds.contains { $0["pid"] as? Int == primary && $0["local"] as? String == peer && $0["peer"] as? String == local }, "\(fds)")
        }
    }
}
