// The loaded probes: choose traced processes, drain events, read statistics.
import CKernelProbes
#if canImport(Glibc)
import Glibc
#endif

/// What the probes record and how: ring size, sampling, stack copies, wait stacks, families.
public struct KernelProbeOptions: Sendable {
    /// Ring buffer bytes: a power of two >= the page size.
    public var ringBytes: UInt64 = UInt64(KP_DEFAULT_RING_BYTES)
    /// Wake the consumer after this many records per CPU (it also polls on a timeout).
    public var wakeupEvery: UInt32 = KP_DEFAULT_WAKEUP_EVERY
    /// Attach empty programs instead of the probes: only for measuring the tracepoints' own cost (those
    /// of the families `syscalls` and `scheduler` leave on).
    public var baseline = false
    /// CPU samples of the traced threads per second per CPU, with their user stacks; 0: off.
    public var sampleHz: UInt32 = 0
    /// Samples carry the kernel stack too.
    public var kernelStacks = false
    /// Samples copy this many bytes of the user stack (and the user registers), unwound by CFI when
    /// read where code has no frame pointers; 0: frame pointers only. At most `maxStackCopyBytes`.
    public var stackCopyBytes: UInt32 = 0
    /// The largest `stackCopyBytes` the probes can copy.
    public static let maxStackCopyBytes = UInt32(KP_STACK_COPY_MAX)
    /// The user stack of every syscall and off-CPU wait at least this long (waitStack events); 0: none.
    public var stackThresholdNs: UInt64 = 0
    /// Syscall records (and with them fd identity and syscall wait stacks).
    public var syscalls = true
    /// Scheduler records: off-CPU episodes (and with them off-CPU wait stacks).
    public var scheduler = true
    /// Filter every syscall by the current task (the default) instead of by the process the scheduler
    /// probe noted for the CPU. The per-CPU note (false) costs untraced processes ~20 ns less per
    /// syscall, but it is exact only where the scheduler probe sees every switch, and on this VM it does not:
    /// no program runs while a thread of the VM's init agent is current (docs/kernel-probes.md, "Switch-ins
    /// not seen"), so after a switch from one to a traced process the note still names the agent, and the
    /// traced process's syscalls on that CPU are filtered out until the next switch there
    /// (GroundTruthTests.existingProcessCanBeTraced lost two of a running dd's syscalls in 2 of ~4 loaded full
    /// runs). So it is only the benchmark's side-by-side variant.
    public var taskFilter = true
    /// Options with these values; `taskFilter` stays true.
    public init(
        ringBytes: UInt64 = UInt64(KP_DEFAULT_RING_BYTES), wakeupEvery: UInt32 = KP_DEFAULT_WAKEUP_EVERY,
        baseline: Bool = false, sampleHz: UInt32 = 0, kernelStacks: Bool = false, stackCopyBytes: UInt32 = 0,
        stackThresholdNs: UInt64 = 0, syscalls: Bool = true, scheduler: Bool = true
    ) {
        self.syscalls = syscalls
        self.scheduler = scheduler
        self.stackCopyBytes = stackCopyBytes
        self.stackThresholdNs = stackThresholdNs
        self.ringBytes = ringBytes
        self.wakeupEvery = wakeupEvery
        self.baseline = baseline
        self.sampleHz = sampleHz
        self.kernelStacks = kernelStacks
    }
}

/// Why the probes could not start; `description` is the one line to show the user.
public struct KernelProbesUnavailable: Error, CustomStringConvertible, Sendable {
    /// errno when the probes failed to open (EPERM without the privileges, ...).
    public let errno: Int32
    /// The loader's account of what failed, one line.
    public let description: String
}

