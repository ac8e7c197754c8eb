// What the analyses find: plain values that the text, JSON and export views render.
import TraceFormat
import TraceReader
import TraceSymbols

/// What `TraceAnalyzer` measures and how much of it it keeps; the defaults are `asynctrace report`'s.
public struct AnalysisOptions: Sendable {
    /// Callbacks at least this long are listed as blocking.
    public var blockingThresholdNs: UInt64 = 10_000_000
    /// How many slowest callbacks, longest gaps and blocking callbacks to keep.
    public var top: Int = 10
    /// Bound on tracked live resources (memory); more are counted as untracked.
    public var maxTrackedResources: Int = 1_000_000
    /// Only events in this window count (CLOCK_MONOTONIC ns, inclusive); nil: the whole trace.
    public var window: ClosedRange<UInt64>? = nil
    /// The defaults: 10 ms blocking threshold, top 10, a million tracked resources, the whole trace.
    public init() {}
}

extension Overview {
    /// "2 damaged regions skipped; 1 stream without its end (no final chunk)": what `damage` holds, by kind.
    public var damageSummary: String {
        let open = damage.filter { $0.kind == .unterminatedStream }.reduce(UInt64(0)) { $0.addingSaturated($1.count) }
        let regions = damage.filter { $0.kind != .unterminatedStream }.reduce(UInt64(0)) { $0.addingSaturated($1.count) }
        var parts: [String] = []
        if regions > 0 { parts.append("\(regions) damaged region\(regions == 1 ? "" : "s") skipped") }
        if open > 0 { parts.append("\(open) stream\(open == 1 ? "" : "s") without an end (no final chunk)") }
        return parts.joined(separator: "; ")
    }
}

/// The trace as a whole: where it came from, its time range, event counts, drops and damage.
public struct Overview: Sendable {
    /// The trace file's path, as opened.
    public var path: String
    /// The recorded program's command line (file header).
    public var program: String
    /// The recording process's pid (file header).
    public var pid: UInt32
    /// The trace format version the file was written in.
    public var formatVersion: UInt16
    /// CLOCK_MONOTONIC at recording start (file header); times in reports are relative to it.
    public var recordingStartNs: UInt64
    /// CLOCK_REALTIME at recording start (ns since the Unix epoch).
    public var realtimeStartNs: UInt64
    /// First to last event (CLOCK_MONOTONIC ns); 0 when there are none.
    public var startNs: UInt64
    /// The last event's time (CLOCK_MONOTONIC ns); 0 when there are none.
    public var endNs: UInt64
    /// `endNs - startNs` (0 when there are no events).
    public var durationNs: UInt64 { endNs >= startNs ? endNs - startNs : 0 }
    /// When recording stopped (CLOCK_MONOTONIC ns): the latest chunk end, which `record` sets to its stop
    /// time (inside a report window: clamped to it); 0 when unknown. A process idle at the end (attached
    /// with `--pid`) has its last event long before.
    public var recordingEndNs: UInt64 = 0
    /// Recording start to stop (ns), or 0 when the file does not say: the length the user asked for, where
    /// `durationNs` is only the span of the events.
    public var recordedNs: UInt64 {
        recordingStartNs > 0 && recordingEndNs > recordingStartNs ? recordingEndNs - recordingStartNs : 0
    }
    /// Whether the recording ran notably longer than its events span (by 5% and 50 ms at least): views then
    /// say both, so a recording of an idle process does not look cut short.
    public var recordedBeyondEvents: Bool {
        recordedNs > durationNs.addingSaturated(max(durationNs / 20, 50_000_000))
    }
    /// Events read, by kind name (string definitions are bookkeeping and not counted).
    public var eventsByKind: [String: UInt64]
    /// Events read, all kinds but string definitions.
    public var totalEvents: UInt64
    /// Streams of program threads (every user stream; the kernel stream is not one).
    public var userThreads: Int
    /// Every pid with a stream or seen in the kernel stream, ascending.
    public var processes: [UInt32]
    /// Whether any program thread's stream holds events (hooks were recorded).
    public var hasUserEvents: Bool
    /// Whether any kernel stream holds events (the probes were recorded).
    public var hasKernelEvents: Bool
    /// Events the program's recorder dropped (buffers full), over all its streams.
    public var droppedUser: UInt64
    /// Events the kernel probes dropped (ring buffer full).
    public var droppedKernel: UInt64
    /// Everything that could not be read, one sentence each.
    public var damage: [TraceDamage]
    /// Events known lost to damage (counts from chunk headers; missing chunks add an unknown number).
    public var eventsLostToDamage: UInt64
    /// Events of the program's own streams that the recorders could not write to the file (disk full, I/O
    /// error), from `asynctrace record`'s note at the end of the file.
    public var unwrittenUser: UInt64 = 0
    /// Events of the kernel stream that could not be written to the file (as `unwrittenUser`).
    public var unwrittenKernel: UInt64 = 0
    /// The write error behind them, as an errno name (`ENOSPC`); nil when nothing was unwritten.
    public var unwrittenError: String? = nil
    /// Total of `unwrittenUser` and `unwrittenKernel` (saturating).
    public var unwritten: UInt64 { unwrittenUser.addingSaturated(unwrittenKernel) }
    /// Processes whose recorder ended without writing its buffers (`_exit`, SIGKILL), from `record`'s note: an
    /// unknown number of their events is missing. 0: none (or a trace `record` did not finish).
    public var processesNotFlushed: UInt64 = 0
    /// The signal that ended the traced program by name (`SIGKILL`, `signal 40`), from `record`'s note; nil: it
    /// exited, or it is not known.
    public var programSignal: String? = nil
    /// Off-CPU episodes whose switch-in the kernel's sched_switch tracepoint never delivered, per thread (most
    /// unknown time first): each leaves the time from its wakeup (or switch-out) to the thread's next switch-out or exit
    /// unknown. Why: docs/kernel-probes.md, "Switch-ins not seen".
    public var switchInsNotSeen: [SwitchInsNotSeen] = []
    /// Processes named node (by their main thread) that the kernel probes saw and that sent no events of their
    /// own, ascending: node ran without the Node.js hooks (not injected, or attached with `--pid`).
    public var nodeProcessesWithoutHooks: [UInt32] = []
    /// Their total count (saturating).
    public var switchInsNotSeenCount: UInt64 { switchInsNotSeen.reduce(0) { $0.addingSaturated($1.count) } }
    /// The time they leave unknown, in total (ns; saturating).
    public var switchInsNotSeenNs: UInt64 { switchInsNotSeen.reduce(0) { $0.addingSaturated($1.unknownNs) } }
    /// Of them, those the exit of the syscall they slept in ended (saturating).
    public var switchInsClosedBySyscall: UInt64 { switchInsNotSeen.reduce(0) { $0.addingSaturated($1.closedBySyscall) } }
    /// Events of the kind named `kind` (`EventKind.description`, e.g. "syscall"); 0 if none.
    public func count(_ kind: String) -> UInt64 { eventsByKind[kind] ?? 0 }

