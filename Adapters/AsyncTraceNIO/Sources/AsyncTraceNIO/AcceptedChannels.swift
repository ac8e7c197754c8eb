// Servers whose pipelines the application does not build (Vapor 4 has no hook to add a channel handler):
// their accepted channels are instrumented from the server channel. A handler at the head of the server
// channel's pipeline sees each accepted channel before the bootstrap's own accept handler sets it up, and
// instruments it first on its event loop, so the scope handler still heads the pipeline the framework builds.
import AsyncHooks
import NIOCore

extension AsyncTraceNIO {
    /// Instruments every channel `serverChannel` accepts from now on (as `AsyncTraceChannelHandler` would in
    /// a child channel initializer). Channels accepted before are left as they are.
    public static func instrumentAcceptedChannels(of serverChannel: any Channel) -> EventLoopFuture<Void> {
        serverChannel.eventLoop.submit {
            let ops = serverChannel.pipeline.syncOperations
            if (try? ops.handler(type: AcceptedChannelInstrumenter.self)) != nil { return }
            try ops.addHandler(AcceptedChannelInstrumenter(), position: .first)
        }
    }

    /// The listening server channels reachable from `root` through stored properties (by reflection, at
    /// most `depth` levels): e.g. a framework's server object that keeps its bound channel private.
    public static func serverChannels(in root: Any, depth: Int = 8) -> [any Channel] {
        var found: [any Channel] = []
        var seen: Set<ObjectIdentifier> = []
        func visit(_ value: Any, _ level: Int) {
            if let channel = value as? any Channel {
                guard seen.insert(ObjectIdentifier(channel)).inserted else { return }
                if String(describing: type(of: channel)).contains("ServerSocketChannel") { found.append(channel) }
                return  // a channel's own insides are NIO's
            }
            guard level < depth else { return }
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .class, let object = value as AnyObject? {
                guard seen.insert(ObjectIdentifier(object)).inserted else { return }
            }
            var m: Mirror? = mirror
            while let current = m {
                for child in current.children { visit(child.value, level + 1) }
                m = current.superclassMirror
            }
        }
        visit(root, 0)
        return found
    }
}

/// At the head of a server channel's pipeline: instruments each accepted channel, then passes it on.
final class AcceptedChannelInstrumenter: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = any Channel

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        if child.eventLoop.inEventLoop {
            try? AsyncTraceNIO.instrument(child)
        } else {
            // Queued before the accept handler's own set-up task on the child's loop: it runs first.
            child.eventLoop.execute { try? AsyncTraceNIO.instrument(child) }
        }
        context.fireChannelRead(data)
    }
}

extension AsyncTraceNIO {
    /// `serverChannels(in: root)`, each instrumented with `instrumentAcceptedChannels(of:)`; returns how many.
    /// Vapor 4, once its server runs: `try await AsyncTraceNIO.instrumentAcceptedChannels(ofServersIn: app.http.server.shared)`.
    @discardableResult
    public static func instrumentAcceptedChannels(ofServersIn root: Any) async throws -> Int {
        let servers = serverChannels(in: root)
        for server in servers { try await instrumentAcceptedChannels(of: server).get() }
        return servers.count
    }
}
