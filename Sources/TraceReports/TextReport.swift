// The report for people: what happened, whether the loop was blocked and by what, where the time
// went, which callback did which I/O, and what was still open at exit. Dropped events and damage
// are always stated, even when there were none.
import TraceAnalyses
import TraceSymbols
import TraceFormat
import TraceReader
import TraceSymbols
import TraceText

/// The report for people (`asynctrace report`): what happened, whether the loop was blocked and by what,
/// where the time went, which callback did which I/O, and what was still open at exit.
public enum TextReport {
    /// The whole report as text with newlines; drops and damage are stated even when there were none, and
    /// nothing unprintable reaches the terminal.
    public static func render(_ a: TraceAnalysis) -> String {
        var out = ""
        overview(a, &out)
        uncaughtErrors(a, &out)
        blocking(a, &out)
        if let loop = a.loop { loopSection(loop, &out) }
        // No loop events (an unmodified program, or Node's hooks, which have none): the loop from epoll waits.
        if a.loop == nil, let k = a.kernelLoop, !k.threads.isEmpty { kernelLoop(k, a, &out) }
        // Stalls between epoll waits: for every loop the program does not record itself (node's libuv
        // seen by uprobes included).
        if a.loop?.threads.allSatisfy(\.fromKernel) ?? true { stalls(a, &out) }
        threadPool(a, &out)
        threads(a, &out)
        callbacks(a, &out)
        slowest(a, &out)
        spans(a, &out)
        syscalls(a, &out)
        fds(a, &out)
        openAtExit(a, &out)
        // Names were escaped where they were placed; this pass makes sure nothing else reaches the terminal raw.
        return Formatting.printable(out, keepingNewlines: true)
    }

    /// "tid T pid P" (" pid P" left out when it equals the tid); "name (tid T pid P)" with a name (escaped).
    public static func thread(_ pid: UInt32, _ tid: UInt32, _ name: String?) -> String {
        let base = "tid \(tid)" + (pid != tid ? " pid \(pid)" : "")
        if let name, !name.isEmpty { return "\(Formatting.printable(name)) (\(base))" }
        return base
    }

    /// `thread(_:_:_:)` of `t`'s pid, tid and name.
    public static func thread(_ t: ThreadRef) -> String { thread(t.pid, t.tid, t.name) }

    /// "read(fd 41 → /srv/big.bin)"; an open by what it opened and the fd it made: "openat(/srv/big.bin) = fd 41"; a
    /// failed open or connect with its error: "connect(fd 6 → ->127.0.0.1:9) → ECONNREFUSED".
    public static func call(_ name: String, fd: Int64, fdDetail: String?, errno: String? = nil, others: Bool = false) -> String {
        if name.hasPrefix("futex ") { return name }  // "futex wait": its fd field is its operation, named already
        let opens = name == "open" || name == "openat" || name == "openat2"
        if others { return name == "other syscalls" ? name : "\(name)(other \(opens ? "paths" : "fds"))" }
        if opens {
            return "\(name)(\(fdDetail ?? ""))" + (fd >= 0 ? " = fd \(fd)" : errno.map { " → " + $0 } ?? "")
        }
        return "\(name)(" + (fd >= 0 ? "fd \(fd)" + (fdDetail.map { " → " + $0 } ?? "") : "") + ")"
            + (errno.map { " → " + $0 } ?? "")
    }

    /// `call(_:fd:fdDetail:errno:others:)` of a stall's or callback's syscall row; a wait on several fds says so and
    /// which was ready first: "poll(3 fds; first ready: fd 7 → 127.0.0.1:80)", "pselect6(first ready: fd 5 → pipe)",
    /// "poll(3 fds)" when none was.
    public static func call(_ s: SyscallInCallback) -> String {
        guard let several = s.severalFds, !s.others else {
            return call(s.name, fd: s.fd, fdDetail: s.fdDetail, errno: s.errno, others: s.others)
        }
        let count = several > 1 ? "\(Formatting.count(several)) fds" : ""
        guard s.fd >= 0 else { return "\(s.name)(\(count))" }
        let ready = "first ready: fd \(s.fd)" + (s.fdDetail.map { " → " + $0 } ?? "")
        return "\(s.name)(" + (count.isEmpty ? "" : count + "; ") + ready + ")"
    }

    /// "node ran without the Node.js hooks (pid 7734): …": what such a trace lacks, and how to get it.
    public static func nodeWithoutHooksLine(_ pids: [UInt32]) -> String {
        let shown = pids.prefix(5).map { "\($0)" }.joined(separator: ", ") + (pids.count > 5 ? ", … (\(pids.count) in all)" : "")
        return "node ran without the Node.js hooks (pid\(pids.count == 1 ? "" : "s") \(shown)): its callbacks, async ids and open "
            + "resources are not in this trace; record node itself (asynctrace record node app.js), or add --node when a "
            + "shell or script starts it"
    }

    /// The loss no count can give: recorders that ended without writing their buffers (`_exit`, SIGKILL).
    package static func notFlushedLine(_ o: Overview) -> String {
        let n = o.processesNotFlushed
        let who = n == 1 ? "1 process" : "\(Formatting.count(n)) processes"
        return "an unknown number of events: \(who) ended without writing \(n == 1 ? "its" : "their") recorder's buffers "
            + "(_exit, SIGKILL, or a signal no handler of the recorder caught), "
            + "so what \(n == 1 ? "its" : "their") threads held since their last written chunk is not in the trace; counts below miss it"
    }

    /// The overview's loss line for off-CPU switch-ins not seen (the first 3 threads named, most unknown time first).
    public static func switchInsNotSeenLine(_ o: Overview) -> String {
        let shown = o.switchInsNotSeen.prefix(3).map {
            thread($0.thread)
                + (o.switchInsNotSeen.count > 1
                    ? " \(Formatting.count($0.count))×" + ($0.unknownNs > 0 ? " \(Formatting.duration($0.unknownNs))" : "") : "")
        }
        return Formatting.switchInsNotSeen(
            o.switchInsNotSeenCount, threads: shown, moreThreads: o.switchInsNotSeen.count - shown.count,
            unknownNs: o.switchInsNotSeenNs)
    }

    /// What the overview's loss line says the unknown time is, and of how many episodes the syscall they slept in
    /// bounded the time (`Overview.switchInsClosedBySyscall`).
    package static func switchInsNotSeenMeaning(_ o: Overview) -> String {
        let closed = o.switchInsClosedBySyscall, all = o.switchInsNotSeenCount
        guard closed > 0 else { return ": that time is neither on-CPU nor a known wait" }
        let which = closed >= all ? (closed == 1 ? "it" : "each") : "\(Formatting.count(closed)) of them"
        return (closed >= all ? "" : ": that time is neither on-CPU nor a known wait")
            + "; \(which) ended at the exit of the syscall \(closed == 1 ? "it" : "they") slept in, blocked there until then"
    }

    /// "read(fd 41 → /srv/big.bin) 57.0 ms, 64.0 MiB" (plus "in N calls" and the blocked part when known).
    public static func syscallLine(_ s: SyscallInCallback) -> String {
        var line = call(s) + " "
        line += Formatting.duration(s.ns)
        if s.count > 1 { line += " in \(Formatting.count(s.count)) calls" }
        if s.blockedNs > 0 { line += " (\(Formatting.duration(s.blockedNs)) blocked)" }
        if s.bytes > 0 { line += ", \(Formatting.bytes(s.bytes))" }
        return line
    }