/// What the probes delivered and dropped so far.
public struct KernelProbeStatistics: Sendable, Equatable {
    /// Events decoded from the ring buffer's records (an fd-making syscall's record gives 2-3).
    public var events: UInt64
    /// Records the BPF side dropped because the ring was full.
    public var dropped: UInt64
    /// Off-CPU episodes whose switch-in the sched_switch tracepoint never delivered (offCPU events in state
    /// `switchInNotSeen`; on the VM measured, a switch away from its hidden init agent: docs/kernel-probes.md): in the trace, counted here for the summary.
    public var switchInsNotSeen: UInt64 = 0
    /// The time they leave unknown (ns, saturating).
    public var switchInsNotSeenNs: UInt64 = 0
    /// The first few threads they were of (tids, at most 4, in order of their first).
    public var switchInsNotSeenThreads: [UInt32] { Array(threadsInOrder.prefix(4)) }
    /// How many threads they were of (at most 65,536 counted).
    public var switchInsNotSeenThreadCount: Int { threadsInOrder.count }
    private var threadsInOrder: [UInt32] = []
    /// Statistics from their counts.
    public init(events: UInt64, dropped: UInt64) {
        self.events = events
        self.dropped = dropped
    }

    mutating func noteSwitchInNotSeen(_ e: KernelEvent) {
        switchInsNotSeen &+= 1
        let unknown = e.runqueueNs
        switchInsNotSeenNs = switchInsNotSeenNs &+ unknown < switchInsNotSeenNs ? .max : switchInsNotSeenNs &+ unknown
        // Linear: these are rare (a few per recording).
        if threadsInOrder.count < 65_536 && !threadsInOrder.contains(e.tid) { threadsInOrder.append(e.tid) }
    }
}

/// Loaded and attached probes. Not thread-safe: use from one thread.
public final class KernelProbeSession {
    private var probes: OpaquePointer?
    private var received: UInt64 = 0
    private var undecodable: UInt64 = 0
    private var lastDropped: UInt64 = 0
    private var switchInsNotSeen = KernelProbeStatistics(events: 0, dropped: 0)
    /// CPU samples and wait stacks: their stacks and the mappings that name them.
    public let samples = SampleCollector()
    static let maxStackCopyBytesValue = UInt32(KP_STACK_COPY_MAX)
    /// Whether any record carries user stacks (samples or wait stacks): the mappings are recorded then.
    private var collectsStacks = false
    /// The libuv loop uprobes attached so far (attachLoopProbes).
    private var loops: OpaquePointer?

