// `asynctrace report --html`: one self-contained page (no network) with the overview, the callbacks that
// blocked the loop (with the syscalls made inside them), a flame graph, and a timeline of the busiest second.
// Two passes over the trace: the first collects everything but the timeline, the second draws the busiest second.
import TraceFormat
import TraceReader

/// Feeds two sinks from one pass.
public struct PairSink<A: TimelineSink, B: TimelineSink>: TimelineSink {
    public var a: A
    public var b: B
    public init(_ a: A, _ b: B) {
        self.a = a
        self.b = b
    }
    public mutating func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        a.threadAdded(thread, process: process, timeline: timeline)
        b.threadAdded(thread, process: process, timeline: timeline)
    }
    public mutating func consume(_ op: TimelineOp, timeline: Timeline) {
        a.consume(op, timeline: timeline)
        b.consume(op, timeline: timeline)
    }
    public mutating func resource(_ change: ResourceChange, timeline: Timeline) {
        a.resource(change, timeline: timeline)
        b.resource(change, timeline: timeline)
    }
}

/// A callback that ran longer than the threshold, with the syscalls it made.
public struct BlockingCallback: Sendable {
    public struct Syscall: Sendable {
        public var name: String
        public var fd: Int64
        public var durationNs: UInt64
    }
    public var thread: Int
    public var asyncID: UInt64
    public var type: String
    public var startNs: UInt64
    public var durationNs: UInt64
    /// Time in syscalls inside the callback.
    public var kernelNs: UInt64
    /// The longest syscalls made inside it (at most 5), longest first.
    public var syscalls: [Syscall]
    public var syscallCount: Int
}

/// Callback statistics, blocking callbacks, and busy time per second of the trace.
public final class ReportCollector: TimelineSink {
    public struct TypeStats: Sendable {
        public var count: UInt64 = 0
        public var totalNs: UInt64 = 0
        public var maxNs: UInt64 = 0
    }

    public let thresholdNs: UInt64
    public let maxBlocking: Int
    public private(set) var blocking: [BlockingCallback] = []
    /// Blocking callbacks beyond `maxBlocking` (counted, not kept).
    public private(set) var blockingDropped = 0
    public private(set) var byType: [Int: TypeStats] = [:]
    /// Busy (in-callback) ns per second since `originNs`.
    public private(set) var busyPerSecond: [UInt64] = []
    public let originNs: UInt64

    struct Open {
        var op: TimelineOp
        var kernelNs: UInt64 = 0
        var syscallCount = 0
        var syscalls: [BlockingCallback.Syscall] = []
    }
    private var stacks: [[Open]] = []
    private var syscallStarts: [UInt64] = []
    private var syscallBegin: [TimelineOp?] = []

    public init(thresholdNs: UInt64, originNs: UInt64, maxBlocking: Int = 200) {
        self.thresholdNs = thresholdNs
        self.originNs = originNs
        self.maxBlocking = maxBlocking
    }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        stacks.append([])
        syscallBegin.append(nil)
    }

    private func addBusy(from a: UInt64, to b: UInt64) {
        guard b > a else { return }
        var s = a > originNs ? a - originNs : 0
        let e = b > originNs ? b - originNs : 0
        while s < e {
            let second = Int(s / 1_000_000_000)
            let boundary = UInt64(second + 1) * 1_000_000_000
            let end = min(e, boundary)
            if second >= busyPerSecond.count { busyPerSecond.append(contentsOf: repeatElement(0, count: second - busyPerSecond.count + 1)) }
            busyPerSecond[second] &+= end - s
            s = end
        }
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        let t = op.thread
        switch op.kind {
        case .begin:
            if op.slice == .callback {
                stacks[t].append(Open(op: op))
            } else if op.slice == .syscall {
                syscallBegin[t] = op
            } else {
                stacks[t].append(Open(op: op))
            }
        case .end:
            if let b = syscallBegin[t] {
                // Syscalls end right after they begin (they are emitted as a pair).
                syscallBegin[t] = nil
                let d = op.timestampNs - b.timestampNs
                if let i = stacks[t].lastIndex(where: { $0.op.slice == .callback }) {
                    stacks[t][i].kernelNs &+= d
                    stacks[t][i].syscallCount += 1
                    var list = stacks[t][i].syscalls
                    list.append(.init(name: timeline.names[b.name], fd: b.fd, durationNs: d))
                    if list.count > 5 {
                        list.sort { $0.durationNs > $1.durationNs }
                        list.removeLast()
                    }
                    stacks[t][i].syscalls = list
                }
                return
            }
            guard let open = stacks[t].popLast(), open.op.slice == .callback else { return }
            let d = op.timestampNs - open.op.timestampNs
            var s = byType[open.op.typeName] ?? TypeStats()
            s.count += 1
            s.totalNs &+= d
            s.maxNs = max(s.maxNs, d)
            byType[open.op.typeName] = s
            // Nested callbacks' time is already inside their outer callback's.
            if !stacks[t].contains(where: { $0.op.slice == .callback }) { addBusy(from: open.op.timestampNs, to: op.timestampNs) }
            if d >= thresholdNs {
                if blocking.count < maxBlocking {
                    blocking.append(BlockingCallback(
                        thread: t, asyncID: open.op.asyncID, type: timeline.names[open.op.typeName],
                        startNs: open.op.timestampNs, durationNs: d, kernelNs: open.kernelNs,
                        syscalls: open.syscalls.sorted { $0.durationNs > $1.durationNs }, syscallCount: open.syscallCount))
                } else {
                    blockingDropped += 1
                }
            }
        case .instant, .counter:
            break
        }
    }

    /// The second (index since origin) with the most time in callbacks.
    public var busiestSecond: Int? {
        guard let m = busyPerSecond.max(), m > 0 else { return nil }
        return busyPerSecond.firstIndex(of: m)
    }
}