    /// The kinds a report's overview names (the rest are in `eventsByKind`). Counts are of events in
    /// the file: a version 2 trace has `phaseStart` where version 1 had `loopIteration` + `phaseEnter`.
    public static let headlineKinds = [
        "init", "before", "after", "destroy", "promiseResolve", "syscall", "epollWait",
        "loopIteration", "phaseStart",
    ]
}

/// One thread's off-CPU episodes whose switch-in was not seen (`Overview.switchInsNotSeen`).
public struct SwitchInsNotSeen: Sendable {
    /// The thread.
    public var thread: ThreadRef
    /// Its episodes without a switch-in.
    public var count: UInt64
    /// The time they leave unknown (ns): neither on the CPU nor a known wait.
    public var unknownNs: UInt64
    /// Of them, those the exit of the syscall the thread slept in ended (`ThreadSummary.switchInsClosedBySyscall`).
    public var closedBySyscall: UInt64 = 0
}

/// Count, total and percentiles of a set of durations (ns), from a `LogHistogram`.
public struct DurationSummary: Sendable {
    /// Durations counted.
    public var count: UInt64
    /// Their sum (ns; saturates).
    public var totalNs: UInt64
    /// Median (ns), at most ~3% below the true value (`LogHistogram.percentile(_:)`).
    public var p50Ns: UInt64
    /// 99th percentile (ns), at most ~3% below the true value.
    public var p99Ns: UInt64
    /// The longest (ns; exact).
    public var maxNs: UInt64
    /// No durations: every field 0.
    public static let empty = DurationSummary(LogHistogram())
    /// The summary of `h`'s durations.
    public init(_ h: LogHistogram) {
        count = h.count
        totalNs = h.sum
        p50Ns = h.p50
        p99Ns = h.p99
        maxNs = h.max
    }
}

/// Time in one loop phase.
public struct PhaseTime: Sendable {
    /// The phase's name ("timers", "poll", ...: `TraceLoopPhase.name`).
    public var phase: String
    /// Times the phase was entered.
    public var count: UInt64
    /// Time in it (ns).
    public var totalNs: UInt64
}

/// One event-loop thread, from the runtime's loop events.
public struct LoopThread: Sendable {
    /// The loop thread's process id.
    public var pid: UInt32
    /// The loop thread's thread id.
    public var tid: UInt32
    /// Its name, where the trace knows it.
    public var threadName: String?
    /// Loop iterations it ran.
    public var iterations: UInt64
    /// From its first iteration to its last event (ns).
    public var spanNs: UInt64
    /// Time blocked in epoll (pollStart → pollEnd).
    public var pollWaitNs: UInt64
    /// Share of the loop's time not spent waiting in epoll (0...1).
    public var utilization: Double
    /// Iteration durations (ns): one iteration start to the next, the last one to the thread's last event.
    public var iterationNs: DurationSummary
    /// Iterations since `TraceAnalyzer.startInterval()` (a live view's last interval; all of them otherwise).
    public var recentIterationNs: DurationSummary
    /// Time per phase, in loop order (phases never entered are left out).
    public var phases: [PhaseTime]
    /// The loop was seen by uprobes on libuv (loopPhase events; record --node-loop-phases), not
    /// recorded by the program; its waiting is its epoll waits.
    public var fromKernel = false
}

/// All of the runtime's loop threads together.
public struct LoopSummary: Sendable {
    /// Each loop thread.
    public var threads: [LoopThread]
    /// Iterations of all loops.
    public var iterations: UInt64
    /// Sum of the loops' spans (ns).
    public var spanNs: UInt64
    /// Sum of their time waiting in epoll (ns).
    public var pollWaitNs: UInt64
    /// Share of `spanNs` not spent waiting in epoll (0...1).
    public var utilization: Double
    /// Iteration durations of all loops together (ns).
    public var iterationNs: DurationSummary
    /// Time per phase, all loops added, in loop order.
    public var phases: [PhaseTime]
}

/// One resource type's resources and callbacks ("Timeout", "TCPWRAP", a Swift task kind, ...).
public struct ResourceTypeStats: Sendable {
    /// The type's name, as the program registered it.
    public var type: String
    /// Resources of this type created (init events).
    public var created: UInt64
    /// Resources of this type freed (destroy events).
    public var destroyed: UInt64
    /// Durations of its callbacks (before → after, ns).
    public var callbacks: DurationSummary
}

