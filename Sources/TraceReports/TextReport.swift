// The report for people: what happened, whether the loop was blocked and by what, where the time
// went, which callback did which I/O, and what was still open at exit. Dropped events and damage
// are always stated, even when there were none.
import TraceAnalyses
import TraceReader

public enum TextReport {
    public static func render(_ a: TraceAnalysis) -> String {
        var out = ""
        overview(a, &out)
        blocking(a, &out)
        if let loop = a.loop { loopSection(loop, &out) }
        if a.loop == nil, let k = a.overview.hasUserEvents ? nil : a.kernelLoop { kernelLoop(k, a, &out) }
        callbacks(a, &out)
        slowest(a, &out)
        syscalls(a, &out)
        fds(a, &out)
        openAtExit(a, &out)
        return out
    }

    private static func thread(_ pid: UInt32, _ tid: UInt32, _ name: String?) -> String {
        let base = "tid \(tid)" + (pid != tid ? " pid \(pid)" : "")
        if let name, !name.isEmpty { return "\(name) (\(base))" }
        return base
    }

    private static func heading(_ title: String, _ out: inout String) { out += "\n" + title + "\n" }

    private static func overview(_ a: TraceAnalysis, _ out: inout String) {
        let o = a.overview
        out += "asynctrace report: \(o.program.isEmpty ? "(unnamed program)" : o.program) (pid \(o.pid))\n"
        out += "  trace      \(o.path)  (format v\(o.formatVersion))\n"
        out += "  duration   \(Formatting.duration(o.durationNs))"
        out += "  |  \(Formatting.count(o.totalEvents)) events"
        out += "  |  \(o.userThreads) thread\(o.userThreads == 1 ? "" : "s") recorded"
        out += o.hasKernelEvents ? " + kernel syscalls\n" : ", no kernel events\n"
        if !o.hasUserEvents && o.hasKernelEvents {
            out += "  kind       kernel-only trace (the program emitted no async events): loop view from epoll waits\n"
        }
        let dropped = o.droppedUser + o.droppedKernel
        out += "  dropped    " + (dropped == 0 ? "none" : "\(Formatting.count(dropped)) events")
        out += " (user \(Formatting.count(o.droppedUser)), kernel \(Formatting.count(o.droppedKernel)))"
        out += dropped == 0 ? "\n" : "  ← the recorder could not keep up; counts below miss these\n"
        if o.damage.isEmpty {
            out += "  damage     none: every chunk of the file was read\n"
        } else {
            out += "  damage     \(o.damage.count) damaged region\(o.damage.count == 1 ? "" : "s") skipped"
            out += o.eventsLostToDamage > 0 ? ", ~\(Formatting.count(o.eventsLostToDamage)) events lost:\n" : ":\n"
            for d in o.damage.prefix(20) { out += "    - \(d.message)\n" }
            if o.damage.count > 20 { out += "    - ... and \(o.damage.count - 20) more\n" }
        }
        let shown = Overview.headlineKinds.filter { o.count($0) > 0 }.map { "\($0) \(Formatting.count(o.count($0)))" }
        if !shown.isEmpty { out += "  events     " + shown.joined(separator: ", ") + "\n" }
        if a.unmatchedAfters + a.abandonedCallbacks > 0 {
            out += "  note       \(Formatting.count(a.unmatchedAfters)) after() without a before() and \(Formatting.count(a.abandonedCallbacks)) "
            out += "before() never closed (damage or nesting errors); those callbacks are not timed\n"
        }
                if a.untrackedResources > 0 {
            out += "  note       \(Formatting.count(a.untrackedResources)) resources beyond the tracking bound were not followed\n"
        }
    }

