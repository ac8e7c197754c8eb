// The NIO and tracing bridges in one call, for servers built on SwiftNIO with swift-distributed-tracing
// (Hummingbird, Vapor, plain NIO with a TracingMiddleware of its own):
//
//     // Hummingbird 2: the one line (the handler may go into any server builder's additional handlers)
//     server: .http1(configuration: .init(additionalChannelHandlers: [AsyncTraceBridges.channelHandler()]))
//     // Vapor 4 (it builds its pipelines itself), on the line before `try await app.execute()`: docs/nio.md
//     AsyncTraceBridges.instrumentServers(whenListeningIn: app.http.server.shared)
//
// Each makes `AsyncTraceTracer` the process's tracer (unless the application bootstrapped one of its own)
// and instruments the server's channels. The module re-exports AsyncTraceNIO and AsyncTraceTracing, so
// its import is the only one an application adds.
@_exported import AsyncTraceNIO
@_exported import AsyncTraceTracing
import Dispatch
import Instrumentation
import NIOCore
import Tracing

/// The NIO and tracing bridges in one call, for servers built on SwiftNIO with swift-distributed-tracing
/// (Hummingbird, Vapor): each entry point makes `AsyncTraceTracer` the process's tracer (unless one was
/// bootstrapped already) and instruments the server's channels.
public enum AsyncTraceBridges {
    /// `AsyncTraceChannelHandler()` (it instruments the channel it is added to, then removes itself), after
    /// `installTracer()`. Frameworks evaluate their additional handlers once per connection (Hummingbird's
    /// autoclosure): the tracer is installed at the first connection, before its first request; the check
    /// after that is one load.
    public static func channelHandler() -> AsyncTraceChannelHandler {
        installTracer()
        return AsyncTraceChannelHandler()
    }

    /// Makes `AsyncTraceTracer` the process's tracer (`InstrumentationSystem.bootstrap`), once, if nothing was
    /// bootstrapped yet: spans from then on (a framework's TracingMiddleware, the application's `withSpan`)
    /// are recorded with the tasks and callbacks that ran inside them. An application that bootstrapped its
    /// own tracer keeps it (bootstrapping twice would trap), and its spans are not recorded; it must not
    /// bootstrap one after this ran. Returns whether asynctrace's tracer is the process's tracer. Without a
    /// recorder (not under `asynctrace record`) a span costs the tracer's id generation and nothing is kept.
    @discardableResult
    public static func installTracer() -> Bool { tracerInstalled }

    /// Vapor 4 and other servers whose pipelines the application does not build: `installTracer()`, then
    /// `AsyncTraceNIO.instrumentAcceptedChannels(ofServersIn:)` (the server channels found in `root` by
    /// reflection instrument every channel they accept from now on). Call it once the server listens.
    @discardableResult
    public static func instrumentServers(in root: Any) async throws -> Int {
        installTracer()
        return try await AsyncTraceNIO.instrumentAcceptedChannels(ofServersIn: root)
    }

    /// `instrumentServers(in:)` for a server that is not listening yet, so that the call can come before the
    /// framework's own start-and-wait (Vapor: `AsyncTraceBridges.instrumentServers(whenListeningIn:
    /// app.http.server.shared)` on the line before `try await app.execute()`). Installs the tracer now, then
    /// looks for `root`'s server channels on a Dispatch queue — every 1 ms for the first 100 looks, every 10 ms
    /// for 10 s, every 250 ms after that — and instruments them when they appear (then it stops). Connections
    /// the server accepts between its bind and the look that finds it (at most the interval, ~1 ms at startup)
    /// are not instrumented; `instrumentServers(in:)` after the start has no such gap.
    public static func instrumentServers(whenListeningIn root: Any) {
        installTracer()
        let box = UncheckedBox(root)
        DispatchQueue.global().async { lookForServers(in: box, 0) }
    }

    private static func lookForServers(in box: UncheckedBox, _ n: Int) {
        let servers = AsyncTraceNIO.serverChannels(in: box.value)
        if !servers.isEmpty {
            for server in servers { _ = AsyncTraceNIO.instrumentAcceptedChannels(of: server) }
            return
        }
        let ms = n < 100 ? 1 : n < 1100 ? 10 : 250
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) { lookForServers(in: box, n + 1) }
    }

    // A global's initializer runs once, thread-safely (swift_once), whichever loop gets the first connection.
    private static let tracerInstalled: Bool = {
        let current = InstrumentationSystem.instrument
        if current is AsyncTraceTracer { return true }
        guard current is NoOpInstrument else { return false }
        InstrumentationSystem.bootstrap(AsyncTraceTracer())
        return true
    }()
}

/// The root object reflection starts from, carried to the Dispatch queue: only read there, by `Mirror`.
private struct UncheckedBox: @unchecked Sendable {
    let value: Any
    init(_ value: Any) { self.value = value }
}