/// One syscall (by name and fd) made inside a callback or stall, with its totals.
///
/// A stall's syscalls also list the sleeps in syscalls the probes do not record (wait4, rt_sigtimedwait),
/// as the scheduler named them: for those, `count` is the sleeps and `ns` their blocked time.
public struct SyscallInCallback: Sendable {
    /// The syscall's name ("read", "futex", ...).
    public var name: String
    /// The fd it was made on; -1 (or not an fd) for calls without one (see `SyscallNames`).
    public var fd: Int64
    /// Calls made (a syscall the probes do not record: times the thread slept in it).
    public var count: UInt64
    /// Time in the kernel (sum of the calls' durations; a syscall the probes do not record: its time blocked).
    public var ns: UInt64
    /// Bytes moved by read- and write-like calls (positive return values; 0 for other calls).
    public var bytes: UInt64
    /// Of `ns`, the time the thread was off the CPU, blocked (scheduler events; 0 without them).
    public var blockedNs: UInt64 = 0
    /// What the fd was when the first of these calls was made: a path or `local->peer` (fdOpen events).
    public var fdDetail: String? = nil
    /// A failed open's or connect's error ("ENOENT", "ECONNREFUSED"): these calls asked for the path or address
    /// `fdDetail` and failed with it; nil otherwise.
    public var errno: String? = nil
    /// These are the calls of this syscall on fds or paths beyond the distinct rows kept (32 per stall or
    /// callback); `fd` is -1 and `fdDetail` nil. `name` "other syscalls": calls of syscalls beyond 128 rows.
    public var others: Bool = false
    /// Waits on several fds (a poll of more than one fd, a select): how many fds they waited on (the most of these
    /// calls; 0: not recorded, as for select), and `fd` is the first they returned as ready (−1: none was, a
    /// timeout). nil for other calls, where `fd` is the fd they were made on.
    public var severalFds: UInt64? = nil
}

/// A process that gave itself a title by rewriting its argv (postgres' "postgres: 15/main: checkpointer",
/// nginx's "nginx: worker process"): /proc/PID/cmdline as the recorder read it, when it differed from the
/// command line the process was exec'd with.
public struct TitledProcess: Sendable, Hashable {
    /// The process id.
    public var pid: UInt32
    /// Its parent, where the trace says it (a traced fork, or the title's record: /proc at attach).
    public var ppid: UInt32?
    /// Its program as the kernel names it (the main thread's comm), where known.
    public var program: String?
    /// The title (as read; not escaped).
    public var title: String

    /// A title is kept in at most this many bytes (the recorder writes at most 128; a crafted trace may hold any).
    public static let maxTitleBytes = 256

    /// `title` cut to `maxTitleBytes` (at a character boundary, "…" added), so a crafted one stays a line.
    public static func bounded(_ title: String) -> String {
        guard title.utf8.count > maxTitleBytes else { return title }
        var out = "", bytes = 0
        for c in title {
            bytes += c.utf8.count
            if bytes > maxTitleBytes - 3 { break }
            out.append(c)
        }
        return out + "…"
    }

    /// A titled process from its fields.
    public init(pid: UInt32, ppid: UInt32?, program: String?, title: String) {
        self.pid = pid
        self.ppid = ppid
        self.program = program
        self.title = title
    }
}

/// A thread, named where the trace knows its name.
public struct ThreadRef: Sendable, Hashable {
    /// The process id.
    public var pid: UInt32
    /// The thread id.
    public var tid: UInt32
    /// Its name (the stream's thread name or the kernel's comm), nil where unknown.
    public var name: String?

    /// A thread from its ids and name.
    public init(pid: UInt32, tid: UInt32, name: String?) {
        self.pid = pid
        self.tid = tid
        self.name = name
    }
}

/// A thread that ended some of a thread's waits for one reason.
public struct WakerTime: Sendable, Hashable {
    /// The waking thread.
    public var thread: ThreadRef
    /// How many of the waits it ended.
    public var count: UInt64
    /// Their time blocked (ns).
    public var ns: UInt64
}

/// Time a thread spent blocked for one reason: a syscall ("clock_nanosleep", "futex wait", "read"), or a
/// state outside traced syscalls.
public struct OffCPUReasonTime: Sendable {
    /// "clock_nanosleep", "futex wait", "read", or an off-CPU state outside traced syscalls.
    public var reason: String
    /// Time blocked for it (ns).
    public var ns: UInt64
    /// Times the thread blocked for it.
    public var count: UInt64
    /// The threads whose wakeups ended the most of this time, most first (an interrupt is not listed).
    public var wakers: [ThreadRef] { wokenBy.map(\.thread) }
    /// The same threads with how many of these waits each ended and their time (at most 4).
    public var wokenBy: [WakerTime]
    /// Waits no thread was seen to end: woken by an interrupt (a timer's expiry, a packet, a disk's
    /// completion: the kernel wakes the thread from whatever ran on that CPU), or a wakeup not seen.
    public var wokenByInterrupt: UInt64
    /// Their time blocked (ns).
    public var wokenByInterruptNs: UInt64
}

