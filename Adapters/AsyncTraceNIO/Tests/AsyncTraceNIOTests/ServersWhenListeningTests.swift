// `AsyncTraceBridges.instrumentServers(whenListeningIn:)`: called before a framework's server listens (Vapor:
// the line before `app.execute()`), it finds the server channel once it appears and instruments what it
// accepts from then on.
import AsyncHooks
import AsyncTraceServer
import Foundation
import NIOCore
import NIOPosix
import Testing

@Suite(.serialized) struct ServersWhenListeningTests {
    /// One echo round trip on a new connection; the async id the echo handler ran in.
    func roundTrip(_ port: Int, _ handlerIDs: NIOLockedIDs) throws -> AsyncID? {
        let before = handlerIDs.all.count
        let fd = try connectLoopback(port)
        defer { close(fd) }
        let message = Array("hello\n".utf8)
        _ = write(fd, message, message.count)
        var buf = [UInt8](repeating: 0, count: 64)
        var got = 0
        while got < message.count {
            let r = read(fd, &buf, buf.count)
            guard r > 0 else { break }
            got += r
        }
        let ids = handlerIDs.all
        return ids.count > before ? ids[before] : nil
    }

    @Test func aServerThatStartsLaterIsFoundAndItsConnectionsInstrumented() throws {
        let hook = CollectingHook()
        AsyncHooks.enable(hook)
        defer { AsyncHooks.disable(hook) }
        let framework = FrameworkServer()
        AsyncTraceBridges.instrumentServers(whenListeningIn: framework)  // nothing listens yet
        Thread.sleep(forTimeInterval: 0.05)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let handlerIDs = NIOLockedIDs()
        let server = try ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Echo { handlerIDs.add($0) })
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? server.close().wait() }
        framework.started(server)
        let port = server.localAddress!.port!

        func isChannel(_ id: AsyncID?) -> Bool {
            guard let id else { return false }
            return hook.events.contains { if case .initResource(id.rawValue, "NIOSocketChannel", _) = $0 { return true } else { return false } }
        }
        // Connections made before the look that finds the server are not instrumented (the documented gap):
        // retry until one is, for at most 10 s (the looks are 1 ms apart at first, 10 ms later).
        let deadline = Date().addingTimeInterval(10)
        var found = false
        var tries = 0
        while !found && Date() < deadline {
            tries += 1
            found = isChannel(try roundTrip(port, handlerIDs))
            if !found { Thread.sleep(forTimeInterval: 0.005) }
        }
        #expect(found, "no connection was instrumented in 10 s (\(tries) tries)")
        // From then on, every connection.
        for _ in 0..<3 { #expect(isChannel(try roundTrip(port, handlerIDs))) }
        #expect(AsyncTraceBridges.installTracer(), "the tracer was installed as well")
    }
}
