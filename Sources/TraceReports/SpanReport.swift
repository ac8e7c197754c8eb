// The SPANS section: the slowest spans (a tracer's requests, async resource scopes, user spans), each
// with where it began, the callbacks that ran inside it, and the longest of them with its syscalls.
import TraceAnalyses
import TraceText

extension TextReport {
    static func spans(_ a: TraceAnalysis, _ out: inout String) {
        let s = a.spans
        guard s.begun > 0 else { return }
        out += "\nSPANS: \(Formatting.count(s.begun)) begun, \(Formatting.count(s.ended)) ended"
        out += s.openAtEnd > 0 ? ", \(Formatting.count(s.openAtEnd)) still open at the end" : ""
        out += " (inside a span: callbacks of the resource where it began and of what that resource started)\n"
        for sp in s.slowest {
            out += "  ▶ \(sp.name)  " + (sp.durationNs.map { Formatting.duration($0) } ?? "open (never ended)")
            out += "  on \(thread(sp.pid, sp.tid, sp.threadName)) at \(Formatting.at(sp.startNs, from: a.overview.recordingStartNs))"
            let ids = [("trace.id", "trace"), ("span.id", "span")].compactMap { key, label in
                sp.attribute(key).map { "\(label) \($0.count > 16 ? String($0.prefix(16)) + "…" : $0)" }
            }
            out += ids.isEmpty ? "\n" : "  [" + ids.joined(separator: ", ") + "]\n"
            out += "      began in   \(sp.executionType ?? "top level") (async id \(sp.executionAsyncID))"
            if let p = sp.parentSpanID { out += ", child of span \(p)" }
            out += "\n"
            let shown = sp.attributes.filter { !["trace.id", "span.id", "parent.span", "asyncID"].contains($0.key) }.prefix(6)
            if !shown.isEmpty { out += "      attributes " + shown.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + "\n" }
            if sp.callbacksInside == 0 {
                out += "      inside     no callback recorded\n"
                continue
            }
            out += "      inside     \(Formatting.count(sp.callbacksInside)) callback\(sp.callbacksInside == 1 ? "" : "s"), "
            out += Formatting.duration(sp.callbackNsInside) + ": "
            out +=
                sp.insideByType.map { "\($0.type) \(Formatting.count($0.count)) (\(Formatting.duration($0.ns)))" }
                .joined(separator: ", ") + "\n"
            if let c = sp.longestInside {
                out += "      longest    \(c.type) (async id \(c.asyncID)) \(Formatting.duration(c.durationNs)) on "
                out += thread(c.pid, c.tid, c.threadName) + "\n"
                for sc in c.syscalls.prefix(3) { out += "                 " + syscallLine(sc) + "\n" }
            }
        }
    }
}