    /// "... and 6 more: 1,716 calls, 2.31 ms in the kernel" for the syscall rows after the first `shown`; nil if none.
    static func restLine(_ syscalls: [SyscallInCallback], shown: Int) -> String? {
        guard syscalls.count > shown else { return nil }
        let rest = syscalls.dropFirst(shown)
        let calls = rest.reduce(UInt64(0)) { $0.addingSaturated($1.count) }
        let ns = rest.reduce(UInt64(0)) { $0.addingSaturated($1.ns) }
        return "... and \(rest.count) more: \(Formatting.count(calls)) call\(calls == 1 ? "" : "s"), \(Formatting.duration(ns)) in the kernel"
    }

    /// What a stretch of time was: "CPU-bound: 352 ms on CPU, 0.3 ms in the kernel", or "waiting: ...".
    /// `syscalls` are the stretch's syscalls, longest first.
    public static func verdict(
        durationNs: UInt64, onCPUNs: UInt64?, blockedNs: UInt64, runqueueNs: UInt64, kernelNs: UInt64,
        syscalls: [SyscallInCallback]
    ) -> String {
        let top = syscalls.first
        // The syscall most of the time went to, when one did ("384 ms of it in read(fd 5 → /srv/big.bin)").
        let inside = top.flatMap { t in
            t.ns >= durationNs / 2
                ? "\(Formatting.duration(t.ns)) of it in " + call(t)
                : nil
        }
        guard let on = onCPUNs else {
            return "\(Formatting.duration(kernelNs)) in traced syscalls; no scheduler events, so on-CPU time is unknown"
                + (inside.map { "; " + $0 } ?? "")
        }
        var s: String
        if on >= durationNs / 2 && on >= blockedNs {
            s = "CPU-bound: \(Formatting.duration(on)) on CPU, \(Formatting.duration(kernelNs)) in the kernel"
            if blockedNs > 0 { s += ", \(Formatting.duration(blockedNs)) blocked" }
            if runqueueNs > 0 { s += ", \(Formatting.duration(runqueueNs)) waiting for a CPU" }
        } else if runqueueNs > blockedNs {
            s =
                "waiting for a CPU: \(Formatting.duration(runqueueNs)) runnable but not running (preempted, or the CPUs were busy), "
                + "\(Formatting.duration(on)) on CPU"
            if blockedNs > 0 { s += ", \(Formatting.duration(blockedNs)) blocked" }
        } else {
            s = "waiting: \(Formatting.duration(blockedNs)) blocked"
            // The syscall that blocked longest, not the longest one: a 388 ms read that waited for a CPU is not
            // where a thread blocked 337 ms in a futex wait was.
            let blockedIn = syscalls.max { $0.blockedNs < $1.blockedNs }
            if let t = blockedIn, t.blockedNs >= blockedNs / 2, t.blockedNs > 0 {
                s += ", mostly in " + (t.severalFds != nil ? call(t) : t.fd >= 0 ? call(t.name, fd: t.fd, fdDetail: t.fdDetail) : t.name)
            } else if blockedNs > 0 && (blockedIn?.blockedNs ?? 0) == 0 {
                s += " outside traced syscalls"
            }
            s += "; \(Formatting.duration(on)) on CPU"
            if runqueueNs > 0 { s += ", \(Formatting.duration(runqueueNs)) waiting for a CPU" }
            return s
        }
        return s + (inside.map { "; " + $0 } ?? "")
    }

    private static func heading(_ title: String, _ out: inout String) { out += "\n" + title + "\n" }

