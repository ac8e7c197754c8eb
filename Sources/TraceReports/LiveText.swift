// The text of one interval of `asynctrace top`: a screen for the terminal view, or one block per
// interval when the output is not a terminal.
import TraceAnalyses
import TraceText

/// How the threads table is ordered (the view's `s` key cycles through them).
public enum LiveSort: String, CaseIterable, Sendable {
    /// On-CPU time (the order the analysis gives), time blocked, syscall count, or thread name.
    case cpu, blocked, syscalls, name

    /// The order after this one (wraps around): what the `s` key switches to.
    public var next: LiveSort {
        let all = Self.allCases
        return all[(all.firstIndex(of: self)! + 1) % all.count]
    }
}

/// What `LiveText.render` shows besides the interval: order, rows, title and status.
public struct LiveTextOptions: Sendable {
    /// How the threads table is ordered.
    public var sort: LiveSort = .cpu
    /// Rows per table (the terminal view fits them to the screen).
    public var rows: Int = 10
    /// Whether the view is paused (the header says "[paused]").
    public var paused = false
    /// What the view is attached to, for the title ("recording pid 1234", "following app.atrace").
    public var source: String = ""
    /// A line of status (the recording ended, keys).
    public var status: String? = nil

    /// Defaults: sorted by CPU, 10 rows, not paused, no source or status.
    public init() {}
}

/// The text of one interval of `asynctrace top`: loops, threads, callbacks and syscalls of a `LiveInterval`.
public enum LiveText {
    /// The lines of one interval (no trailing newlines; names escaped for the terminal).
    public static func render(_ i: LiveInterval, options o: LiveTextOptions) -> [String] {
        var out: [String] = []
        let at = Formatting.at(i.endNs, from: i.recordingStartNs)
        var title = "asynctrace top — \(Formatting.printable(i.program.isEmpty ? "(program unknown)" : i.program))"
        if !o.source.isEmpty { title += " (\(Formatting.printable(o.source)))" }
        out.append(title)
        var line =
            "at \(at), interval \(Formatting.duration(i.durationNs)): \(Formatting.count(UInt64(i.eventsPerSecond.rounded()))) events/s, "
            + "\(Formatting.count(i.totalEvents)) in all"
        if i.droppedUser > 0 || i.droppedKernel > 0 {
            line += "; dropped \(Formatting.count(i.droppedUser)) program + \(Formatting.count(i.droppedKernel)) kernel events"
        }
        if !i.damage.isEmpty { line += "; \(i.damage.count) damaged regions" }
        if o.paused { line += "  [paused]" }
        out.append(line)

        out.append("")
        if i.loops.isEmpty {
            out.append("Loops: none active in this interval")
        } else {
            var t = Table([("Loop thread", .left), ("util", .right), ("iterations", .right), ("iter p99", .right), ("iter max", .right)])
            for l in i.loops.prefix(o.rows) {
                t.add([
                    name(l.thread) + (l.kernelOnly ? " (epoll)" : ""), Formatting.percent(l.utilization), Formatting.count(l.iterations),
                    Formatting.duration(l.iterationP99Ns), Formatting.duration(l.iterationMaxNs),
                ])
            }
            out += lines(t, more: i.loops.count - o.rows, what: "loop threads")
        }

        out.append("")
        let threads = sorted(i.threads, o.sort)
        if threads.isEmpty {
            out.append("Threads: none seen in this interval (the kernel probes add them)")
        } else {
            var t = Table([
                ("Thread (sort: \(o.sort.rawValue))", .left), ("on CPU", .right), ("blocked", .right), ("runnable", .right),
                ("syscalls", .right), ("blocked most in", .left),
            ])
            for th in threads.prefix(o.rows) {
                // Of the interval (or of the thread's stretch, when a wait that ended in it began before): a thread
                // seen for 10 µs before a long sleep was "84.0% on CPU" of those 10 µs.
                let whole = max(th.spanNs, i.durationNs)
                let share = { (ns: UInt64) in whole == 0 ? "-" : Formatting.percent(Double(ns) / Double(whole)) }
                t.add([
                    name(th.thread) + (th.isLoop ? " [loop]" : "") + (th.exited ? " (exited)" : ""),
                    th.onCPUNs.map(share) ?? "?", i.hasSchedulerEvents ? share(th.blockedNs) : "?",
                    i.hasSchedulerEvents ? share(th.runqueueNs) : "?", Formatting.count(th.syscalls),
                    th.topReason.map { "\($0) \(Formatting.duration(th.topReasonNs))" } ?? "",
                ])
            }
            out += lines(t, more: threads.count - o.rows, what: "threads")
        }

        out.append("")
        if i.callbackTypes.isEmpty {
            out.append("Callbacks: none in this interval")
        } else {
            var t = Table([
                ("Callbacks by type", .left), ("/s", .right), ("busy", .right), ("mean", .right), ("created", .right),
                ("destroyed", .right),
            ])
            for c in i.callbackTypes.prefix(o.rows) {
                t.add([
                    c.type, Formatting.fixed(c.perSecond, c.perSecond >= 100 ? 0 : 1), Formatting.duration(c.totalNs),
                    c.callbacks == 0 ? "-" : Formatting.duration(c.totalNs / c.callbacks),
                    Formatting.count(c.created), Formatting.count(c.destroyed),
                ])
            }
            out += lines(t, more: i.callbackTypes.count - o.rows, what: "types")
        }

        out.append("")
        // A stall in progress shows as it grows, before its callback ends.
        if !i.inProgress.isEmpty {
            out.append(
                "Stalls in progress (at least \(Formatting.duration(i.blockingThresholdNs)) away from the loop's wait, or in one callback; "
                    + "time so far, to the latest events analysed):")
            for st in i.inProgress.prefix(max(1, o.rows / 2)) {
                var s = "  " + Formatting.duration(st.durationNs).leftPadded(9) + " ONGOING  "
                if let type = st.callbackType { s += "\(Formatting.printable(type)) on " }
                s += "\(name(st.thread)) since \(Formatting.at(st.sinceNs, from: i.recordingStartNs))"
                if let d = st.doing { s += ", now \(Formatting.printable(d))" }
                s += " (not ended yet)"
                out.append(s)
            }
        } else if !i.running.isEmpty {
            out.append("Running now for at least \(Formatting.duration(i.blockingThresholdNs)) (a stall in progress):")
            for c in i.running.prefix(max(1, o.rows / 2)) {
                var s = "  " + Formatting.duration(c.durationNs).leftPadded(9) + " ONGOING  "
                s += "\(Formatting.printable(c.type)) on \(name(c.tid, c.threadName)) since \(Formatting.at(c.startNs, from: i.recordingStartNs))"
                s += " (not ended yet)"
                out.append(s)
                if let d = detail(c.syscalls, c.stacks) { out.append("            " + d) }
            }
        }
        let slow = i.slowestCallbacks.prefix(max(1, o.rows / 2))
        out.append(
            slow.isEmpty
                ? "Slowest callbacks: none ended in this interval"
                : "Slowest callbacks of the interval (blocking: at least \(Formatting.duration(i.blockingThresholdNs))):")
        for c in slow {
            var s = "  " + Formatting.duration(c.durationNs).leftPadded(9) + (c.durationNs >= i.blockingThresholdNs ? " BLOCKING " : "          ")
            s += "\(Formatting.printable(c.type)) on \(name(c.tid, c.threadName)) at \(Formatting.at(c.startNs, from: i.recordingStartNs))"
            if let b = c.blockedNs, b > 0 { s += ", blocked \(Formatting.duration(b))" }
            out.append(s)
            if let d = detail(c.syscalls, c.stacks) { out.append("            " + d) }
        }
        let stalls = i.stalls.prefix(max(1, o.rows / 2))
        out.append(stalls.isEmpty ? "Loop stalls: none ended in this interval" : "Loop stalls of the interval (between two waits for events):")
        for st in stalls {
            var s = "  " + Formatting.duration(st.durationNs).leftPadded(9) + (st.durationNs >= i.blockingThresholdNs ? " STALL    " : "          ")
            s += "\(name(st.thread)) at \(Formatting.at(st.startNs, from: i.recordingStartNs))"
            if let on = st.onCPUNs { s += ", on CPU \(Formatting.duration(on))" }
            if st.blockedNs > 0 { s += ", blocked \(Formatting.duration(st.blockedNs))" }
            out.append(s)
            if let d = detail(st.syscalls, st.stacks) { out.append("            " + d) }
        }

        out.append("")
        if i.resourcesAlive.isEmpty {
            out.append("Resources alive: none tracked")
        } else {
            let total = i.resourcesAlive.reduce(UInt64(0)) { $0 + $1.count }
            out.append(
                "Resources alive (\(Formatting.count(total))): "
                    + i.resourcesAlive.prefix(o.rows).map { "\(Formatting.printable($0.type)) \(Formatting.count($0.count))" }.joined(separator: ", ")
                    + (i.resourcesAlive.count > o.rows ? ", …" : ""))
        }
        if let status = o.status { out.append(status) }
        return out
    }

