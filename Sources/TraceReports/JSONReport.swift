// The report for tools: every analysis as JSON, schema documented in docs/report.md.
import TraceAnalyses
import TraceReader
import TraceSymbols
import TraceText

/// The report for tools: every analysis of a `TraceAnalysis` as one JSON object (schema in docs/report.md).
public enum JSONReport {
    /// Bump on any incompatible change; adding fields is compatible.
    public static let schemaVersion = 2

    /// The JSON text of `a` (`pretty`: indented, one field per line; otherwise one line).
    public static func render(_ a: TraceAnalysis, pretty: Bool = true) -> String {
        var w = JSONWriter(pretty: pretty)
        let o = a.overview
        w.object { j in
            j.field("schema_version", schemaVersion)
            j.object("trace") { t in
                t.field("path", o.path)
                t.field("program", o.program)
                t.field("pid", UInt64(o.pid))
                t.field("duration_ns", o.durationNs)
                t.field("format_version", UInt64(o.formatVersion))
                t.field("start_ns", o.startNs)
                t.field("end_ns", o.endNs)
                t.field("recording_start_ns", o.recordingStartNs)
                t.field("recording_end_ns", o.recordingEndNs)
                t.field("recorded_ns", o.recordedNs)
                t.field("realtime_start_ns", o.realtimeStartNs)
                t.field("kind", o.hasUserEvents ? (o.hasKernelEvents ? "user+kernel" : "user") : (o.hasKernelEvents ? "kernel-only" : "empty"))
                t.field("user_threads", o.userThreads)
                t.array("processes") { p in for pid in o.processes { p.field(nil, UInt64(pid)) } }
                t.array("node_without_hooks") { p in for pid in o.nodeProcessesWithoutHooks { p.field(nil, UInt64(pid)) } }
                t.field("scheduler_events", a.hasSchedulerEvents)
                if let w = a.window {
                    t.object("window") { x in
                        x.field("from_ns", w.lowerBound)
                        if w.upperBound == .max { x.null("to_ns") } else { x.field("to_ns", w.upperBound) }
                    }
                } else {
                    t.null("window")
                }
            }
            j.object("events") { e in
                e.field("total", o.totalEvents)
                e.field("init", o.count("init"))
                e.field("before", o.count("before"))
                e.field("after", o.count("after"))
                e.field("destroy", o.count("destroy"))
                e.field("promise_resolve", o.count("promiseResolve"))
                e.field("syscall", o.count("syscall"))
                e.field("epoll_wait", o.count("epollWait"))
                e.object("by_kind") { k in for (name, n) in o.eventsByKind.sorted(by: { $0.key < $1.key }) { k.field(name, n) } }
            }
            j.object("dropped") { d in
                d.field("user", o.droppedUser)
                d.field("kernel", o.droppedKernel)
                d.field("processes_not_flushed", o.processesNotFlushed)
            }
            if let signal = o.programSignal { j.field("program_signal", signal) } else { j.null("program_signal") }
            j.object("switch_ins_not_seen") { u in
                u.field("count", o.switchInsNotSeenCount)
                u.field("unknown_ns", o.switchInsNotSeenNs)
                u.field("closed_by_syscall", o.switchInsClosedBySyscall)
                u.array("threads") { a in
                    for x in o.switchInsNotSeen {
                        a.object { e in
                            threadRef(x.thread, &e)
                            e.field("count", x.count)
                            e.field("unknown_ns", x.unknownNs)
                            e.field("closed_by_syscall", x.closedBySyscall)
                        }
                    }
                }
            }
            j.object("unwritten") { u in
                u.field("user", o.unwrittenUser)
                u.field("kernel", o.unwrittenKernel)
                if let e = o.unwrittenError { u.field("error", e) } else { u.null("error") }
            }
            j.object("damage") { d in
                d.field("events_lost", o.eventsLostToDamage)
                d.array("regions") { r in
                    for x in o.damage {
                        r.object { e in
                            e.field("kind", x.kind.rawValue)
                            e.field("count", x.count)
                            e.field("file_offset", x.fileOffset)
                            e.field("bytes", x.byteCount)
                            if let s = x.stream {
                                e.object("stream") { st in
                                    st.field("pid", UInt64(s.pid))
                                    st.field("tid", UInt64(s.tid))
                                    st.field("kernel", s.isKernel)
                                }
                            } else {
                                e.null("stream")
                            }
                            if let q = x.sequences {
                                e.array("chunks") { c in
                                    c.field(nil, q.lowerBound); c.field(nil, q.upperBound)
                                }
                            } else {
                                e.null("chunks")
                            }
                            if let n = x.eventsLost { e.field("events_lost", n) } else { e.null("events_lost") }
                            if let s = x.startNs { e.field("start_ns", s) } else { e.null("start_ns") }
                            if let s = x.endNs { e.field("end_ns", s) } else { e.null("end_ns") }
                            e.field("message", x.message)
                        }
                    }
                }
            }
            loop(a, &j)
            j.array("resources") { r in
                for t in a.resources {
                    r.object { e in
                        e.field("type", t.type)
                        e.field("count", t.created)
                        e.field("destroyed", t.destroyed)
                        e.field("callbacks", t.callbacks.count)
                        e.field("callback_ns_total", t.callbacks.totalNs)
                        e.field("callback_ns_max", t.callbacks.maxNs)
                        e.field("callback_ns_p50", t.callbacks.p50Ns)
                        e.field("callback_ns_p99", t.callbacks.p99Ns)
                    }
                }
            }
            j.array("slowest_callbacks") { r in for c in a.slowestCallbacks { r.object { callback(c, &$0) } } }
            j.array("spans") { r in for sp in a.spans.slowest { r.object { span(sp, &$0) } } }
            j.object("spans_summary") { o in
                o.field("begun", a.spans.begun)
                o.field("ended", a.spans.ended)
                o.field("open_at_end", a.spans.openAtEnd)
            }
            j.array("blocking") { r in for c in a.blocking.longest { r.object { callback(c, &$0) } } }
            j.object("blocking_summary") { b in
                b.field("threshold_ns", a.blocking.thresholdNs)
                b.field("count", a.blocking.count)
                b.field("ns_total", a.blocking.totalNs)
            }
            j.array("syscalls") { r in
                for s in a.io.syscalls {
                    r.object { e in
                        e.field("name", s.name)
                        e.field("count", s.count)
                        e.field("bytes", s.bytes)
                        e.field("ns_total", s.totalNs)
                        e.field("errors", s.errors)
                        e.array("errors_by_errno") { r in
                            for x in s.errorsByErrno {
                                r.object {
                                    $0.field("errno", x.errno); $0.field("count", x.count)
                                }
                            }
                        }
                        e.field("attributed", s.attributed)
                        if !s.failedPaths.isEmpty {
                            e.array("failed_paths") { r in
                                for p in s.failedPaths {
                                    r.object {
                                        $0.field("path", p.path); $0.field("errno", p.errno); $0.field("count", p.count)
                                    }
                                }
                            }
                            e.field("failed_path_count", s.failedPathCount)
                            e.field("failed_with_path", s.failedWithPath)
                        }
                    }
                }
            }
            j.object("attribution") { t in
                t.field("read_write_syscalls", a.io.readWriteSyscalls)
                t.field("attributed", a.io.readWriteAttributed)
                t.field("attributed_to_fd_owner", a.io.readWriteAttributedToOwner)
                t.field("share", a.io.attributedShare)
                t.field("on_resource_fds", a.io.readWriteOnResourceFDs)
                t.field("on_resource_fds_by_owner", a.io.readWriteOnResourceFDsByOwner)
                t.field("owner_share", a.io.ownerShare)
            }
            j.array("fds") { r in
                for f in a.io.fds {
                    r.object { e in
                        e.field("pid", UInt64(f.pid))
                        e.field("fd", f.fd)
                        e.field("kind", f.kind)
                        e.field("path", f.path)
                        e.field("local", f.local)
                        e.field("peer", f.peer)
                        if let n = f.openedNs { e.field("opened_ns", n) } else { e.null("opened_ns") }
                        if let n = f.closedNs { e.field("closed_ns", n) } else { e.null("closed_ns") }
                        e.field("source_fd", f.sourceFd)
                        if let t = f.openedBy { e.object("opened_by") { threadRef(t, &$0) } } else { e.null("opened_by") }
                        e.field("resource_type", f.resourceType)
                        e.field("reads", f.reads)
                        e.field("writes", f.writes)
                        e.field("bytes_read", f.bytesRead)
                        e.field("bytes_written", f.bytesWritten)
                        e.field("syscalls", f.syscalls)
                        e.field("eagain", f.eagain)
                        e.field("ns_total", f.kernelNs)
                        e.object("ready_to_callback_ns") { p in
                            p.field("count", f.readyToCallbackNs.count)
                            p.field("p50", f.readyToCallbackNs.p50Ns)
                            p.field("p99", f.readyToCallbackNs.p99Ns)
                            p.field("max", f.readyToCallbackNs.maxNs)
                        }
                    }
                }
            }
            j.field("fd_lives_not_listed", a.io.fdLivesNotListed)
            j.array("threads") { r in for t in a.threads { r.object { thread(t, &$0) } } }
            j.field("untracked_threads", a.untrackedThreads)
            j.array("process_titles") { r in
                for p in a.titledProcesses {
                    r.object { e in
                        e.field("pid", UInt64(p.pid))
                        optional("ppid", p.ppid.map(UInt64.init), &e)
                        e.field("program", p.program)
                        e.field("title", p.title)
                    }
                }
            }
            j.array("stalls") { r in for st in a.stalls { r.object { stall(st, &$0) } } }
            j.object("stalls_summary") { b in
                b.field("threshold_ns", a.options.blockingThresholdNs)
                b.field("count", a.stallsAtThreshold)
                b.field("ns_total", a.stallsAtThresholdNs)
            }
            optional("exited_by_themselves_status", a.exitedByThemselvesStatus, &j)
            j.array("open_at_exit") { r in
                for g in a.openAtExit {
                    r.object { e in
                        e.field("type", g.type)
                        e.field("count", g.count)
                        e.strings("created_by", g.createdBy)
                        e.field("oldest_init_ns", g.oldestInitNs)
                        frames(g.createdAt, named: "created_at", &e)
                        e.array("standard_streams") { r in for fd in g.standardStreams { r.field(nil, UInt64(fd)) } }
                        e.field("unrefed", g.unrefed)
                    }
                }
            }
            j.array("process_exit_calls") { r in
                for c in a.exitCalls {
                    r.object { e in
                        e.field("pid", UInt64(c.pid))
                        e.field("ns", c.ns)
                        e.field("async_id", c.asyncID)
                        e.field("type", c.type)
                        e.strings("causal_chain", c.causalChain)
                        frames(c.createdAt, named: "created_at", &e)
                    }
                }
            }
            j.field("ended_by_uncaught_error", a.endedByUncaughtError)
            j.object("pool_waits") { p in
                p.field("threshold_ns", a.options.blockingThresholdNs)
                p.field("count", a.poolWaits.count)
                p.field("queue_ns_total", a.poolWaits.queueNsTotal)
                p.array("longest") { r in
                    for w in a.poolWaits.longest {
                        r.object { e in
                            e.field("pid", UInt64(w.pid))
                            e.field("async_id", w.asyncID)
                            e.field("type", w.type)
                            e.field("queued_at_ns", w.queuedAtNs)
                            e.field("queue_ns", w.queueNs)
                            e.field("run_ns", w.runNs)
                            e.field("pool_threads", w.poolThreads)
                            e.field("ahead_at_queueing", w.aheadAtQueueing)
                            e.strings("causal_chain", w.causalChain)
                            frames(w.createdAt, named: "created_at", &e)
                            e.array("ahead") { r in
                                for g in w.ahead {
                                    r.object { o in
                                        o.field("type", g.type)
                                        o.field("count", g.count)
                                        frames(g.createdAt, named: "created_at", &o)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            optional("killed_by_signal", a.killedBySignal.map { Int64($0) }, &j)
            optional("killed_pid", a.killedPid.map { UInt64($0) }, &j)
            j.array("uncaught_errors") { r in
                for u in a.uncaughtErrors {
                    r.object { e in
                        e.field("pid", UInt64(u.pid))
                        e.field("tid", UInt64(u.tid))
                        e.field("thread", u.threadName)
                        e.field("ns", u.ns)
                        e.field("async_id", u.asyncID)
                        e.field("type", u.type)
                        e.field("message", u.message)
                        e.strings("causal_chain", u.causalChain)
                        frames(u.createdAt, named: "created_at", &e)
                        if let id = u.afterAsyncID {
                            e.object("after") { f in
                                f.field("async_id", id)
                                f.field("type", u.afterType)
                                f.strings("causal_chain", u.afterCausalChain)
                                frames(u.afterCreatedAt, named: "created_at", &f)
                            }
                        } else {
                            e.null("after")
                        }
                    }
                }
            }
            j.field("uncaught_errors_not_listed", a.uncaughtErrorsNotListed)
            j.field("untracked_resources", a.untrackedResources)
            j.field("creation_stacks_undefined", a.creationStacksUndefined)
            j.field("unmatched_afters", a.unmatchedAfters)
            j.field("abandoned_callbacks", a.abandonedCallbacks)
            if let b = a.busiestSecond {
                j.object("busiest_second") { e in
                    e.field("measured", b.measure.rawValue)
                    e.field("index", b.index)
                    e.field("start_ns", b.startNs)
                    e.field("busy_ns", b.busyNs)
                    e.field("seconds_with_callbacks", b.secondsWithCallbacks)
                }
            } else {
                j.null("busiest_second")
            }
            if let k = a.kernelLoop {
                j.object("kernel_loop") { kl in
                    kl.array("threads") { r in
                        for t in k.threads {
                            r.object { e in
                                e.field("pid", UInt64(t.pid))
                                e.field("tid", UInt64(t.tid))
                                e.field("thread", t.threadName)
                                e.field("waits", t.waits)
                                e.field("wait_ns", t.waitNs)
                                e.field("span_ns", t.spanNs)
                                e.field("utilization", t.utilization)
                                summary("busy_ns", t.busyNs, &e)
                            }
                        }
                    }
                    kl.array("longest_gaps") { r in
                        for g in k.longestGaps {
                            r.object { e in
                                e.field("pid", UInt64(g.pid))
                                e.field("tid", UInt64(g.tid))
                                e.field("thread", g.threadName)
                                e.field("start_ns", g.startNs)
                                e.field("duration_ns", g.durationNs)
                            }
                        }
                    }
                }
            } else {
                j.null("kernel_loop")
            }
        }
        return w.out + "\n"
    }

    private static func summary(_ key: String, _ s: DurationSummary, _ j: inout JSONWriter) {
        j.object(key) { p in
            p.field("count", s.count)
            p.field("p50", s.p50Ns)
            p.field("p99", s.p99Ns)
            p.field("max", s.maxNs)
        }
    }

    private static func loop(_ a: TraceAnalysis, _ j: inout JSONWriter) {
        j.object("loop") { l in
            if let loop = a.loop {
                // "uprobes": node's libuv loop seen by uprobes (record --node-loop-phases), same fields.
                l.field("source", loop.threads.allSatisfy(\.fromKernel) ? "uprobes" : "runtime")
                l.field("iterations", loop.iterations)
                l.field("utilization", loop.utilization)
                summary("iteration_ns", loop.iterationNs, &l)
                l.field("span_ns", loop.spanNs)
                l.field("poll_wait_ns", loop.pollWaitNs)
                l.array("phases") { p in
                    for ph in loop.phases {
                        p.object { e in
                            e.field("phase", ph.phase)
                            e.field("count", ph.count)
                            e.field("ns_total", ph.totalNs)
                        }
                    }
                }
                l.array("threads") { r in
                    for t in loop.threads {
                        r.object { e in
                            e.field("pid", UInt64(t.pid))
                            e.field("tid", UInt64(t.tid))
                            e.field("thread", t.threadName)
                            e.field("iterations", t.iterations)
                            e.field("utilization", t.utilization)
                            summary("iteration_ns", t.iterationNs, &e)
                            e.field("span_ns", t.spanNs)
                            e.field("poll_wait_ns", t.pollWaitNs)
                        }
                    }
                }
            } else if let k = a.kernelLoop, !k.threads.isEmpty {
                // No loop events (kernel-only, or Node without --node-loop-phases): iterations are epoll waits,
                // iteration time is the time between them.
                var busy = DurationSummaryAccumulator()
                for t in k.threads { busy.add(t) }
                l.field("source", "kernel_epoll_waits")
                l.field("iterations", busy.waits)
                // The busiest loop thread's: an idle helper thread that also waits in epoll must not average it down.
                l.field("utilization", k.threads.map(\.utilization).max() ?? 0)
                l.object("iteration_ns") { p in
                    p.field("count", busy.count)
                    p.field("p50", busy.p50)
                    p.field("p99", busy.p99)
                    p.field("max", busy.max)
                }
                l.field("span_ns", busy.span)
                l.field("poll_wait_ns", busy.wait)
                l.array("phases") { _ in }
                l.array("threads") { r in
                    for t in k.threads {
                        r.object { e in
                            e.field("pid", UInt64(t.pid))
                            e.field("tid", UInt64(t.tid))
                            e.field("thread", t.threadName)
                            e.field("iterations", t.waits)
                            e.field("utilization", t.utilization)
                            summary("iteration_ns", t.busyNs, &e)
                            e.field("span_ns", t.spanNs)
                            e.field("poll_wait_ns", t.waitNs)
                        }
                    }
                }
            } else {
                l.field("source", "none")
                l.field("iterations", UInt64(0))
                l.field("utilization", 0.0)
                summary("iteration_ns", DurationSummary.empty, &l)
                l.field("span_ns", UInt64(0))
                l.field("poll_wait_ns", UInt64(0))
                l.array("phases") { _ in }
                l.array("threads") { _ in }
            }
        }
    }

    /// Several kernel loop threads folded into one line: the busiest thread's percentiles.
    private struct DurationSummaryAccumulator {
        var waits: UInt64 = 0, wait: UInt64 = 0, span: UInt64 = 0, count: UInt64 = 0
        var p50: UInt64 = 0, p99: UInt64 = 0, max: UInt64 = 0
        private var best: UInt64 = 0
        mutating func add(_ t: KernelLoopThread) {
            waits += t.waits
            wait += t.waitNs
            span += t.spanNs
            count += t.busyNs.count
            max = Swift.max(max, t.busyNs.maxNs)
            if t.waits >= best {
                best = t.waits
                p50 = t.busyNs.p50Ns
                p99 = t.busyNs.p99Ns
            }
        }
    }

    private static func threadRef(_ t: ThreadRef, _ e: inout JSONWriter) {
        e.field("pid", UInt64(t.pid))
        e.field("tid", UInt64(t.tid))
        e.field("name", t.name)
    }

    private static func optional(_ k: String, _ v: UInt64?, _ e: inout JSONWriter) {
        if let v { e.field(k, v) } else { e.null(k) }
    }

    private static func optional(_ k: String, _ v: Int64?, _ e: inout JSONWriter) {
        if let v { e.field(k, v) } else { e.null(k) }
    }

    private static func thread(_ t: ThreadSummary, _ e: inout JSONWriter) {
        e.field("tid", UInt64(t.tid))
        e.field("pid", UInt64(t.pid))
        e.field("name", t.name)
        e.field("is_loop", t.isLoop)
        e.field("role", t.role?.rawValue)
        e.field("idle_parks", t.idleParks)
        e.field("first_ns", t.firstNs)
        e.field("last_ns", t.lastNs)
        e.field("exited", t.exited)
        e.field("span_ns", t.spanNs)
        optional("on_cpu_ns", t.onCPUNs, &e)
        e.field("off_cpu_ns", t.offCPUNs)
        e.field("runqueue_ns", t.runqueueNs)
        e.field("switch_ins_not_seen", t.switchInsNotSeen)
        e.field("unknown_ns", t.unknownNs)
        e.array("off_cpu_by_reason") { r in
            for x in t.offCPUByReason {
                r.object { o in
                    o.field("reason", x.reason)
                    o.field("ns", x.ns)
                    o.field("count", x.count)
                    wakers(x.wokenBy, &o)
                    o.field("woken_by_interrupt", x.wokenByInterrupt)
                    o.field("woken_by_interrupt_ns", x.wokenByInterruptNs)
                }
            }
        }
        e.field("syscalls", t.syscalls)
        e.field("syscall_ns", t.syscallNs)
        e.field("errors", t.errors)
        e.field("epoll_waits", t.epollWaits)
        e.field("epoll_wait_ns", t.epollWaitNs)
        if let u = t.loopUtilization { e.field("loop_utilization", u) } else { e.null("loop_utilization") }
        e.field("longest_stall_ns", t.longestStallNs)
        e.field("longest_stall_start_ns", t.longestStallStartNs)
        e.field("longest_wait_ns", t.longestWaitNs)
        e.field("longest_wait_start_ns", t.longestWaitStartNs)
        e.field("longest_wait_reason", t.longestWaitReason)
        e.array("wait_stacks") { a in for w in t.waitStacks { a.object { waitStack(w, &$0) } } }
        codeStacks(t.stacks, waits: [], &e)
        hotFunction(t.hot, &e)
    }

    private static func syscallsInside(_ list: [SyscallInCallback], _ e: inout JSONWriter) {
        e.array("syscalls") { r in
            for s in list {
                r.object { x in
                    x.field("name", s.name)
                    x.field("fd", s.fd)
                    x.field("fd_detail", s.fdDetail)
                    x.field("errno", s.errno)
                    x.field("others", s.others)
                    if let n = s.severalFds { x.field("several_fds", n) } else { x.field("several_fds", nil as String?) }
                    x.field("ns", s.ns)
                    x.field("blocked_ns", s.blockedNs)
                    x.field("count", s.count)
                    x.field("bytes", s.bytes)
                }
            }
        }
    }

    /// `wakers`: the threads whose wakeups ended the most of the blocked time, with how many waits each ended.
    private static func wakers(_ wokenBy: [WakerTime], _ e: inout JSONWriter) {
        e.array("wakers") { w in
            for k in wokenBy {
                w.object {
                    threadRef(k.thread, &$0)
                    $0.field("count", k.count)
                    $0.field("ns", k.ns)
                }
            }
        }
    }

    private static func stall(_ st: LoopStall, _ e: inout JSONWriter) {
        e.field("tid", UInt64(st.thread.tid))
        e.field("pid", UInt64(st.thread.pid))
        e.field("thread", st.thread.name)
        e.field("start_ns", st.startNs)
        e.field("duration_ns", st.durationNs)
        optional("in_callbacks_ns", st.inCallbacksNs, &e)
        optional("on_cpu_ns", st.onCPUNs, &e)
        e.field("blocked_ns", st.blockedNs)
        e.field("runqueue_ns", st.runqueueNs)
        e.field("kernel_ns", st.kernelNs)
        syscallsInside(st.syscalls, &e)
        e.field("blocked_waits", st.blockedWaits)
        wakers(st.wokenBy, &e)
        e.field("woken_by_interrupt", st.wokenByInterrupt)
        e.field("woken_by_interrupt_ns", st.wokenByInterruptNs)
        optional("other_workers_waits", st.otherWorkersWaits, &e)
        e.field("ends_at_exit", st.endsAtExit)
        optional("killed_by_signal", st.killedBySignal.map { Int64($0) }, &e)
        e.field("began_before_recording", st.beganBeforeRecording)
        codeStacks(st.stacks, waits: st.waitStacks, &e)
        hotFunction(st.hot, &e)
        if let c = st.callback { e.object("callback") { callback(c, &$0) } } else { e.null("callback") }
    }

    /// `stacks`: the code the CPU samples taken inside were in (`kind` "cpu"), most samples first, then the
    /// code that made its long waits (`kind` "wait": `wait`, `fd`, `target`, `count`, `ns`, `blocked_ns`), most time first.
    private static func codeStacks(_ stacks: [CodeStackSummary], waits: [WaitStackSummary], _ e: inout JSONWriter) {
        e.array("stacks") { a in
            for st in stacks {
                a.object { o in
                    o.field("kind", "cpu")
                    o.field("samples", st.samples)
                    o.field("ns", st.ns)
                    frames(st.frames, &o)
                }
            }
            for w in waits { a.object { waitStack(w, &$0) } }
        }
    }

    /// `hot_function`: the program's own function most of the CPU samples passed through (inclusive;
    /// docs/report.md, "Hot"), or null.
    private static func hotFunction(_ h: HotFunction?, _ e: inout JSONWriter) {
        guard let h else { return e.null("hot_function") }
        e.object("hot_function") { o in
            o.field("function", h.frame.function)
            o.field("file", h.frame.file)
            if let line = h.frame.line { o.field("line", line) } else { o.null("line") }
            o.field("module", h.frame.module)
            o.field("name", h.frame.name)
            o.field("samples", h.samples)
            o.field("of_samples", h.totalSamples)
            o.field("share", h.share)
            frames(h.callers, named: "callers", &o)
        }
    }

    private static func waitStack(_ w: WaitStackSummary, _ o: inout JSONWriter) {
        o.field("kind", "wait")
        o.field("wait", w.reason)
        if let fd = w.fd { o.field("fd", fd) } else { o.null("fd") }
        o.field("target", w.fdDetail)
        o.field("count", w.count)
        o.field("samples", 0)
        o.field("ns", w.ns)
        o.field("blocked_ns", w.blockedNs)
        frames(w.frames, &o)
    }

    private static func frames(_ frames: [CodeFrame], named name: String = "frames", _ o: inout JSONWriter) {
        o.array(name) { fs in
            for f in frames {
                fs.object { fo in
                    fo.field("function", f.function)
                    fo.field("file", f.file)
                    if let line = f.line { fo.field("line", line) } else { fo.null("line") }
                    fo.field("module", f.module)
                    fo.field("name", f.name)
                }
            }
        }
    }

    private static func callback(_ c: CallbackRecord, _ e: inout JSONWriter) {
        e.field("async_id", c.asyncID)
        e.field("type", c.type)
        if let label = c.label { e.field("label", label) } else { e.null("label") }
        e.field("created_at_missing", c.createdAtMissing)
        e.field("pid", UInt64(c.pid))
        e.field("tid", UInt64(c.tid))
        e.field("thread", c.threadName)
        e.field("start_ns", c.startNs)
        e.field("duration_ns", c.durationNs)
        e.field("unfinished", c.unfinished)
        frames(c.createdAt, named: "created_at", &e)
        e.field("kernel_ns", c.kernelNs)
        optional("on_cpu_ns", c.onCPUNs, &e)
        optional("blocked_ns", c.blockedNs, &e)
        optional("runqueue_ns", c.runqueueNs, &e)
        e.field("blocked_waits", c.blockedWaits)
        wakers(c.wokenBy, &e)
        e.field("woken_by_interrupt", c.wokenByInterrupt)
        e.field("woken_by_interrupt_ns", c.wokenByInterruptNs)
        e.strings("causal_chain", c.causalChain)
        syscallsInside(c.syscalls, &e)
        codeStacks(c.stacks, waits: c.waitStacks, &e)
        hotFunction(c.hot, &e)
    }

    private static func span(_ sp: SpanRecord, _ e: inout JSONWriter) {
        e.field("span_id", sp.spanID)
        e.field("name", sp.name)
        e.field("pid", UInt64(sp.pid))
        e.field("tid", UInt64(sp.tid))
        e.field("thread", sp.threadName)
        e.field("start_ns", sp.startNs)
        optional("duration_ns", sp.durationNs, &e)
        e.field("execution_async_id", sp.executionAsyncID)
        e.field("execution_type", sp.executionType)
        optional("parent_span_id", sp.parentSpanID, &e)
        e.field("trace_id", sp.attribute("trace.id"))
        e.object("attributes") { o in for (k, v) in sp.attributes { o.field(k, v) } }
        e.field("callbacks_inside", sp.callbacksInside)
        e.field("callback_ns_inside", sp.callbackNsInside)
        e.array("inside_by_type") { r in
            for t in sp.insideByType {
                r.object { o in
                    o.field("type", t.type)
                    o.field("count", t.count)
                    o.field("ns", t.ns)
                }
            }
        }
        if let c = sp.longestInside { e.object("longest_inside") { callback(c, &$0) } } else { e.null("longest_inside") }
    }
}
