// `asynctrace report --html`: one self-contained page (no network). It is a view of the same analyses the text
// and JSON reports print (TraceAnalyses: overview, blocking callbacks with the syscalls inside them, the event
// loop, callbacks by type, what was open at exit), plus two drawings from the export timeline: the flame graph
// and the busiest second (the analyses say which second that is).
// Two passes over the trace: the analyses, then one timeline pass that collects both drawings.
import TraceAnalyses
import TraceFormat
import TraceReader
import TraceReports
import TraceText

/// Feeds two sinks from one pass.
public struct PairSink<A: TimelineSink, B: TimelineSink>: TimelineSink {
    /// The first sink.
    public var a: A
    /// The second sink.
    public var b: B
    /// A sink that forwards every call to `a`, then to `b`.
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

/// `asynctrace report --html`: one self-contained page (no network): the analyses the text and JSON
/// reports print, plus a flame graph and the busiest second drawn from the export timeline.
public enum HTMLReport {
    /// What the page draws besides the analyses.
    public struct Drawings {
        /// Time in callbacks by thread → resource type → nested callbacks → syscalls (the flamegraph's default);
        /// for a trace without async events, each thread's whole time (its syscalls: `--weight wall`).
        public var flamegraph: StackTree
        /// Which time the flame graph counts.
        public var flamegraphWeight: StackWeight
        /// The slices of the busiest second, and the timeline that names their threads; nil without callbacks.
        public var busiestSecond: (window: WindowCollector, timeline: Timeline)?
    }

    /// Analyzes the trace (as `asynctrace report` does for text and JSON), draws, and returns the page.
    public static func render(
        reader: TraceReader, options: AnalysisOptions = AnalysisOptions(),
        progress: ((Double) -> Void)? = nil
    ) -> String {
        let analysis = analyzeTrace(
            reader, options: options,
            progress: progress.map { p in
                { a in
                    p(a.bytesTotal == 0 ? 0.5 : 0.5 * Double(a.bytesRead) / Double(a.bytesTotal))
                }
            })
        let drawings = draw(reader: reader, analysis: analysis, progress: progress.map { p in { p(0.5 + 0.5 * $0) } })
        return page(analysis, drawings)
    }

    /// One timeline pass: the flame graph and, when there were callbacks, the slices of the busiest second.
    public static func draw(reader: TraceReader, analysis: TraceAnalysis, progress: ((Double) -> Void)? = nil) -> Drawings {
        let timeline = Timeline(reader: reader)
        // Kernel-only traces of format 3 count each thread's time on CPU, in syscalls and off CPU (not idle epoll
        // waits) as busy; older ones have no on-CPU view, so their whole time is drawn.
        let weight: StackWeight = analysis.overview.hasUserEvents || reader.header.version >= 3 ? .busy : .wall
        let stacks = StackAggregator(grouping: .callback, weight: weight)
        guard let busiest = analysis.busiestSecond else {
            var sink = stacks
            timeline.run(into: &sink, progress: progress)
            return Drawings(flamegraph: stacks.tree, flamegraphWeight: weight, busiestSecond: nil)
        }
        // A trace shorter than a second is drawn whole.
        let end = max(min(busiest.startNs &+ 1_000_000_000, analysis.overview.endNs), busiest.startNs &+ 1)
        var sink = PairSink(stacks, WindowCollector(startNs: busiest.startNs, endNs: end))
        timeline.run(into: &sink, progress: progress)
        return Drawings(flamegraph: stacks.tree, flamegraphWeight: weight, busiestSecond: (sink.b, timeline))
    }

    // MARK: - the page