/// One traced thread (loop or not): where its time went.
public struct ThreadSummary: Sendable {
    /// The process id.
    public var pid: UInt32
    /// The thread id.
    public var tid: UInt32
    /// Its name, where the trace knows it.
    public var name: String?
    /// Whether it waits in epoll (a loop thread).
    public var isLoop: Bool
    /// First and last time the trace saw it (its time outside this span is not counted).
    public var firstNs: UInt64
    /// The last time the trace saw it (CLOCK_MONOTONIC ns).
    public var lastNs: UInt64
    /// Whether the trace saw it end (threadExit).
    public var exited: Bool
    /// `lastNs - firstNs` (ns).
    public var spanNs: UInt64
    /// span − off CPU − run queue − `unknownNs`; nil without scheduler events (a trace without offCPU events).
    public var onCPUNs: UInt64?
    /// Off the CPU, blocked (sleeping or uninterruptible).
    public var offCPUNs: UInt64
    /// Runnable but not running: waiting for a CPU after a wakeup, or preempted.
    public var runqueueNs: UInt64
    /// Blocked time by reason, most first.
    public var offCPUByReason: [OffCPUReasonTime]
    /// Syscalls it made (traced ones; epoll waits included).
    public var syscalls: UInt64
    /// Time in them (ns).
    public var syscallNs: UInt64
    /// Of them, those that returned an error (negative return value).
    public var errors: UInt64
    /// epoll waits it made.
    public var epollWaits: UInt64
    /// Time in epoll waits (ns).
    public var epollWaitNs: UInt64
    /// Loop threads: share of their span not spent waiting in epoll.
    public var loopUtilization: Double?
    /// Loop threads: the longest stretch between two epoll waits.
    public var longestStallNs: UInt64
    /// When its longest stall began (CLOCK_MONOTONIC ns; 0: none).
    public var longestStallStartNs: UInt64
    /// The longest single time blocked, and for what.
    public var longestWaitNs: UInt64
    /// When that wait began (CLOCK_MONOTONIC ns).
    public var longestWaitStartNs: UInt64
    /// The reason for that wait (as `OffCPUReasonTime.reason`); nil when it never blocked.
    public var longestWaitReason: String?
    /// The code that made its longest waits (record --stack-threshold; epoll waits left out), most time first.
    public var waitStacks: [WaitStackSummary] = []
    /// The code its CPU samples were in, over the whole recording, most samples first (at most 3): where a
    /// thread that is not a loop (a worker, a task pool) spent its CPU.
    public var stacks: [CodeStackSummary] = []
    /// The program's own function most of its samples passed through.
    public var hot: HotFunction? = nil
    /// Off-CPU episodes whose switch-in the kernel's sched_switch tracepoint never delivered (offCPU state
    /// `switchInNotSeen`; why: docs/kernel-probes.md).
    public var switchInsNotSeen: UInt64 = 0
    /// Of them, those the exit of the syscall the thread slept in ended (it was back on a CPU by then): their time
    /// is known, blocked in that syscall (and run-queue wait after a wakeup that was seen), not `unknownNs`.
    public var switchInsClosedBySyscall: UInt64 = 0
    /// Futex waits that were idle time, counted among its loop's waits like its epoll waits: it takes turns
    /// with other threads at one epoll fd (a worker pool such as Go's or Tokio's) and parks while another has
    /// the poller. 0 for a thread that is not such a worker.
    public var idleParks: UInt64 = 0
    /// The time those episodes leave unknown (ns): from their wakeup (or their switch-out, the wakeup not seen) to
    /// the thread's next switch-out or exit, run-queue wait and on-CPU time in unknown shares; counted in neither.
    public var unknownNs: UInt64 = 0
    /// What the thread is for where it is not one of the program's own (the runtime's, the recorder's); nil: the program's.
    public var role: ThreadRole? = nil
    /// Its pid, tid and name as a `ThreadRef`.
    public var ref: ThreadRef { ThreadRef(pid: pid, tid: tid, name: name) }
}

/// A thread that is not one of the program's own, as the trace shows it.
public enum ThreadRole: String, Sendable {
    /// Dispatch's event thread (its manager: its waits' or samples' stacks are in `_dispatch_event_loop_drain` or
    /// `_dispatch_mgr_invoke`): it waits in epoll for every queue's timers and sources (`asyncAfter`, `Task.sleep`'s
    /// wake-ups, `DispatchSource` events) and hands their work to the queues. It runs none of the program's code; a
    /// stall on it delays them all.
    case dispatchEventThread = "dispatch_event_thread"
    /// The in-process recorder's writer thread (`TraceFileFormat.recorderWriterThreadName`): it writes the
    /// program's events to the trace.
    case recorderWriter = "recorder_writer"
}

