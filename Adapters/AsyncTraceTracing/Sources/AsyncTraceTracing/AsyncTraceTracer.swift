// A swift-distributed-tracing Tracer that records every span into the asynctrace trace: spanBegin/spanEnd
// (the span's async context is the task or callback that started it, so the report can list what ran
// inside it) and spanAttribute events for its ids, parent, kind, attributes, events, errors and status.
//
//     InstrumentationSystem.bootstrap(AsyncTraceTracer())     // the one line
//
// Trace and span ids are W3C-shaped (32 and 16 hex digits); `inject`/`extract` carry them in a
// `traceparent` header, so a trace continues across processes.
import AsyncHooks
import Instrumentation
import Synchronization
import Tracing

/// A swift-distributed-tracing `Tracer` that records every span into the asynctrace trace: spanBegin and
/// spanEnd in the task or callback that started it, and spanAttribute events for its ids, parent, kind,
/// attributes, events, errors and status. `InstrumentationSystem.bootstrap(AsyncTraceTracer())` is the one line.
public struct AsyncTraceTracer: Tracer {
    /// The spans it makes.
    public typealias Span = AsyncTraceSpan

    /// A tracer; it holds no state (spans go to the process's AsyncHooks, recorded or not).
    public init() {}

    /// Begins a span named `operationName`: a child of the context's span (same trace id), or the root of
    /// a new trace with random W3C-shaped ids. `instant`, `function`, `file` and `line` are not recorded.
    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> AsyncTraceSpan {
        var context = context()
        let parent = context[SpanIdentityKey.self]
        let identity = SpanIdentity(
            traceID: parent?.traceID ?? randomHex(bytes: 16), spanID: randomHex(bytes: 8),
            recordedSpan: 0)
        let recorded = AsyncHooks.beginSpan(operationName)
        let own = SpanIdentity(traceID: identity.traceID, spanID: identity.spanID, recordedSpan: recorded.rawValue)
        AsyncHooks.setSpanAttribute(recorded, key: "trace.id", value: own.traceID)
        AsyncHooks.setSpanAttribute(recorded, key: "span.id", value: own.spanID)
        if let parent {
            if parent.recordedSpan != 0 { AsyncHooks.setSpanAttribute(recorded, key: "parent.span", value: String(parent.recordedSpan)) }
            AsyncHooks.setSpanAttribute(recorded, key: "parent.span.id", value: parent.spanID)
        }
        AsyncHooks.setSpanAttribute(recorded, key: "kind", value: "\(kind)")
        context[SpanIdentityKey.self] = own
        return AsyncTraceSpan(context: context, operationName: operationName, recorded: recorded)
    }

    /// Does nothing: spans are events of the trace, written by the recorder.
    public func forceFlush() {}

    /// Writes the context's span as a W3C `traceparent` header ("00-trace-span-01"); nothing when it has none.
    public func inject<Carrier, Inject>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject: Injector, Carrier == Inject.Carrier {
        guard let id = context[SpanIdentityKey.self] else { return }
        injector.inject("00-\(id.traceID)-\(id.spanID)-01", forKey: "traceparent", into: &carrier)
    }

    /// Reads a W3C `traceparent` header into the context as a remote parent; a malformed header is ignored.
    public func extract<Carrier, Extract>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract: Extractor, Carrier == Extract.Carrier {
        guard let header = extractor.extract(key: "traceparent", from: carrier) else { return }
        let parts = header.split(separator: "-")
        guard parts.count == 4, parts[1].count == 32, parts[2].count == 16,
            parts[1].allSatisfy(\.isHexDigit), parts[2].allSatisfy(\.isHexDigit)
        else { return }
        context[SpanIdentityKey.self] = SpanIdentity(traceID: String(parts[1]), spanID: String(parts[2]), recordedSpan: 0)
    }
}

/// The ids a span passes to its children through the context.
public struct SpanIdentity: Sendable, Hashable {
    /// The trace id: 32 lowercase hex digits.
    public let traceID: String
    /// The span id: 16 lowercase hex digits.
    public let spanID: String
    /// The span's id in the trace file (AsyncHooks' SpanID), 0 for a remote parent.
    public let recordedSpan: UInt64
}