    /// The page: the analyses of `a` with the drawings `d` (HTML, names escaped).
    public static func page(_ a: TraceAnalysis, _ d: Drawings) -> String {
        let o = a.overview
        let program = o.program.isEmpty ? "(unnamed program)" : o.program
        var s = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>asynctrace report: \(x(program))</title>
            <style>
            body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1280px; }
            h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
            table { border-collapse: collapse; font-size: 13px; } td, th { padding: 3px 10px; text-align: left; border-bottom: 1px solid #eee; vertical-align: top; }
            th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
            .warn { color: #a40; } .muted { color: #777; font-size: 12px; } .sys { color: #246; font-size: 12px; }
            </style></head><body>
            <h1>asynctrace report: \(x(program)) (pid \(o.pid))</h1>
            <div class="muted">\(x(o.path)) (format v\(o.formatVersion))</div>

            """
        overview(a, &s)
        uncaughtErrors(a, &s)
        blocking(a, &s)
        loop(a, &s)
        stalls(a, &s)
        threadPool(a, &s)
        threads(a, &s)
        callbacks(a, &s)
        openAtExit(a, &s)
        syscalls(a, &s)
        flamegraph(d.flamegraph, weight: d.flamegraphWeight, kernelOnly: !o.hasUserEvents, &s)
        busiestSecond(a, d, &s)
        s += "<p class=\"muted\">Generated by asynctrace. This page loads nothing from the network.</p>\n</body></html>\n"
        return s
    }

    /// Numbers carry their exact value in `data-key`/`data-value` (the tests compare them with the JSON report).
    private static func value(_ key: String, _ v: UInt64, _ shown: String) -> String {
        "<span data-key=\"\(key)\" data-value=\"\(v)\">\(x(shown))</span>"
    }

    private static func row(_ k: String, _ v: String, warn: Bool = false) -> String {
        "<tr><th>\(k)</th><td\(warn ? " class=\"warn\"" : "")>\(v)</td></tr>\n"
    }

    private static func thread(_ pid: UInt32, _ tid: UInt32, _ name: String?) -> String {
        let base = "tid \(tid)" + (pid != tid ? " pid \(pid)" : "")
        if let name, !name.isEmpty { return "\(name) (\(base))" }
        return base
    }

    private static func overview(_ a: TraceAnalysis, _ s: inout String) {
        let o = a.overview
        s += "<h2 id=\"overview\">Overview</h2>\n<table class=\"overview\">\n"
        if a.window == nil && o.recordedBeyondEvents {
            s += row(
                "Duration",
                value("recorded_ns", o.recordedNs, Formatting.duration(o.recordedNs)) + " recorded; events span "
                    + value("duration_ns", o.durationNs, Formatting.duration(o.durationNs)))
        } else {
            s += row("Duration", value("duration_ns", o.durationNs, Formatting.duration(o.durationNs)))
        }
        s += row("Events", value("events.total", o.totalEvents, Formatting.count(o.totalEvents)))
        let shown = Overview.headlineKinds.filter { o.count($0) > 0 }.map {
            value("events.\($0)", o.count($0), "\($0) \(Formatting.count(o.count($0)))")
        }
        if !shown.isEmpty { s += row("Events by kind", shown.joined(separator: ", ")) }
        s += row(
            "Threads recorded",
            value("user_threads", UInt64(o.userThreads), "\(o.userThreads)")
                + (o.hasKernelEvents ? " + kernel syscalls" : ", no kernel events"))
        s += row("Processes", o.processes.map(String.init).joined(separator: ", "))
        if !o.hasUserEvents && o.hasKernelEvents {
            s += row(
                "Kind", "kernel-only trace (the program emitted no async events): loop view from its waits for events (epoll, poll, select, io_uring)"
            )
        }
        if !o.nodeProcessesWithoutHooks.isEmpty {
            s += row("Node", x(TextReport.nodeWithoutHooksLine(o.nodeProcessesWithoutHooks)), warn: true)
        }
        let dropped = o.droppedUser.addingSaturated(o.droppedKernel)
        s += row(
            "Dropped events",
            (dropped == 0
                ? (o.processesNotFlushed > 0 ? "none counted" : "none") : "\(Formatting.count(dropped)) events, the recorder could not keep up")
                + " (user " + value("dropped.user", o.droppedUser, Formatting.count(o.droppedUser))
                + ", kernel " + value("dropped.kernel", o.droppedKernel, Formatting.count(o.droppedKernel)) + ")", warn: dropped > 0)
        if o.processesNotFlushed > 0 {
            s += row(
                "Lost events",
                value("dropped.processes_not_flushed", o.processesNotFlushed, TextReport.notFlushedLine(o)), warn: true)
        }
        if let signal = o.programSignal { s += row("Ended", "the program was killed by " + x(signal), warn: true) }
        if !o.switchInsNotSeen.isEmpty {
            s += row(
                "Switch-ins not seen",
                value("switch_ins_not_seen.count", o.switchInsNotSeenCount, TextReport.switchInsNotSeenLine(o))
                    + TextReport.switchInsNotSeenMeaning(o), warn: true)
        }
        if let error = o.unwrittenError {
            s += row(
                "Unwritten events",
                Formatting.count(o.unwritten) + " events could not be written to the file (\(x(error))): the trace is incomplete"
                    + " (user " + value("unwritten.user", o.unwrittenUser, Formatting.count(o.unwrittenUser))
                    + ", kernel " + value("unwritten.kernel", o.unwrittenKernel, Formatting.count(o.unwrittenKernel)) + ")",
                warn: true)
        }
        if o.damage.isEmpty {
            s += row("Damage", value("damage.regions", 0, "none") + ": every chunk of the file was read and every stream was closed")
        } else {
            var text =
                value("damage.regions", UInt64(o.damage.count), o.damageSummary)
                + (o.eventsLostToDamage > 0
                    ? ", ~" + value("damage.events_lost", o.eventsLostToDamage, Formatting.count(o.eventsLostToDamage)) + " events lost" : "")
            for m in o.damage.prefix(20) { text += "<br>" + x(m.message) }
            if o.damage.count > 20 { text += "<br>… and \(o.damage.count - 20) more" }
            s += row("Damage", text, warn: true)
        }
        if a.unmatchedAfters + a.abandonedCallbacks > 0 {
            s += row(
                "Note",
                value("unmatched_afters", a.unmatchedAfters, Formatting.count(a.unmatchedAfters)) + " after() without a before() and "
                    + value("abandoned_callbacks", a.abandonedCallbacks, Formatting.count(a.abandonedCallbacks))
                    + " before() never closed (damage or nesting errors); those callbacks are not timed", warn: true)
        }
        if a.untrackedResources > 0 {
            s += row(
                "Note",
                value("untracked_resources", a.untrackedResources, Formatting.count(a.untrackedResources))
                    + " resources beyond the tracking bound were not followed", warn: true)
        }
        s += "</table>\n"
    }

    private static func blocking(_ a: TraceAnalysis, _ s: inout String) {
        let b = a.blocking
        let threshold = Formatting.duration(b.thresholdNs)
        s += "<h2 id=\"blocking\">Blocking callbacks (\(threshold) or longer)</h2>\n"
        guard a.overview.hasUserEvents else {
            s +=
                "<p>The program recorded no async events, so its callbacks cannot be seen; the loop section shows the gaps between its waits for events (epoll, poll, select, io_uring).</p>\n"
            return
        }
        if b.count == 0 {
            s += "<p>" + value("blocking.count", 0, "No callback") + " ran \(threshold) or longer.</p>\n"
            return
        }
        s +=
            "<p>" + value("blocking.count", b.count, "\(Formatting.count(b.count)) callback\(b.count == 1 ? "" : "s")")
            + " ran \(threshold) or longer (" + value("blocking.ns_total", b.totalNs, Formatting.duration(b.totalNs))
            + " in total); while one runs, "
            + (TextReport.blockedLoops(a) ? "its loop can do nothing else" : "its thread can run nothing else") + ".</p>\n"
        s +=
            "<table class=\"blocking\"><tr><th>type</th><th>async id</th><th>thread</th><th>at</th><th>duration</th>"
            + "<th>in the kernel</th><th>caused by</th><th>syscalls inside</th><th>hot code</th></tr>\n"
        for c in b.longest {
            let sys =
                c.syscalls.prefix(8).map { x(TextReport.syscallLine($0)) }.joined(separator: "<br>")
                + (c.syscalls.count > 8 ? "<br>… \(c.syscalls.count - 8) more" : "")
            let none =
                a.overview.hasKernelEvents
                ? "none recorded (CPU-bound, or a syscall the probes do not trace)"
                : "none recorded (no kernel events in this trace)"
            s +=
                "<tr class=\"blocking\" data-async-id=\"\(c.asyncID)\" data-start-ns=\"\(c.startNs)\" data-duration-ns=\"\(c.durationNs)\" "
                + "data-kernel-ns=\"\(c.kernelNs)\"><td>\(x(c.type))\(c.label.map { "<br>" + x($0) } ?? "")</td><td class=\"n\">\(x(TextReport.asyncIDText(c.asyncID, threadName: c.threadName)))</td>"
                + "<td>\(x(thread(c.pid, c.tid, c.threadName)))</td>"
                + "<td class=\"n\">\(Formatting.at(c.startNs, from: a.overview.recordingStartNs))</td>"
                + "<td class=\"n\">\(c.unfinished ? "≥ " : "")\(Formatting.duration(c.durationNs))</td>"
                + "<td class=\"n\">\(c.syscalls.isEmpty ? "-" : Formatting.duration(c.kernelNs))</td>"
                + "<td>\(c.causalChain.count > 1 ? x(TextReport.chainText(c.causalChain)) : "-")"
                + (c.createdAt.isEmpty
                    ? c.createdAtMissing.map { "<br>created at: " + x($0) } ?? "" : "<br>created at " + x(TextReport.createdAt(c.createdAt)))
                + "</td>"
                + "<td class=\"sys\">"
                + (c.onCPUNs.map { _ in
                    x(
                        TextReport.verdict(
                            durationNs: c.durationNs, onCPUNs: c.onCPUNs, blockedNs: c.blockedNs ?? 0,
                            runqueueNs: c.runqueueNs ?? 0, kernelNs: c.kernelNs, syscalls: c.syscalls)) + "<br>"
                } ?? "")
                + (c.wokenBy.isEmpty
                    ? "" : x(TextReport.wokenText(c.wokenBy, waits: c.blockedWaits, byInterrupt: c.wokenByInterrupt)) + "<br>")
                + "\(sys.isEmpty ? (c.onCPUNs != nil ? "no syscalls recorded" : none) : sys)</td>"
                + hotCell(c.hot) + "</tr>\n"
        }
        s += "</table>\n"
        if b.count > UInt64(b.longest.count) {
            s += "<p class=\"muted\">… and \(b.count - UInt64(b.longest.count)) more (see --top).</p>\n"
        }
    }

    /// The program's own function most CPU samples passed through (TextReport.hotLine), or "-".
    private static func hotCell(_ h: HotFunction?) -> String {
        guard let h else { return "<td class=\"hot\">-</td>" }
        return "<td class=\"hot\" data-samples=\"\(h.samples)\" data-of-samples=\"\(h.totalSamples)\">\(x(TextReport.hotLine(h)))</td>"
    }

    private static func loop(_ a: TraceAnalysis, _ s: inout String) {
        if let l = a.loop {
            s +=
                "<h2 id=\"loop\">Event loop</h2>\n<p>" + value("loop.iterations", l.iterations, Formatting.count(l.iterations))
                + " iterations on \(l.threads.count) thread\(l.threads.count == 1 ? "" : "s"), busy "
                + "\(Formatting.percent(l.utilization)) of the time (the rest waiting for events).</p>\n"
            s += "<table><tr><th>thread</th><th>iterations</th><th>busy</th><th>waiting</th><th>iteration p50</th><th>p99</th><th>max</th></tr>\n"
            for t in l.threads {
                s +=
                    "<tr><td>\(x(thread(t.pid, t.tid, t.threadName)))</td><td class=\"n\">\(Formatting.count(t.iterations))</td>"
                    + "<td class=\"n\">\(Formatting.percent(t.utilization))</td><td class=\"n\">\(Formatting.duration(t.pollWaitNs))</td>"
                    + "<td class=\"n\">\(Formatting.duration(t.iterationNs.p50Ns))</td><td class=\"n\">\(Formatting.duration(t.iterationNs.p99Ns))</td>"
                    + "<td class=\"n\">\(Formatting.duration(t.iterationNs.maxNs))</td></tr>\n"
            }
            s += "</table>\n"
            if !l.phases.isEmpty {
                s +=
                    "<p class=\"muted\">Time per phase: "
                    + l.phases.map {
                        "\(x($0.phase)) \(Formatting.duration($0.totalNs)) (\(Formatting.count($0.count))×)"
                    }.joined(separator: ", ") + "</p>\n"
            }
        } else if let k = a.kernelLoop, !k.threads.isEmpty {
            s +=
                "<h2 id=\"loop\">Event loop (from waits for events in the kernel: epoll, poll, select, io_uring; time between waits is time in callbacks)</h2>\n"
            s += "<table><tr><th>thread</th><th>waits</th><th>busy</th><th>waiting</th><th>between waits p50</th><th>p99</th><th>max</th></tr>\n"
            for t in k.threads {
                s +=
                    "<tr><td>\(x(thread(t.pid, t.tid, t.threadName)))</td><td class=\"n\">\(Formatting.count(t.waits))</td>"
                    + "<td class=\"n\">\(Formatting.percent(t.utilization))</td><td class=\"n\">\(Formatting.duration(t.waitNs))</td>"
                    + "<td class=\"n\">\(Formatting.duration(t.busyNs.p50Ns))</td><td class=\"n\">\(Formatting.duration(t.busyNs.p99Ns))</td>"
                    + "<td class=\"n\">\(Formatting.duration(t.busyNs.maxNs))</td></tr>\n"
            }
            s += "</table>\n"
            if let note = TextReport.sharedPollerNote(a) { s += "<p class=\"muted\">\(x(note)).</p>\n" }
            for t in k.threads where a.threadRole(pid: t.pid, tid: t.tid) == .dispatchEventThread {
                s += "<p class=\"muted\">\(x(thread(t.pid, t.tid, t.threadName) + " " + TextReport.dispatchEventThreadNote)).</p>\n"
            }
        }
    }

    /// Node's thread-pool requests that waited for those queued before them (as the text's THREAD POOL).
    private static func threadPool(_ a: TraceAnalysis, _ s: inout String) {
        let p = a.poolWaits
        guard p.count > 0 else { return }
        s +=
            "<h2 id=\"thread-pool\">Thread pool</h2>\n<p>" + value("pool_waits.count", p.count, Formatting.count(p.count))
            + " requests waited \(Formatting.duration(a.options.blockingThresholdNs)) or longer for a thread of libuv's pool, busy with "
            + "requests queued before them (" + value("pool_waits.queue_ns_total", p.queueNsTotal, Formatting.duration(p.queueNsTotal))
            + " in total); the pool's UV_THREADPOOL_SIZE threads run fs, crypto and dns.lookup work in order.</p>\n"
        s +=
            "<table><tr><th>request</th><th>queued at</th><th>behind</th><th>pool threads</th><th>waited for a thread</th>"
            + "<th>then to its callback</th><th>waited for</th></tr>\n"
        for w in p.longest {
            var request = "\(w.type) (async id \(w.asyncID)) of pid \(w.pid)"
            if !w.createdAt.isEmpty { request += ", created at " + TextReport.createdAt(w.createdAt) }
            let ahead = w.ahead.map { g in
                x("\(g.count)× \(g.type)" + (g.createdAt.isEmpty ? "" : ", created at " + TextReport.createdAt(g.createdAt, frames: 2)))
            }
            s +=
                "<tr><td>\(x(request))</td><td class=\"n\">\(Formatting.at(w.queuedAtNs, from: a.overview.recordingStartNs))</td>"
                + "<td class=\"n\">\(w.aheadAtQueueing)</td><td class=\"n\">\(w.poolThreads)</td>"
                + "<td class=\"n\">\(Formatting.duration(w.queueNs))</td><td class=\"n\">\(Formatting.duration(w.runNs))</td>"
                + "<td>\(ahead.joined(separator: "<br>"))</td></tr>\n"
        }
        s += "</table>\n"
    }

    /// The longest stretches between a loop thread's waits for events, and what they were (as the text: also
    /// for programs with callbacks, whose stalls may run outside every callback).
    private static func stalls(_ a: TraceAnalysis, _ s: inout String) {
        guard !a.stalls.isEmpty else { return }
        let promisesRecorded = a.resources.contains { $0.type == "PROMISE" }
        let threshold = Formatting.duration(a.options.blockingThresholdNs)
        s +=
            "<h2 id=\"stalls\">Loop stalls</h2>\n<p>" + value("stalls.count", a.stallsAtThreshold, Formatting.count(a.stallsAtThreshold))
            + " stretches between waits for events of \(threshold) or longer ("
            + value("stalls.ns_total", a.stallsAtThresholdNs, Formatting.duration(a.stallsAtThresholdNs))
            + " in total); meanwhile the loop could do nothing else.</p>\n"
        s +=
            "<table class=\"stalls\"><tr><th>thread</th><th>at</th><th>duration</th><th>what it was</th><th>syscalls inside</th><th>hot code</th></tr>\n"
        for st in a.stalls where st.durationNs >= a.options.blockingThresholdNs {
            let verdict = TextReport.verdict(
                durationNs: st.durationNs, onCPUNs: st.onCPUNs, blockedNs: st.blockedNs,
                runqueueNs: st.runqueueNs, kernelNs: st.kernelNs, syscalls: st.syscalls)
            let sys = st.syscalls.prefix(5).map { x(TextReport.syscallLine($0)) }.joined(separator: "<br>")
            var what: [String] = []
            if let c = st.callback {
                what.append(
                    x(
                        "inside \(c.type) (async id \(TextReport.asyncIDText(c.asyncID, threadName: c.threadName))) for \(Formatting.duration(c.durationNs))"
                            + (c.causalChain.count > 1 ? ", caused by " + TextReport.chainText(c.causalChain) : "")))
            }
            if st.beganBeforeRecording { what.append(x(TextReport.beganBeforeRecording)) }
            if let signal = st.killedBySignal { what.append(x(TextReport.killedInside(signal))) }
            if a.threadRole(pid: st.thread.pid, tid: st.thread.tid) == .dispatchEventThread {
                what.append(x(TextReport.dispatchEventThreadStall))
            } else if let line = TextReport.outsideCallbacks(st, promisesRecorded: promisesRecorded) {
                what.append(x(line))
            }
            what.append(x(verdict))
            if !st.wokenBy.isEmpty {
                what.append(x(TextReport.wokenText(st.wokenBy, waits: st.blockedWaits, byInterrupt: st.wokenByInterrupt)))
            }
            if let pool = TextReport.poolLine(st) { what.append(x(pool)) }
            s +=
                "<tr class=\"stall\" data-start-ns=\"\(st.startNs)\" data-duration-ns=\"\(st.durationNs)\"><td>\(x(TextReport.thread(st.thread)))</td>"
                + "<td class=\"n\">\(Formatting.at(st.startNs, from: a.overview.recordingStartNs))</td>"
                + "<td class=\"n\">\(Formatting.duration(st.durationNs))</td><td>\(what.joined(separator: "<br>"))</td>"
                + "<td class=\"sys\">\(sys.isEmpty ? "none" : sys)</td>" + hotCell(st.hot) + "</tr>\n"
        }
        s += "</table>\n"
    }

    /// A thread that is not the program's says whose it is, under its name.
    private static func roleNote(_ role: ThreadRole?) -> String {
        switch role {
        case .dispatchEventThread: "<br><span class=\"muted\">Dispatch's event thread (the runtime's)</span>"
        case .recorderWriter: "<br><span class=\"muted\">the recorder's writer, not the program's</span>"
        case nil: ""
        }
    }

    /// Every traced thread: on CPU, blocked (and on what), waiting for a CPU.
    private static func threads(_ a: TraceAnalysis, _ s: inout String) {
        guard !a.threads.isEmpty, a.overview.hasKernelEvents else { return }
        let sched = a.hasSchedulerEvents
        s +=
            "<h2 id=\"threads\">Threads</h2>\n<p>" + value("threads.count", UInt64(a.threads.count), "\(a.threads.count)")
            + " traced thread\(a.threads.count == 1 ? "" : "s")"
            + (sched
                ? ": on CPU, blocked (and on what), and runnable but waiting for a CPU, from the scheduler.</p>\n"
                : ". This trace has no scheduler events: only syscall time is known.</p>\n")
        s +=
            "<table class=\"threads\"><tr><th>thread</th><th>loop</th><th>seen</th><th>on CPU</th><th>blocked</th><th>run queue</th>"
            + "<th>syscalls</th><th>errors</th><th>longest stall or wait</th><th>blocked in</th><th>ran in</th></tr>\n"
        let shown = a.threads.sorted {
            ($0.isLoop ? 1 : 0, ($0.onCPUNs ?? 0) &+ $0.syscallNs) > ($1.isLoop ? 1 : 0, ($1.onCPUNs ?? 0) &+ $1.syscallNs)
        }.prefix(200)
        for t in shown {
            s +=
                "<tr data-tid=\"\(t.tid)\"><td>\(x(TextReport.thread(t.ref)))\(roleNote(t.role))</td>"
                + "<td>\(t.isLoop ? (t.loopUtilization.map { "busy " + Formatting.percent($0) } ?? "yes") : "-")</td>"
                + "<td class=\"n\">\(Formatting.duration(t.spanNs))</td><td class=\"n\">\(t.onCPUNs.map(Formatting.duration) ?? "-")</td>"
                + "<td class=\"n\">\(sched ? Formatting.duration(t.offCPUNs) : "-")</td><td class=\"n\">\(sched ? Formatting.duration(t.runqueueNs) : "-")</td>"
                + "<td class=\"n\">\(Formatting.count(t.syscalls))</td><td class=\"n\">\(Formatting.count(t.errors))</td>"
                + "<td class=\"n\">\(x(TextReport.longestText(t)))</td>"
                + "<td class=\"sys\">\(t.offCPUByReason.prefix(4).map { x(TextReport.reasonText($0)) }.joined(separator: "<br>"))</td>"
                + "<td class=\"sys\">\(t.hot.map { x(TextReport.hotLine($0, callers: 2)) } ?? "")</td></tr>\n"
        }
        s += "</table>\n"
        if a.threads.count > shown.count { s += "<p class=\"muted\">\(a.threads.count - shown.count) more threads (the JSON report has all).</p>\n" }
        if !a.titledProcesses.isEmpty {
            // Processes named by the title they set (their argv rewritten), as their threads are above.
            let limit = max(a.options.top, 20)
            s += "<p>Processes by their titles:</p>\n<ul class=\"titles\">\n"
            for p in a.titledProcesses.prefix(limit) { s += "<li>\(x(TextReport.processTitle(p)))</li>\n" }
            s += "</ul>\n"
            if a.titledProcesses.count > limit {
                s += "<p class=\"muted\">\(a.titledProcesses.count - limit) more titled processes (the JSON report has all).</p>\n"
            }
        }
    }

    private static func callbacks(_ a: TraceAnalysis, _ s: inout String) {
        s += "<h2 id=\"callbacks\">Callbacks by resource type</h2>\n"
        guard !a.resources.isEmpty else {
            s += "<p class=\"muted\">No resources or callbacks were recorded.</p>\n"
            return
        }
        s +=
            "<table class=\"types\"><tr><th>type</th><th>created</th><th>destroyed</th><th>callbacks</th><th>total</th>"
            + "<th>p50</th><th>p99</th><th>max</th></tr>\n"
        for r in a.resources.prefix(50) {
            let c = r.callbacks
            let none = c.count == 0
            s +=
                "<tr><td>\(x(r.type))</td><td class=\"n\">\(Formatting.count(r.created))</td>"
                + "<td class=\"n\">\(Formatting.count(r.destroyed))</td><td class=\"n\">\(Formatting.count(c.count))</td>"
                + "<td class=\"n\">\(Formatting.duration(c.totalNs))</td><td class=\"n\">\(none ? "-" : Formatting.duration(c.p50Ns))</td>"
                + "<td class=\"n\">\(none ? "-" : Formatting.duration(c.p99Ns))</td><td class=\"n\">\(none ? "-" : Formatting.duration(c.maxNs))</td></tr>\n"
        }
        s += "</table>\n"
        if a.resources.count > 50 { s += "<p class=\"muted\">\(a.resources.count - 50) more types (the JSON report has all).</p>\n" }
    }

    /// Errors no callback caught, as the text report lists them (only when there were some).
    private static func uncaughtErrors(_ a: TraceAnalysis, _ s: inout String) {
        guard !a.uncaughtErrors.isEmpty || a.uncaughtErrorsNotListed > 0 else { return }
        s += "<h2 id=\"uncaught\">Uncaught errors (Node ends the process with the first)</h2>\n"
        s += "<table><tr><th>error</th><th>thrown in</th><th>thread</th><th>at</th><th>created at</th><th>caused by</th></tr>\n"
        // Thrown outside every callback after one ran (an unhandled rejection): the callback it came out of.
        func thrownIn(_ e: UncaughtError) -> String {
            if let t = e.type { return x("\(t) (async id \(TextReport.asyncIDText(e.asyncID, threadName: e.threadName)))") }
            if let id = e.afterAsyncID {
                return x("no recorded callback; after \(e.afterType ?? "?") (async id \(TextReport.asyncIDText(id, threadName: e.threadName)))")
            }
            return "async id \(e.asyncID)"
        }
        for e in a.uncaughtErrors {
            let chain = e.afterAsyncID != nil ? e.afterCausalChain : e.causalChain
            let site = e.afterAsyncID != nil ? e.afterCreatedAt : e.createdAt
            s +=
                "<tr><td class=\"warn\">\(x(e.message))</td><td>\(thrownIn(e))</td>"
                + "<td>\(x(thread(e.pid, e.tid, e.threadName)))</td><td class=\"n\">\(Formatting.at(e.ns, from: a.overview.recordingStartNs))</td>"
                + "<td>\(site.isEmpty ? "-" : x(TextReport.createdAt(site)))</td>"
                + "<td>\(chain.count > 1 ? x(TextReport.chainText(chain)) : "-")</td></tr>\n"
        }
        s += "</table>\n"
        if a.uncaughtErrorsNotListed > 0 { s += "<p>... and \(a.uncaughtErrorsNotListed) more (not kept).</p>\n" }
    }

    private static func openAtExit(_ a: TraceAnalysis, _ s: inout String) {
        guard a.overview.hasUserEvents else { return }
        s += "<h2 id=\"open\">Open at exit</h2>\n"
        guard !a.openAtExit.isEmpty else {
            s += "<p>Nothing: every resource created was destroyed.</p>\n"
            return
        }
        let total = a.openAtExit.reduce(0) { $0 + $1.count }
        s +=
            "<p>\(Formatting.count(total)) resource\(total == 1 ? "" : "s") created and never destroyed (\(x(TextReport.openAtExitMeaning(a)))).</p>\n"
        let streams = Set(a.openAtExit.flatMap(\.standardStreams)).sorted().map(TextReport.streamName)
        if !streams.isEmpty {
            s +=
                "<p>\(x(streams.joined(separator: ", "))): the handles of the standard streams stay open for the process's life; they did not keep it alive.</p>\n"
        }
        if a.exitedByThemselvesStatus == nil, a.openAtExit.contains(where: \.unrefed) {
            s += "<p>unref'd: they did not keep the process alive.</p>\n"
        }
        s += "<table><tr><th>type</th><th>count</th><th>oldest created</th><th>created at</th><th>created by</th></tr>\n"
        for g in a.openAtExit.prefix(50) {
            s +=
                "<tr><td>\(x(TextReport.openGroupLabel(g)))</td><td class=\"n\">\(Formatting.count(g.count))</td>"
                + "<td class=\"n\">\(Formatting.at(g.oldestInitNs, from: a.overview.recordingStartNs))</td>"
                + "<td>\(g.createdAt.isEmpty ? "-" : x(TextReport.createdAt(g.createdAt)))</td>"
                + "<td>\(g.createdBy.isEmpty ? "(top level)" : x(TextReport.chainText(g.createdBy)))</td></tr>\n"
        }
        s += "</table>\n"
    }

    private static func syscalls(_ a: TraceAnalysis, _ s: inout String) {
        s += "<h2 id=\"syscalls\">Syscalls</h2>\n"
        guard !a.io.syscalls.isEmpty else {
            s += "<p>No kernel events in this trace (`asynctrace record` adds them with the kernel probes).</p>\n"
            return
        }
        s +=
            "<table class=\"syscalls\"><tr><th>syscall</th><th>count</th><th>bytes</th>"
            + "<th>kernel time</th><th>errors</th><th>inside callbacks</th></tr>\n"
        for c in a.io.syscalls.prefix(30) {
            s +=
                "<tr><td>\(x(c.name))</td><td class=\"n\">\(Formatting.count(c.count))</td>"
                + "<td class=\"n\">\(c.bytes == 0 ? "-" : Formatting.bytes(c.bytes))</td><td class=\"n\">\(Formatting.duration(c.totalNs))</td>"
                + "<td class=\"n\">\(x(TextReport.errorsText(c)))</td>"
                + "<td class=\"n\">\(a.overview.hasUserEvents ? Formatting.count(c.attributed) : "-")</td></tr>\n"
        }
        s += "</table>\n"
        if a.io.syscalls.count > 30 { s += "<p class=\"muted\">\(a.io.syscalls.count - 30) more (the JSON report has all).</p>\n" }
        if a.overview.hasUserEvents && a.io.readWriteSyscalls > 0 {
            s +=
                "<p>\(Formatting.percent(a.io.attributedShare)) of \(Formatting.count(a.io.readWriteSyscalls)) read/write syscalls ran inside a callback"
                + (a.io.readWriteOnResourceFDs > 0
                    ? "; \(Formatting.percent(a.io.ownerShare)) of \(Formatting.count(a.io.readWriteOnResourceFDs)) "
                        + "on fds owned by a resource ran inside that resource's own callbacks" : "") + ".</p>\n"
        }
    }

    private static func flamegraph(_ tree: StackTree, weight: StackWeight, kernelOnly: Bool, _ s: inout String) {
        let wall = weight == .wall
        s += "<h2 id=\"flamegraph\">\(wall || kernelOnly ? "Where the time went" : "Where the time in callbacks went")</h2>\n"
        guard tree.totalWeight > 0 else {
            s += "<p>No time was spent in callbacks, and no thread waited for events (epoll, poll, select, io_uring).</p>\n"
            return
        }
        s +=
            "<p class=\"muted\">"
            + (wall
                ? "No callbacks were recorded: each thread's whole time, by the syscalls it was in. "
                : "Thread → resource type → nested callbacks → syscalls → off-CPU reason; threads "
                    + "without callbacks: thread → on CPU / syscall / off-CPU reason (idle epoll waits left out). ")
            + "Hover for times, click to zoom.</p>\n"
        var o = FlamegraphSVG.Options(
            title: wall ? "wall time per thread" : kernelOnly ? "busy time per thread" : "time in callbacks",
            subtitle: "\(Formatting.duration(tree.totalWeight)) in total")
        o.width = 1200
        o.standalone = false
        s += FlamegraphSVG.render(tree, options: o)
    }

    private static func busiestSecond(_ a: TraceAnalysis, _ d: Drawings, _ s: inout String) {
        s += "<h2 id=\"timeline\">Timeline of the busiest second</h2>\n"
        guard let b = a.busiestSecond, let (w, timeline) = d.busiestSecond else {
            s += "<p>No time was spent in callbacks.</p>\n"
            return
        }
        s +=
            "<p class=\"muted\">The second from \(Formatting.at(b.startNs, from: a.overview.recordingStartNs)) "
            + "(\(Formatting.duration(w.endNs - w.startNs)) shown): " + value("busiest_second.busy_ns", b.busyNs, Formatting.duration(b.busyNs))
            + (b.measure == .callbacks
                ? " in callbacks." : " between waits for events (no callbacks were recorded: the loop's busy time as the kernel saw it).")
            + " " + BusiestSecondSVG.legend
            + (w.omitted > 0 ? " \(Formatting.count(UInt64(w.omitted))) slices left out." : "") + "</p>\n"
        s += BusiestSecondSVG.render(w, timeline: timeline)
    }

    private static func x(_ s: String) -> String { FlamegraphSVG.xml(s) }
}