/// A loop thread's stretch between two epoll waits (kernel stream): its loop could do nothing else.
public struct LoopStall: Sendable {
    /// The loop thread.
    public var thread: ThreadRef
    /// When the previous wait returned.
    public var startNs: UInt64
    /// How long it lasted (ns): to the next wait's start.
    public var durationNs: UInt64
    /// duration − blocked − run queue − time unknown (a switch-in not seen); nil without scheduler events.
    public var onCPUNs: UInt64?
    /// Of it, off the CPU and blocked (ns; 0 without scheduler events).
    public var blockedNs: UInt64
    /// Of it, runnable and waiting for a CPU (ns; 0 without scheduler events).
    public var runqueueNs: UInt64
    /// Time inside traced syscalls (on or off the CPU).
    public var kernelNs: UInt64
    /// Syscalls made in it by (name, fd or path), most time first (32 distinct, then one row per syscall for the rest).
    public var syscalls: [SyscallInCallback]
    /// Of it, inside the thread's recorded callbacks (ns); the rest ran between them (Node's promise
    /// continuations without promise hooks, the loop's own code). nil: the thread recorded no callbacks.
    public var inCallbacksNs: UInt64? = nil
    /// The code the CPU samples taken in it were in, most samples first (empty without samples).
    public var stacks: [CodeStackSummary] = []
    /// The program's own function most of those samples passed through, at any depth (nil: no samples
    /// in the program's own code).
    public var hot: HotFunction? = nil
    /// The code that made its long waits (record --stack-threshold), most time first.
    public var waitStacks: [WaitStackSummary] = []
    /// The listed callback (blocking or slowest) that ran longest inside it on its thread: its type,
    /// causal chain and creation site name the stall (Node with its hooks); nil when none is listed.
    public var callback: CallbackRecord? = nil
    /// Its blocked stretches (switch-out to wakeup; 0 without scheduler events).
    public var blockedWaits: UInt64 = 0
    /// The threads whose wakeups ended the most of its blocked time, most first (at most 4): the thread that
    /// held what it waited for (a lock, CPython's GIL) or wrote what it read.
    public var wokenBy: [WakerTime] = []
    /// Of `blockedWaits`, those no thread was seen to end (an interrupt: a timer, a packet, a disk's completion).
    public var wokenByInterrupt: UInt64 = 0
    /// Their time blocked (ns).
    public var wokenByInterruptNs: UInt64 = 0
    /// A worker of a pool that takes turns at one epoll fd (Go, Tokio): the other workers' waits for events in
    /// it. More than 0: the pool went on serving I/O while this worker was held (Go hands its P to another
    /// thread in a blocking syscall; Tokio's block_in_place), so only what was queued on it waited. nil for a
    /// thread that is no pool worker, or when the pool was found after the stall began.
    public var otherWorkersWaits: UInt64? = nil
    /// The thread's loop never waited for events again after it and the thread exited: it ends at a wait on
    /// another loop's poller (node's exit waits once on one), and what it ran after the last callback was the
    /// program's exit (exit handlers, the runtime's teardown), not code that events waited behind.
    public var endsAtExit = false
    /// The loop was busy when the recording began (a thread found at the attach, `record --pid`, outside its
    /// loop's wait): the stall starts at the recording's start and was at least `durationNs` long.
    public var beganBeforeRecording = false
    /// A signal killed the process before the loop waited again (a loop stuck until a watchdog or a supervisor
    /// killed it): the stall ends at the thread's last event and was at least `durationNs` long. nil otherwise.
    public var killedBySignal: Int32? = nil
}

/// One callback invocation (before → after).
public struct CallbackRecord: Sendable {
    /// The resource's async id (unique within its process).
    public var asyncID: UInt64
    /// The resource's type name.
    public var type: String
    /// The process id.
    public var pid: UInt32
    /// The thread the callback ran on.
    public var tid: UInt32
    /// That thread's name, where known.
    public var threadName: String?
    /// When the callback began (CLOCK_MONOTONIC ns).
    public var startNs: UInt64
    /// before → after (ns); for an `unfinished` callback, to its process's last event.
    public var durationNs: UInt64
    /// Trigger path from the root cause to this resource, e.g. ["TCPSERVERWRAP", "TCPWRAP", "Timeout"].
    public var causalChain: [String]
    /// Syscalls made on the callback's thread while it ran (largest kernel time first).
    public var syscalls: [SyscallInCallback]
    /// Time in the kernel during it (ns): the sum of `syscalls`' times.
    public var kernelNs: UInt64 { syscalls.reduce(0) { $0.addingSaturated($1.ns) } }
    /// Off the CPU while it ran: blocked, and runnable waiting for a CPU; nil without scheduler events.
    public var blockedNs: UInt64? = nil
    /// Runnable but waiting for a CPU while it ran (ns); nil without scheduler events.
    public var runqueueNs: UInt64? = nil
    /// Neither on nor off the CPU as far as the trace knows (ns): an off-CPU episode whose switch-in was not seen
    /// (`Overview.switchInsNotSeen`) began while it ran.
    public var unknownNs: UInt64 = 0
    /// The code the CPU samples taken while it ran were in, most samples first (empty without samples).
    public var stacks: [CodeStackSummary] = []
    /// The program's own function most of those samples passed through, at any depth (nil: no samples
    /// in the program's own code).
    public var hot: HotFunction? = nil
    /// The code that made its long waits (record --stack-threshold), most time first.
    public var waitStacks: [WaitStackSummary] = []
    /// Where its resource was created, innermost first (Node: the first JS frames outside node's own
    /// code at its init); empty where the trace does not say.
    public var createdAt: [CodeFrame] = []
    /// Why `createdAt` is empty, where the trace says (Node: made when the preload's site budget was spent, or a
    /// tick past a thread's first 256); nil otherwise.
    public var createdAtMissing: String? = nil
    /// Index into the analysis' creation stacks, until `attachCreationStacks` names it (-1: none).
    var creationStack: Int32 = -1
    /// What the runtime called its resource: a Swift task's name (quoted, given when it completed) and kind
    /// (`"fetch-user" group child`, `async let`); nil where the runtime says neither.
    public var label: String? = nil
    /// Still running when its process's events end: its after() never came (the process exited or was
    /// killed inside it, or the trace or window was cut), so `durationNs` runs to that end: at least this long.
    public var unfinished = false
    /// Its blocked stretches (switch-out to wakeup; 0 without scheduler events).
    public var blockedWaits: UInt64 = 0
    /// The threads whose wakeups ended the most of its blocked time, most first (at most 4): the thread that
    /// signalled the semaphore or released the lock it waited for, or wrote what it read.
    public var wokenBy: [WakerTime] = []
    /// Of `blockedWaits`, those no thread was seen to end (an interrupt: a timer, a packet, a disk's completion).
    public var wokenByInterrupt: UInt64 = 0
    /// Their time blocked (ns).
    public var wokenByInterruptNs: UInt64 = 0
    /// duration − blocked − run queue − unknown; nil without scheduler events.
    public var onCPUNs: UInt64? {
        guard let b = blockedNs, let r = runqueueNs else { return nil }
        let off = b.addingSaturated(r).addingSaturated(unknownNs)
        return durationNs > off ? durationNs - off : 0
    }
}

