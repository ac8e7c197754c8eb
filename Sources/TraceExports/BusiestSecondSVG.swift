// The HTML report's timeline of the busiest second: the slices of one time window (callbacks, syscalls,
// epoll waits) collected from the export timeline, drawn as one lane per thread.
import TraceFormat
import TraceText

/// Collects the slices of one time window for drawing (bounded: at most `maxRects`).
public final class WindowCollector: TimelineSink {
    /// One slice clipped to the window, for drawing.
    public struct Rect: Sendable {
        /// Index into `Timeline.threads`: the slice's lane.
        public var thread: Int
        /// Nesting depth within its thread (0: outermost).
        public var depth: Int
        /// Where it starts, clipped to the window (CLOCK_MONOTONIC ns).
        public var startNs: UInt64
        /// Where it ends, clipped to the window (CLOCK_MONOTONIC ns).
        public var endNs: UInt64
        /// Its name, an id of `Timeline.names`.
        public var name: Int
        /// What it stands for.
        public var slice: SliceKind
    }

    /// The window's start (CLOCK_MONOTONIC ns).
    public let startNs: UInt64
    /// The window's end (CLOCK_MONOTONIC ns).
    public let endNs: UInt64
    /// The most slices kept; later ones are counted in `omitted`.
    public let maxRects: Int
    /// The slices that overlap the window, in the order they ended.
    public private(set) var rects: [Rect] = []
    /// Slices in the window past `maxRects`, not kept.
    public private(set) var omitted = 0
    private var stacks: [[TimelineOp]] = []
    /// Threads without user events: where their last epoll wait ended (the loop's busy time runs from there to
    /// the next wait), 0 if none yet.
    private var lastWaitEnd: [UInt64] = []
    private var kernelOnly: [Bool] = []
    /// The name of the busy stretches between epoll waits.
    private var busyName = -1

    /// Collects the slices overlapping `startNs..<endNs` (CLOCK_MONOTONIC ns), at most `maxRects` of them.
    public init(startNs: UInt64, endNs: UInt64, maxRects: Int = 20_000) {
        self.startNs = startNs
        self.endNs = endNs
        self.maxRects = maxRects
    }

    public func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline) {
        stacks.append([])
        lastWaitEnd.append(0)
        kernelOnly.append(!thread.hasUserStream)
        if busyName < 0 { busyName = timeline.names.id("busy (between epoll waits)") }
    }

    private func add(_ r: Rect) {
        guard r.endNs > startNs && r.startNs < endNs else { return }
        if rects.count >= maxRects {
            omitted += 1
            return
        }
        var r = r
        r.startNs = max(r.startNs, startNs)
        r.endNs = min(r.endNs, endNs)
        rects.append(r)
    }

    public func consume(_ op: TimelineOp, timeline: Timeline) {
        switch op.kind {
        case .begin:
            // A loop seen only in the kernel: the time since its last epoll wait is its busy time (its callbacks).
            if kernelOnly[op.thread] && op.slice == .syscall && stacks[op.thread].isEmpty && op.isLoopWait {
                if lastWaitEnd[op.thread] != 0 && op.timestampNs > lastWaitEnd[op.thread] {
                    add(
                        Rect(
                            thread: op.thread, depth: 0, startNs: lastWaitEnd[op.thread], endNs: op.timestampNs, name: busyName,
                            slice: .callback))
                }
            }
            stacks[op.thread].append(op)
        case .end:
            guard let b = stacks[op.thread].popLast() else { return }
            let epoll = b.slice == .syscall && b.isLoopWait
            if epoll && stacks[op.thread].isEmpty { lastWaitEnd[op.thread] = op.timestampNs }
            guard b.slice == .callback || b.slice == .syscall || b.slice == .poll || b.slice == .offCPU else { return }
            // Kernel epoll waits are the loop waiting, drawn like the runtime's polls.
            add(
                Rect(
                    thread: op.thread, depth: stacks[op.thread].filter { $0.slice == .callback }.count,
                    startNs: b.timestampNs, endNs: op.timestampNs, name: b.name, slice: epoll ? .poll : b.slice))
        case .instant, .counter:
            break
        }
    }
}

enum BusiestSecondSVG {
    /// What the colours mean, as the page says it.
    static let legend =
        "Callbacks (and a kernel-only loop's busy time between epoll waits) are orange, syscalls blue, "
        + "epoll waits grey; under them, time off the CPU: blocked purple, runnable but waiting for a CPU yellow."

    /// One lane per thread with slices in the window; callbacks orange (nested ones thinner; a kernel-only loop's
    /// busy time between epoll waits too), syscalls blue, epoll waits grey, blocked purple, runnable yellow (a strip
    /// under the syscalls); hover titles give name and duration. `legend` names exactly these.
    static func render(_ w: WindowCollector, timeline: Timeline, width: Int = 1200) -> String {
        let h = FlamegraphSVG.xml
        let fmt = FlamegraphSVG.format
        let threads = Array(Set(w.rects.map(\.thread))).sorted()
        let laneHeight = 48, left = 170
        let usable = Double(width - left - 10)
        let height = 30 + threads.count * laneHeight + 10
        let span = Double(max(w.endNs - w.startNs, 1))
        var s =
            "<svg class=\"timeline\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" xmlns=\"http://www.w3.org/2000/svg\" style=\"font-family:Verdana,sans-serif;font-size:11px\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"#fcfcfa\"/>\n"
        for i in 0...10 {
            let x = Double(left) + usable * Double(i) / 10
            s +=
                "<line x1=\"\(fmt(x, 1))\" y1=\"18\" x2=\"\(fmt(x, 1))\" y2=\"\(height - 5)\" stroke=\"#e4e4e4\"/>"
                + "<text x=\"\(fmt(x + 2, 1))\" y=\"14\" fill=\"#777\">+\(Formatting.duration(UInt64(span) * UInt64(i) / 10))</text>\n"
        }
        for (lane, t) in threads.enumerated() {
            let y = 24 + lane * laneHeight
            s += "<text x=\"4\" y=\"\(y + 16)\">\(h(String(timeline.threads[t].label.prefix(24))))</text>\n"
            for r in w.rects where r.thread == t {
                let x = Double(left) + Double(r.startNs - w.startNs) / span * usable
                let rw = max(Double(r.endNs - r.startNs) / span * usable, 0.5)
                let (ry, rh, fill): (Int, Int, String) =
                    switch r.slice {
                    case .callback: (y + min(r.depth, 2) * 4, 22 - min(r.depth, 2) * 4, "#e8833a")
                    case .syscall: (y + 26, 10, "#3a7bd5")
                    case .offCPU: (y + 36, 6, timeline.names[r.name].hasPrefix("runnable") ? "#e3b505" : "#8e5cc2")
                    default: (y + 26, 10, "#c8c8c8")
                    }
                s +=
                    "<rect x=\"\(fmt(x, 2))\" y=\"\(ry)\" width=\"\(fmt(rw, 2))\" height=\"\(rh)\" fill=\"\(fill)\">"
                    + "<title>\(h(timeline.names[r.name])) \(Formatting.duration(r.endNs - r.startNs))</title></rect>\n"
            }
        }
        return s + "</svg>\n"
    }
}
