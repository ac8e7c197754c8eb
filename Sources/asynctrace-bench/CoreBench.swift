// Group `core`: the hooks API and the in-process recorder (issue 2's numbers).
import AsyncHooks
import AsyncTraceRecorder
import CRecorderSupport
#if canImport(Glibc)
import Glibc
#endif

/// One resource's life: init, before, after, destroy — the mix the recorder figures use.
@inline(never)
func resourceLifecycles(_ n: Int) {
    for _ in 0..<n {
        let r = AsyncResourceContext(type: .immediate)
        r.runInScope {}
        r.emitDestroy()
    }
}

func runCoreBenchmarks() {
    // For scale: the two clocks the recorder could use.
    let clockOps = 10_000_000
    var sink: UInt64 = 0
    report("clock.rdtsc", nsPerOp: measure(ops: clockOps) { for _ in 0..<clockOps { sink &+= trace_clock_ticks() } })
    report(
        "clock.clock_gettime_monotonic",
        nsPerOp: measure(ops: clockOps) { for _ in 0..<clockOps { sink &+= trace_clock_monotonic_ns() } })
    if sink == 42 { print("") }

    // An emission site with no hook enabled: one relaxed load and a branch.
    let n = 50_000_000
    let id = AsyncID(12345)
    let site = measure(ops: n) {
        for _ in 0..<n { AsyncHooks.emitDestroy(id) }
    }
    report("hooks.emit_disabled", nsPerOp: site)

    // The bookkeeping every callback pays with or without hooks (id, context push/pop).
    let lifecycles = 2_000_000
    let bare = measure(ops: lifecycles * 4) { resourceLifecycles(lifecycles) }
    report("hooks.lifecycle_no_hook_per_event", nsPerOp: bare)

    // The machine's own 2-thread scaling for the same loop with no recorder: the ceiling for the
    // recorder's figure below (2 vCPUs; the writer thread needs some CPU too).
    var bareRatios: [Double] = []
    for _ in 0..<5 {
        let dt1 = timeThreads(1) { _ in resourceLifecycles(lifecycles) }
        let dt2 = timeThreads(2) { _ in resourceLifecycles(lifecycles) }
        bareRatios.append(Double(2 * dt1) / Double(dt2))
    }
    report(
        "hooks.lifecycle_2_threads_no_recorder", nsPerOp: bare,
        extra: [("throughput_vs_1_thread", fmt(median(bareRatios)))])

    let path = "/tmp/asynctrace-bench-\(getpid()).atrace"
    defer { unlink(path) }

    // Recorder, one thread: init/before/after/destroy mix, into a real file.
    var perEvent: [Double] = []
    var bytesPerEvent: [Double] = []
    var dropped: UInt64 = 0
    for _ in 0..<5 {
        try! TraceRecorder.start(path: path)
        let t0 = monotonicNs()
        resourceLifecycles(lifecycles)
        let dt = monotonicNs() - t0
        TraceRecorder.stop()
        let s = TraceRecorder.statistics
        dropped += s.eventsDropped
        perEvent.append(Double(dt) / Double(lifecycles * 4))
        bytesPerEvent.append(Double(s.bytesWritten) / Double(max(1, s.eventsWritten)))
    }
    let one = median(perEvent)
    report(
        "recorder.per_event_1_thread", nsPerOp: one,
        extra: [
            ("bytes_per_event", fmt(median(bytesPerEvent))), ("dropped", String(dropped)),
            ("recording_overhead_ns", fmt(one - bare)),
        ])

    // Two threads at once: throughput relative to one thread.
    var ratios: [Double] = []
    var twoNs: [Double] = []
    for _ in 0..<5 {
        try! TraceRecorder.start(path: path)
        let dt1 = timeThreads(1) { _ in resourceLifecycles(lifecycles) }
        let dt2 = timeThreads(2) { _ in resourceLifecycles(lifecycles) }
        TraceRecorder.stop()
        let tp1 = Double(lifecycles * 4) / Double(dt1)
        let tp2 = Double(2 * lifecycles * 4) / Double(dt2)
        ratios.append(tp2 / tp1)
        twoNs.append(Double(dt2) / Double(2 * lifecycles * 4))
    }
    report(
        "recorder.per_event_2_threads", nsPerOp: median(twoNs),
        extra: [("throughput_vs_1_thread", fmt(median(ratios)))])
}

/// Group `core-profile`: only the single-thread recording loop, for perf/callgrind.
func runCoreProfile() {
    let path = "/tmp/asynctrace-bench-profile-\(getpid()).atrace"
    defer { unlink(path) }
    try! TraceRecorder.start(path: path)
    resourceLifecycles(3_000_000)
    TraceRecorder.stop()
}