/// An error a callback threw that nothing caught (an `uncaughtError` event): Node ends the process with the
/// first; the asynctrace runtime's default policy too.
public struct UncaughtError: Sendable {
    /// The process id.
    public var pid: UInt32
    /// The thread it was thrown on.
    public var tid: UInt32
    /// That thread's name, where known.
    public var threadName: String?
    /// When it was reported (CLOCK_MONOTONIC ns).
    public var ns: UInt64
    /// The async id of the resource whose callback threw it (0 or 1: the program's top level).
    public var asyncID: UInt64
    /// That resource's type name; nil when the trace does not know the resource (the top level, or a resource
    /// created before the recording).
    public var type: String?
    /// The error's first line, as the runtime reported it ("Error: connection refused").
    public var message: String
    /// Trigger path from the root cause to that resource, e.g. ["TCPSERVERWRAP", "TCPWRAP", "Timeout"].
    public var causalChain: [String]
    /// Where that resource was created, innermost first; empty where the trace does not say.
    public var createdAt: [CodeFrame] = []
    /// Index into the analysis' creation stacks, until `attachCreationStacks` names it (-1: none).
    var creationStack: Int32 = -1
    /// Thrown outside every recorded callback (async id 0 or 1) after callbacks had run on its thread: the
    /// async id of the last one that ended there before it. Node reports a promise rejection no handler caught
    /// after the callback it came out of (that callback or a promise continuation it let run); nil otherwise.
    public var afterAsyncID: UInt64?
    /// That callback's resource type name (nil with `afterAsyncID`).
    public var afterType: String?
    /// Its resource's trigger path, as `causalChain` (empty without `afterAsyncID`).
    public var afterCausalChain: [String] = []
    /// Where its resource was created, innermost first; empty where the trace does not say.
    public var afterCreatedAt: [CodeFrame] = []
}

/// Callbacks that ran at least `AnalysisOptions.blockingThresholdNs`: they blocked their loop.
public struct BlockingSummary: Sendable {
    /// The threshold they were measured against (ns).
    public var thresholdNs: UInt64
    /// All callbacks at or above the threshold.
    public var count: UInt64
    /// Their total time (ns).
    public var totalNs: UInt64
    /// The longest of them (at most `AnalysisOptions.top`).
    public var longest: [CallbackRecord]
}

/// One syscall's totals over the whole trace.
public struct SyscallStats: Sendable {
    /// The syscall's name ("read", "epoll_wait", ...).
    public var name: String
    /// Calls made.
    public var count: UInt64
    /// Bytes transferred (positive return values of reads and writes).
    public var bytes: UInt64
    /// Time in them (ns).
    public var totalNs: UInt64
    /// Calls that returned an error (negative return value).
    public var errors: UInt64
    /// Made while a callback was running on the same thread.
    public var attributed: UInt64
    /// Errors by errno name ("EAGAIN"), most first.
    public var errorsByErrno: [(errno: String, count: UInt64)] = []
    /// Opens (open, openat, openat2) that failed: the paths they asked for, most failed first, at most
    /// `failedPathsShown`. Empty for other syscalls and for traces recorded before failed opens kept their path.
    public var failedPaths: [FailedPath] = []
    /// Distinct (path, errno) pairs among the failed opens (at most 4,096 are told apart).
    public var failedPathCount: Int = 0
    /// Failed opens whose path the trace holds (those beyond the 4,096 pairs included).
    public var failedWithPath: UInt64 = 0
    /// How many of a syscall's failed paths `failedPaths` lists.
    public static let failedPathsShown = 10
}

/// A path that opens failed on, with the error and how often.
public struct FailedPath: Sendable, Equatable {
    /// The path as the program passed it (relative paths stay relative; up to 255 bytes).
    public var path: String
    /// The error's name ("ENOENT").
    public var errno: String
    /// Opens that failed on it with that error.
    public var count: UInt64
}

/// One life of an fd: from the syscall that created it (or the recording's start) to its close, or to the
/// next life of the same number (a dup onto it, or a close the probes did not see).
public struct FDStats: Sendable {
    /// The process the fd belongs to.
    public var pid: UInt32
    /// The fd number.
    public var fd: Int64
    /// "file", "tcp", "pipe", ... (FDKind names); "unknown" for an fd whose creation the trace does not hold.
    public var kind: String
    /// Files: the path; sockets: nil.
    public var path: String?
    /// Sockets: the local and peer addresses where known.
    public var local: String?
    /// Sockets: the peer address where known.
    public var peer: String?
    /// When the life began (nil: before the recording, or not seen) and ended (nil: still open at the end).
    public var openedNs: UInt64?
    /// When the life ended (CLOCK_MONOTONIC ns); nil: still open at the end of the trace.
    public var closedNs: UInt64?
    /// The fd it was duplicated from (dup, dup2, dup3, fcntl F_DUPFD), -1 if none.
    public var sourceFd: Int64
    /// The thread that created it (nil: unknown, or open at attach).
    public var openedBy: ThreadRef?
    /// The path, or local->peer, for display; a bound or listening socket (no peer) its local address alone.
    public var detail: String? {
        if let path { return path }
        switch (local, peer) {
        case (nil, nil): return nil
        case (let local?, nil): return local
        case (let local, let peer?): return "\(local ?? "?")->\(peer)"
        }
    }
    /// Type of the resource that last owned the fd (resourceFD), if any.
    public var resourceType: String?
    /// Read-like syscalls on it.
    public var reads: UInt64
    /// Write-like syscalls on it.
    public var writes: UInt64
    /// Bytes read (positive return values).
    public var bytesRead: UInt64
    /// Bytes written (positive return values).
    public var bytesWritten: UInt64
    /// Traced syscalls on it, of any kind.
    public var syscalls: UInt64
    /// Calls on it that returned EAGAIN (would block).
    public var eagain: UInt64
    /// Time in syscalls on it (ns).
    public var kernelNs: UInt64
    /// Delay from epoll reporting the fd ready to the owning resource's callback starting.
    public var readyToCallbackNs: DurationSummary
}

