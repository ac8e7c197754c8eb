// The NIO bridge on real NIO over real loopback sockets: the events a listener sees in this process.
import AsyncHooks
import AsyncTraceNIO
import Foundation
import NIOCore
import NIOPosix
import Testing

/// Every event the bridge emits, in order (the listener runs on the loop thread and the test's).
final class CollectingHook: AsyncHook, @unchecked Sendable {
    enum Event: Equatable {
        case initResource(UInt64, String, UInt64)
        case before(UInt64), after(UInt64), destroy(UInt64)
        case fd(UInt64, Int32)
        case iteration, pollStart, pollEnd
    }
    private let lock = NSLock()
    private var list: [Event] = []
    var events: [Event] { lock.withLock { list } }
    private func add(_ e: Event) { lock.withLock { list.append(e) } }

    func initResource(_ asyncID: AsyncID, type: ResourceType, triggerAsyncID: AsyncID, resource: AnyObject?) {
        add(.initResource(asyncID.rawValue, type.name, triggerAsyncID.rawValue))
    }
    func before(_ asyncID: AsyncID) { add(.before(asyncID.rawValue)) }
    func after(_ asyncID: AsyncID) { add(.after(asyncID.rawValue)) }
    func destroy(_ asyncID: AsyncID) { add(.destroy(asyncID.rawValue)) }
    func resourceFD(_ asyncID: AsyncID, fd: Int32) { add(.fd(asyncID.rawValue, fd)) }
    func loopIteration(_ iteration: UInt64) { add(.iteration) }
    func pollStart(timeoutMs: Int64) { add(.pollStart) }
    func pollEnd(readyFDs: UnsafeBufferPointer<Int32>) { add(.pollEnd) }
}

final class Echo: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let seenFD: @Sendable (AsyncID) -> Void
    init(seenFD: @escaping @Sendable (AsyncID) -> Void) { self.seenFD = seenFD }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        seenFD(executionAsyncID())  // handlers run inside the channel's scope
        context.writeAndFlush(data, promise: nil)
    }
}

@Suite(.serialized) struct ChannelEventsTests {
    @Test func echoServerChannelsAreResourcesWithTheirFDsAndScopes() throws {
        let hook = CollectingHook()
        AsyncHooks.enable(hook)
        defer { AsyncHooks.disable(hook) }
        let handlerIDs = NIOLockedIDs()
        let group = AsyncTraceNIO.makeEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let server = try ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Echo { handlerIDs.add($0) })
                    try channel.pipeline.syncOperations.addHandler(AsyncTraceChannelHandler())  // added last, goes first
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        let port = server.localAddress!.port!

        // A plain blocking client: 20 round trips, then close.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port)).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        var clientLocal = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &clientLocal) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        var serverSideFD: Int32 = -1
        for i in 0..<20 {
            let message = Array("ping \(i)\n".utf8)
            #expect(write(fd, message, message.count) == message.count)
            var got: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 64)
            while got.count < message.count {
                let r = read(fd, &buf, buf.count)
                guard r > 0 else { break }
                got += buf[0..<r]
            }
            #expect(got == message)
            if i == 0 {
                // The fd the bridge recorded for the connection is the server's end of this very connection.
                let events = hook.events
                let child = events.compactMap { e -> UInt64? in
                    if case .initResource(let id, "NIOSocketChannel", _) = e { return id } else { return nil }
                }.first
                serverSideFD =
                    events.compactMap { e -> Int32? in
                        if case .fd(let id, let fd) = e, id == child { return fd } else { return nil }
                    }.first ?? -1
                var peer = sockaddr_in()
                var plen = socklen_t(MemoryLayout<sockaddr_in>.size)
                let ok = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(serverSideFD, $0, &plen) }
                }
                #expect(ok == 0)
                #expect(peer.sin_port == clientLocal.sin_port, "resourceFD names the connection's socket")
            }
        }
        close(fd)
        // Wait for the server side to see the close and tear the channel down.
        let deadline = Date().addingTimeInterval(5)
        func destroyed() -> Bool {
            hook.events.contains { if case .destroy = $0 { return true } else { return false } }
        }
        while !destroyed() && Date() < deadline { usleep(10_000) }
        try server.close().wait()
        usleep(50_000)
        let events = hook.events

        let inits = events.compactMap { e -> (UInt64, String, UInt64)? in
            if case .initResource(let id, let type, let trigger) = e { return (id, type, trigger) } else { return nil }
        }
        let serverInit = try #require(inits.first { $0.1 == "NIOServerSocketChannel" })
        let childInit = try #require(inits.first { $0.1 == "NIOSocketChannel" })
        #expect(childInit.2 == serverInit.0, "a connection's trigger is its server channel")
        #expect(
            events.contains(
                .fd(
                    serverInit.0,
                    events.compactMap { e -> Int32? in
                        if case .fd(serverInit.0, let f) = e { return f } else { return nil }
                    }.first ?? -2)))
        #expect(serverSideFD >= 0)
        let child = childInit.0
        let befores = events.filter { $0 == .before(child) }.count
        let afters = events.filter { $0 == .after(child) }.count
        #expect(befores >= 20, "one scope per read batch at least")
        #expect(befores == afters, "balanced before/after")
        #expect(events.contains(.destroy(child)))
        #expect(events.contains(.destroy(serverInit.0)))
        // Scopes nest properly on the loop thread: no after without its before.
        var depth = 0
        for e in events {
            if e == .before(child) { depth += 1 }
            if e == .after(child) { depth -= 1; #expect(depth >= 0) }
        }
        #expect(handlerIDs.all.count == 20 && handlerIDs.all.allSatisfy { $0.rawValue == child }, "handlers ran in the channel's scope")
        #expect(events.contains(.iteration) && events.contains(.pollStart) && events.contains(.pollEnd), "loop iterations")
    }
}

final class NIOLockedIDs: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [AsyncID] = []
    func add(_ id: AsyncID) { lock.withLock { ids.append(id) } }
    var all: [AsyncID] { lock.withLock { ids } }
}
