// The report for tools: every analysis as JSON, schema documented in docs/report.md.
import TraceAnalyses
import TraceReader

public enum JSONReport {
    /// Bump on any incompatible change; adding fields is compatible.
    public static let schemaVersion = 1

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
                t.field("realtime_start_ns", o.realtimeStartNs)
                t.field("kind", o.hasUserEvents ? (o.hasKernelEvents ? "user+kernel" : "user") : (o.hasKernelEvents ? "kernel-only" : "empty"))
                t.field("user_threads", o.userThreads)
                t.array("processes") { p in for pid in o.processes { p.field(nil, UInt64(pid)) } }
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
            }
            j.object("damage") { d in
                d.field("events_lost", o.eventsLostToDamage)
                d.array("regions") { r in
                    for x in o.damage {
                        r.object { e in
                            e.field("kind", x.kind.rawValue)
                            e.field("file_offset", x.fileOffset)
                            e.field("bytes", x.byteCount)
                            if let s = x.stream {
                                e.object("stream") { st in
                                    st.field("pid", UInt64(s.pid))
                                    st.field("tid", UInt64(s.tid))
                                    st.field("kernel", s.isKernel)
                                }
                            } else { e.null("stream") }
                            if let q = x.sequences {
                                e.array("chunks") { c in c.field(nil, q.lowerBound); c.field(nil, q.upperBound) }
                            } else { e.null("chunks") }
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
                        e.field("attributed", s.attributed)
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
            j.array("open_at_exit") { r in
                for g in a.openAtExit {
                    r.object { e in
                        e.field("type", g.type)
                        e.field("count", g.count)
                        e.strings("created_by", g.createdBy)
                        e.field("oldest_init_ns", g.oldestInitNs)
                    }
                }
            }
            j.field("untracked_resources", a.untrackedResources)
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
            } else { j.null("busiest_second") }
            if let k = a.kernelLoop {
                j.object("kernel_loop") { kl in
                    kl.array("threads") { r in
                        for t in k.threads {
                            r.object { e in
                                e.field("pid", UInt64(t.pid))
                                e.field("tid", UInt64(t.tid))
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
                                e.field("start_ns", g.startNs)
                                e.field("duration_ns", g.durationNs)
                            }
                        }
                    }
                }
            } else { j.null("kernel_loop") }
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
                l.field("source", "runtime")
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
            } else if let k = a.kernelLoop, !a.overview.hasUserEvents {
                // Kernel-only: iterations are epoll waits, iteration time is the time between them.
                var busy = DurationSummaryAccumulator()
                for t in k.threads { busy.add(t) }
                l.field("source", "kernel_epoll_waits")
                l.field("iterations", busy.waits)
                l.field("utilization", busy.span == 0 ? 0 : Double(busy.span - min(busy.span, busy.wait)) / Double(busy.span))
                l.object("iteration_ns") { p in
                    p.field("count", busy.count)
                    p.field("p50", busy.p50)
                    p.field("p99", busy.p99)
                    p.field("max", busy.max)
                }
                l.field("span_ns", busy.span)
                l.field("poll_wait_ns", busy.wait)
                l.array("phases") { _ in }
                l.array("threads") { _ in }
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

    private static func callback(_ c: CallbackRecord, _ e: inout JSONWriter) {
        e.field("async_id", c.asyncID)
        e.field("type", c.type)
        e.field("pid", UInt64(c.pid))
        e.field("tid", UInt64(c.tid))
        e.field("thread", c.threadName)
        e.field("start_ns", c.startNs)
        e.field("duration_ns", c.durationNs)
        e.field("kernel_ns", c.kernelNs)
        e.strings("causal_chain", c.causalChain)
        e.array("syscalls") { r in
            for s in c.syscalls {
                r.object { x in
                    x.field("name", s.name)
                    x.field("fd", s.fd)
                    x.field("ns", s.ns)
                    x.field("count", s.count)
                    x.field("bytes", s.bytes)
                }
            }
        }
    }
}