/// The context key under which a span's `SpanIdentity` travels.
public enum SpanIdentityKey: InstrumentationContextKey {
    /// What the key holds.
    public typealias Value = SpanIdentity
    /// "asynctrace-span".
    public static var nameOverride: String? { "asynctrace-span" }
}

extension InstrumentationContext {
    /// The asynctrace span identity in this context (the innermost span started by AsyncTraceTracer).
    public var asyncTraceSpan: SpanIdentity? { self[SpanIdentityKey.self] }
}

/// One span: every change is recorded as a spanAttribute event; `end` records spanEnd (once).
public final class AsyncTraceSpan: Tracing.Span, @unchecked Sendable {
    /// The span's context, holding its `SpanIdentity`.
    public let context: InstrumentationContext
    private let recorded: SpanID
    private struct State {
        var name: String
        var attributes: SpanAttributes = [:]
        var ended = false
    }
    private let state: Mutex<State>

    init(context: InstrumentationContext, operationName: String, recorded: SpanID) {
        self.context = context
        self.recorded = recorded
        state = Mutex(State(name: operationName))
    }

    /// Whether `end` has not been called yet.
    public var isRecording: Bool { !state.withLock { $0.ended } }

    /// The span's name; renaming records a "span.name" attribute (the report shows the new name).
    public var operationName: String {
        get { state.withLock { $0.name } }
        set {
            state.withLock { $0.name = newValue }
            AsyncHooks.setSpanAttribute(recorded, key: "span.name", value: newValue)  // the report renames the span
        }
    }

    /// The span's attributes; each change is recorded as a "key=value" spanAttribute.
    public var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set {
            // Record what changed (SpanAttributes has no diff of its own).
            var changed: [(String, String)] = []
            state.withLock { s in
                newValue.forEach { key, value in
                    if s.attributes.get(key) != value { changed.append((key, describe(value))) }
                }
                s.attributes = newValue
            }
            for (k, v) in changed { AsyncHooks.setSpanAttribute(recorded, key: k, value: v) }
        }
    }

    /// Records a "status" attribute ("code" or "code: message").
    public func setStatus(_ status: SpanStatus) {
        AsyncHooks.setSpanAttribute(recorded, key: "status", value: "\(status.code)" + (status.message.map { ": " + $0 } ?? ""))
    }

    /// Records an "event" attribute with the event's name (its attributes and time are not recorded).
    public func addEvent(_ event: SpanEvent) {
        AsyncHooks.setSpanAttribute(recorded, key: "event", value: event.name)
    }

    /// Records an "error" attribute describing `error` (`attributes` and `instant` are not recorded).
    public func recordError<Instant: TracerInstant>(_ error: Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        AsyncHooks.setSpanAttribute(recorded, key: "error", value: String(describing: error))
    }

    /// Records a "link" attribute ("traceID/spanID") when the linked context holds an asynctrace span.
    public func addLink(_ link: SpanLink) {
        if let id = link.context[SpanIdentityKey.self] {
            AsyncHooks.setSpanAttribute(recorded, key: "link", value: "\(id.traceID)/\(id.spanID)")
        }
    }

    /// Ends the span now (the trace's clock is the recorder's; `instant` is not used).
    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let first = state.withLock { s in
            defer { s.ended = true }
            return !s.ended
        }
        if first { AsyncHooks.endSpan(recorded) }
    }
}

func describe(_ value: SpanAttribute) -> String {
    switch value {
    case .int32(let v): String(v)
    case .int64(let v): String(v)
    case .double(let v): String(v)
    case .bool(let v): String(v)
    case .string(let v): v
    default: String(describing: value)
    }
}

func randomHex(bytes: Int) -> String {
    var g = SystemRandomNumberGenerator()
    var out = ""
    out.reserveCapacity(bytes * 2)
    let digits = Array("0123456789abcdef")
    for _ in 0..<bytes {
        let b = UInt8.random(in: 0...255, using: &g)
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xf)])
    }
    return out
}
