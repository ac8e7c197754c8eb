// A server whose child pipeline the application does not build (as Vapor's): its accepted channels are
// instrumented from the server channel, found by reflection inside the object that keeps it private.
import AsyncHooks
import AsyncTraceNIO
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// Keeps its server channel as a framework would: private, behind a lock, inside another object.
final class FrameworkServer: Sendable {
    final class Connection: Sendable {
        let channel: any Channel
        init(channel: any Channel) { self.channel = channel }
    }
    private let connection = NIOLockedValueBox<Connection?>(nil)
    func started(_ channel: any Channel) { connection.withLockedValue { $0 = Connection(channel: channel) } }
}

@Suite(.serialized) struct AcceptedChannelsTests {
    @Test func acceptedChannelsOfAServerFoundByReflectionAreResources() throws {
        let hook = CollectingHook()
        AsyncHooks.enable(hook)
        defer { AsyncHooks.disable(hook) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let handlerIDs = NIOLockedIDs()
        // The framework's own child initializer: no asynctrace line in it.
        let server = try ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Echo { handlerIDs.add($0) })
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? server.close().wait() }
        let framework = FrameworkServer()
        framework.started(server)

        let found = AsyncTraceNIO.serverChannels(in: framework)
        #expect(found.count == 1 && found.first === server, "the server channel behind the lock: \(found)")
        for channel in found { try AsyncTraceNIO.instrumentAcceptedChannels(of: channel).wait() }

        // Two connections (children may land on either loop), 10 round trips each.
        for _ in 0..<2 {
            let fd = try connectLoopback(server.localAddress!.port!)
            for i in 0..<10 {
                let message = Array("round trip \(i)\n".utf8)
                _ = write(fd, message, message.count)
                var buf = [UInt8](repeating: 0, count: 64)
                var got = 0
                while got < message.count {
                    let r = read(fd, &buf, buf.count)
                    guard r > 0 else { break }
                    got += r
                }
            }
            close(fd)
        }
        Thread.sleep(forTimeInterval: 0.2)  // the closes reach the server

        let events = hook.events
        let channels = events.compactMap { e -> UInt64? in
            if case .initResource(let id, "NIOSocketChannel", _) = e { return id }
            return nil
        }
        let serverIDs = events.compactMap { e -> UInt64? in
            if case .initResource(let id, "NIOServerSocketChannel", _) = e { return id }
            return nil
        }
        // Other suites' servers may be recorded by this hook too: these are the channels the handler ran in.
        let ours = Set(handlerIDs.all.map(\.rawValue))
        #expect(ours.count == 2 && ours.isSubset(of: Set(channels)), "the echo handler ran in two channel resources: \(ours) of \(channels)")
        for id in ours {
            #expect(events.contains { if case .fd(id, let fd) = $0 { return fd > 2 } else { return false } }, "channel \(id) has its fd")
            #expect(events.contains(.destroy(id)))
            let trigger = events.compactMap { e -> UInt64? in
                if case .initResource(id, _, let t) = e { return t }
                return nil
            }.first
            #expect(trigger.map { serverIDs.contains($0) } == true, "triggered by the server channel")
        }
    }
}