    private static func overview(_ a: TraceAnalysis, _ out: inout String) {
        let o = a.overview
        out += "asynctrace report: \(o.program.isEmpty ? "(unnamed program)" : Formatting.printable(o.program)) (pid \(o.pid))\n"
        out += "  trace      \(Formatting.printable(o.path))  (format v\(o.formatVersion))\n"
        if let w = a.window {
            out +=
                "  window     \(Formatting.at(w.lowerBound, from: o.recordingStartNs)) to "
                + (w.upperBound == .max ? "the end" : Formatting.at(w.upperBound, from: o.recordingStartNs))
                + " (only events inside it are counted; callbacks and waits crossing its edges are cut)\n"
        }
        if a.window == nil && o.recordedBeyondEvents {
            out += "  duration   \(Formatting.duration(o.recordedNs)) recorded; events span \(Formatting.duration(o.durationNs)) "
            out += "(\(Formatting.at(o.startNs, from: o.recordingStartNs)) to \(Formatting.at(o.endNs, from: o.recordingStartNs)))"
        } else {
            out += "  duration   \(Formatting.duration(o.durationNs))"
        }
        out += "  |  \(Formatting.count(o.totalEvents)) events"
        out += "  |  \(o.userThreads) thread\(o.userThreads == 1 ? "" : "s") recorded"
        out += o.hasKernelEvents ? " + kernel syscalls\n" : ", no kernel events\n"
        if !o.hasUserEvents && o.hasKernelEvents {
            out +=
                "  kind       kernel-only trace (the program emitted no async events): loop view from its waits for events (epoll, poll, select, io_uring)\n"
        }
        if !o.nodeProcessesWithoutHooks.isEmpty {
            out += "  node       " + nodeWithoutHooksLine(o.nodeProcessesWithoutHooks) + "\n"
        }
        let dropped = o.droppedUser.addingSaturated(o.droppedKernel)
        // "none" would be wrong when a process ended without writing its buffers: only the counted drops are none.
        out += "  dropped    " + (dropped == 0 ? (o.processesNotFlushed > 0 ? "none counted" : "none") : "\(Formatting.count(dropped)) events")
        out += " (user \(Formatting.count(o.droppedUser)), kernel \(Formatting.count(o.droppedKernel)))"
        out += dropped == 0 ? "\n" : "  ← the recorder could not keep up; counts below miss these\n"
        if o.processesNotFlushed > 0 {
            out += "  lost       " + Self.notFlushedLine(o) + "\n"
        }
        if let signal = o.programSignal {
            out += "  ended      the program was killed by \(signal)\n"
        }
        if !o.switchInsNotSeen.isEmpty {
            out += "  unseen     " + switchInsNotSeenLine(o) + switchInsNotSeenMeaning(o) + "\n"
        }
        if let error = o.unwrittenError {
            out += "  unwritten  \(Formatting.count(o.unwritten)) events (user \(Formatting.count(o.unwrittenUser)), kernel "
            out += "\(Formatting.count(o.unwrittenKernel))) could not be written to the file (\(error)"
            out += error == "ENOSPC" ? ": the disk was full" : ""
            out += "); the trace is incomplete and counts below miss them\n"
        }
        if o.damage.isEmpty {
            out += "  damage     none: every chunk of the file was read and every stream was closed\n"
        } else {
            out += "  damage     \(o.damageSummary)"
            out += o.eventsLostToDamage > 0 ? ", ~\(Formatting.count(o.eventsLostToDamage)) events lost:\n" : ":\n"
            for d in o.damage.prefix(20) { out += "    - \(Formatting.printable(d.message))\n" }
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

    /// Errors no one caught: how a program that died of one ended, and in which callback (shown only when
    /// there were some; most programs have none).
    private static func uncaughtErrors(_ a: TraceAnalysis, _ out: inout String) {
        let count = UInt64(a.uncaughtErrors.count).addingSaturated(a.uncaughtErrorsNotListed)
        guard count > 0 else { return }
        heading(
            "UNCAUGHT ERRORS: \(Formatting.count(count)) error\(count == 1 ? "" : "s") thrown by a callback and never caught "
                + "(Node ends the process with the first)", &out)
        for e in a.uncaughtErrors {
            out += "  ▶ " + Formatting.printable(e.message.isEmpty ? "(no message)" : e.message) + "\n"
            let inside =
                e.type.map { "\(Formatting.printable($0)) (async id \(asyncIDText(e.asyncID, threadName: e.threadName)))" }
                ?? (e.afterAsyncID != nil
                    ? "no recorded callback (an unhandled promise rejection, or code after an `await`)"
                    : e.asyncID <= 1 ? "the program's top level" : "async id \(e.asyncID), a resource the trace does not know")
            out +=
                "      thrown in  \(inside) on \(thread(e.pid, e.tid, e.threadName)), at "
                + Formatting.at(e.ns, from: a.overview.recordingStartNs) + "\n"
            // Node notices an unhandled rejection after the callback that rejected it or let its continuation run.
            if let id = e.afterAsyncID {
                out +=
                    "      after      \(Formatting.printable(e.afterType ?? "?")) (async id \(asyncIDText(id, threadName: e.threadName))): it came out of that callback "
                    + "or the promise continuations it let run\n"
            }
            let chain = e.afterAsyncID != nil ? e.afterCausalChain : e.causalChain
            let site = e.afterAsyncID != nil ? e.afterCreatedAt : e.createdAt
            if chain.count > 1 { out += "      caused by  " + Formatting.printable(chainText(chain)) + "\n" }
            if !site.isEmpty { out += "      created at " + Formatting.printable(createdAt(site)) + "\n" }
        }
        if a.uncaughtErrorsNotListed > 0 { out += "  ... and \(a.uncaughtErrorsNotListed) more (not kept)\n" }
    }

    /// Whether the listed blocking callbacks held a loop. A Swift task holds one of the cooperative pool's threads
    /// (as many as CPUs; more tasks wait only when all are held), a worker pool's job its worker: "the loop can
    /// do nothing else" was wrong there. Said of loops wherever one of them ran on a loop thread (the runtime's,
    /// or one waiting in epoll or poll), or nothing says which threads are loops.
    package static func blockedLoops(_ a: TraceAnalysis) -> Bool {
        let loops = Set(a.loop?.threads.map { UInt64($0.pid) << 32 | UInt64($0.tid) } ?? [])
            .union(a.threads.filter(\.isLoop).map { UInt64($0.pid) << 32 | UInt64($0.tid) })
        guard !a.threads.isEmpty || !loops.isEmpty else { return true }
        return a.blocking.longest.contains { loops.contains(UInt64($0.pid) << 32 | UInt64($0.tid)) }
    }

    /// Node's thread-pool requests that waited for the ones queued before them: a callback late with the loop idle.
    private static func threadPool(_ a: TraceAnalysis, _ out: inout String) {
        let p = a.poolWaits
        guard p.count > 0 else { return }
        heading(
            "THREAD POOL: \(Formatting.count(p.count)) request\(p.count == 1 ? "" : "s") waited \(Formatting.duration(a.options.blockingThresholdNs)) "
                + "or longer for a thread of libuv's pool, busy with requests queued before \(p.count == 1 ? "it" : "them") "
                + "(\(Formatting.duration(p.queueNsTotal)) in total); the pool's UV_THREADPOOL_SIZE threads run fs, crypto "
                + "and dns.lookup work in order", &out)
        for w in p.longest {
            let waitedFor = max(1, w.aheadAtQueueing - w.poolThreads + 1)
            out += "  ▶ \(Formatting.printable(w.type)) (async id \(w.asyncID)) of pid \(w.pid) waited \(Formatting.duration(w.queueNs)) "
            out += "for a thread, then \(Formatting.duration(w.runNs)) to its callback; queued at "
            out += "\(Formatting.at(w.queuedAtNs, from: a.overview.recordingStartNs)) behind \(w.aheadAtQueueing) request"
            out += "\(w.aheadAtQueueing == 1 ? "" : "s") in a pool of \(w.poolThreads) thread\(w.poolThreads == 1 ? "" : "s"), "
            out += "it got one when \(waitedFor) of them had completed\n"
            if w.causalChain.count > 1 { out += "      caused by  " + Formatting.printable(chainText(w.causalChain)) + "\n" }
            if !w.createdAt.isEmpty { out += "      created at " + Formatting.printable(createdAt(w.createdAt)) + "\n" }
            for (i, g) in w.ahead.prefix(4).enumerated() {
                let site = g.createdAt.isEmpty ? " (no creation site recorded)" : ", created at " + createdAt(g.createdAt, frames: 2)
                out += (i == 0 ? "      waited for " : "                 ") + Formatting.printable("\(g.count)× \(g.type)\(site)") + "\n"
            }
            if w.ahead.count > 4 { out += "                 ... and \(w.ahead.count - 4) more kinds\n" }
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
        heading(
            "BLOCKING: \(Formatting.count(b.count)) callback\(b.count == 1 ? "" : "s") ran \(threshold) or longer "
                + "(\(Formatting.duration(b.totalNs)) in total); while one runs, "
                + (blockedLoops(a) ? "the loop can do nothing else" : "its thread can run nothing else"), &out)
        for c in b.longest {
            let label = c.label.map { ", " + Formatting.printable($0) } ?? ""
            out +=
                "  ▶ \(Formatting.printable(c.type)) (async id \(asyncIDText(c.asyncID, threadName: c.threadName))\(label)) blocked \(thread(c.pid, c.tid, c.threadName)) for "
            out +=
                "\(c.unfinished ? "at least " : "")\(Formatting.duration(c.durationNs)), at \(Formatting.at(c.startNs, from: a.overview.recordingStartNs))"
            out += c.unfinished ? " (still running when its process's events end: the program exited or was killed inside it)\n" : "\n"
            if c.causalChain.count > 1 { out += "      caused by  " + Formatting.printable(chainText(c.causalChain)) + "\n" }
            if !c.createdAt.isEmpty {
                out += "      created at " + Formatting.printable(createdAt(c.createdAt)) + "\n"
            } else if let why = c.createdAtMissing {
                out += "      created at " + why + "\n"
            }
            if let on = c.onCPUNs {
                out +=
                    "      time       "
                    + verdict(
                        durationNs: c.durationNs, onCPUNs: on, blockedNs: c.blockedNs ?? 0,
                        runqueueNs: c.runqueueNs ?? 0, kernelNs: c.kernelNs, syscalls: c.syscalls) + "\n"
            }
            if c.syscalls.isEmpty {
                out +=
                    "      syscalls   none recorded inside it"
                    + (!a.overview.hasKernelEvents
                        ? " (no kernel events in this trace)\n"
                        : c.onCPUNs != nil ? "\n" : " (CPU-bound, or a syscall the probes do not trace)\n")
            } else {
                let k = c.kernelNs
                out +=
                    "      syscalls   \(Formatting.duration(k)) in the kernel (\(Formatting.percent(Double(k) / Double(max(1, c.durationNs)))) of the callback):\n"
                for s in c.syscalls.prefix(8) { out += "                 " + Formatting.printable(syscallLine(s)) + "\n" }
                if let rest = restLine(c.syscalls, shown: 8) { out += "                 " + rest + "\n" }
            }
            // Who ended its waits: the thread that signalled the semaphore it waited on, released its lock,
            // wrote what it read (a timer's or a packet's wakeup names no thread, and alone says nothing).
            if !c.wokenBy.isEmpty {
                out += "      " + wokenText(c.wokenBy, waits: c.blockedWaits, byInterrupt: c.wokenByInterrupt) + "\n"
            }
            if let h = c.hot { out += "      hot        " + Formatting.printable(hotLine(h)) + "\n" }
            codeLines(c.stacks, durationNs: c.durationNs, indent: "      code       ", &out)
            waitLines(c.waitStacks, indent: "      waits      ", &out)
        }
        if b.count > UInt64(b.longest.count) { out += "  ... and \(b.count - UInt64(b.longest.count)) more (see --top)\n" }
    }

    /// "86.0% of 585 samples under handleHash (server.js:17) ← emit ← …": the program's own function
    /// most of the samples passed through (inclusive), with its most common callers.
    /// A script function's callers shown are the script's (the JSON has them all): each Python call puts three
    /// frames of the interpreter's C below it (`py_trampoline_evaluator ← PyObject_Vectorcall ←
    /// _PyEval_EvalFrameDefault`), which left room for one Python caller ("burn (app.py) ← py_trampoline_evaluator
    /// ← … ← cpu (app.py) ← py_trampoline_evaluator ← …"); now "burn (app.py) ← cpu (app.py) ← Handle._run (events.py)".
    public static func hotLine(_ h: HotFunction, callers limit: Int = 5) -> String {
        let isScript = { (f: CodeFrame) in f.module == "[jit]" && f.function != nil }
        let scriptsOnly = isScript(h.frame)
        var names = [h.frame.description]
        var shown = 0, lastShown = -1
        for (i, f) in h.callers.enumerated() where shown < limit && (!scriptsOnly || isScript(f)) {
            names.append(f.description)
            shown += 1
            lastShown = i
        }
        // "…" where frames below the last one shown were left out (more callers, or native ones under them).
        if lastShown < h.callers.count - 1 { names.append("…") }
        return "\(Formatting.percent(h.share)) of \(Formatting.count(UInt64(h.totalSamples))) sample\(h.totalSamples == 1 ? "" : "s") under "
            + names.joined(separator: " ← ")
    }

    /// "86% on CPU in handleHash (server.js:17) ← emit ← …": the share of the time sampled in each top stack.
    private static func codeLines(_ stacks: [CodeStackSummary], durationNs: UInt64, indent: String, _ out: inout String) {
        // Stacks that differ only below the frames shown would read as the same line twice ("9.7% on CPU in
        // Syscall6 ← … (4 samples)", then "2.4% on CPU in Syscall6 ← … (1 sample)"): one line, their samples summed.
        var lines: [(stack: String, ns: UInt64, samples: Int)] = []
        for st in stacks {
            var names = st.frames.prefix(6).map(\.description)
            if st.frames.count > 6 { names.append("…") }
            let stack = names.isEmpty ? "[no stack]" : names.joined(separator: " ← ")
            if let i = lines.firstIndex(where: { $0.stack == stack }) {
                lines[i].ns = lines[i].ns.addingSaturated(st.ns)
                lines[i].samples += st.samples
            } else {
                lines.append((stack, st.ns, st.samples))
            }
        }
        for (i, line) in lines.sorted(by: { $0.ns > $1.ns }).enumerated() {
            let share = Formatting.percent(min(1, Double(line.ns) / Double(max(1, durationNs))))
            let pad = i == 0 ? indent : String(repeating: " ", count: indent.count)
            out += pad + "\(share) on CPU in " + line.stack + " (\(line.samples) sample\(line.samples == 1 ? "" : "s"))\n"
        }
    }

    /// "blocked 140 ms in read(fd 12 → big.bin) at readAll ← handler ← …": the code that made each kind of long wait.
    /// A long syscall that was mostly not blocked (on CPU, or runnable) says so: "57 ms in read(…) (6 µs blocked) at …".
    private static func waitLines(_ waits: [WaitStackSummary], indent: String, _ out: inout String) {
        for (i, w) in waits.enumerated() {
            var names = w.frames.prefix(6).map(\.description)
            if w.frames.count > 6 { names.append("…") }
            let pad = i == 0 ? indent : String(repeating: " ", count: indent.count)
            let what =
                w.reason.hasSuffix("outside traced syscalls")
                ? w.reason : "in " + (w.fd.map { call(w.reason, fd: $0, fdDetail: w.fdDetail) } ?? w.reason)
            let mostlyBlocked = w.blockedNs >= w.ns - w.ns / 10
            let head =
                mostlyBlocked
                ? "blocked \(Formatting.duration(w.ns)) " + Formatting.printable(what)
                : "\(Formatting.duration(w.ns)) " + Formatting.printable(what)
                    + (w.blockedNs == 0 ? " (never blocked)" : " (\(Formatting.duration(w.blockedNs)) blocked)")
            out +=
                pad + head + " at "
                + (names.isEmpty ? "[no stack]" : Formatting.printable(names.joined(separator: " ← ")))
                + (w.count > 1 ? " (\(w.count) waits)" : "") + "\n"
        }
    }

    private static func phases(_ p: [PhaseTime]) -> String {
        p.map { "\($0.phase) \(Formatting.duration($0.totalNs)) (\(Formatting.count($0.count))×)" }.joined(separator: ", ")
    }

    private static func loopSection(_ l: LoopSummary, _ out: inout String) {
        heading(
            "EVENT LOOP: \(Formatting.count(l.iterations)) iterations on \(l.threads.count) thread\(l.threads.count == 1 ? "" : "s"), "
                + "busy \(Formatting.percent(l.utilization)) of the time (the rest waiting for events)"
                + (l.threads.allSatisfy(\.fromKernel) ? "; phases from uprobes on libuv" : ""), &out)
        var t = Table([
            ("thread", .left), ("iterations", .right), ("busy", .right), ("waiting", .right),
            ("iteration p50", .right), ("p99", .right), ("max", .right),
        ])
        for th in l.threads {
            t.add([
                thread(th.pid, th.tid, th.threadName), Formatting.count(th.iterations), Formatting.percent(th.utilization),
                Formatting.duration(th.pollWaitNs), Formatting.duration(th.iterationNs.p50Ns),
                Formatting.duration(th.iterationNs.p99Ns), Formatting.duration(th.iterationNs.maxNs),
            ])
        }
        out += t.render()
        if !l.phases.isEmpty { out += "  time per phase: " + phases(l.phases) + "\n" }
    }

    /// Why a worker pool's futex waits count as waits: "3 of these threads take turns at one epoll fd ...".
    public static func sharedPollerNote(_ a: TraceAnalysis) -> String? {
        let workers = a.threads.filter { $0.isLoop && $0.idleParks > 0 }.count
        guard workers > 0 else { return nil }
        return "\(workers == 1 ? "1 of these threads takes" : "\(workers) of these threads take") turns with others at one epoll fd "
            + "(a worker pool, as Go's and Tokio's): a futex wait is idle time for them and counts among their waits; "
            + "an epoll wait with timeout 0 is a look in passing, not a wait"
    }

    private static func kernelLoop(_ k: KernelLoopSummary, _ a: TraceAnalysis, _ out: inout String) {
        heading("EVENT LOOP (from waits for events in the kernel: epoll, poll, select, io_uring; time between waits = time in callbacks)", &out)
        var t = Table([
            ("thread", .left), ("waits", .right), ("busy", .right), ("waiting", .right),
            ("between waits p50", .right), ("p99", .right), ("max", .right),
        ])
        for th in k.threads {
            t.add([
                thread(th.pid, th.tid, th.threadName), Formatting.count(th.waits), Formatting.percent(th.utilization),
                Formatting.duration(th.waitNs), Formatting.duration(th.busyNs.p50Ns),
                Formatting.duration(th.busyNs.p99Ns), Formatting.duration(th.busyNs.maxNs),
            ])
        }
        out += t.render()
        if let note = sharedPollerNote(a) { out += "  " + note + "\n" }
        for th in k.threads where a.threadRole(pid: th.pid, tid: th.tid) == .dispatchEventThread {
            out += "  \(thread(th.pid, th.tid, th.threadName)) " + dispatchEventThreadNote + "\n"
        }
    }

    /// What Dispatch's event thread is, after its name.
    package static let dispatchEventThreadNote =
        "is Dispatch's event thread, the runtime's and not a loop of the program's: it waits for every queue's timers and "
        + "sources (asyncAfter, Task.sleep's wake-ups, DispatchSource events) and hands their work to the queues"

    /// A stall on Dispatch's event thread: no callback of the program's could have been in it.
    package static let dispatchEventThreadStall =
        "on Dispatch's event thread, which runs none of the program's code: every queue's timers and sources waited meanwhile"

    /// Kernel-only traces: each loop thread's longest stretches between epoll waits, and what they were.
    private static func stalls(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.stalls.isEmpty else { return }
        let threshold = Formatting.duration(a.options.blockingThresholdNs)
        heading(
            "LOOP STALLS: \(Formatting.count(a.stallsAtThreshold)) stretch\(a.stallsAtThreshold == 1 ? "" : "es") between waits for events "
                + "of \(threshold) or longer (\(Formatting.duration(a.stallsAtThresholdNs)) in total); meanwhile the loop could do nothing else", &out
        )
        if a.stallsAtThreshold == 0, let longest = a.stalls.first {
            out += "  none; the longest was \(Formatting.duration(longest.durationNs)) on \(thread(longest.thread))\n"
        }
        let promisesRecorded = a.resources.contains { $0.type == "PROMISE" }
        for st in a.stalls where st.durationNs >= a.options.blockingThresholdNs {
            out +=
                "  ▶ \(Formatting.duration(st.durationNs)) on \(thread(st.thread)) at \(Formatting.at(st.startNs, from: a.overview.recordingStartNs))"
                + (st.beganBeforeRecording ? " (\(Self.beganBeforeRecording))" : "")
                + (st.killedBySignal.map { " (\(Self.killedInside($0)))" } ?? "") + "\n"
            if let c = st.callback {
                out +=
                    "      inside "
                    + Formatting.printable(
                        "\(c.type) (async id \(asyncIDText(c.asyncID, threadName: c.threadName))) for \(Formatting.duration(c.durationNs))")
                    + (c.createdAt.isEmpty
                        ? c.createdAtMissing.map { ", created at: " + $0 } ?? "" : ", created at " + Formatting.printable(createdAt(c.createdAt)))
                    + (c.causalChain.count > 1 ? ", caused by " + Formatting.printable(chainText(c.causalChain)) : "") + "\n"
            }
            if a.threadRole(pid: st.thread.pid, tid: st.thread.tid) == .dispatchEventThread {
                out += "      " + dispatchEventThreadStall + "\n"
            } else if let line = outsideCallbacks(st, promisesRecorded: promisesRecorded) {
                out += "      " + line + "\n"
            }
            out +=
                "      "
                + verdict(
                    durationNs: st.durationNs, onCPUNs: st.onCPUNs, blockedNs: st.blockedNs, runqueueNs: st.runqueueNs,
                    kernelNs: st.kernelNs, syscalls: st.syscalls) + "\n"
            for s in st.syscalls.prefix(5) { out += "        " + Formatting.printable(syscallLine(s)) + "\n" }
            if let rest = restLine(st.syscalls, shown: 5) { out += "        " + rest + "\n" }
            // Who ended its waits: the thread that held the lock or GIL it waited for (a timer's or a packet's
            // wakeup names no thread, and alone says nothing).
            if !st.wokenBy.isEmpty {
                // (wokenText names threads through `thread`, which makes their names printable.)
                out += "      " + wokenText(st.wokenBy, waits: st.blockedWaits, byInterrupt: st.wokenByInterrupt) + "\n"
            }
            if let pool = poolLine(st) { out += "      " + pool + "\n" }
            if let h = st.hot { out += "      hot   " + Formatting.printable(hotLine(h)) + "\n" }
            codeLines(st.stacks, durationNs: st.durationNs, indent: "      code  ", &out)
            waitLines(st.waitStacks, indent: "      waits ", &out)
        }
        let listed = UInt64(a.stalls.filter { $0.durationNs >= a.options.blockingThresholdNs }.count)
        if a.stallsAtThreshold > listed {
            out += "  ... \(Formatting.count(a.stallsAtThreshold - listed)) more of \(threshold) or longer (see --top)\n"
        }
    }

    /// An async id as the program knows it: Node's preload moves a worker's ids to their own range (worker
    /// threadId × 2^32 + id) and names its thread "node (worker N)"; there "7 in worker 1", as
    /// `async_hooks.executionAsyncId()` said in the worker, not 4294967303. Any other id as it is.
    package static func asyncIDText(_ id: UInt64, threadName: String?) -> String {
        let worker = id >> 32, own = id & 0xFFFF_FFFF
        guard worker > 0, own != 0xFFFF_FFFF, let name = threadName, name.contains("(worker \(worker))") else { return String(id) }
        return "\(own) in worker \(worker)"
    }

    /// A causal chain, root first, runs of one type told by their length: a stream's 20,000 Immediates read
    /// "Immediate ×31 → TickObject", not 31 names.
    package static func chainText(_ chain: [String]) -> String {
        var parts: [String] = []
        var i = 0
        while i < chain.count {
            var j = i + 1
            while j < chain.count && chain[j] == chain[i] { j += 1 }
            if j - i >= 3 {
                parts.append("\(chain[i]) ×\(j - i)")
            } else {
                parts.append(contentsOf: chain[i..<j])
            }
            i = j
        }
        return parts.joined(separator: " → ")
    }

    /// A pool worker's stall (Go, Tokio: workers taking turns at one epoll fd): whether the other workers went on
    /// waiting for events meanwhile. A Tokio block_in_place of 300 ms read "meanwhile the loop could do nothing
    /// else" while another worker served every request within 5 ms.
    package static func poolLine(_ st: LoopStall) -> String? {
        guard let n = st.otherWorkersWaits else { return nil }
        return n == 0
            ? "its pool stood still: no other worker of the process waited for events meanwhile"
            : "its pool went on: the process's other workers waited for events \(Formatting.count(n))× meanwhile "
                + "(only what was queued on this worker waited)"
    }

    /// What a stall a signal cut short is (text and HTML).
    package static func killedInside(_ signal: Int32) -> String {
        "\(SignalNames.name(signal)) killed the process inside it: the loop never waited again; at least this long"
    }

    /// What a stall that was under way at the attach is (text and HTML).
    package static let beganBeforeRecording = "began before the recording: the loop was busy at the attach; at least this long"

    /// A stall on a thread that records callbacks, a tenth or more of it outside them: what ran there is not
    /// named by any callback (Node's `await` continuations when promises are not recorded), so say so.
    public static func outsideCallbacks(_ st: LoopStall, promisesRecorded: Bool) -> String? {
        guard let inside = st.inCallbacksNs, st.durationNs > 0 else { return nil }
        let outside = st.durationNs.subtractingSaturated(inside)
        guard outside >= st.durationNs / 10 else { return nil }
        return "outside every recorded callback: \(Formatting.duration(outside)) (\(Formatting.percent(Double(outside) / Double(st.durationNs))))"
            + (st.killedBySignal != nil
                ? ", or in callbacks whose events the recorder had not written yet when the signal killed the process"
                : st.endsAtExit
                    ? ", the program's exit after its last callback (exit handlers, the runtime's teardown): the loop never"
                        + " waited for events again and its thread exited"
                    : promisesRecorded
                        ? " (code the loop ran between callbacks)"
                        : ", code run between callbacks, such as promise continuations after an `await`, which this trace does not"
                            + " record (Node: record --node-promises)")
    }

    /// Every traced thread: where its time went.
    private static func threads(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.threads.isEmpty, a.overview.hasKernelEvents else { return }
        let sched = a.hasSchedulerEvents
        // The recorder's writer is ours, not the program's: one line at the end says what it cost.
        let recorders = a.threads.filter { $0.role == .recorderWriter }
        let programs = a.threads.filter { $0.role != .recorderWriter }
        heading(
            "THREADS: \(programs.count) traced thread\(programs.count == 1 ? "" : "s")"
                + (recorders.isEmpty ? "" : " and the recorder's \(recorders.count == 1 ? "writer" : "\(recorders.count) writers")")
                + (sched
                    ? " (on CPU, blocked, and runnable but waiting for a CPU, from the scheduler)"
                    : " (no scheduler events in this trace: syscall time only)"),
            &out)
        // Threads known only from /proc at the attach that never ran while recorded (asleep throughout: a
        // --pid attach's idle pool threads) have no numbers: one line names them instead of rows of zeros.
        let idle = programs.filter { $0.spanNs == 0 && $0.syscalls == 0 && $0.offCPUByReason.isEmpty && !$0.isLoop }
        let shown = programs.filter { !($0.spanNs == 0 && $0.syscalls == 0 && $0.offCPUByReason.isEmpty && !$0.isLoop) }.sorted {
            ($0.isLoop ? 1 : 0, ($0.onCPUNs ?? 0) &+ $0.syscallNs) > ($1.isLoop ? 1 : 0, ($1.onCPUNs ?? 0) &+ $1.syscallNs)
        }.prefix(max(a.options.top, 20))
        var t = Table([
            ("thread", .left), ("loop", .left), ("seen", .right), ("on CPU", .right), ("blocked", .right),
            ("run queue", .right), ("syscalls", .right), ("errors", .right), ("longest stall or wait", .right),
        ])
        for th in shown {
            t.add([
                thread(th.ref), th.isLoop ? (th.loopUtilization.map { "busy " + Formatting.percent($0) } ?? "yes") : "-",
                Formatting.duration(th.spanNs), th.onCPUNs.map(Formatting.duration) ?? "-",
                sched ? Formatting.duration(th.offCPUNs) : "-", sched ? Formatting.duration(th.runqueueNs) : "-",
                Formatting.count(th.syscalls), Formatting.count(th.errors),
                longestText(th),
            ])
        }
        out += t.render()
        for th in shown where !th.offCPUByReason.isEmpty || th.hot != nil || !th.stacks.isEmpty {
            if !th.offCPUByReason.isEmpty {
                out += "  \(thread(th.ref)) blocked in: " + th.offCPUByReason.prefix(4).map(reasonText).joined(separator: "; ") + "\n"
                waitLines(Array(th.waitStacks.prefix(2)), indent: "      ", &out)
            }
            // Where it ran: for a worker or a task pool's thread, the only place its CPU time is named.
            let on = th.onCPUNs ?? th.spanNs
            guard on >= Self.threadCodeMinimumNs, th.hot != nil || !th.stacks.isEmpty else { continue }
            if th.offCPUByReason.isEmpty { out += "  \(thread(th.ref)) ran:\n" }
            if let h = th.hot { out += "      hot   " + Formatting.printable(hotLine(h)) + "\n" }
            codeLines(Array(th.stacks.prefix(1)), durationNs: on, indent: "      code  ", &out)
        }
        if !idle.isEmpty {
            var names: [String: Int] = [:]
            for th in idle { names[th.name ?? "tid \(th.tid)", default: 0] += 1 }
            let list = names.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(6)
                .map { $0.value > 1 ? "\(Formatting.printable($0.key)) ×\($0.value)" : Formatting.printable($0.key) }
            out +=
                "  \(idle.count) thread\(idle.count == 1 ? "" : "s") did nothing while recorded (asleep throughout): "
                + list.joined(separator: ", ") + (names.count > 6 ? ", …" : "") + "\n"
        }
        if programs.count > shown.count + idle.count {
            out += "  ... \(programs.count - shown.count - idle.count) more threads (JSON has all)\n"
        }
        for th in recorders { out += "  " + recorderWriterLine(th, scheduler: sched) + "\n" }
        if a.untrackedThreads > 0 {
            out += "  note: \(Formatting.count(a.untrackedThreads)) events of threads beyond the tracking bound were not counted\n"
        }
        processTitles(a, &out)
    }

    /// "the recorder's writer thread asynctrace-wr (tid 12 pid 10), not the program's: 1.28 ms on CPU, …".
    package static func recorderWriterLine(_ th: ThreadSummary, scheduler: Bool) -> String {
        "the recorder's writer thread \(thread(th.ref)), not the program's (it writes the program's events to the trace): "
            + (scheduler
                ? "\(th.onCPUNs.map(Formatting.duration) ?? "-") on CPU, \(Formatting.duration(th.runqueueNs)) waiting for a CPU, "
                : "") + "\(Formatting.count(th.syscalls)) syscalls"
    }

    /// One line per process that gave itself a title (its argv rewritten: postgres, nginx), as threads are
    /// named by it: "postgres: checkpointer (pid 123, postgres, child of 100)".
    private static func processTitles(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.titledProcesses.isEmpty else { return }
        let limit = max(a.options.top, 20)
        out += "  processes by their titles (the command line they rewrote):\n"
        for p in a.titledProcesses.prefix(limit) { out += "    " + processTitle(p) + "\n" }
        if a.titledProcesses.count > limit { out += "    ... \(a.titledProcesses.count - limit) more (JSON has all)\n" }
    }

    /// "title (pid P, program, child of Q)", the title and program escaped.
    public static func processTitle(_ p: TitledProcess) -> String {
        var about = ["pid \(p.pid)"]
        if let program = p.program, !program.isEmpty { about.append(Formatting.printable(program)) }
        if let ppid = p.ppid { about.append("child of \(ppid)") }
        return Formatting.printable(p.title) + " (" + about.joined(separator: ", ") + ")"
    }

    /// A loop thread's longest stall ("stall 201 ms"); another thread's longest wait, by what it waited in
    /// ("poll 501 ms"): a thread that is not a loop has no stalls, and its longest wait may be idle time.
    public static func longestText(_ th: ThreadSummary) -> String {
        if th.isLoop { return th.longestStallNs == 0 ? "-" : "stall " + Formatting.duration(th.longestStallNs) }
        guard th.longestWaitNs > 0 else { return "-" }
        return Formatting.printable(th.longestWaitReason ?? "wait") + " " + Formatting.duration(th.longestWaitNs)
    }

    /// Threads that ran less than this have no code lines in THREADS (JSON has them all).
    static let threadCodeMinimumNs: UInt64 = 10_000_000

    /// "futex wait 300 ms (4×, woken by worker (tid 12))"; where a thread ended only some of the waits, how
    /// many it and interrupts ended: "epoll_wait 23.9 s (6,862×, woken 6,861× by interrupts, 1× by tid 9727)".
    public static func reasonText(_ r: OffCPUReasonTime) -> String {
        let s = "\(r.reason) \(Formatting.duration(r.ns))"
        var extra: [String] = []
        if r.count > 1 { extra.append("\(Formatting.count(r.count))×") }
        if !r.wokenBy.isEmpty { extra.append(wokenText(r.wokenBy, waits: r.count, byInterrupt: r.wokenByInterrupt)) }
        return s + (extra.isEmpty ? "" : " (" + extra.joined(separator: ", ") + ")")
    }

    /// "woken by worker (tid 12)" where that thread ended every one of `waits`, else how many it, one more
    /// thread and interrupts ended: "woken 6,861× by interrupts, 1× by tid 9727".
    package static func wokenText(_ wokenBy: [WakerTime], waits: UInt64, byInterrupt: UInt64) -> String {
        guard let w = wokenBy.first else { return "" }
        if wokenBy.count == 1 && w.count >= waits { return "woken by \(thread(w.thread))" }
        var by: [(count: UInt64, what: String)] = wokenBy.prefix(2).map { ($0.count, thread($0.thread)) }
        if byInterrupt > 0 { by.append((byInterrupt, "interrupts")) }
        by.sort { $0.count > $1.count }
        // The rest: threads past the two named (or past the four kept), so the counts add up.
        let rest = waits.subtractingSaturated(by.reduce(0) { $0.addingSaturated($1.count) })
        if rest > 0 { by.append((rest, "other threads")) }
        return "woken " + by.map { "\(Formatting.count($0.count))× by \($0.what)" }.joined(separator: ", ")
    }

    private static func callbacks(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.resources.isEmpty else { return }
        heading("CALLBACKS BY RESOURCE TYPE", &out)
        var t = Table([
            ("type", .left), ("created", .right), ("destroyed", .right), ("callbacks", .right),
            ("total", .right), ("p50", .right), ("p99", .right), ("max", .right),
        ])
        for r in a.resources {
            let c = r.callbacks
            t.add([
                r.type, Formatting.count(r.created), Formatting.count(r.destroyed), Formatting.count(c.count),
                Formatting.duration(c.totalNs), c.count == 0 ? "-" : Formatting.duration(c.p50Ns),
                c.count == 0 ? "-" : Formatting.duration(c.p99Ns), c.count == 0 ? "-" : Formatting.duration(c.maxNs),
            ])
        }
        out += t.render()
    }

    private static func slowest(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.slowestCallbacks.isEmpty else { return }
        heading("SLOWEST CALLBACKS", &out)
        var t = Table([
            ("duration", .right), ("type", .left), ("async id", .right), ("thread", .left), ("at", .right),
            ("in kernel", .right), ("caused by", .left),
        ])
        for c in a.slowestCallbacks {
            t.add([
                (c.unfinished ? "≥ " : "") + Formatting.duration(c.durationNs),
                c.label.map { c.type + " " + Formatting.printable($0) } ?? c.type, asyncIDText(c.asyncID, threadName: c.threadName),
                thread(c.pid, c.tid, c.threadName),
                Formatting.at(c.startNs, from: a.overview.recordingStartNs),
                c.syscalls.isEmpty ? "-" : Formatting.duration(c.kernelNs), chainText(c.causalChain),
            ])
        }
        out += t.render()
    }

    private static func syscalls(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.io.syscalls.isEmpty else { return }
        heading("SYSCALLS", &out)
        var t = Table([
            ("syscall", .left), ("count", .right), ("bytes", .right), ("kernel time", .right),
            ("errors", .right), ("inside callbacks", .right),
        ])
        for s in a.io.syscalls {
            t.add([
                s.name, Formatting.count(s.count), s.bytes == 0 ? "-" : Formatting.bytes(s.bytes),
                Formatting.duration(s.totalNs), errorsText(s),
                a.overview.hasUserEvents ? Formatting.count(s.attributed) : "-",
            ])
        }
        out += t.render()
        failedPaths(a, &out)
        if a.overview.hasUserEvents && a.io.readWriteSyscalls > 0 {
            out += "  \(Formatting.percent(a.io.attributedShare)) of \(Formatting.count(a.io.readWriteSyscalls)) read/write syscalls "
            out += "ran inside a callback\n"
            if a.io.readWriteOnResourceFDs > 0 {
                out +=
                    "  \(Formatting.percent(a.io.ownerShare)) of \(Formatting.count(a.io.readWriteOnResourceFDs)) read/write syscalls on fds owned by a resource "
                out += "ran inside that resource's own callbacks\n"
            }
        }
    }

    /// What the failed opens asked for: "openat failed on 41 paths (639 times):" and the most failed paths.
    private static func failedPaths(_ a: TraceAnalysis, _ out: inout String) {
        let shown = 5
        for s in a.io.syscalls where !s.failedPaths.isEmpty {
            let distinct = s.failedPathCount >= 4096 ? "4,096+" : Formatting.count(UInt64(s.failedPathCount))
            out += "  \(s.name) failed on \(distinct) path\(s.failedPathCount == 1 ? "" : "s") (\(Formatting.count(s.failedWithPath))×)"
            out += s.failedPathCount > shown ? ", most often:\n" : ":\n"
            for p in s.failedPaths.prefix(shown) {
                out += "      \(Formatting.count(p.count))× \(p.errno) \(Formatting.printable(p.path))\n"
            }
        }
    }

    /// "12 (EAGAIN 10, ENOENT 2)".
    public static func errorsText(_ s: SyscallStats) -> String {
        guard s.errors > 0, !s.errorsByErrno.isEmpty else { return Formatting.count(s.errors) }
        return Formatting.count(s.errors) + " ("
            + s.errorsByErrno.prefix(3).map { "\($0.errno) \(Formatting.count($0.count))" }.joined(separator: ", ")
            + (s.errorsByErrno.count > 3 ? ", ..." : "") + ")"
    }

    private static func fds(_ a: TraceAnalysis, _ out: inout String) {
        guard !a.io.fds.isEmpty else { return }
        heading("I/O BY FILE DESCRIPTOR (one row per fd life: from its creation to its close)", &out)
        let multiProcess = Set(a.io.fds.map(\.pid)).count > 1
        let start = a.overview.recordingStartNs
        var cols: [(String, Table.Align)] = [
            ("fd", .right), ("kind", .left), ("path or local→peer", .left), ("resource", .left),
            ("opened", .right), ("closed", .right), ("reads", .right), ("writes", .right),
            ("read", .right), ("written", .right), ("EAGAIN", .right),
            ("ready→callback p50", .right), ("p99", .right),
        ]
        if multiProcess { cols.insert(("pid", .right), at: 0) }
        var t = Table(cols)
        let limit = max(a.options.top, 20)
        for f in a.io.fds.sorted(by: { ($0.bytesRead &+ $0.bytesWritten, $0.syscalls) > ($1.bytesRead &+ $1.bytesWritten, $1.syscalls) }).prefix(
            limit)
        {
            // Without kernel events only readiness is known; syscall columns would be misleading zeros.
            let k = a.overview.hasKernelEvents
            var row = [
                String(f.fd), f.kind, shorten(f.detail ?? "-", 48), f.resourceType ?? "-",
                f.openedNs.map { Formatting.at($0, from: start) } ?? "before",
                f.closedNs.map { Formatting.at($0, from: start) } ?? "open",
                k ? Formatting.count(f.reads) : "-", k ? Formatting.count(f.writes) : "-",
                k ? Formatting.bytes(f.bytesRead) : "-", k ? Formatting.bytes(f.bytesWritten) : "-",
                k ? Formatting.count(f.eagain) : "-",
                f.readyToCallbackNs.count == 0 ? "-" : Formatting.duration(f.readyToCallbackNs.p50Ns),
                f.readyToCallbackNs.count == 0 ? "-" : Formatting.duration(f.readyToCallbackNs.p99Ns),
            ]
            if multiProcess { row.insert(String(f.pid), at: 0) }
            t.add(row)
        }
        out += t.render()
        if a.io.fds.count > limit { out += "  ... \(a.io.fds.count - limit) more fd lives (JSON has all)\n" }
        if a.io.fdLivesNotListed > 0 { out += "  note: \(Formatting.count(a.io.fdLivesNotListed)) fd lives beyond the kept bound are not listed\n" }
    }

    /// Keeps the end of a long path or address (the informative part), with "…" in front.
    static func shorten(_ s: String, _ n: Int) -> String { s.count <= n ? s : "…" + String(s.suffix(n - 1)) }

    private static func openAtExit(_ a: TraceAnalysis, _ out: inout String) {
        guard a.overview.hasUserEvents else { return }
        if a.openAtExit.isEmpty {
            heading("OPEN AT EXIT: nothing (every resource created was destroyed)", &out)
            return
        }
        let total = a.openAtExit.reduce(0) { $0 + $1.count }
        // The standard streams' handles (node's process.stdout) stay open for the process's life without keeping it.
        let streams = Set(a.openAtExit.flatMap(\.standardStreams)).sorted().map(streamName)
        let others = a.openAtExit.filter { $0.standardStreams.isEmpty }.reduce(0) { $0 + $1.count }
        if others == 0 {
            heading(
                "OPEN AT EXIT: only the handles of the standard streams (\(streams.joined(separator: ", "))), which stay open "
                    + "for the process's life: nothing else was left", &out)
        } else {
            heading(
                "OPEN AT EXIT: \(Formatting.count(total)) resource\(total == 1 ? "" : "s") created and never destroyed "
                    + "(\(openAtExitMeaning(a)))", &out)
        }
        let sites = a.openAtExit.contains { !$0.createdAt.isEmpty }
        var t = Table(
            [("type", .left), ("count", .right), ("oldest created", .right)] + (sites ? [("created at", .left)] : [])
                + [("created by", .left)])
        for g in a.openAtExit {
            t.add(
                [openGroupLabel(g), Formatting.count(g.count), Formatting.at(g.oldestInitNs, from: a.overview.recordingStartNs)]
                    + (sites ? [g.createdAt.isEmpty ? "-" : createdAt(g.createdAt, frames: 2)] : [])
                    + [g.createdBy.isEmpty ? "(top level)" : chainText(g.createdBy)])
        }
        out += t.render()
        if !streams.isEmpty && others > 0 {
            out += "  \(streams.joined(separator: ", ")): the handles of the standard streams stay open for the process's life; "
            out += "they did not keep it alive\n"
        }
        if a.exitedByThemselvesStatus == nil, a.openAtExit.contains(where: \.unrefed) {
            out += "  unref'd: they did not keep the process alive\n"
        }
        if a.creationStacksUndefined > 0 {
            out += "  note: \(Formatting.count(a.creationStacksUndefined)) creation stacks were lost with damaged or dropped chunks\n"
        }
    }

    /// What the resources left open mean: a process that exited by itself was kept alive by none of them.
    /// Swift tasks and jobs are no handles: nothing is unref'd, and an unfinished task kept nothing alive either (the
    /// async main task's last run is the one the process exits in).
    package static func openAtExitMeaning(_ a: TraceAnalysis) -> String {
        if let call = a.exitCalls.first {
            var place = "at the program's top level"
            if let type = call.type {
                place = "in \(type) (async id \(call.asyncID))"
                if !call.createdAt.isEmpty { place += ", created at \(createdAt(call.createdAt, frames: 2))" }
            }
            let who = a.exitCalls.count > 1 || a.killedPid != nil ? "pid \(call.pid)" : "the process"
            return "\(who) ended by process.exit() \(place), not by an empty loop: the ref'd ones would have kept it alive"
        }
        if a.endedByUncaughtError {
            return "the process ended by an uncaught exception, not by an empty loop: the ref'd ones would have kept it alive"
        }
        let open = a.openAtExit.filter { $0.standardStreams.isEmpty }
        let swift = open.contains { isSwiftConcurrencyType($0.type) }
        let handles = open.contains { !isSwiftConcurrencyType($0.type) }
        let tasks =
            "Swift tasks unfinished then: the async main task, whose last run the process exits in, and tasks still running, suspended or never awaited"
        guard let status = a.exitedByThemselvesStatus else {
            if swift && !handles {
                return a.killedBySignal.map { "killed by \(SignalNames.name($0)): \(tasks)" } ?? "Swift tasks unfinished when the recording ended"
            }
            let held = a.openAtExit.contains(where: \.unrefed) ? "the ref'd ones" : "what"
            guard let signal = a.killedBySignal else { return "\(held) kept the process alive, or leaked" }
            guard let pid = a.killedPid else {
                return "killed by \(SignalNames.name(signal)): \(held) kept the process alive until then, or leaked"
            }
            return "pid \(pid) killed by \(SignalNames.name(signal)): its ref'd ones kept it alive until then, or leaked"
        }
        return "the process exited by itself, status \(status): none kept it alive; "
            + (swift && handles ? tasks + "; unref'd handles, or leaks" : swift ? tasks : "unref'd handles, or leaks")
    }

    /// A resource type `AsyncTraceConcurrency` records: `SwiftTask`, `SwiftActorJob`, `SwiftContinuationJob`, `SwiftJob`.
    package static func isSwiftConcurrencyType(_ type: String) -> Bool {
        ["SwiftTask", "SwiftActorJob", "SwiftContinuationJob", "SwiftJob"].contains(type)
    }

    /// "stdout" for fd 1: the standard streams by name.
    package static func streamName(_ fd: Int32) -> String { fd == 0 ? "stdin" : fd == 1 ? "stdout" : fd == 2 ? "stderr" : "fd \(fd)" }

    /// An open-at-exit group's type, with the standard streams it holds: "PIPEWRAP (stdout, stderr)".
    package static func openGroupLabel(_ g: OpenResourceGroup) -> String {
        let label = g.standardStreams.isEmpty ? g.type : "\(g.type) (\(g.standardStreams.map(streamName).joined(separator: ", ")))"
        return g.unrefed ? label + " (unref'd)" : label
    }

    /// "leak (app.js:4) ← main (app.js:9)": where a resource was created, innermost first.
    public static func createdAt(_ frames: [CodeFrame], frames limit: Int = 3) -> String {
        var names = frames.prefix(limit).map(\.description)
        if frames.count > limit { names.append("…") }
        return names.joined(separator: " ← ")
    }
}
