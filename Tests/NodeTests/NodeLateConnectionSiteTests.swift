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
        let dir = NSTemporaryDirectory() + "asynctrace-node-late-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/late.js", trace = dir + "/late.atrace"
        try Self.program.write(toFile: script, atomically: true, encoding: .utf8)
        let rec = try runNodeTool([NodeRepo.executable("asynctrace"), "record", "--no-kernel", "-o", trace, "--", node, script])
        #expect(rec.status == 0, "record: \(rec.stderr)")
        let rep = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--json", "--threshold", "20ms"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(rep.stdout.utf8)) as? [String: Any])
        let blocking = json["blocking"] as? [[String: Any]] ?? []
        let request = try #require(blocking.first { $0["type"] as? String == "HTTPINCOMINGMESSAGE" }, "\(blocking)")
        let frames = (request["created_at"] as? [[String: Any]] ?? []).map { (($0["function"] as? String) ?? "", ($0["file"] as? String) ?? "") }
        #expect(frames.contains { $0.0 == "startServer" && $0.1 == script }, "\(frames)")
    }
}
