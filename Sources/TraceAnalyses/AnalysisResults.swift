// What the analyses find: plain values that the text, JSON and export views render.
import TraceFormat
import TraceReader
import TraceSymbols

public struct AnalysisOptions: Sendable {
    /// Callbacks at least this long are listed as blocking.
    public var blockingThresholdNs: UInt64 = 10_000_000
    /// How many slowest callbacks, longest gaps and blocking callbacks to keep.
    public var top: Int = 10
    /// Bound on tracked live resources (memory); more are counted as untracked.
    public var maxTrackedResources: Int = 1_000_000
    /// Only events in this window count (CLOCK_MONOTONIC ns, inclusive); nil: the whole trace.
    public var window: ClosedRange<UInt64>? = nil
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

public struct Overview: Sendable {
    public var path: String
    public var program: String
    public var pid: UInt32
    public var formatVersion: UInt16
    /// CLOCK_MONOTONIC at recording start (file header); times in reports are relative to it.
    public var recordingStartNs: UInt64
    /// CLOCK_REALTIME at recording start (ns since the Unix epoch).
    public var realtimeStartNs: UInt64
    /// First to last event (CLOCK_MONOTONIC ns); 0 when there are none.
    public var startNs: UInt64
    public var endNs: UInt64
    public var durationNs: UInt64 { endNs >= startNs ? endNs - startNs : 0 }
    /// Events read, by kind name (string definitions are bookkeeping and not counted).
    public var eventsByKind: [String: UInt64]
    public var totalEvents: UInt64
    public var userThreads: Int
    public var processes: [UInt32]
    public var hasUserEvents: Bool
    public var hasKernelEvents: Bool
    public var droppedUser: UInt64
    public var droppedKernel: UInt64
    /// Everything that could not be read, one sentence each.
    public var damage: [TraceDamage]
    /// Events known lost to damage (counts from chunk headers; missing chunks add an unknown number).
    public var eventsLostToDamage: UInt64
    public func count(_ kind: String) -> UInt64 { eventsByKind[kind] ?? 0 }

    /// The kinds a report's overview names (the rest are in `eventsByKind`). Counts are of events in
    /// the file: a version 2 trace has `phaseStart` where version 1 had `loopIteration` + `phaseEnter`.
    public static let headlineKinds = [
        "init", "before", "after", "destroy", "promiseResolve", "syscall", "epollWait",
        "loopIteration", "phaseStart",
    ]
}

public struct DurationSummary: Sendable {
    public var count: UInt64
    public var totalNs: UInt64
    public var p50Ns: UInt64
    public var p99Ns: UInt64
    public var maxNs: UInt64
    public static let empty = DurationSummary(LogHistogram())
    public init(_ h: LogHistogram) {
        count = h.count
        totalNs = h.sum
        p50Ns = h.p50
        p99Ns = h.p99
        maxNs = h.max
    }
}

public struct PhaseTime: Sendable {
    public var phase: String
    public var count: UInt64
    public var totalNs: UInt64
}

/// One event-loop thread, from the runtime's loop events.
public struct LoopThread: Sendable {
    public var pid: UInt32
    public var tid: UInt32
    public var threadName: String?
    public var iterations: UInt64
    public var spanNs: UInt64
    /// Time blocked in epoll (pollStart → pollEnd).
    public var pollWaitNs: UInt64
    /// Share of the loop's time not spent waiting in epoll (0...1).
    public var utilization: Double
    public var iterationNs: DurationSummary
    /// Iterations since `TraceAnalyzer.startInterval()` (a live view's last interval; all of them otherwise).
    public var recentIterationNs: DurationSummary
    public var phases: [PhaseTime]
    /// The loop was seen by uprobes on libuv (loopPhase events; record --node-loop-phases), not
    /// recorded by the program; its waiting is its epoll waits.
    public var fromKernel = false
}

public struct LoopSummary: Sendable {
    public var threads: [LoopThread]
    public var iterations: UInt64
    public var spanNs: UInt64
    public var pollWaitNs: UInt64
    public var utilization: Double
    public var iterationNs: DurationSummary
    public var phases: [PhaseTime]
}

public struct ResourceTypeStats: Sendable {
    public var type: String
    /// Resources of this type created (init events).
    public var created: UInt64
    public var destroyed: UInt64
    public var callbacks: DurationSummary
}

public struct SyscallInCallback: Sendable {
    public var name: String
    public var fd: Int64
    public var count: UInt64
    /// Time in the kernel (sum of the calls' durations).
    public var ns: UInt64
    public var bytes: UInt64
    /// Of `ns`, the time the thread was off the CPU, blocked (scheduler events; 0 without them).
    public var blockedNs: UInt64 = 0
    /// What the fd was when the first of these calls was made: a path or `local->peer` (fdOpen events).
    public var fdDetail: String? = nil
}

/// A thread, named where the trace knows its name.
public struct ThreadRef: Sendable, Hashable {
    public var pid: UInt32
    public var tid: UInt32
    public var name: String?

