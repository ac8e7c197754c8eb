// A connection a server accepts after its first second is placed by the server's code. The server's site
// is sent once it has lived a second and was then forgotten, so every request of a server running longer
// than that was 'created at connectionListenerInternal (node:_http_server:675)', with no user frame (an
// HTTP server blocking 433 ms in pbkdf2Sync, its handler in server.mjs).
import Foundation
import Testing

@Suite(.serialized) struct NodeLateConnectionSiteTests {
    static let program = #"""
        const http = require('http');
        function request(server) {
          http.get({ port: server.address().port, host: '127.0.0.1' }, (r) => { r.resume(); r.on('end', () => server.close()); });
        }
        function startServer() {
          const server = http.createServer((req, res) => { const t = Date.now(); while (Date.now() - t < 30) {} res.end('ok'); });
          server.listen(0, '127.0.0.1', () => setTimeout(() => request(server), 1500));
        }
        startServer();
        """#

    @Test func aRequestAcceptedAfterTheServersFirstSecondNamesTheServersCode() throws {
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(Self.program, file: "late.js", node: node, record: ["--no-kernel"], report: ["--threshold", "20ms"]) { r in
            let (script, rec, json) = (r.script, r.record, r.json)
            #expect(rec.status == 0, "record: \(rec.stderr)")
            let blocking = json["blocking"] as? [[String: Any]] ?? []
            let request = try #require(blocking.first { $0["type"] as? String == "HTTPINCOMINGMESSAGE" }, "\(blocking)")
            let frames = (request["created_at"] as? [[String: Any]] ?? []).map { (($0["function"] as? String) ?? "", ($0["file"] as? String) ?? "") }
            #expect(frames.contains { $0.0 == "startServer" && $0.1 == script }, "\(frames)")
        }
    }
}
