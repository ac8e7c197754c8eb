// Group `kernel`: what the eBPF probes cost, and how many events per second they carry.
// Every measured workload runs in a child process (this binary again, as a worker selected by
// ASYNCTRACE_BENCH_KERNEL_WORKER), so tracing it never traces the benchmark's own consumer.
// Times are CPU time of the measuring thread (CLOCK_THREAD_CPUTIME_ID: user + kernel, which
// includes the BPF programs), so other load on the machine does not count; wall-clock rates
// are reported separately where they matter (sustained rate).
import KernelProbes
import TraceText
#if canImport(Glibc)
import Glibc
#endif

enum KernelBench {
    static let workerVariable = "ASYNCTRACE_BENCH_KERNEL_WORKER"

    static func run() {
        if let spec = getenv(workerVariable) { worker(String(cString: spec)); exit(0) }
        if geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
            print("{\"benchmark\": \"kernel\", \"skipped\": \"needs root and /sys/kernel/btf/vmlinux\"}")
            return
        }
        // ASYNCTRACE_BENCH_KERNEL_ONLY=cost|unrecorded|sustained|drain|pingpong|switches|waitstacks runs one part.
        let only = getenv("ASYNCTRACE_BENCH_KERNEL_ONLY").map { String(cString: $0) }
        if only == nil || only == "cost" { syscallCost() }
        if only == nil || only == "cost" || only == "unrecorded" { unrecordedSyscallCost() }
        if only == nil || only == "sustained" {
            sustained(
                rate: 1_000_000, seconds: 10, ringBytes: UInt64(KernelProbeOptions().ringBytes), name: "kernel.sustained_1M_per_s_10s_default_ring")
        }
        if only == nil || only == "drain" { drainRate() }
        if only == nil || only == "pingpong" { contextSwitchCost() }
        if only == nil || only == "switches" { sustainedSwitches(roundTripsPerSecond: 100_000, seconds: 10) }
        if only == nil || only == "waitstacks" { waitStackCost() }
    }

    // MARK: wait stacks (record --stack-threshold)

    /// What wait stacks cost, side by side in each round: the pinned ping-pong (waits far below the
    /// threshold: the fixed cost of the check at every sys_exit and sleeping switch-out), and 1.2 ms waits
    /// that each get a stack, in a traced syscall (nanosleep: walked and copied at sys_exit) and in an
    /// untraced one (rt_sigtimedwait: walked at the switch-out, copied at its sys_exit). CPU time of the
    /// waiting thread per wait, which includes the probes that run in its context. "On" is record's
    /// default: a 1 ms threshold and 8 KiB stack copies.
    static func waitStackCost() {
        let trips = 50_000, waits = 400, rounds = 5
        let off = KernelProbeOptions(stackCopyBytes: 8192, stackThresholdNs: 0)
        let on = KernelProbeOptions(stackCopyBytes: 8192, stackThresholdNs: 1_000_000)
        var ppOff: [Double] = [], ppOn: [Double] = [], sleepOff: [Double] = [], sleepOn: [Double] = [],
            sigOff: [Double] = [], sigOn: [Double] = []
        var stacksSeen = 0
        var sigCopies = 0.0  // wait stacks of the untraced waits that carried a stack copy
        for _ in 0..<rounds {
            ppOff.append(runWorker("pingpong \(trips)", session: try? KernelProbeSession(options: off), traced: true))
            ppOn.append(runWorker("pingpong \(trips)", session: try? KernelProbeSession(options: on), traced: true))
            sleepOff.append(runWorker("sleeps \(waits)", session: try? KernelProbeSession(options: off), traced: true))
            var seen = 0
            sleepOn.append(
                runWorker("sleeps \(waits)", session: try? KernelProbeSession(options: on), traced: true) {
                    for e in $0 where e.kind == .waitStack { seen += 1 }
                })
            stacksSeen = max(stacksSeen, seen)
            sigOff.append(runWorker("sigwaits \(waits)", session: try? KernelProbeSession(options: off), traced: true))
            let sigSession = try? KernelProbeSession(options: on)
            sigOn.append(runWorker("sigwaits \(waits)", session: sigSession, traced: true))
            sigCopies = max(sigCopies, Double(sigSession?.samples.waitStackCopies ?? 0))
        }
        emit("kernel.waitstacks.pingpong_round_trip.threshold_off", median(ppOff))
        emit(
            "kernel.waitstacks.pingpong_round_trip.threshold_1ms", median(ppOn),
            extra: ["ratio_to_off": median(ppOn) / median(ppOff), "added_ns_per_round_trip": median(ppOn) - median(ppOff)])
        emit("kernel.waitstacks.nanosleep_1_2ms_cpu_per_wait.threshold_off", median(sleepOff))
        emit(
            "kernel.waitstacks.nanosleep_1_2ms_cpu_per_wait.threshold_1ms", median(sleepOn),
            extra: ["added_ns_per_stack": median(sleepOn) - median(sleepOff), "wait_stacks_per_run": Double(stacksSeen)])
        emit("kernel.waitstacks.sigtimedwait_1_2ms_cpu_per_wait.threshold_off", median(sigOff))
        emit(
            "kernel.waitstacks.sigtimedwait_1_2ms_cpu_per_wait.threshold_1ms", median(sigOn),
            extra: ["added_ns_per_stack": median(sigOn) - median(sigOff), "stack_copies_per_run": sigCopies])
    }

    // MARK: context switches

    /// Two processes pinned to one CPU pass a byte back and forth over two pipes: every hop is a
    /// context switch (2 per round trip), plus a write and a read. CPU time of both processes per
    /// round trip: bare; with empty programs on all the probes' tracepoints, on the syscall ones only and
    /// on the scheduler ones only (what the tracepoints themselves cost); with the probes loaded but the
    /// pair untraced (the cost every other process on the machine pays), also with the per-task filter
    /// the probes used before the per-CPU one; and traced. First, whether fentry programs (BPF
    /// trampolines) could replace the syscall tracepoints here.
    static func contextSwitchCost() {
        for function in ["__x64_sys_write", "finish_task_switch"] {
            let why = KernelProbeSession.fentryUnavailable(function: function)
            print(
                "{\"benchmark\": \"kernel.fentry_available.\(function)\", \"available\": \(why == nil)"
                    + (why.map { ", \"why\": \(JSONWriter.quote($0))" } ?? "") + "}")
        }
        let trips = 50_000, rounds = 15
        var bare: [Double] = [], baseline: [Double] = [], untraced: [Double] = [], traced: [Double] = []
        var baselineSyscalls: [Double] = [], baselineScheduler: [Double] = [], untracedTaskFilter: [Double] = []
        var switches: [Double] = []
        var othersLoaded = 0, mostOthers = 0  // other sessions' syscall probes, seen at a round's start
        for _ in 0..<rounds {
            let others = KernelProbeSession.loadedPrograms(named: "on_sys_enter") ?? 0
            if others > 0 { othersLoaded += 1 }
            mostOthers = max(mostOthers, others)
            bare.append(runWorker("pingpong \(trips)", session: nil, traced: false))
            baseline.append(runWorker("pingpong \(trips)", session: try? KernelProbeSession(options: .init(baseline: true)), traced: false))
            baselineSyscalls.append(
                runWorker("pingpong \(trips)", session: try? KernelProbeSession(options: .init(baseline: true, scheduler: false)), traced: false))
            baselineScheduler.append(
                runWorker("pingpong \(trips)", session: try? KernelProbeSession(options: .init(baseline: true, syscalls: false)), traced: false))
            var perCPUFilter = KernelProbeOptions()
            perCPUFilter.taskFilter = false
            untraced.append(runWorker("pingpong \(trips)", session: try? KernelProbeSession(options: perCPUFilter), traced: false))
            var before = KernelProbeOptions()
            before.taskFilter = true
            untracedTaskFilter.append(runWorker("pingpong \(trips)", session: try? KernelProbeSession(options: before), traced: false))
            var episodes = 0
            traced.append(
                runWorker("pingpong \(trips)", session: try? KernelProbeSession(), traced: true) {
                    for e in $0 where e.kind == .offCPU { episodes += 1 }
                })
            switches.append(Double(episodes) / Double(trips))
        }
        let b = median(bare), bl = median(baseline), u = median(untraced), t = median(traced)
        emit(
            "kernel.pingpong_pinned_round_trip.bare", b,
            extra: ["rounds": Double(rounds), "rounds_with_other_probes_loaded": Double(othersLoaded), "most_other_probes": Double(mostOthers)])
        emit("kernel.pingpong_pinned_round_trip.empty_bpf_on_tracepoints", bl, extra: ["ratio_to_bare": bl / b])
        emit(
            "kernel.pingpong_pinned_round_trip.empty_bpf_on_syscall_tracepoints", median(baselineSyscalls),
            extra: ["ratio_to_bare": median(baselineSyscalls) / b])
        emit(
            "kernel.pingpong_pinned_round_trip.empty_bpf_on_scheduler_tracepoints", median(baselineScheduler),
            extra: ["ratio_to_bare": median(baselineScheduler) / b])
        emit(
            "kernel.pingpong_pinned_round_trip.probes_loaded_untraced", u,
            extra: ["ratio_to_bare": u / b, "added_ns_per_round_trip": u - b, "added_ns_vs_empty_bpf": u - bl])
        let utf = median(untracedTaskFilter)
        emit(
            "kernel.pingpong_pinned_round_trip.probes_loaded_untraced_task_filter", utf,
            extra: ["ratio_to_bare": utf / b, "added_ns_per_round_trip": utf - b, "added_ns_vs_empty_bpf": utf - bl])
        emit(
            "kernel.pingpong_pinned_round_trip.traced", t,
            extra: [
                "ratio_to_bare": t / b, "added_ns_per_round_trip": t - b,
                "offcpu_events_per_round_trip": median(switches),
            ])
    }

    /// A traced pinned ping-pong paced at `roundTripsPerSecond` (2 context switches each) for
    /// `seconds`, with the default ring: are all the off-CPU episodes recorded?
    static func sustainedSwitches(roundTripsPerSecond rate: Int, seconds: Int) {
        guard let session = try? KernelProbeSession() else { return }
        var stats = KernelProbeStatistics(events: 0, dropped: 0)
        var episodes = 0, syscalls = 0
        let achieved = runWorker("pacedpingpong \(rate) \(seconds)", session: session, traced: true, ringStats: &stats) {
            for e in $0 {
                if e.kind == .offCPU { episodes += 1 } else if e.kind == .syscall { syscalls += 1 }
            }
        }
        print(
            "{\"benchmark\": \"kernel.sustained_pingpong_10s_default_ring\", \"round_trips_per_s\": \(fmt(achieved)), "
                + "\"target_round_trips_per_s\": \(rate), \"offcpu_events\": \(episodes), "
                + "\"offcpu_events_per_s\": \(fmt(Double(episodes) / Double(seconds))), \"syscall_events\": \(syscalls), "
                + "\"events\": \(stats.events), \"dropped\": \(stats.dropped)}")
    }

    // MARK: cost per syscall

    /// 1-byte writes to /dev/null: bare, with empty programs on the tracepoints (their own cost),
    /// with the probes loaded but this process untraced, and traced. Rounds interleave the four.
    static func syscallCost() {
        let writes = 400_000, rounds = 9
        var bare: [Double] = [], baseline: [Double] = [], untraced: [Double] = [], traced: [Double] = [],
            probesOnly: [Double] = [], untracedTaskFilter: [Double] = []
        for _ in 0..<rounds {
            bare.append(runWorker("writes \(writes)", session: nil, traced: false))
            baseline.append(runWorker("writes \(writes)", session: try? KernelProbeSession(options: .init(baseline: true)), traced: false))
            var perCPUFilter = KernelProbeOptions()
            perCPUFilter.taskFilter = false
            untraced.append(runWorker("writes \(writes)", session: try? KernelProbeSession(options: perCPUFilter), traced: false))
            var before = KernelProbeOptions()
            before.taskFilter = true
            untracedTaskFilter.append(runWorker("writes \(writes)", session: try? KernelProbeSession(options: before), traced: false))
            traced.append(runWorker("writes \(writes)", session: try? KernelProbeSession(), traced: true))
            // The probes' own cost: a ring big enough for the whole run, drained only afterwards.
            probesOnly.append(
                runWorker(
                    "writes \(writes)", session: try? KernelProbeSession(options: .init(ringBytes: 64 << 20)),
                    traced: true, consumeWhileRunning: false))
        }
        let b = median(bare), bl = median(baseline), u = median(untraced), t = median(traced), po = median(probesOnly)
        emit(
            "kernel.write_1B_devnull.traced_no_concurrent_consumer", po,
            extra: ["ratio_to_bare": po / b, "added_ns_per_syscall": po - b])
        emit("kernel.write_1B_devnull.bare", b)
        emit("kernel.write_1B_devnull.empty_bpf_on_tracepoints", bl, extra: ["ratio_to_bare": bl / b])
        emit(
            "kernel.write_1B_devnull.probes_untraced_process", u,
            extra: [
                "ratio_to_bare": u / b, "added_ns_vs_empty_bpf": u - bl,
                "tracepoint_cost_ns": bl - b, "filter_cost_ns": u - bl,
            ])
        emit(
            "kernel.write_1B_devnull.probes_untraced_process_task_filter", median(untracedTaskFilter),
            extra: ["ratio_to_bare": median(untracedTaskFilter) / b, "filter_cost_ns": median(untracedTaskFilter) - bl])
        emit("kernel.write_1B_devnull.traced", t, extra: ["ratio_to_bare": t / b, "added_ns_per_syscall": t - b])
    }

    /// getppid(2), a syscall the probes do not record (sys_exit then looks whether the CPU's task has a
    /// deferred wait stack): bare, with empty programs on the tracepoints, with the probes loaded (record's
    /// wait stack settings) and this process untraced, and traced. Rounds interleave the four.
    static func unrecordedSyscallCost() {
        let calls = 400_000, rounds = 9
        var unrecordedBare: [Double] = [], unrecordedEmpty: [Double] = [], unrecordedTraced: [Double] = [],
            unrecordedUntraced: [Double] = []
        let recordDefaults = KernelProbeOptions(stackCopyBytes: 8192, stackThresholdNs: 1_000_000)
        for _ in 0..<rounds {
            unrecordedBare.append(runWorker("getppids \(calls)", session: nil, traced: false))
            unrecordedEmpty.append(
                runWorker("getppids \(calls)", session: try? KernelProbeSession(options: .init(baseline: true)), traced: false))
            unrecordedUntraced.append(runWorker("getppids \(calls)", session: try? KernelProbeSession(options: recordDefaults), traced: false))
            unrecordedTraced.append(runWorker("getppids \(calls)", session: try? KernelProbeSession(options: recordDefaults), traced: true))
        }
        let ub = median(unrecordedBare), ue = median(unrecordedEmpty), ut = median(unrecordedTraced)
        emit("kernel.getppid_unrecorded.bare", ub)
        emit("kernel.getppid_unrecorded.empty_bpf_on_tracepoints", ue, extra: ["ratio_to_bare": ue / ub, "tracepoint_cost_ns": ue - ub])
        let uu = median(unrecordedUntraced)
        emit(
            "kernel.getppid_unrecorded.probes_untraced_process", uu,
            extra: ["ratio_to_bare": uu / ub, "added_ns_per_syscall": uu - ub, "added_ns_vs_empty_bpf": uu - ue])
        emit(
            "kernel.getppid_unrecorded.traced_wait_stacks_on", ut,
            extra: ["ratio_to_bare": ut / ub, "added_ns_per_syscall": ut - ub, "added_ns_vs_empty_bpf": ut - ue])
    }

    /// Runs one worker child; returns its ns per syscall. With `traced`, the probes follow it and
    /// this process drains the ring (and encodes the kernel stream to /dev/null) meanwhile.
    static func runWorker(
        _ spec: String, session: KernelProbeSession?, traced: Bool, consumeWhileRunning: Bool = true,
        ringStats: UnsafeMutablePointer<KernelProbeStatistics>? = nil,
        onEvents: ((ArraySlice<KernelEvent>) -> Void)? = nil
    ) -> Double {
        let resultPath = "/tmp/asynctrace-bench-kernel-\(getpid())"
        let env = ["\(workerVariable)=\(spec) \(resultPath)", "PATH=/usr/bin:/bin"]
        let exe = selfPath()
        guard let child = try? HeldProcess(path: exe, arguments: [exe, "kernel"], environment: env) else {
            fatalError("cannot start the worker")
        }
        var recording: KernelRecording?
        let sink = open("/dev/null", O_WRONLY | O_APPEND)
        if let session, traced {
            session.trace(pid: child.pid)
            recording = KernelRecording(session: session, traceFD: sink, rootPid: child.pid)
            recording?.onEvents = onEvents
        }
        try? child.release()
        var status: Int32 = 0
        while true {
            if let recording, consumeWhileRunning { recording.pump(timeoutMs: 10) } else { usleep(2_000) }
            if waitpid(child.pid, &status, WNOHANG) == child.pid { break }
        }
        if let recording {
            let stats = recording.finish()
            ringStats?.pointee = stats
        }
        session?.close()
        close(sink)
        let text = readFile(resultPath)
        unlink(resultPath)
        return Double(text.trimmingCharacters(in: " \n")) ?? .nan
    }

    // MARK: throughput

    /// A worker issues `rate` writes per second for `seconds`; does the ring carry all of them?
    static func sustained(rate: Int, seconds: Int, ringBytes: UInt64, name: String) {
        guard let session = try? KernelProbeSession(options: .init(ringBytes: ringBytes)) else { return }
        var stats = KernelProbeStatistics(events: 0, dropped: 0)
        var oneByteWrites = 0  // the worker's own: 1-byte writes that returned 1
        let achieved = runWorker("paced \(rate) \(seconds)", session: session, traced: true, ringStats: &stats) {
            for e in $0 where e.kind == .syscall && e.nr == 1 && e.size == 1 && e.ret == 1 { oneByteWrites += 1 }
        }
        let expected = rate * seconds
        print(
            "{\"benchmark\": \"\(name)\", \"ns_per_op\": \(fmt(1e9 / achieved)), \"ops_per_s\": \(fmt(achieved)), "
                + "\"ring_bytes\": \(ringBytes), \"syscalls\": \(expected), \"events\": \(stats.events), "
                + "\"dropped\": \(stats.dropped), \"recorded_1B_writes\": \(oneByteWrites), \"lost\": \(expected - oneByteWrites)}")
    }

    /// How fast this process drains and encodes the ring: fill a large ring while not reading,
    /// then time the drain. Together with the record size this gives the buffer a rate needs.
    static func drainRate() {
        let ring: UInt64 = 512 << 20
        guard let session = try? KernelProbeSession(options: .init(ringBytes: ring)) else { return }
        let n = 4_000_000
        let exe = selfPath()
        let resultPath = "/tmp/asynctrace-bench-kernel-\(getpid())"
        guard
            let child = try? HeldProcess(
                path: exe, arguments: [exe, "kernel"],
                environment: ["\(workerVariable)=writes \(n) \(resultPath)"])
        else { return }
        session.trace(pid: child.pid)
        try? child.release()
        var status: Int32 = 0
        waitpid(child.pid, &status, 0)
        let producerNs = Double(readFile(resultPath).trimmingCharacters(in: " \n")) ?? .nan
        unlink(resultPath)
        let sink = open("/dev/null", O_WRONLY | O_APPEND)
        let recording = KernelRecording(session: session, traceFD: sink, rootPid: child.pid)
        recording.flushIntervalNs = 0
        var events = 0
        recording.onEvents = { events += $0.count }
        let t0 = threadCPUNs()
        var before = -1
        while events != before {  // steady state: batches of 64 Ki, flushed as they come
            before = events
            recording.pump(timeoutMs: 0)
        }
        let stats = recording.finish()
        let ns = Double(threadCPUNs() - t0) / Double(max(events, 1))
        close(sink)
        let recordBytes = 64.0  // 56-byte kp_syscall_record + 8-byte ring header
        let rate5M = 5_000_000.0
        // The ring must hold what arrives while the consumer is behind: over 10 s at 5 M/s.
        let deficit = max(0, rate5M - 1e9 / ns)
        print(
            "{\"benchmark\": \"kernel.drain_and_encode\", \"ns_per_op\": \(fmt(ns)), \"ops_per_s\": \(fmt(1e9 / ns)), "
                + "\"events\": \(events), \"dropped\": \(stats.dropped), \"producer_ns_per_traced_write\": \(fmt(producerNs)), "
                + "\"record_bytes\": \(Int(recordBytes)), "
                + "\"ring_bytes_for_5M_per_s_10s\": \(Int(deficit * 10 * recordBytes)), "
                + "\"ring_bytes_for_5M_per_s_100ms_stall\": \(Int(rate5M * 0.1 * recordBytes))}")
    }

    // MARK: worker side

    static func worker(_ spec: String) {
        let parts = spec.split(separator: " ").map(String.init)
        let fd = open("/dev/null", O_WRONLY)
        var byte: UInt8 = 1
        var result = ""
        switch parts.first {
        case "writes":
            let n = Int(parts[1])!
            let t0 = threadCPUNs()
            for _ in 0..<n { _ = write(fd, &byte, 1) }
            result = fmt(Double(threadCPUNs() - t0) / Double(n))
        case "getppids":
            let n = Int(parts[1])!
            let t0 = threadCPUNs()
            for _ in 0..<n { _ = getppid() }
            result = fmt(Double(threadCPUNs() - t0) / Double(n))
        case "paced":
            let rate = Int(parts[1])!, seconds = Int(parts[2])!
            let total = rate * seconds, batch = 1000
            let t0 = monotonicNowNs()
            var done = 0
            while done < total {
                for _ in 0..<batch { _ = write(fd, &byte, 1) }
                done += batch
                let due = t0 + UInt64(Double(done) / Double(rate) * 1e9)
                while monotonicNowNs() < due {}
            }
            result = fmt(Double(total) / (Double(monotonicNowNs() - t0) / 1e9))
        case "pingpong":
            result = fmt(pingPong(trips: Int(parts[1])!, rate: nil))
        case "sleeps", "sigwaits":
            result = fmt(waitDeep(parts[0] == "sleeps", count: Int(parts[1])!, depth: 6))
        case "pacedpingpong":
            let rate = Int(parts[1])!, seconds = Int(parts[2])!
            result = fmt(pingPong(trips: rate * seconds, rate: rate))
        default:
            break
        }
        let out = open(parts.last!, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = result.withCString { write(out, $0, strlen($0)) }
        close(out)
    }

    /// Parent and a forked child on CPU 0, passing a byte back and forth `trips` times. Unpaced:
    /// CPU ns of both per round trip. Paced at `rate` round trips/s: the rate achieved.
    static func pingPong(trips: Int, rate: Int?) -> Double {
        // sched_setaffinity is a GNU extension the Glibc module does not export: found by name.
        typealias SetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32
        var mask = [UInt64](repeating: 0, count: 16)  // 1024 CPUs, CPU 0 only
        mask[0] = 1
        if let sym = dlsym(nil, "sched_setaffinity") {
            let setAffinity = unsafeBitCast(sym, to: SetAffinity.self)
            _ = mask.withUnsafeBytes { setAffinity(0, $0.count, $0.baseAddress!) }
        }
        var there: [Int32] = [0, 0], back: [Int32] = [0, 0]
        guard pipe(&there) == 0, pipe(&back) == 0 else { return .nan }
        var byte: UInt8 = 0
        let child = fork()
        if child == 0 {
            close(there[1]); close(back[0])  // else the parent's close never ends the loop
            while read(there[0], &byte, 1) == 1 { _ = write(back[1], &byte, 1) }
            _exit(0)
        }
        close(there[0]); close(back[1])
        let t0 = threadCPUNs(), w0 = monotonicNowNs()
        var done = 0
        while done < trips {
            let batch = min(1000, trips - done)
            for _ in 0..<batch {
                _ = write(there[1], &byte, 1)
                _ = read(back[0], &byte, 1)
            }
            done += batch
            if let rate {
                let due = w0 + UInt64(Double(done) / Double(rate) * 1e9)
                while monotonicNowNs() < due {}
            }
        }
        let parentNs = threadCPUNs() - t0, wallNs = monotonicNowNs() - w0
        close(there[1])
        var status: Int32 = 0
        var usage = rusage()
        _ = wait4(child, &status, 0, &usage)
        let childNs =
            UInt64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000_000
            + UInt64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1000
        if rate != nil { return Double(trips) / (Double(wallNs) / 1e9) }
        return Double(parentNs + childNs) / Double(trips)
    }

    /// `count` waits of 1.2 ms, `depth` frames down (a stack worth walking): nanosleep (traced) or
    /// rt_sigtimedwait (untraced). CPU ns of this thread per wait.
    @inline(never)
    static func waitDeep(_ sleep: Bool, count: Int, depth: Int) -> Double {
        if depth > 0 { return waitDeep(sleep, count: count, depth: depth - 1) + 0 }
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGUSR2)
        sigprocmask(SIG_BLOCK, &set, nil)
        var ts = timespec(tv_sec: 0, tv_nsec: 1_200_000)
        let t0 = threadCPUNs()
        for _ in 0..<count {
            if sleep { nanosleep(&ts, nil) } else { _ = sigtimedwait(&set, nil, &ts) }
        }
        return Double(threadCPUNs() - t0) / Double(count)
    }

    // MARK: helpers

    static func threadCPUNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func selfPath() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return String(decoding: buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func readFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buf, buf.count)
        return String(decoding: buf[0..<max(n, 0)], as: UTF8.self)
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.filter { !$0.isNaN }.sorted()
        return s.isEmpty ? .nan : s[s.count / 2]
    }

    static func fmt(_ v: Double) -> String { v.isFinite ? String((v * 10).rounded() / 10) : "null" }

    static func emit(_ name: String, _ ns: Double, extra: [String: Double] = [:]) {
        var line = "{\"benchmark\": \"\(name)\", \"ns_per_op\": \(fmt(ns)), \"ops_per_s\": \(fmt(1e9 / ns))"
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) {
            line += ", \"\(k)\": \(k.hasPrefix("ratio") ? String((v * 1000).rounded() / 1000) : fmt(v))"
        }
        print(line + "}")
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}