/// Collects the slices of one time window for drawing (bounded: at most `maxRects`).
public final class WindowCollector: TimelineSink {
    public struct Rect: Sendable {
        public var thread: Int
        public var depth: Int
        public var startNs: UInt64
        public var endNs: UInt64
        public var name: Int
        public var slice: SliceKind
    }

    public let startNs: UInt64
    public let endNs: UInt64
    public let maxRects: Int
    public private(set) var rects: [Rect] = []
    public private(set) var omitted = 0
    private var stacks: [[TimelineOp]] = []

    public init(startNs: UInt64, endNs: UInt64, maxRects: Int = 20_000) {
        self.startNs = startNs
        self.endNs = endNs
        self.maxRects = maxRects
    }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) { stacks.append([]) }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        switch op.kind {
        case .begin:
            stacks[op.thread].append(op)
        case .end:
            guard let b = stacks[op.thread].popLast() else { return }
            guard op.timestampNs > startNs && b.timestampNs < endNs else { return }
            guard b.slice == .callback || b.slice == .syscall || b.slice == .poll else { return }
            if rects.count >= maxRects {
                omitted += 1
                return
            }
            rects.append(Rect(thread: op.thread, depth: stacks[op.thread].filter { $0.slice == .callback }.count,
                              startNs: max(b.timestampNs, startNs), endNs: min(op.timestampNs, endNs), name: b.name,
                              slice: b.slice))
        case .instant, .counter:
            break
        }
    }
}

public enum HTMLReport {
    public struct Options: Sendable {
        public var thresholdNs: UInt64 = 10_000_000
        public var top: Int = 20
        public init() {}
    }

    /// Reads the trace (twice) and returns the page.
    public static func render(reader: TraceReader, options: Options = Options(),
                              progress: ((Double) -> Void)? = nil) -> String {
        let timeline = Timeline(reader: reader)
        let origin = reader.firstNs
        var pass1 = PairSink(ReportCollector(thresholdNs: options.thresholdNs, originNs: origin),
                             StackAggregator(grouping: .callback, weight: .busy))
        timeline.run(into: &pass1, progress: progress.map { p in { p($0 * 0.7) } })
        let collector = pass1.a
        let tree = pass1.b.tree

        var window: WindowCollector?
        var windowTimeline: Timeline?
        if let second = collector.busiestSecond {
            // A trace shorter than a second is drawn whole.
            let start = origin + UInt64(second) * 1_000_000_000
            let end = max(min(start + 1_000_000_000, timeline.lastNs), start + 1)
            let w = WindowCollector(startNs: start, endNs: end)
            var sink = w
            let t2 = Timeline(reader: reader)
            t2.run(into: &sink, progress: progress.map { p in { p(0.7 + $0 * 0.3) } })
            window = w
            windowTimeline = t2
        }
        return page(reader: reader, timeline: timeline, collector: collector, tree: tree, window: window,
                    windowTimeline: windowTimeline, options: options)
    }

    // MARK: - the page