    static func sorted(_ threads: [LiveThread], _ sort: LiveSort) -> [LiveThread] {
        switch sort {
        case .cpu: threads
        case .blocked: threads.sorted { ($0.blockedNs, $1.thread.tid) > ($1.blockedNs, $0.thread.tid) }
        case .syscalls: threads.sorted { ($0.syscalls, $1.thread.tid) > ($1.syscalls, $0.thread.tid) }
        case .name: threads.sorted { ($0.thread.name ?? "~", $0.thread.pid, $0.thread.tid) < ($1.thread.name ?? "~", $1.thread.pid, $1.thread.tid) }
        }
    }

    static func name(_ t: ThreadRef) -> String { name(t.tid, t.name) }

    static func name(_ tid: UInt32, _ name: String?) -> String {
        if let n = name, !n.isEmpty { return "\(Formatting.printable(n)) (\(tid))" }
        return "tid \(tid)"
    }

    static func lines(_ t: Table, more: Int, what: String) -> [String] {
        var l = t.render(indent: "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if l.last == "" { l.removeLast() }
        if more > 0 { l.append("  … \(more) more \(what)") }
        return l
    }

    /// "read fd 7 (/tmp/x) 200 ms ×1; …  stack: f <- g" for a callback's or stall's biggest syscalls.
    static func detail(_ syscalls: [SyscallInCallback], _ stacks: [CodeStackSummary]) -> String? {
        var parts: [String] = []
        if !syscalls.isEmpty {
            parts.append(
                "syscalls: "
                    + syscalls.prefix(3).map { s in
                        var x = s.name
                        if s.fd >= 0 { x += " fd \(s.fd)" + (s.fdDetail.map { " (\(Formatting.printable($0)))" } ?? "") }
                        x += " \(Formatting.duration(s.ns))"
                        if s.count > 1 { x += " ×\(Formatting.count(s.count))" }
                        return x
                    }.joined(separator: ", "))
        }
        if let top = stacks.first, !top.frames.isEmpty {
            parts.append("stack: " + top.frames.prefix(4).map { Formatting.printable($0.function ?? "?") }.joined(separator: " <- "))
        }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }
}

extension String {
    fileprivate func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
