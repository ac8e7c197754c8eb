// The NIO and tracing bridges in one call, for servers built on SwiftNIO with swift-distributed-tracing
// (Hummingbird, Vapor, plain NIO with a TracingMiddleware of its own):
//
//     // Hummingbird 2: the one line (the handler may go into any server builder's additional handlers)
//     server: .http1(configuration: .init(additionalChannelHandlers: [AsyncTraceBridges.channelHandler()]))
//     // Vapor 4, once its server runs (it builds its pipelines itself): docs/nio.md, "Vapor"
//     try await AsyncTraceBridges.instrumentServers(in: app.http.server.shared)
//
// Each makes `AsyncTraceTracer` the process's tracer (unless the application bootstrapped one of its own)
// and instruments the server's channels. The module re-exports AsyncTraceNIO and AsyncTraceTracing, so
// its import is the only one an application adds.
@_exported import AsyncTraceNIO
@_exported import AsyncTraceTracing
import Instrumentation
import NIOCore
import Tracing

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

    // A global's initializer runs once, thread-safely (swift_once), whichever loop gets the first connection.
    private static let tracerInstalled: Bool = {
        let current = InstrumentationSystem.instrument
        if current is AsyncTraceTracer { return true }
        guard current is NoOpInstrument else { return false }
        InstrumentationSystem.bootstrap(AsyncTraceTracer())
        return true
    }()
}