    static func page(reader: TraceReader, timeline: Timeline, collector: ReportCollector, tree: StackTree,
                     window: WindowCollector?, windowTimeline: Timeline?, options: Options) -> String {
        let h = FlamegraphSVG.xml
        let program = reader.header.program.isEmpty ? reader.path : reader.header.program
        let duration = timeline.lastNs > timeline.firstNs ? timeline.lastNs - timeline.firstNs : 0
        var s = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>asynctrace report: \(h(program))</title>
            <style>
            body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1280px; }
            h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
            table { border-collapse: collapse; font-size: 13px; } td, th { padding: 3px 10px; text-align: left; border-bottom: 1px solid #eee; }
            th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
            .warn { color: #a40; } .muted { color: #777; font-size: 12px; } code { background: #f4f4f4; padding: 0 3px; }
            .sys { color: #246; font-size: 12px; }
            </style></head><body>
            <h1>asynctrace report</h1>
            <div class="muted">\(h(reader.path))</div>

            """
        // Overview
        s += "<h2 id=\"overview\">Overview</h2>\n<table>\n"
        s += row("Program", h(program))
        s += row("Process id", "\(reader.header.pid)")
        s += row("Duration", formatNs(duration))
        s += row("Events", grouped(timeline.stats.events))
        let kinds: [(EventKind, String)] = [(.initResource, "init"), (.before, "before"), (.after, "after"), (.destroy, "destroy"),
                                            (.promiseResolve, "promiseResolve"), (.syscall, "syscall"), (.epollWait, "epollWait")]
        s += row("By kind", kinds.map { "\($0.1) \(grouped(timeline.stats.byKind[Int($0.0.rawValue)]))" }.joined(separator: ", "))
        s += row("Callbacks", grouped(timeline.stats.callbacks))
        s += row("Kernel syscalls", grouped(timeline.stats.syscalls))
        s += row("Dropped events", "user \(grouped(reader.droppedUser)), kernel \(grouped(reader.droppedKernel))",
                 warn: reader.droppedUser + reader.droppedKernel > 0)
        let damage = reader.damage + timeline.decodeDamage
        s += row("Damage", damage.isEmpty ? "none" : damage.map { h($0.message) }.joined(separator: "<br>"), warn: !damage.isEmpty)
        s += row("Threads", timeline.threads.map { h("\($0.label) (pid \($0.pid))") + ($0.hasUserStream ? "" : " <span class=\"muted\">kernel only</span>") }
            .joined(separator: "<br>"))
        s += "</table>\n"

        // Callbacks by type
        s += "<h2 id=\"callbacks\">Callbacks by resource type</h2>\n"
        let types = collector.byType.sorted { $0.value.totalNs > $1.value.totalNs }
        if types.isEmpty {
            s += "<p class=\"muted\">No callbacks were recorded (a kernel-only trace?).</p>\n"
        } else {
            s += "<table><tr><th>type</th><th>callbacks</th><th>total</th><th>max</th></tr>\n"
            for (type, st) in types.prefix(50) {
                s += "<tr><td>\(h(timeline.names[type]))</td><td class=\"n\">\(grouped(st.count))</td>"
                    + "<td class=\"n\">\(formatNs(st.totalNs))</td><td class=\"n\">\(formatNs(st.maxNs))</td></tr>\n"
            }
            s += "</table>\n"
        }

        // Blocking
        s += "<h2 id=\"blocking\">Blocking callbacks (longer than \(formatNs(options.thresholdNs)))</h2>\n"
        let blocking = collector.blocking.sorted { $0.durationNs > $1.durationNs }
        if blocking.isEmpty {
            s += "<p>No callback ran longer than \(formatNs(options.thresholdNs)).</p>\n"
        } else {
            s += "<table><tr><th>type</th><th>async id</th><th>thread</th><th>at</th><th>duration</th><th>in the kernel</th><th>syscalls inside</th></tr>\n"
            for b in blocking.prefix(options.top) {
                let th = timeline.threads[b.thread]
                let sys = b.syscalls.map { "\(h($0.name))\($0.fd >= 0 ? "(fd \($0.fd))" : "") \(formatNs($0.durationNs))" }
                    .joined(separator: ", ") + (b.syscallCount > b.syscalls.count ? ", … (\(b.syscallCount) in all)" : "")
                s += "<tr class=\"blocking\"><td>\(h(b.type))</td><td class=\"n\">\(b.asyncID)</td><td>\(h(th.label))</td>"
                    + "<td class=\"n\">+\(formatNs(b.startNs - min(b.startNs, timeline.firstNs)))</td>"
                    + "<td class=\"n\">\(formatNs(b.durationNs))</td><td class=\"n\">\(formatNs(b.kernelNs))</td>"
                    + "<td class=\"sys\">\(sys.isEmpty ? "none recorded" : sys)</td></tr>\n"
            }
            s += "</table>\n"
            if blocking.count > options.top { s += "<p class=\"muted\">\(blocking.count - options.top) more not shown.</p>\n" }
        }

        // Flame graph
        s += "<h2 id=\"flamegraph\">Where the time in callbacks went</h2>\n"
        s += "<p class=\"muted\">Thread → resource type → nested callbacks → syscalls. Hover for times, click to zoom.</p>\n"
        var o = FlamegraphSVG.Options(title: "time in callbacks", subtitle: "\(formatNs(tree.totalWeight)) in total")
        o.width = 1200
        o.standalone = false
        s += FlamegraphSVG.render(tree, options: o)

        // Timeline
        s += "<h2 id=\"timeline\">Timeline of the busiest second</h2>\n"
        if let w = window, let wt = windowTimeline, let second = collector.busiestSecond {
            s += "<p class=\"muted\">Second \(second) of the trace (+\(second) s, \(formatNs(w.endNs - w.startNs)) shown), "
                + "\(formatNs(collector.busyPerSecond[second])) in callbacks. Callbacks are orange, syscalls blue, "
                + "epoll waits grey.\(w.omitted > 0 ? " \(w.omitted) slices left out." : "")</p>\n"
            s += timelineSVG(w, timeline: wt)
        } else {
            s += "<p>No time was spent in callbacks.</p>\n"
        }
        s += "<p class=\"muted\">Generated by asynctrace. This page loads nothing from the network.</p>\n</body></html>\n"
        return s
    }

    static func timelineSVG(_ w: WindowCollector, timeline: Timeline) -> String {
        let h = FlamegraphSVG.xml
        let fmt = FlamegraphSVG.format
        let threads = Array(Set(w.rects.map(\.thread))).sorted()
        let laneHeight = 44, left = 170, width = 1200
        let usable = Double(width - left - 10)
        let height = 30 + threads.count * laneHeight + 10
        let span = Double(w.endNs - w.startNs)
        var s = "<svg class=\"timeline\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" xmlns=\"http://www.w3.org/2000/svg\" style=\"font-family:Verdana,sans-serif;font-size:11px\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"#fcfcfa\"/>\n"
        for i in 0...10 {
            let x = Double(left) + usable * Double(i) / 10
            s += "<line x1=\"\(fmt(x, 1))\" y1=\"18\" x2=\"\(fmt(x, 1))\" y2=\"\(height - 5)\" stroke=\"#e4e4e4\"/>"
                + "<text x=\"\(fmt(x + 2, 1))\" y=\"14\" fill=\"#777\">+\(formatNs(UInt64(span) * UInt64(i) / 10))</text>\n"
        }
        for (lane, t) in threads.enumerated() {
            let y = 24 + lane * laneHeight
            s += "<text x=\"4\" y=\"\(y + 16)\">\(h(String(timeline.threads[t].label.prefix(24))))</text>\n"
            for r in w.rects where r.thread == t {
                let x = Double(left) + Double(r.startNs - w.startNs) / span * usable
                let rw = max(Double(r.endNs - r.startNs) / span * usable, 0.5)
                let (ry, rh, fill): (Int, Int, String) = switch r.slice {
                case .callback: (y + min(r.depth, 2) * 4, 22 - min(r.depth, 2) * 4, "#e8833a")  // nested: thinner
                case .syscall: (y + 26, 10, "#3a7bd5")
                default: (y + 26, 10, "#c8c8c8")
                }
                s += "<rect x=\"\(fmt(x, 2))\" y=\"\(ry)\" width=\"\(fmt(rw, 2))\" height=\"\(rh)\" fill=\"\(fill)\">"
                    + "<title>\(h(timeline.names[r.name])) \(formatNs(r.endNs - r.startNs))</title></rect>\n"
            }
        }
        return s + "</svg>\n"
    }

    static func row(_ k: String, _ v: String, warn: Bool = false) -> String {
        "<tr><th>\(k)</th><td\(warn ? " class=\"warn\"" : "")>\(v)</td></tr>\n"
    }

    static func grouped(_ v: UInt64) -> String {
        let s = String(v)
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return out
    }

    public static func formatNs(_ ns: UInt64) -> String { FlamegraphSVG.formatWeight(ns, "ns") }
}