    private static func blocking(_ a: TraceAnalysis, _ out: inout String) {
        let b = a.blocking
        let threshold = Formatting.duration(b.thresholdNs)
        guard a.overview.hasUserEvents else { return }
        if b.count == 0 {
            heading("BLOCKING: no callback ran \(threshold) or longer", &out)
            return
        }
        heading("BLOCKING: \(Formatting.count(b.count)) callback\(b.count == 1 ? "" : "s") ran \(threshold) or longer "
                + "(\(Formatting.duration(b.totalNs)) in total); while one runs, the loop can do nothing else", &out)
        for c in b.longest {
            out += "  ▶ \(c.type) (async id \(c.asyncID)) blocked \(thread(c.pid, c.tid, c.threadName)) for "
            out += "\(Formatting.duration(c.durationNs)), at \(Formatting.at(c.startNs, from: a.overview.recordingStartNs))\n"
            if c.causalChain.count > 1 { out += "      caused by  " + c.causalChain.joined(separator: " → ") + "\n" }
            if c.syscalls.isEmpty {
                out += "      syscalls   none recorded inside it" + (a.overview.hasKernelEvents ? " (CPU-bound, or a syscall the probes do not trace)\n" : " (no kernel events in this trace)\n")
            } else {
                let k = c.kernelNs
                out += "      syscalls   \(Formatting.duration(k)) in the kernel (\(Formatting.percent(Double(k) / Double(max(1, c.durationNs)))) of the callback):\n"
                for s in c.syscalls.prefix(8) {
                    out += "                 \(s.name)(fd \(s.fd)) \(Formatting.duration(s.ns))"
                    out += s.count > 1 ? " in \(Formatting.count(s.count)) calls" : ""
                    out += s.bytes > 0 ? ", \(Formatting.bytes(s.bytes))\n" : "\n"
                }
            }
        }
        if b.count > UInt64(b.longest.count) { out += "  ... and \(b.count - UInt64(b.longest.count)) more (see --top)\n" }
    }

    private static func phases(_ p: [PhaseTime]) -> String {
        p.map { "\($0.phase) \(Formatting.duration($0.totalNs)) (\(Formatting.count($0.count))×)" }.joined(separator: ", ")
    }

    private static func loopSection(_ l: LoopSummary, _ out: inout String) {
        heading("EVENT LOOP: \(Formatting.count(l.iterations)) iterations on \(l.threads.count) thread\(l.threads.count == 1 ? "" : "s"), "
                + "busy \(Formatting.percent(l.utilization)) of the time (the rest waiting in epoll)", &out)
        var t = Table([("thread", .left), ("iterations", .right), ("busy", .right), ("waiting", .right),
                       ("iteration p50", .right), ("p99", .right), ("max", .right)])
        for th in l.threads {
            t.add([thread(th.pid, th.tid, th.threadName), Formatting.count(th.iterations), Formatting.percent(th.utilization),
                   Formatting.duration(th.pollWaitNs), Formatting.duration(th.iterationNs.p50Ns),
                   Formatting.duration(th.iterationNs.p99Ns), Formatting.duration(th.iterationNs.maxNs)])
        }
        out += t.render()
        if !l.phases.isEmpty { out += "  time per phase: " + phases(l.phases) + "\n" }
    }

    private static func kernelLoop(_ k: KernelLoopSummary, _ a: TraceAnalysis, _ out: inout String) {
        heading("EVENT LOOP (from epoll waits in the kernel; time between waits = time in callbacks)", &out)
        var t = Table([("thread", .left), ("waits", .right), ("busy", .right), ("waiting", .right),
                       ("between waits p50", .right), ("p99", .right), ("max", .right)])
        for th in k.threads {
            t.add([thread(th.pid, th.tid, nil), Formatting.count(th.waits), Formatting.percent(th.utilization),
                   Formatting.duration(th.waitNs), Formatting.duration(th.busyNs.p50Ns),
                   Formatting.duration(th.busyNs.p99Ns), Formatting.duration(th.busyNs.maxNs)])
        }
        out += t.render()
        if !k.longestGaps.isEmpty {
            out += "  longest gaps between epoll waits (the loop was busy or blocked):\n"
            for g in k.longestGaps {
                out += "    \(Formatting.duration(g.durationNs)) on tid \(g.tid) at \(Formatting.at(g.startNs, from: a.overview.recordingStartNs))\n"
            }
        }
    }

    private static func callbacks(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.resources.isEmpty else { return }
        heading("CALLBACKS BY RESOURCE TYPE", &out)
        var t = Table([("type", .left), ("created", .right), ("destroyed", .right), ("callbacks", .right),
                       ("total", .right), ("p50", .right), ("p99", .right), ("max", .right)])
        for r in a.resources {
            let c = r.callbacks
            t.add([r.type, Formatting.count(r.created), Formatting.count(r.destroyed), Formatting.count(c.count),
                   Formatting.duration(c.totalNs), c.count == 0 ? "-" : Formatting.duration(c.p50Ns),
                   c.count == 0 ? "-" : Formatting.duration(c.p99Ns), c.count == 0 ? "-" : Formatting.duration(c.maxNs)])
        }
        out += t.render()
    }