/// The trace's I/O: syscalls by name, fd lives, and how much of the I/O callbacks account for.
public struct IOSummary: Sendable {
    /// Per syscall name, over the whole trace.
    public var syscalls: [SyscallStats]
    /// One row per fd life, by pid, fd, opened.
    public var fds: [FDStats]
    /// read/write-like syscalls of the traced processes.
    public var readWriteSyscalls: UInt64
    /// ... of which made inside a callback (same pid/tid, between its before and after).
    public var readWriteAttributed: UInt64
    /// ... of which inside a callback of the resource that owns the syscall's fd.
    public var readWriteAttributedToOwner: UInt64
    /// read/write-like syscalls on an fd owned by a live resource at the time (resourceFD) ...
    public var readWriteOnResourceFDs: UInt64
    /// ... of which inside a callback of that very resource (e.g. a socket's reads in its TCPWRAP's callbacks).
    public var readWriteOnResourceFDsByOwner: UInt64
    /// `readWriteOnResourceFDsByOwner` / `readWriteOnResourceFDs` (0...1; 0 when there were none).
    public var ownerShare: Double {
        readWriteOnResourceFDs == 0 ? 0 : Double(readWriteOnResourceFDsByOwner) / Double(readWriteOnResourceFDs)
    }
    /// fd lives beyond the kept bound (counted, not listed).
    public var fdLivesNotListed: UInt64 = 0
    /// `readWriteAttributed` / `readWriteSyscalls` (0...1; 0 when there were none).
    public var attributedShare: Double { readWriteSyscalls == 0 ? 0 : Double(readWriteAttributed) / Double(readWriteSyscalls) }
}

/// Resources of one type (and creation site) still alive at the end of the trace.
public struct OpenResourceGroup: Sendable {
    /// Their type name.
    public var type: String
    /// How many.
    public var count: UInt64
    /// The most common causal chain above these resources (where they were created).
    public var createdBy: [String]
    /// The oldest one's creation (CLOCK_MONOTONIC ns).
    public var oldestInitNs: UInt64
    /// Where they were created, innermost first (the group holds the resources of one type made there);
    /// empty where the trace does not say.
    public var createdAt: [CodeFrame] = []
    /// Index into the analysis' creation stacks, until `attachCreationStacks` names it (-1: none).
    var creationStack: Int32 = -1
    /// The standard streams among them (fds 0, 1, 2, ascending): handles a runtime made for the process's stdin,
    /// stdout or stderr (node's `process.stdout`), which it never closes and which do not keep it alive by
    /// themselves. A group holds either only such handles or none.
    public var standardStreams: [Int32] = []
    /// The resources were unref'd at the end (Node's `unref()`; its own unref'd timers): they did not keep the
    /// process alive, however it ended. false: ref'd, or the runtime does not say.
    public var unrefed = false
}

/// A program's call to process.exit() (Node): it ended the process whatever was still ref'd.
public struct ProcessExitCall: Sendable {
    /// The process id.
    public var pid: UInt32
    /// When it was called (CLOCK_MONOTONIC ns).
    public var ns: UInt64
    /// The async id of the resource in whose callback it was called (0 or 1: the program's top level).
    public var asyncID: UInt64
    /// That resource's type name; nil at the top level or for a resource the trace does not know.
    public var type: String?
    /// Trigger path from the root cause to that resource; empty when `type` is nil.
    public var causalChain: [String]
    /// Where that resource was created, innermost first; empty where the trace does not say.
    public var createdAt: [CodeFrame]
}

/// A stretch between two epoll waits of a thread (kernel stream): what its loop was doing instead of waiting.
public struct Gap: Sendable {
    /// The process id.
    public var pid: UInt32
    /// The thread id.
    public var tid: UInt32
    /// When the previous wait returned (CLOCK_MONOTONIC ns).
    public var startNs: UInt64
    /// To the next wait's start (ns).
    public var durationNs: UInt64
    /// The thread's name, where known.
    public var threadName: String? = nil
}

/// A loop seen only through epoll waits in the kernel stream (for unmodified programs).
public struct KernelLoopThread: Sendable {
    /// The process id.
    public var pid: UInt32
    /// The thread id.
    public var tid: UInt32
    /// Its name, where known.
    public var threadName: String? = nil
    /// epoll waits it made.
    public var waits: UInt64
    /// Time in them (ns).
    public var waitNs: UInt64
    /// From its first wait's start to its last wait's end (ns).
    public var spanNs: UInt64
    /// Share of the span not spent in epoll waits (0...1).
    public var utilization: Double
    /// Time between one wait returning and the next starting: the callbacks' time.
    public var busyNs: DurationSummary
    /// Wait exit to wait exit since `TraceAnalyzer.startInterval()` (all of them if it was never called).
    public var recentIterationNs: DurationSummary
    /// When its latest wait returned (a live view measures a stall in progress from it).
    public var lastWaitExitNs: UInt64 = 0
}

/// Loops seen only through epoll waits (kernel stream).
public struct KernelLoopSummary: Sendable {
    /// Each thread that waited in epoll.
    public var threads: [KernelLoopThread]
    /// The longest stretches between waits, longest first (at most `AnalysisOptions.top`).
    public var longestGaps: [Gap]
}

