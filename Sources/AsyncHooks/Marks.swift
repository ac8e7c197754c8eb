// User marks: named instants and spans, recorded like every other event.
import CAsyncHooksSupport

/// A span begun with `AsyncHooks.beginSpan`; end it exactly once.
public struct SpanID: Hashable, Sendable {
    /// The span's number, unique in the process.
    public let rawValue: UInt64
}

extension AsyncHooks {
    /// Records a named instant in the current execution context.
    public static func mark(_ name: String) {
        guard isActive else { return }
        let id = executionAsyncID()
        forEachHook { $0.mark(name, executionAsyncID: id) }
    }

    /// Begins a named span; returns its id for `endSpan`.
    public static func beginSpan(_ name: String) -> SpanID {
        let span = SpanID(rawValue: asynchooks_next_span_id())
        if isActive {
            let id = executionAsyncID()
            forEachHook { $0.spanBegin(span.rawValue, name: name, executionAsyncID: id) }
        }
        return span
    }

    /// Describes a span begun with `beginSpan` (before it ends): trace ids, parent, attributes.
    public static func setSpanAttribute(_ span: SpanID, key: String, value: String) {
        if isActive { forEachHook { $0.spanAttribute(span.rawValue, key: key, value: value) } }
    }

    /// Ends `span` (call exactly once per span).
    public static func endSpan(_ span: SpanID) {
        if isActive { forEachHook { $0.spanEnd(span.rawValue) } }
    }

    /// Runs `body` inside a named span.
    public static func withSpan<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        let s = beginSpan(name)
        defer { endSpan(s) }
        return try body()
    }
}