    private static func slowest(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.slowestCallbacks.isEmpty else { return }
        heading("SLOWEST CALLBACKS", &out)
        var t = Table([("duration", .right), ("type", .left), ("async id", .right), ("thread", .left), ("at", .right),
                       ("in kernel", .right), ("caused by", .left)])
        for c in a.slowestCallbacks {
            t.add([Formatting.duration(c.durationNs), c.type, String(c.asyncID), thread(c.pid, c.tid, c.threadName),
                   Formatting.at(c.startNs, from: a.overview.recordingStartNs),
                   c.syscalls.isEmpty ? "-" : Formatting.duration(c.kernelNs), c.causalChain.joined(separator: " → ")])
        }
        out += t.render()
    }

    private static func syscalls(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.io.syscalls.isEmpty else { return }
        heading("SYSCALLS", &out)
        var t = Table([("syscall", .left), ("count", .right), ("bytes", .right), ("kernel time", .right),
                       ("errors", .right), ("inside callbacks", .right)])
        for s in a.io.syscalls {
            t.add([s.name, Formatting.count(s.count), s.bytes == 0 ? "-" : Formatting.bytes(s.bytes),
                   Formatting.duration(s.totalNs), Formatting.count(s.errors),
                   a.overview.hasUserEvents ? Formatting.count(s.attributed) : "-"])
        }
        out += t.render()
        if a.overview.hasUserEvents && a.io.readWriteSyscalls > 0 {
            out += "  \(Formatting.percent(a.io.attributedShare)) of \(Formatting.count(a.io.readWriteSyscalls)) read/write syscalls "
            out += "ran inside a callback\n"
            if a.io.readWriteOnResourceFDs > 0 {
                out += "  \(Formatting.percent(a.io.ownerShare)) of \(Formatting.count(a.io.readWriteOnResourceFDs)) read/write syscalls on fds owned by a resource "
                out += "ran inside that resource's own callbacks\n"
            }
        }
    }

    private static func fds(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.io.fds.isEmpty else { return }
        heading("I/O BY FILE DESCRIPTOR", &out)
        let multiProcess = Set(a.io.fds.map(\.pid)).count > 1
        var cols: [(String, Table.Align)] = [("fd", .right), ("resource", .left), ("reads", .right), ("writes", .right),
                                             ("read", .right), ("written", .right), ("EAGAIN", .right),
                                             ("ready→callback p50", .right), ("p99", .right)]
        if multiProcess { cols.insert(("pid", .right), at: 0) }
        var t = Table(cols)
        for f in a.io.fds.sorted(by: { ($0.bytesRead + $0.bytesWritten, $0.syscalls) > ($1.bytesRead + $1.bytesWritten, $1.syscalls) }).prefix(max(a.options.top, 20)) {
            // Without kernel events only readiness is known; syscall columns would be misleading zeros.
            let k = a.overview.hasKernelEvents
            var row = [String(f.fd), f.resourceType ?? "-", k ? Formatting.count(f.reads) : "-", k ? Formatting.count(f.writes) : "-",
                       k ? Formatting.bytes(f.bytesRead) : "-", k ? Formatting.bytes(f.bytesWritten) : "-",
                       k ? Formatting.count(f.eagain) : "-",
                       f.readyToCallbackNs.count == 0 ? "-" : Formatting.duration(f.readyToCallbackNs.p50Ns),
                       f.readyToCallbackNs.count == 0 ? "-" : Formatting.duration(f.readyToCallbackNs.p99Ns)]
            if multiProcess { row.insert(String(f.pid), at: 0) }
            t.add(row)
        }
        out += t.render()
        if a.io.fds.count > max(a.options.top, 20) { out += "  ... \(a.io.fds.count - max(a.options.top, 20)) more fds (JSON has all)\n" }
    }

    private static func openAtExit(_ a: TraceAnalysis, _ out: inout String) {
        guard a.overview.hasUserEvents else { return }
        if a.openAtExit.isEmpty {
            heading("OPEN AT EXIT: nothing (every resource created was destroyed)", &out)
            return
        }
        let total = a.openAtExit.reduce(0) { $0 + $1.count }
        heading("OPEN AT EXIT: \(Formatting.count(total)) resource\(total == 1 ? "" : "s") created and never destroyed "
                + "(what kept the process alive, or leaked)", &out)
        var t = Table([("type", .left), ("count", .right), ("oldest created", .right), ("created by", .left)])
        for g in a.openAtExit {
            t.add([g.type, Formatting.count(g.count), Formatting.at(g.oldestInitNs, from: a.overview.recordingStartNs),
                   g.createdBy.isEmpty ? "(top level)" : g.createdBy.joined(separator: " → ")])
        }
        out += t.render()
    }
}