    public init(pid: UInt32, tid: UInt32, name: String?) {
        self.pid = pid
        self.tid = tid
        self.name = name
    }
}

/// Time a thread spent blocked for one reason: a syscall ("clock_nanosleep", "futex wait", "read"), or a
/// state outside traced syscalls.
public struct OffCPUReasonTime: Sendable {
    public var reason: String
    public var ns: UInt64
    /// Times the thread blocked for it.
    public var count: UInt64
    /// The threads whose wakeups ended the most of this time, most first (an interrupt is not listed).
    public var wakers: [ThreadRef]
}

/// One traced thread (loop or not): where its time went.
public struct ThreadSummary: Sendable {
    public var pid: UInt32
    public var tid: UInt32
    public var name: String?
    /// Whether it waits in epoll (a loop thread).
    public var isLoop: Bool
    /// First and last time the trace saw it (its time outside this span is not counted).
    public var firstNs: UInt64
    public var lastNs: UInt64
    public var exited: Bool
    public var spanNs: UInt64
    /// span − off CPU − run queue; nil without scheduler events (a trace without offCPU events).
    public var onCPUNs: UInt64?
    /// Off the CPU, blocked (sleeping or uninterruptible).
    public var offCPUNs: UInt64
    /// Runnable but not running: waiting for a CPU after a wakeup, or preempted.
    public var runqueueNs: UInt64
    /// Blocked time by reason, most first.
    public var offCPUByReason: [OffCPUReasonTime]
    public var syscalls: UInt64
    public var syscallNs: UInt64
    public var errors: UInt64
    public var epollWaits: UInt64
    public var epollWaitNs: UInt64
    /// Loop threads: share of their span not spent waiting in epoll.
    public var loopUtilization: Double?
    /// Loop threads: the longest stretch between two epoll waits.
    public var longestStallNs: UInt64
    public var longestStallStartNs: UInt64
    /// The longest single time blocked, and for what.
    public var longestWaitNs: UInt64
    public var longestWaitStartNs: UInt64
    public var longestWaitReason: String?
    /// The code that made its longest waits (record --stack-threshold; epoll waits left out), most time first.
    public var waitStacks: [WaitStackSummary] = []
    public var ref: ThreadRef { ThreadRef(pid: pid, tid: tid, name: name) }
}

/// A loop thread's stretch between two epoll waits (kernel stream): its loop could do nothing else.
public struct LoopStall: Sendable {
    public var thread: ThreadRef
    /// When the previous wait returned.
    public var startNs: UInt64
    public var durationNs: UInt64
    /// duration − blocked − run queue; nil without scheduler events.
    public var onCPUNs: UInt64?
    public var blockedNs: UInt64
    public var runqueueNs: UInt64
    /// Time inside traced syscalls (on or off the CPU).
    public var kernelNs: UInt64
    /// Syscalls made in it by (name, fd), most time first (at most 32 distinct).
    public var syscalls: [SyscallInCallback]
    /// The code the CPU samples taken in it were in, most samples first (empty without samples).
    public var stacks: [CodeStackSummary] = []
    /// The code that made its long waits (record --stack-threshold), most time first.
    public var waitStacks: [WaitStackSummary] = []
    /// The listed callback (blocking or slowest) that ran longest inside it on its thread: its type,
    /// causal chain and creation site name the stall (Node with its hooks); nil when none is listed.
    public var callback: CallbackRecord? = nil
}

/// One callback invocation (before → after).
public struct CallbackRecord: Sendable {
    public var asyncID: UInt64
    public var type: String
    public var pid: UInt32
    public var tid: UInt32
    public var threadName: String?
    public var startNs: UInt64
    public var durationNs: UInt64
    /// Trigger path from the root cause to this resource, e.g. ["TCPSERVERWRAP", "TCPWRAP", "Timeout"].
    public var causalChain: [String]
    /// Syscalls made on the callback's thread while it ran (largest kernel time first).
    public var syscalls: [SyscallInCallback]
    public var kernelNs: UInt64 { syscalls.reduce(0) { $0.addingSaturated($1.ns) } }
    /// Off the CPU while it ran: blocked, and runnable waiting for a CPU; nil without scheduler events.
    public var blockedNs: UInt64? = nil
    public var runqueueNs: UInt64? = nil
    /// The code the CPU samples taken while it ran were in, most samples first (empty without samples).
    public var stacks: [CodeStackSummary] = []
    /// The code that made its long waits (record --stack-threshold), most time first.
    public var waitStacks: [WaitStackSummary] = []
    /// Where its resource was created, innermost first (Node: the first JS frames outside node's own
    /// code at its init); empty where the trace does not say.
    public var createdAt: [CodeFrame] = []
    /// Index into the analysis' creation stacks, until `attachCreationStacks` names it (-1: none).
    var creationStack: Int32 = -1
    /// Still running when its process's events end: its after() never came (the process exited or was
    /// killed inside it, or the trace or window was cut), so `durationNs` runs to that end: at least this long.
    public var unfinished = false
    /// duration − blocked − run queue; nil without scheduler events.
    public var onCPUNs: UInt64? {
        guard let b = blockedNs, let r = runqueueNs else { return nil }
        let off = b &+ r < b ? UInt64.max : b &+ r
        return durationNs > off ? durationNs - off : 0
    }
}

public struct BlockingSummary: Sendable {
    public var thresholdNs: UInt64
    /// All callbacks at or above the threshold.
    public var count: UInt64
    public var totalNs: UInt64
    /// The longest of them (at most `AnalysisOptions.top`).
    public var longest: [CallbackRecord]
}

public struct SyscallStats: Sendable {
    public var name: String
    public var count: UInt64
    /// Bytes transferred (positive return values of reads and writes).
    public var bytes: UInt64
    public var totalNs: UInt64
    public var errors: UInt64
    /// Made while a callback was running on the same thread.
    public var attributed: UInt64
    /// Errors by errno name ("EAGAIN"), most first.
    public var errorsByErrno: [(errno: String, count: UInt64)] = []
}

/// One life of an fd: from the syscall that created it (or the recording's start) to its close, or to the
/// next life of the same number (a dup onto it, or a close the probes did not see).
public struct FDStats: Sendable {
    public var pid: UInt32
    public var fd: Int64
    /// "file", "tcp", "pipe", ... (FDKind names); "unknown" for an fd whose creation the trace does not hold.
    public var kind: String
    /// Files: the path; sockets: nil.
    public var path: String?
    /// Sockets: the local and peer addresses where known.
    public var local: String?
    public var peer: String?
    /// When the life began (nil: before the recording, or not seen) and ended (nil: still open at the end).
    public var openedNs: UInt64?
    public var closedNs: UInt64?
    /// The fd it was duplicated from (dup, dup2, dup3, fcntl F_DUPFD), -1 if none.
    public var sourceFd: Int64
    /// The thread that created it (nil: unknown, or open at attach).
    public var openedBy: ThreadRef?
    /// The path, or local->peer, for display.
    public var detail: String? { path ?? (local == nil && peer == nil ? nil : "\(local ?? "?")->\(peer ?? "?")") }
    /// Type of the resource that last owned the fd (resourceFD), if any.
    public var resourceType: String?
    public var reads: UInt64
    public var writes: UInt64
    public var bytesRead: UInt64
    public var bytesWritten: UInt64
    public var syscalls: UInt64
    public var eagain: UInt64
    public var kernelNs: UInt64
    /// Delay from epoll reporting the fd ready to the owning resource's callback starting.
    public var readyToCallbackNs: DurationSummary
}

public struct IOSummary: Sendable {
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
    public var ownerShare: Double {
        readWriteOnResourceFDs == 0 ? 0 : Double(readWriteOnResourceFDsByOwner) / Double(readWriteOnResourceFDs)
    }
    /// fd lives beyond the kept bound (counted, not listed).
    public var fdLivesNotListed: UInt64 = 0
    public var attributedShare: Double { readWriteSyscalls == 0 ? 0 : Double(readWriteAttributed) / Double(readWriteSyscalls) }
}

public struct OpenResourceGroup: Sendable {
    public var type: String
    public var count: UInt64
    /// The most common causal chain above these resources (where they were created).
    public var createdBy: [String]
    public var oldestInitNs: UInt64
    /// Where they were created, innermost first (the group holds the resources of one type made there);
    /// empty where the trace does not say.
    public var createdAt: [CodeFrame] = []
    /// Index into the analysis' creation stacks, until `attachCreationStacks` names it (-1: none).
    var creationStack: Int32 = -1
    /// Still running when its process's events end: its after() never came (the process exited or was
    /// killed inside it, or the trace or window was cut), so `durationNs` runs to that end: at least this long.
    public var unfinished = false
}

public struct Gap: Sendable {
    public var pid: UInt32
    public var tid: UInt32
    public var startNs: UInt64
    public var durationNs: UInt64
    public var threadName: String? = nil
}

/// A loop seen only through epoll waits in the kernel stream (for unmodified programs).
public struct KernelLoopThread: Sendable {
    public var pid: UInt32
    public var tid: UInt32
    public var threadName: String? = nil
    public var waits: UInt64
    public var waitNs: UInt64
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

public struct KernelLoopSummary: Sendable {
    public var threads: [KernelLoopThread]
    public var longestGaps: [Gap]
}

/// The one-second window with the most time inside callbacks (outermost callbacks, all threads added).
/// A trace without callbacks (an unmodified program, kernel events only) counts the time between one
/// epoll wait returning and the thread's next wait instead: the loop's time in its callbacks.
public struct BusiestSecond: Sendable {
    public enum Measure: String, Sendable {
        /// Time inside recorded callbacks.
        case callbacks
        /// Time between epoll waits, per thread (kernel events only).
        case betweenEpollWaits = "between_epoll_waits"
    }
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

public struct TraceAnalysis: Sendable {
    public var options: AnalysisOptions
    public var overview: Overview
    /// nil when the trace has no loop events.
    public var loop: LoopSummary?
    public var resources: [ResourceTypeStats]
    public var slowestCallbacks: [CallbackRecord]
    public var blocking: BlockingSummary
    public var io: IOSummary
    public var openAtExit: [OpenResourceGroup]
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
    /// Whether the trace has scheduler events (offCPU): on-CPU and off-CPU times are known.
    public var hasSchedulerEvents = false
    /// Loop threads' stretches between epoll waits, longest first (at most `top`).
    public var stalls: [LoopStall] = []
    /// All such stretches at or above the blocking threshold, and their total.
    public var stallsAtThreshold: UInt64 = 0
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
}
