// The NIO HTTP/1.1 server with the one asynctrace line (asynctrace-nio-oneline: the handler in the child
// channel initializer, plus the optional loop-metrics group) and no recorder of its own, recorded by
// `asynctrace record`: the injected library's recorder gets the application's channels, their callbacks and
// fds, and the loop's iterations, through the registry the two copies of AsyncHooks share.
import Foundation
import Testing

@Suite(.serialized) struct OneLineHTTPTests {
    @Test func oneLineServerIsRecordedByTheInjectedRecorder() throws {
        if let reason = kernelSkipReason() {
            print("KERNEL TEST SKIPPED: oneLineServerIsRecordedByTheInjectedRecorder: \(reason)")
            try Test.cancel("kernel test skipped: \(reason)")
        }
        try #require(access(asynctraceCLI(), X_OK) == 0, "the asynctrace CLI is built: \(asynctraceCLI())")
        let server = try #require(builtExecutable("asynctrace-nio-oneline"))
        let trace = FileManager.default.temporaryDirectory.appendingPathComponent("asynctrace-nio-oneline-\(getpid()).atrace").path
        defer { unlink(trace) }

        let connections = 4, requests = 50
        let (record, _, port) = try startRecorded([server, "http", "--loop-metrics", "--connections", String(connections)], trace: trace)
        let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        for _ in 0..<connections {
            let fd = try connectLoopback(port)
            for _ in 0..<requests {
                _ = write(fd, request, request.count)
                var response = [UInt8]()
                var buf = [UInt8](repeating: 0, count: 1024)
                while !String(decoding: response, as: UTF8.self).hasSuffix("hello world\n") {
                    let r = read(fd, &buf, buf.count)
                    guard r > 0 else { break }
                    response += buf[0..<r]
                }
                #expect(String(decoding: response, as: UTF8.self).hasPrefix("HTTP/1.1 200 OK"))
            }
            close(fd)
        }
        record.waitUntilExit()  // the server exits after the last connection closes
        #expect(record.terminationStatus == 0)

        let root = try reportJSON(trace)
        let resources = try #require(root["resources"] as? [[String: Any]])
        let channels = try #require(resources.first { $0["type"] as? String == "NIOSocketChannel" }, "\(resources)")
        #expect(channels["count"] as? Int == connections)
        #expect(channels["destroyed"] as? Int == connections)
        // Per request at least its read batch and its flush run as callbacks of the channel.
        #expect((channels["callbacks"] as? Int ?? 0) >= connections * requests, "\(channels)")
        let attribution = try #require(root["attribution"] as? [String: Any])
        let onResourceFDs = try #require(attribution["on_resource_fds"] as? Int)
        let byOwner = try #require(attribution["on_resource_fds_by_owner"] as? Int)
        #expect(onResourceFDs >= 2 * connections * requests, "\(attribution)")
        #expect(Double(byOwner) >= 0.99 * Double(onResourceFDs), "\(attribution)")
        // The loop-metrics line: the loop's iterations come through as well.
        let loop = try #require(root["loop"] as? [String: Any])
        #expect((loop["iterations"] as? Int ?? 0) >= connections * requests, "\(loop)")
    }
}