/// The one-second window with the most time inside callbacks (outermost callbacks, all threads added).
/// A trace without callbacks (an unmodified program, kernel events only) counts the time between one
/// epoll wait returning and the thread's next wait instead: the loop's time in its callbacks.
public struct BusiestSecond: Sendable {
    /// What counts as busy.
    public enum Measure: String, Sendable {
        /// Time inside recorded callbacks.
        case callbacks
        /// Time between epoll waits, per thread (kernel events only).
        case betweenEpollWaits = "between_epoll_waits"
    }
    /// What was measured: callbacks, or time between epoll waits.
    public var measure: Measure
    /// Seconds since the first event of the trace.
    public var index: UInt64
    /// Where the window starts (CLOCK_MONOTONIC ns); it is one second long.
    public var startNs: UInt64
    /// Time inside callbacks (or between epoll waits) in it; can exceed a second when several threads were busy.
    public var busyNs: UInt64
    /// How many seconds had any busy time.
    public var secondsWithCallbacks: Int
}

/// Everything `TraceAnalyzer` found in a trace: the plain values the text, JSON, HTML and export views render.
public struct TraceAnalysis: Sendable {
    /// The options it was made with.
    public var options: AnalysisOptions
    /// The trace as a whole.
    public var overview: Overview
    /// nil when the trace has no loop events.
    public var loop: LoopSummary?
    /// Per resource type, most callback time first.
    public var resources: [ResourceTypeStats]
    /// The slowest callbacks, slowest first (at most `AnalysisOptions.top`).
    public var slowestCallbacks: [CallbackRecord]
    /// Callbacks at or above the blocking threshold.
    public var blocking: BlockingSummary
    /// Syscalls, fds and their attribution to callbacks.
    public var io: IOSummary
    /// Resources still alive at the end, grouped by type and creation site, largest groups first.
    public var openAtExit: [OpenResourceGroup]
    /// Errors callbacks threw that nothing caught, in the order they were thrown (the first
    /// `TraceAnalyzer.maxUncaughtErrors`).
    public var uncaughtErrors: [UncaughtError] = []
    /// Uncaught errors beyond those listed (counted, not kept).
    public var uncaughtErrorsNotListed: UInt64 = 0
    /// When every process that emitted events exited by itself (an exit status, not a signal, in the kernel's
    /// processExit events): the highest exit status. Nothing then kept a process alive: what stayed open at its
    /// exit was unref'd or leaked. nil when one was killed by a signal, still ran at the stop, or the trace has
    /// no kernel events.
    public var exitedByThemselvesStatus: Int64? = nil
    /// The program's calls to process.exit(), one per process (its first), by pid: those processes ended with
    /// what was ref'd still open, which would have kept them alive.
    public var exitCalls: [ProcessExitCall] = []
    /// A process that reported an uncaught exception exited with a status other than 0 (and did not call
    /// process.exit()): the exception ended it, not an empty loop.
    public var endedByUncaughtError = false
    /// The signal that killed a process that emitted events (the first by pid, from the kernel's processExit); nil
    /// when none was killed by one, or the trace has no kernel events.
    public var killedBySignal: Int32? = nil
    /// The process `killedBySignal` is of, when more than one process emitted events (nil: the only one, or none).
    public var killedPid: UInt32? = nil
    /// Node's thread-pool requests that waited for the requests queued before them (`PoolWait`).
    public var poolWaits = PoolWaitSummary()
    /// Resources not tracked because the bound was reached (open-at-exit counts are then a lower bound).
    public var untrackedResources: UInt64
    /// nil when the kernel stream has no epoll waits.
    public var kernelLoop: KernelLoopSummary?
    /// after() events with no open before() on their thread (damage, or a nesting error in the program).
    public var unmatchedAfters: UInt64
    /// before() events never closed by an after() while their thread's loop went back to epoll.
    public var abandonedCallbacks: UInt64
    /// nil when no callback completed.
    public var busiestSecond: BusiestSecond?
    /// Every traced thread, by pid and tid.
    public var threads: [ThreadSummary] = []
    /// The processes that gave themselves a title (processTitle), by pid.
    public var titledProcesses: [TitledProcess] = []
    /// Whether the trace has scheduler events (offCPU): on-CPU and off-CPU times are known.
    public var hasSchedulerEvents = false
    /// Loop threads' stretches between epoll waits, longest first (at most `top`).
    public var stalls: [LoopStall] = []
    /// All such stretches at or above the blocking threshold, and their total.
    public var stallsAtThreshold: UInt64 = 0
    /// Total time of those stretches (ns).
    public var stallsAtThresholdNs: UInt64 = 0
    /// CPU time one sample stands for, when the trace has CPU samples (record --sample-rate).
    public var samplePeriodNs: UInt64? = nil
    /// Long waits with their stacks (waitStack events), for attachStacks.
    var waitMoments: [WaitMoment] = []
    /// Creation stacks' addresses and the code regions that name them, for attachCreationStacks.
    var creationStacks = CreationStackTable()
    /// creationStack events whose stack no stackDef defined (a damaged or dropped chunk lost it).
    public var creationStacksUndefined: UInt64 = 0
    /// waitStack events beyond the bound, not attributed.
    public var waitMomentsNotKept: UInt64 = 0
    /// The report's time window, if one was chosen (CLOCK_MONOTONIC ns, inclusive).
    public var window: ClosedRange<UInt64>? = nil
    /// Threads beyond the tracking bound (not listed).
    public var untrackedThreads: UInt64 = 0
    /// Spans (spanBegin/spanEnd): the slowest, with what ran inside them.
    public var spans = SpanSummary()

    /// A thread's name where the trace knows it.
    public func threadName(pid: UInt32, tid: UInt32) -> String? {
        threads.first { $0.pid == pid && $0.tid == tid }?.name
    }

    /// What a thread is for where it is not the program's own (`ThreadSummary.role`); nil: the program's, or unknown.
    public func threadRole(pid: UInt32, tid: UInt32) -> ThreadRole? {
        threads.first { $0.pid == pid && $0.tid == tid }?.role
    }
}