    /// Loads and attaches the probes; nothing is traced until `trace(pid:)`.
    public init(options: KernelProbeOptions = KernelProbeOptions()) throws(KernelProbesUnavailable) {
        var opts = kp_options()
        opts.ring_bytes = options.ringBytes
        opts.wakeup_every = options.wakeupEvery
        opts.baseline = options.baseline ? 1 : 0
        opts.sample_hz = options.sampleHz
        opts.kernel_stacks = options.kernelStacks ? 1 : 0
        opts.stack_copy_bytes = min(options.stackCopyBytes, Self.maxStackCopyBytesValue)
        opts.stack_threshold_ns = options.baseline ? 0 : options.stackThresholdNs
        opts.no_syscalls = options.syscalls ? 0 : 1
        opts.no_scheduler = options.scheduler ? 0 : 1
        opts.task_filter = options.taskFilter ? 1 : 0
        var why = [CChar](repeating: 0, count: 512)
        let p = kp_probes_open(&opts, &why, why.count)
        guard let p else {
            let err = Glibc.errno
            let line = String(decoding: why.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KernelProbesUnavailable(errno: err, description: line)
        }
        probes = p
        collectsStacks = kp_probes_sampled_cpus(p) > 0 || opts.stack_threshold_ns > 0
        if kp_probes_sampled_cpus(p) > 0 {
            samples.tables.periodNs = 1_000_000_000 / UInt64(options.sampleHz)  // as cpu_sampling.c sets it
            samples.tables.kernelStacks = options.kernelStacks
        }
    }

    deinit { close() }

    /// How many BPF programs named `name` are loaded on the machine now, by any process (nil: they cannot be
    /// listed). For benchmarks: other recordings' programs on the same tracepoints add to every variant.
    public static func loadedPrograms(named name: String) -> Int? {
        let n = kp_count_loaded_programs(name)
        return n >= 0 ? Int(n) : nil
    }

    /// Whether a BPF trampoline (fentry) program loads and attaches to the kernel function `function`
    /// here: nil if it does, else why not (one line).
    public static func fentryUnavailable(function: String) -> String? {
        var why = [CChar](repeating: 0, count: 768)
        if kp_fentry_probe(function, &why, why.count) == 0 { return nil }
        return String(decoding: why.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether process `pid` is in the traced tree now (false once it has exited, or when the probes are closed).
    public func isTraced(pid: UInt32) -> Bool {
        guard let probes else { return false }
        return kp_probes_is_traced(probes, pid) != 0
    }

    /// For every thread of `pids` that is off its CPU when the probes stopped (`stopNs`), its episode so far as an
    /// offCPU event at `stopNs`: the probes write one only when a thread is back on a CPU, so a thread asleep at
    /// the end (an idle worker, a server waiting for a request) lost its last wait, or its whole recording.
    /// Call after `stop()` and before `close()`.
    public func episodesOpenAtStop(pids: [UInt32], stopNs: UInt64) -> [KernelEvent] {
        guard let probes else { return [] }
        var out: [KernelEvent] = []
        for pid in pids {
            for n in ProcessSnapshot.numericEntries("/proc/\(pid)/task") {
                guard let tid = UInt32(exactly: n), tid != 0 else { continue }
                var ep = kp_offcpu_episode()
                guard kp_probes_thread_episode(probes, tid, &ep) == 0, ep.off_ns != 0, ep.off_ns <= stopNs, ep.assumed == 0
                else { continue }
                var e = KernelEvent(kind: .offCPU, pid: pid, tid: tid, timestampNs: stopNs)
                e.offCPUState = UInt8(min(ep.state, 3))
                e.offCPUSyscall = UInt16(truncatingIfNeeded: ep.syscall)
                e.wakerPid = ep.waker_tgid
                e.wakerTid = ep.waker_tid
                let sleeping = ep.state != KP_OFFCPU_PREEMPTED.rawValue
                let woken = ep.wake_ns >= ep.off_ns && ep.wake_ns <= stopNs && ep.wake_ns != 0
                let runnableSince = !sleeping ? ep.off_ns : woken ? ep.wake_ns : stopNs
                e.blockedNs = runnableSince - ep.off_ns
                e.runqueueNs = stopNs - runnableSince
                out.append(e)
            }
        }
        return out
    }

    /// Traces `pid`'s process (all threads) and, from now on, every process it forks. `heldBeforeExec`: the
    /// process is a held child about to exec the program; the code it has mapped now is the recorder's own
    /// (not written to the trace: ~20 mappings, ~1 KB), so its mappings are read at its exec, or at a sample
    /// outside every region known, as for any process.
    public func trace(pid: Int32, heldBeforeExec: Bool = false) {
        guard let probes, pid > 0 else { return }
        _ = kp_probes_trace_tgid(probes, UInt32(pid))
        if collectsStacks && !heldBeforeExec { samples.processTraced(pid: UInt32(pid), nowNs: monotonicNowNs()) }
    }

    /// Waits up to `timeoutMs` for events, then appends up to `limit` of them (in ring order, which
    /// is not exactly time order across CPUs). Returns the number appended.
    @discardableResult
    public func poll(timeoutMs: Int32, limit: Int = 65_536, into events: inout [KernelEvent]) -> Int {
        guard let probes else { return 0 }
        _ = kp_probes_wait(probes, timeoutMs)
        let before = events.count
        samples.drain(into: &events)
        var size: UInt32 = 0
        var taken = 0
        while taken < limit, let record = kp_probes_next(probes, &size) {
            taken += 1
            let first = events.count
            if !KernelEvent.decode(record: record, size: Int(size), into: &events)
                && !samples.take(record: record, size: Int(size), into: &events)
            {
                undecodable += 1
            }
            if events.count == first + 1, events[first].kind == .offCPU,
                events[first].offCPUState == UInt8(KP_OFFCPU_SWITCH_IN_NOT_SEEN.rawValue)
            {
                switchInsNotSeen.noteSwitchInNotSeen(events[first])
            }
            if collectsStacks, events.count == first + 1, events[first].kind == .processFork {
                samples.processForked(parent: events[first].pid, child: events[first].childPid, atNs: events[first].timestampNs)
                samples.drain(into: &events)
            }
            if collectsStacks, events.count == first + 1, events[first].kind == .processExit {
                samples.processExited(pid: events[first].pid)
            }
        }
        kp_probes_done(probes)
        received += UInt64(events.count - before)
        return events.count - before
    }

    /// Uprobes on libuv's loop phases in `binary` (nil: `pid`'s executable; node), for process `pid`
    /// only: loopPhase events of its loop threads (main thread and workers). A process held before
    /// exec can be given the binary it will exec. Nil when attached, else why not (`notLibuv`: the
    /// executable has no such symbols).
    public func attachLoopProbes(pid: Int32, binary: String? = nil) -> (why: String, notLibuv: Bool)? {
        guard let probes, pid > 0 else { return ("the probes are stopped", false) }
        if loops == nil {
            loops = kp_loop_probes_new(probes)
            if loops == nil { return ("the loop probes are not available: \(errorText(Glibc.errno))", false) }
        }
        var why = [CChar](repeating: 0, count: 256)
        let r = kp_loop_probes_attach(loops, UInt32(pid), binary, &why, why.count)
        guard r < 0 else { return nil }
        let line = String(decoding: why.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (line.isEmpty ? errorText(-r) : line, r == -ENOENT || r == -ENOEXEC)
    }

    /// Events decoded so far, and records dropped (ring full, plus records that could not be decoded).
    public var statistics: KernelProbeStatistics {
        var s = switchInsNotSeen
        s.events = received
        s.dropped = (probes.map { kp_probes_dropped($0) } ?? lastDropped) + undecodable
        return s
    }

    /// CPUs sampled (0: sampling off or failed; `samplingError` says why).
    public var sampledCPUs: Int { probes.map { Int(kp_probes_sampled_cpus($0)) } ?? 0 }
    /// Why sampling could not start (nil: it started or was not asked for).
    public var samplingError: String? {
        guard let probes else { return nil }
        let e = kp_probes_sampling_error(probes)
        return e == 0 ? nil : "CPU sampling off: cannot open cpu-clock perf events: \(errorText(e))"
    }

    /// The ring buffer's size in bytes (0 once closed).
    public var ringBytes: UInt64 { probes.map { kp_probes_ring_bytes($0) } ?? 0 }

    /// Stops recording: no new events; those already in the ring can still be polled.
    public func stop() {
        kp_loop_probes_free(loops)
        loops = nil
        if let probes { kp_probes_detach(probes) }
    }

    /// Detaches the probes and frees everything. Events not yet polled are lost: `stop()`, then
    /// poll until empty first.
    public func close() {
        kp_loop_probes_free(loops)
        loops = nil
        if let probes {
            lastDropped = kp_probes_dropped(probes)
            kp_probes_close(probes)
        }
        probes = nil
    }

    /// Turns on the kernel's per-program run-time statistics until the returned fd is closed (-errno on
    /// failure). For benchmarks: the statistics themselves add two clock reads per program run.
    package static func enableRunTimeStatistics() -> Int32 { kp_enable_run_time_stats() }

    /// SHA-256 of the bpf/ sources the built-in skeleton came from.
    public static var skeletonSourceHash: String { String(cString: kp_probes_source_hash()) }
}
