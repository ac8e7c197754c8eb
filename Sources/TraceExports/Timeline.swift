// The one pass every export shares: raw trace events (merged in time order) become per-thread
// slices (callbacks, kernel syscalls, loop phases, epoll polls), instants and flows, in time order
// per thread and properly nested. Every format is a sink over these operations.
//
// Memory is bounded by what is live: open slices per thread, resources not yet destroyed, fds owned,
// flows not yet terminated. Nothing grows with the trace's length.
import TraceAnalyses
import TraceFormat
import TraceReader

/// What a slice or instant stands for.
public enum SliceKind: UInt8, Sendable {
    /// One callback of a resource (before ... after).
    case callback
    /// A kernel syscall of the thread (from the kernel stream; enter = exit - duration).
    case syscall
    /// A loop phase (timers, poll, check, ...).
    case phase
    /// The loop waiting in epoll, as the runtime saw it (pollStart ... pollEnd).
    case poll
    /// A user mark (instant).
    case mark
    /// A resource created inside the current slice (instant; the source of its trigger flow).
    case initResource
    /// epoll reported an fd ready (instant; the source of a flow to the callback it woke).
    case ready
    /// The thread off the CPU (scheduler, format v3): blocked (inside the syscall it blocked in, if any), or
    /// runnable and waiting for a CPU. Its name says which ("blocked in read", "runnable (preempted)").
    case offCPU

    /// The slice's category as the exports name it ("callback", "syscall", "loop", "sched", ...).
    public var category: String {
        switch self {
        case .callback: "callback"
        case .syscall: "syscall"
        case .phase: "loop"
        case .poll: "loop"
        case .mark: "mark"
        case .initResource: "init"
        case .ready: "ready"
        case .offCPU: "sched"
        }
    }
}

/// One thread the timeline knows: a user stream, or a thread seen only in the kernel stream.
public struct TimelineThread: Sendable {
    /// Its index in `Timeline.threads` (ops name threads by it).
    public let index: Int
    /// The process id.
    public let pid: UInt32
    /// The thread id.
    public let tid: UInt32
    /// Its name, where the trace knows it.
    public var name: String?
    /// Whether the thread has a user event stream (false: only its syscalls were recorded).
    public let hasUserStream: Bool

    /// "name [tid]", or "thread tid" without a name.
    public var label: String {
        if let n = name, !n.isEmpty { return "\(n) [\(tid)]" }
        return "thread \(tid)"
    }
}

/// One process of the trace.
public struct TimelineProcess: Sendable {
    /// Its index in `Timeline.processes`.
    public let index: Int
    /// The process id.
    public let pid: UInt32
    /// The program, from its streams' processInfo (the file header's for the recording process); "" if unknown.
    public var program: String
    /// The title it gave itself (the kernel stream's processTitle: argv rewritten, as postgres' "postgres:
    /// checkpointer"), nil if none. Known when the process appears if it was read at attach; a forked child's
    /// comes later (`TimelineSink.finished` sees the final one).
    public var title: String? = nil
    /// What names the process: its title, else its program ("" if neither is known).
    public var displayName: String { title ?? program }
}

/// One operation in a thread's timeline.
public struct TimelineOp: Sendable {
    /// A slice begins or ends, an instant, or a counter's new value.
    public enum Kind: UInt8, Sendable { case begin, end, instant, counter }

    /// Begin, end, instant or counter.
    public var kind: Kind
    /// What the slice or instant stands for.
    public var slice: SliceKind
    /// Syscall begins: a loop's wait for events, its idle time (an epoll wait; a poll or select of a thread
    /// without a user stream that has not waited in epoll: a loop on poll, as the report counts it).
    public var isLoopWait = false
    /// Index into `Timeline.threads`.
    public var thread: Int
    /// When (CLOCK_MONOTONIC ns); never decreases within a thread.
    public var timestampNs: UInt64
    /// Index into `Timeline.names` (the slice's display name).
    public var name: Int
    /// Callbacks and init instants: the resource. Syscalls: 0.
    public var asyncID: UInt64
    /// Callbacks and init instants: the resource that triggered the resource's creation (0: none known).
    public var triggerID: UInt64
    /// Callbacks and init instants: the resource type (a name id); -1 otherwise.
    public var typeName: Int
    /// Syscalls and ready instants: the fd (-1: none). Counters: the value. Off-CPU slices: the waker's tid (0: none).
    public var fd: Int64
    /// Syscalls: return value and size argument.
    public var ret: Int64
    /// Syscalls: the size argument (see docs/trace-format.md per syscall).
    public var size: UInt64
    /// Instants: a flow starting here (0: none). Begins: flows ending here (0: none).
    public var flowOut: UInt64
    /// Callback begins: the flow from the callback that created the resource (0: none).
    public var flowIn: UInt64
    /// Callback begins: the flow from the epoll wait that reported the resource's fd ready (0: none).
    public var flowIn2: UInt64

    init(_ kind: Kind, _ slice: SliceKind, thread: Int, at ts: UInt64, name: Int) {
        self.kind = kind
        self.slice = slice
        self.thread = thread
        self.timestampNs = ts
        self.name = name
        asyncID = 0
        triggerID = 0
        typeName = -1
        fd = -1
        ret = 0
        size = 0
        flowOut = 0
        flowIn = 0
        flowIn2 = 0
    }

    /// Counters: the value (stored in `fd`).
    public var counterValue: Int64 { fd }
}

/// Names (resource types, syscalls, phases, marks) as small integers.
public final class NameTable {
    /// Every name, by id.
    public private(set) var names: [String] = []
    private var ids: [String: Int] = [:]

    /// The id of `s`, added when new.
    public func id(_ s: String) -> Int {
        if let i = ids[s] { return i }
        let i = names.count
        names.append(s)
        ids[s] = i
        return i
    }

    /// The name with id `id` (traps on an id the table did not give).
    public subscript(_ id: Int) -> String { names[id] }
    /// Names held.
    public var count: Int { names.count }
}

/// Receives a timeline. Calls arrive in time order per thread; `threadAdded` precedes a thread's first op.
public protocol TimelineSink {
    /// A thread appears; called before its first op.
    mutating func threadAdded(_ thread: TimelineThread, process: TimelineProcess, timeline: Timeline)
    /// One op of a thread.
    mutating func consume(_ op: TimelineOp, timeline: Timeline)
    /// Spans (user spans, async resource scopes, a tracer's spans).
    mutating func span(_ change: SpanChange, timeline: Timeline)
    /// A resource's life: created (with type and trigger), given an fd, destroyed. Sinks that need the
    /// causal tree listen; the default ignores them.
    mutating func resource(_ change: ResourceChange, timeline: Timeline)
    /// CPU samples (`thread`: the sampled thread) and what names them (`stackDef`, `mapping`, `sampling`:
    /// thread -1), in time order with everything else. Sinks that draw code listen; the default ignores them.
    mutating func code(_ event: EventView, thread: Int, strings: TraceEventIterator, timeline: Timeline)
    /// The run is over: every thread has its final name (a thread renamed after it appeared: `timeline.threads`).
    mutating func finished(timeline: Timeline)
}

public extension TimelineSink {
    mutating func finished(timeline: Timeline) {}
    mutating func resource(_ change: ResourceChange, timeline: Timeline) {}
    mutating func code(_ event: EventView, thread: Int, strings: TraceEventIterator, timeline: Timeline) {}
    mutating func span(_ change: SpanChange, timeline: Timeline) {}
}

/// A span's begin, attribute or end (spans are not slices of a thread: they may end on another thread
/// and need not nest). Sinks that show spans listen; the default ignores them.
public struct SpanChange: Sendable {
    /// A span begins, gets an attribute, or ends.
    public enum Kind: UInt8, Sendable { case begin, attribute, end }
    /// Begin, attribute or end.
    public var kind: Kind
    /// The process the span belongs to.
    public var pid: UInt32
    /// Index into `Timeline.threads`: where the event was recorded.
    public var thread: Int
    /// The span's id (unique within its process).
    public var spanID: UInt64
    /// begin: the span's name; attribute: "key=value"; end: "".
    public var text: String
    /// begin: the async id current where it began.
    public var executionAsyncID: UInt64 = 0
    /// When (CLOCK_MONOTONIC ns).
    public var timestampNs: UInt64
}

/// A change in a resource's life: created, given an fd, or destroyed.
public struct ResourceChange: Sendable {
    /// Created, fd, destroyed.
    public enum Kind: UInt8, Sendable { case created, fd, destroyed }
    /// Which change.
    public var kind: Kind
    /// The resource's process.
    public var pid: UInt32
    /// The resource's async id (unique within its process).
    public var asyncID: UInt64
    /// created: the type (a name id) and the trigger; fd: the fd (-1: released).
    public var type: Int = -1
    /// created: the resource that triggered its creation (0: none).
    public var trigger: UInt64 = 0
    /// fd: the fd it owns from now on (-1: released).
    public var fd: Int64 = -1
    /// When (CLOCK_MONOTONIC ns).
    public var timestampNs: UInt64
}

/// Counters of what the pass saw (also the basis of the report's overview).
public struct TimelineStats: Sendable {
    /// Trace events read.
    public var events: UInt64 = 0
    /// Callbacks begun.
    public var callbacks: UInt64 = 0
    /// Kernel syscalls seen.
    public var syscalls: UInt64 = 0
    /// Flows started (trigger and ready flows).
    public var flows: UInt64 = 0
    /// `after` events that matched no open callback (dropped events, nesting errors).
    public var unmatchedEnds: UInt64 = 0
    /// Events read by kind code (`EventKind.rawValue`).
    public var byKind = [UInt64](repeating: 0, count: 256)
}

/// The one pass every export shares: the trace's events, merged in time order, become per-thread slices
/// (callbacks, syscalls, loop phases, epoll waits, off-CPU time), instants and flows, properly nested per
/// thread, fed to a `TimelineSink`. Memory is bounded by what is live, not by the trace's length.
public final class Timeline {
    /// The trace being read.
    public let reader: TraceReader
    /// Every name the ops refer to.
    public let names: NameTable
    /// Every thread seen so far (user streams first, in stream order); ops name them by index.
    @exclusivity(unchecked) public private(set) var threads: [TimelineThread] = []
    /// Every process seen so far.
    public private(set) var processes: [TimelineProcess] = []
    /// What the pass has seen so far.
    @exclusivity(unchecked) public private(set) var stats = TimelineStats()
    /// Name ids of loop phases, by phase code (0...6), and of the fixed names.
    public let phaseNames: [Int]
    /// Name id of "epoll wait (loop)", the runtime's poll slices.
    public let pollName: Int
    /// Name id of "(unknown resource)", for callbacks whose resource's init is not in the trace.
    public let unknownType: Int
    /// Damage found while decoding (the reader's index damage is in `reader.damage`).
    public private(set) var decodeDamage: [TraceDamage] = []
    /// Earliest and latest timestamp of any op (0 if none).
    @exclusivity(unchecked) public private(set) var firstNs: UInt64 = .max
    /// The latest timestamp of any op (CLOCK_MONOTONIC ns; 0 if none).
    @exclusivity(unchecked) public private(set) var lastNs: UInt64 = 0

    private var threadByKey: [UInt64: Int] = [:]
    private var processByPid: [UInt32: Int] = [:]
    @exclusivity(unchecked) private var threadOfStream: [Int]
    @exclusivity(unchecked) private var syscallNames: [Int]
    // Name ids by resource type and by fd (-1: not yet).
    @exclusivity(unchecked) private var initNames: [Int] = []
    @exclusivity(unchecked) private var readyNames: [Int] = []
    /// Name ids by the reader's string id (-1: not yet).
    @exclusivity(unchecked) private var nameOfString: [Int] = []
    private let openResourcesName: Int
    // Off-CPU slice names: blocked outside syscalls by state (0...3), runnable after a preemption or a wakeup,
    // and "blocked in <syscall>" by syscall number (-1: not yet).
    private let blockedOutsideNames: [Int]
    private let preemptedName: Int
    private let runnableName: Int
    /// After the blocked part of an episode whose switch-in was not seen: runnable or on the CPU, not known which.
    private let unknownName: Int
    @exclusivity(unchecked) private var blockedInNames: [Int] = []
    /// Names from the kernel stream's threadName events for threads not seen yet (applied when they appear).
    private var kernelThreadNames: [UInt64: String] = [:]
    /// Titles from processTitle events for processes not seen yet (applied when they appear).
    private var pendingTitles: [UInt32: String] = [:]
    /// Whether off-CPU stretches were seen (the trace has scheduler events).
    public private(set) var hasSchedulerEvents = false

    // Per-thread state, parallel to `threads`. The pass touches it per event: no dynamic exclusivity checks.
    // Pointer-backed, so the per-event path pays no copy-on-write uniqueness checks.
    @exclusivity(unchecked) private var perThread: UnsafeMutablePointer<ThreadState> = .allocate(capacity: 8)
    private var perThreadCapacity = 8
    private let kindCounts: UnsafeMutablePointer<UInt64> = {
        let p = UnsafeMutablePointer<UInt64>.allocate(capacity: 256)
        p.initialize(repeating: 0, count: 256)
        return p
    }()
    // Per-process state, parallel to `processes`.
    @exclusivity(unchecked) private var resources: [IDTable<Resource>] = []
    @exclusivity(unchecked) private var fdOwner: [IDTable<UInt64>] = []
    /// The reverse of `fdOwner`: the fd each resource was last given (so releasing it is one lookup, not a
    /// scan of every fd: a file of many fds and many releases was quadratic).
    @exclusivity(unchecked) private var fdOfOwner: [IDTable<UInt64>] = []
    @exclusivity(unchecked) private var processOfThread: [Int] = []
    @exclusivity(unchecked) private var lastKernelKey: UInt64 = .max
    @exclusivity(unchecked) private var lastKernelThread = -1
    @exclusivity(unchecked) private var openResources: [Int64] = []
    @exclusivity(unchecked) private var reportedOpen: [Int64] = []
    @exclusivity(unchecked) private var nextFlow: UInt64 = 0
    private let useKernelPolls: Bool

    struct OpenSlice {
        var slice: SliceKind
        var id: UInt64  // asyncID for callbacks, phase code for phases
    }

    struct ThreadState {
        var lastTs: UInt64 = 0
        var stack = SliceStack()
        /// Off-CPU stretches reported (at switch-in) but not yet drawn: the syscall they happened in is known
        /// only at its exit, when its event arrives.
        var pendingOff: [PendingOff] = []
        /// It waited in epoll: its polls are not loop waits.
        var waitedInEpoll = false
    }

    struct PendingOff {
        var outNs: UInt64
        var blockedNs: UInt64
        var runqueueNs: UInt64
        var state: UInt8
        var wakerTid: UInt32
        /// 1 + the syscall it slept in as the scheduler saw it (0: none known).
        var syscall: UInt16 = 0
    }

    deinit {
        for t in 0..<threads.count { perThread[t].stack.deallocate() }
        perThread.deinitialize(count: threads.count)
        perThread.deallocate()
        kindCounts.deallocate()
    }

    struct Resource {
        var type: Int
        var trigger: UInt64
        /// The flow from the callback that created it to its first callback (0: none pending).
        var triggerFlow: UInt64
        var readyFlow: UInt64
    }

    /// A timeline over `reader`'s trace; `run(into:progress:)` makes the pass.
    public init(reader: TraceReader) {
        self.reader = reader
        let names = NameTable()
        phaseNames = (0...7).map { code in names.id(TraceLoopPhase(rawValue: UInt8(code)).map { "\($0.name) phase" } ?? "phase \(code)") }
        pollName = names.id("epoll wait (loop)")
        unknownType = names.id("(unknown resource)")
        openResourcesName = names.id("open resources")
        blockedOutsideNames = [
            "runnable (preempted)", "blocked (sleeping)", "blocked (uninterruptible)", "off CPU (other)", "blocked (switch-in not seen)",
        ].map(names.id)
        preemptedName = blockedOutsideNames[0]
        runnableName = names.id("runnable (waiting for a CPU)")
        unknownName = names.id("unknown: switch-in not seen (runnable or on CPU)")
        self.names = names
        threadOfStream = [Int](repeating: -1, count: reader.streams.count)
        syscallNames = [Int](repeating: -1, count: 1024)
        // Kernel epoll waits carry the ready fds; the runtime's pollEnd is the fallback for user-only traces.
        useKernelPolls = reader.hasKernelEvents
    }

    /// The name with id `id`.
    public func name(_ id: Int) -> String { names[id] }

    /// Whether a syscall slice's name is one of the epoll waits.
    public func isEpollWait(_ name: Int) -> Bool { epollNames.contains(name) }
    // Interned in syscall-number order: iterating the Set would number the names in hash-seed order,
    // and Perfetto writes name ids (interned iids), so the output would differ from run to run.
    private lazy var epollNames: Set<Int> = Set(SyscallNames.epollWaits.sorted().map { syscallName($0) })
    /// The process `thread` (an index into `threads`) belongs to.
    public func process(of thread: Int) -> TimelineProcess { processes[processByPid[threads[thread].pid]!] }

    /// Flow ids are small and unique over the whole trace (they cost a varint each in Perfetto).
    private func newFlow() -> UInt64 {
        nextFlow &+= 1
        stats.flows &+= 1
        return nextFlow
    }

    struct SpanKey: Hashable {
        var pid: UInt32
        var spanID: UInt64
    }
    /// Spans begun and not ended: the thread that began them, and begin order. Bounded (100 000).
    private var openSpans: [SpanKey: (thread: Int, order: UInt64)] = [:]
    private var spanOrder: UInt64 = 0
    private var lastSeenNs: UInt64 = 0

    /// Runs the pass over the whole trace, feeding `sink`; `progress` is called every ~64 K events with the
    /// share of the trace read so far (0...1).
    public func run<S: TimelineSink>(into sink: inout S, progress: ((Double) -> Void)? = nil) {
        let it = reader.events()
        let total = Double(max(1, reader.payloadBytes))
        var countdown = 65_536
        // Threads of user streams first, in stream order, so their indices are stable.
        for s in reader.streams where !s.isKernel {
            threadOfStream[s.index] = addThread(
                pid: s.pid, tid: s.tid, name: s.threadName, user: true,
                program: s.program, sink: &sink)
        }
        // forEachView lends each event in place: nothing is copied or reference-counted per event.
        it.forEachView { e in
            stats.events &+= 1
            kindCounts[Int(e.kind.rawValue)] &+= 1
            handle(e, it, sink: &sink)
            countdown -= 1
            if countdown == 0 {
                countdown = 65_536
                progress?(Double(it.bytesRead) / total)
            }
        }
        // Off-CPU stretches no syscall claimed, then what is still open where its thread was last seen.
        for t in threads.indices where !perThread[t].pendingOff.isEmpty { flushOff(thread: t, before: .max, sink: &sink) }
        for t in threads.indices {
            while let top = perThread[t].stack.popLast() { emitEnd(top.slice, thread: t, at: perThread[t].lastTs, sink: &sink) }
        }
        // Spans never ended end where their thread was last seen (in begin order).
        for (key, t) in openSpans.sorted(by: { $0.value.order < $1.value.order }).map({ ($0.key, $0.value.thread) }) {
            sink.span(
                SpanChange(
                    kind: .end, pid: threads[t].pid, thread: t, spanID: key.spanID, text: "",
                    timestampNs: max(perThread[t].lastTs, lastSeenNs)), timeline: self)
        }
        openSpans.removeAll()
        for k in 0..<256 { stats.byKind[k] = kindCounts[k] }
        decodeDamage = it.damage
        if firstNs == .max { firstNs = 0 }
        sink.finished(timeline: self)
        progress?(1)
    }

    // MARK: - threads and processes

    private func addThread<S: TimelineSink>(
        pid: UInt32, tid: UInt32, name: String?, user: Bool, program: String?,
        sink: inout S
    ) -> Int {
        let key = UInt64(pid) << 32 | UInt64(tid)
        if let t = threadByKey[key] { return t }
        let p = processIndex(pid: pid, program: program)
        let t = threads.count
        threads.append(
            TimelineThread(
                index: t, pid: pid, tid: tid, name: (name ?? kernelThreadNames[key]).map(DispatchThreadNames.expanded),
                hasUserStream: user))
        threadByKey[key] = t
        if t == perThreadCapacity {
            let bigger = UnsafeMutablePointer<ThreadState>.allocate(capacity: 2 * t)
            bigger.moveInitialize(from: perThread, count: t)
            perThread.deallocate()
            perThread = bigger
            perThreadCapacity = 2 * t
        }
        (perThread + t).initialize(to: ThreadState())
        processOfThread.append(p)
        sink.threadAdded(threads[t], process: processes[p], timeline: self)
        return t
    }

    private func processIndex(pid: UInt32, program: String?) -> Int {
        if let p = processByPid[pid] {
            if let program, processes[p].program.isEmpty { processes[p].program = program }
            return p
        }
        let p = processes.count
        let prog = program ?? (pid == reader.header.pid ? reader.header.program : "")
        processes.append(TimelineProcess(index: p, pid: pid, program: prog))
        if let title = pendingTitles.removeValue(forKey: pid) { processes[p].title = title }
        processByPid[pid] = p
        resources.append(IDTable())
        fdOwner.append(IDTable())
        fdOfOwner.append(IDTable())
        openResources.append(0)
        reportedOpen.append(0)
        return p
    }

    @inline(__always)
    private func kernelThread<S: TimelineSink>(pid: UInt32, tid: UInt32, sink: inout S) -> Int {
        let key = UInt64(pid) << 32 | UInt64(tid)
        if key == lastKernelKey { return lastKernelThread }
        let t = threadByKey[key] ?? addThread(pid: pid, tid: tid, name: nil, user: false, program: nil, sink: &sink)
        lastKernelKey = key
        lastKernelThread = t
        return t
    }

    // MARK: - events

    @inline(__always)
    private func emit<S: TimelineSink>(_ op: TimelineOp, sink: inout S) {
        var op = op
        // Per-thread time never goes back (clock conversions of different streams differ by a little).
        let state = perThread + op.thread
        if op.timestampNs < state.pointee.lastTs { op.timestampNs = state.pointee.lastTs } else { state.pointee.lastTs = op.timestampNs }
        if op.timestampNs < firstNs { firstNs = op.timestampNs }
        if op.timestampNs > lastNs { lastNs = op.timestampNs }
        sink.consume(op, timeline: self)
    }

    private func emitEnd<S: TimelineSink>(_ slice: SliceKind, thread: Int, at ts: UInt64, sink: inout S) {
        emit(TimelineOp(.end, slice, thread: thread, at: ts, name: -1), sink: &sink)
    }

    /// Pops the innermost open slice matching (slice, id), closing any left open inside it; false if none is open.
    private func close<S: TimelineSink>(
        _ slice: SliceKind, id: UInt64, thread t: Int, at ts: UInt64,
        sink: inout S
    ) -> Bool {
        guard let depth = perThread[t].stack.lastIndex(where: { $0.slice == slice && $0.id == id }) else { return false }
        while perThread[t].stack.count > depth, let top = perThread[t].stack.popLast() {
            emitEnd(top.slice, thread: t, at: ts, sink: &sink)
        }
        return true
    }

    private func syscallName(_ nr: UInt64) -> Int {
        if nr < UInt64(syscallNames.count) {
            let cached = syscallNames[Int(nr)]
            if cached >= 0 { return cached }
            let id = names.id(SyscallNames.name(nr))
            syscallNames[Int(nr)] = id
            return id
        }
        return names.id(SyscallNames.name(nr))
    }

    @inline(__always)
    private func handle<S: TimelineSink>(_ e: EventView, _ it: TraceEventIterator, sink: inout S) {
        switch e.kind {
        case .syscall, .epollWait:
            kernelCall(e, sink: &sink)
            return
        case .cpuSample, .sample, .sampleNewStack, .userSample, .userSampleNewStack:
            let t = kernelThread(pid: UInt32(truncatingIfNeeded: e.u(0)), tid: UInt32(truncatingIfNeeded: e.u(1)), sink: &sink)
            sink.code(e, thread: t, strings: it, timeline: self)
            return
        case .stackDef, .stackExtend, .stackCompact:
            // A user stream's stacks are creation stacks, numbered on their own: not the samples'.
            if reader.streams[e.stream].isKernel { sink.code(e, thread: -1, strings: it, timeline: self) }
            return
        case .mapping, .sampling, .stackCopy, .stackCopyDelta, .processFork, .perfMap:
            // processFork: a forked child's inherited JIT code is named by its parent's perf map; perfMap: that map,
            // copied into the trace (timed at its start: before every sample).
            sink.code(e, thread: -1, strings: it, timeline: self)
            return
        case .offCPU:
            offCPU(e, sink: &sink)
            return
        case .threadName:
            kernelThreadName(e, it)
            return
        case .processTitle:
            processTitle(e, it)
            return
        case .loopPhase:
            // A libuv loop's phase, seen by a uprobe (record --node-loop-phases): on that thread's own track,
            // as the runtime's phaseStart.
            let t = kernelThread(pid: UInt32(truncatingIfNeeded: e.u(0)), tid: UInt32(truncatingIfNeeded: e.u(1)), sink: &sink)
            if !perThread[t].pendingOff.isEmpty { flushOff(thread: t, before: e.timestampNs, sink: &sink) }
            phaseStarts(code: e.u(2), startsIteration: e.u(3) != 0, process: processOfThread[t], thread: t, at: e.timestampNs, sink: &sink)
            return
        default:
            break
        }
        let t = threadOfStream[e.stream]
        guard t >= 0 else { return }  // other kernel-stream kinds (fork/exit) have no thread timeline
        // Off-CPU stretches of this thread that ended before its event are drawn first (time order per thread).
        if !perThread[t].pendingOff.isEmpty { flushOff(thread: t, before: .max, sink: &sink) }
        userEvent(e, it, thread: t, sink: &sink)
    }

    // MARK: - scheduler (format v3)

    private func kernelThreadName(_ e: EventView, _ it: TraceEventIterator) {
        guard e.textID >= 0 else { return }
        let key = UInt64(UInt32(truncatingIfNeeded: e.u(0))) << 32 | UInt64(UInt32(truncatingIfNeeded: e.u(1)))
        let name = it.string(e.textID)
        if let t = threadByKey[key] {
            // A user stream's own name wins; a kernel-only thread takes its latest comm.
            if !threads[t].hasUserStream || threads[t].name == nil { threads[t].name = DispatchThreadNames.expanded(name) }
        } else if kernelThreadNames.count < 65_536 || kernelThreadNames[key] != nil {
            kernelThreadNames[key] = name
        }
    }

    /// A process's title ("": none again): on its process, or kept until it appears.
    private func processTitle(_ e: EventView, _ it: TraceEventIterator) {
        guard e.textID >= 0 else { return }
        let pid = UInt32(truncatingIfNeeded: e.u(0))
        let text = it.string(e.textID)
        let title = text.isEmpty ? nil : TitledProcess.bounded(text)
        if let p = processByPid[pid] {
            processes[p].title = title
        } else if pendingTitles.count < 65_536 || pendingTitles[pid] != nil {
            pendingTitles[pid] = title
        }
    }

    /// A thread is back on a CPU: remember the stretch until the syscall it happened in (if any) is known.
    private func offCPU<S: TimelineSink>(_ e: EventView, sink: inout S) {
        let t = kernelThread(pid: UInt32(truncatingIfNeeded: e.u(0)), tid: UInt32(truncatingIfNeeded: e.u(1)), sink: &sink)
        hasSchedulerEvents = true
        let inNs = e.timestampNs
        let notSeen = UInt64(OffCPUState.switchInNotSeen.rawValue)
        let state = UInt8(truncatingIfNeeded: e.u(2) & 0xFF == notSeen ? notSeen : min(e.u(2) & 0xFF, 3))
        // A switch-in not seen, written at the next switch-out: if the thread has drawn anything since it switched
        // out (a syscall's exit), it was back on a CPU by then, and what follows was its own time, not unknown (the
        // reports end such an episode at that exit too).
        if state == notSeen, inNs.subtractingSaturated(e.u(3)).subtractingSaturated(e.u(4)) < perThread[t].lastTs { return }
        // Saturating: hostile durations must not trap, nor reach before the thread's last drawn op.
        let allowed = inNs > perThread[t].lastTs ? inNs - perThread[t].lastTs : 0
        let runqueue = min(state == 0 ? e.u(3) &+ e.u(4) < e.u(3) ? .max : e.u(3) &+ e.u(4) : e.u(4), allowed)
        let blocked = state == 0 ? 0 : min(e.u(3), allowed - runqueue)
        guard blocked | runqueue != 0 else { return }
        if perThread[t].pendingOff.count >= 256 { flushOff(thread: t, before: .max, sink: &sink) }
        perThread[t].pendingOff.append(
            PendingOff(
                outNs: inNs - blocked - runqueue, blockedNs: blocked, runqueueNs: runqueue,
                state: state, wakerTid: UInt32(truncatingIfNeeded: e.u(6)),
                syscall: UInt16(truncatingIfNeeded: min(e.u(2) >> 8, 0xFFFF))))
    }

    /// Draws the pending stretches that began before `before` (outside any syscall seen); keeps the rest.
    private func flushOff<S: TimelineSink>(thread t: Int, before: UInt64, sink: inout S) {
        var keep: [PendingOff] = []
        let pending = perThread[t].pendingOff
        perThread[t].pendingOff.removeAll(keepingCapacity: true)
        for p in pending {
            if p.outNs < before {
                // Outside any syscall seen: named for the syscall the scheduler saw it sleep in (untraced, or begun before tracing).
                let name = p.syscall > 0 ? blockedInName(UInt64(p.syscall - 1)) : blockedOutsideNames[Int(p.state)]
                drawOff(p, thread: t, blockedName: name, sink: &sink)
            } else {
                keep.append(p)
            }
        }
        perThread[t].pendingOff.append(contentsOf: keep)
    }

    /// One stretch: a blocked slice (named for where it blocked), then a runnable one.
    private func drawOff<S: TimelineSink>(_ p: PendingOff, thread t: Int, blockedName: Int, sink: inout S) {
        var ts = p.outNs
        if p.blockedNs > 0 {
            var op = TimelineOp(.begin, .offCPU, thread: t, at: ts, name: blockedName)
            op.fd = Int64(p.wakerTid)
            emit(op, sink: &sink)
            ts &+= p.blockedNs
            emitEnd(.offCPU, thread: t, at: ts, sink: &sink)
        }
        if p.runqueueNs > 0 {
            var op = TimelineOp(.begin, .offCPU, thread: t, at: ts, name: p.state == 0 ? preemptedName : p.state == 4 ? unknownName : runnableName)
            if p.blockedNs == 0 { op.fd = Int64(p.wakerTid) }
            emit(op, sink: &sink)
            emitEnd(.offCPU, thread: t, at: ts &+ p.runqueueNs, sink: &sink)
        }
    }

    private func blockedInName(_ nr: UInt64) -> Int {
        if nr < 1024 && Int(nr) < blockedInNames.count && blockedInNames[Int(nr)] >= 0 { return blockedInNames[Int(nr)] }
        let id = names.id("blocked in " + SyscallNames.name(nr))
        if nr < 1024 {
            if Int(nr) >= blockedInNames.count { blockedInNames.append(contentsOf: repeatElement(-1, count: Int(nr) - blockedInNames.count + 1)) }
            blockedInNames[Int(nr)] = id
        }
        return id
    }

    private func userEvent<S: TimelineSink>(_ e: EventView, _ it: TraceEventIterator, thread t: Int, sink: inout S) {
        let ts = e.timestampNs
        let p = processOfThread[t]
        switch e.kind {
        case .threadInfo:
            threads[t].name = e.textID >= 0 ? DispatchThreadNames.expanded(it.string(e.textID)) : ""
        case .initResource:
            let id = e.u(0)
            let type = textName(e.textID, it)
            let trigger = e.u(2)
            let inside = perThread[t].stack.contains { $0.slice == .callback }
            let flow = inside ? newFlow() : 0
            resources[p].insert(id, Resource(type: type, trigger: trigger, triggerFlow: flow, readyFlow: 0))
            openResources[p] += 1
            sink.resource(
                ResourceChange(
                    kind: .created, pid: threads[t].pid, asyncID: id, type: type, trigger: trigger,
                    timestampNs: ts), timeline: self)
            if inside {
                var op = TimelineOp(.instant, .initResource, thread: t, at: ts, name: initName(type))
                op.asyncID = id
                op.triggerID = trigger
                op.typeName = type
                op.flowOut = flow
                emit(op, sink: &sink)
            }
        case .before:
            let id = e.u(0)
            var op = TimelineOp(.begin, .callback, thread: t, at: ts, name: unknownType)
            op.asyncID = id
            op.typeName = unknownType
            _ = resources[p].update(id) { r in
                op.name = r.type
                op.typeName = r.type
                op.triggerID = r.trigger
                if r.triggerFlow != 0 {
                    op.flowIn = r.triggerFlow
                    r.triggerFlow = 0
                }
                if r.readyFlow != 0 {
                    op.flowIn2 = r.readyFlow
                    r.readyFlow = 0
                }
            }
            perThread[t].stack.append(OpenSlice(slice: .callback, id: id))
            stats.callbacks &+= 1
            emit(op, sink: &sink)
        case .after:
            if !close(.callback, id: e.u(0), thread: t, at: ts, sink: &sink) { stats.unmatchedEnds &+= 1 }
        case .destroy:
            if resources[p].remove(e.u(0)) != nil { openResources[p] -= 1 }
            sink.resource(
                ResourceChange(kind: .destroyed, pid: threads[t].pid, asyncID: e.u(0), timestampNs: ts),
                timeline: self)
        case .resourceFD:
            let fd = e.s(1)
            let id = e.u(0)
            if fd < 0 {
                if let k = fdOfOwner[p].remove(id), fdOwner[p][k] == id { fdOwner[p].remove(k) }
            } else {
                fdOwner[p].insert(UInt64(bitPattern: fd), id)
                fdOfOwner[p].insert(id, UInt64(bitPattern: fd))
            }
            sink.resource(
                ResourceChange(kind: .fd, pid: threads[t].pid, asyncID: e.u(0), fd: fd, timestampNs: ts),
                timeline: self)
        case .spanBegin:
            if openSpans.count < 100_000 {
                openSpans[SpanKey(pid: threads[t].pid, spanID: e.u(0))] = (t, spanOrder)
                spanOrder &+= 1
            }
            lastSeenNs = max(lastSeenNs, ts)
            var c = SpanChange(
                kind: .begin, pid: threads[t].pid, thread: t, spanID: e.u(0),
                text: e.textID >= 0 ? it.string(e.textID) : "", timestampNs: ts)
            c.executionAsyncID = e.u(2)
            sink.span(c, timeline: self)
        case .spanAttribute:
            guard openSpans[SpanKey(pid: threads[t].pid, spanID: e.u(0))] != nil else { break }
            sink.span(
                SpanChange(
                    kind: .attribute, pid: threads[t].pid, thread: t, spanID: e.u(0),
                    text: e.textID >= 0 ? it.string(e.textID) : "", timestampNs: ts), timeline: self)
        case .spanEnd:
            guard openSpans.removeValue(forKey: SpanKey(pid: threads[t].pid, spanID: e.u(0))) != nil else { break }
            sink.span(
                SpanChange(kind: .end, pid: threads[t].pid, thread: t, spanID: e.u(0), text: "", timestampNs: ts),
                timeline: self)
        case .mark:
            var op = TimelineOp(.instant, .mark, thread: t, at: ts, name: textName(e.textID, it))
            op.asyncID = e.u(1)
            emit(op, sink: &sink)
        case .phaseEnter:
            let code = min(e.u(0), 7)
            perThread[t].stack.append(OpenSlice(slice: .phase, id: code))
            emit(TimelineOp(.begin, .phase, thread: t, at: ts, name: phaseNames[Int(code)]), sink: &sink)
        case .phaseLeave:
            _ = close(.phase, id: min(e.u(0), 7), thread: t, at: ts, sink: &sink)
        case .phaseStart:
            phaseStarts(code: e.u(0), startsIteration: e.u(1) != 0, process: p, thread: t, at: ts, sink: &sink)
        case .pollStart:
            perThread[t].stack.append(OpenSlice(slice: .poll, id: 0))
            var op = TimelineOp(.begin, .poll, thread: t, at: ts, name: pollName)
            op.ret = e.s(0)
            emit(op, sink: &sink)
        case .pollEnd:
            if !useKernelPolls { readyFlows(fds: e.list, process: p, thread: t, at: ts, sink: &sink) }
            _ = close(.poll, id: 0, thread: t, at: ts, sink: &sink)
        case .loopIteration:
            iterationBegins(process: p, thread: t, at: ts, sink: &sink)
        default:
            break
        }
    }

    /// The name id of an event's string (resource types, marks): cached by the reader's string id, so
    /// no text is compared or hashed per event.
    @inline(__always)
    private func textName(_ id: Int, _ it: TraceEventIterator) -> Int {
        if id >= 0 && id < nameOfString.count && nameOfString[id] >= 0 { return nameOfString[id] }
        return newTextName(id, it)
    }

    private func newTextName(_ id: Int, _ it: TraceEventIterator) -> Int {
        guard id >= 0 else { return names.id("") }
        if id >= nameOfString.count { nameOfString.append(contentsOf: repeatElement(-1, count: id - nameOfString.count + 1)) }
        nameOfString[id] = names.id(it.string(id))
        return nameOfString[id]
    }

    /// The recorder's folded loop event (phaseStart, loopPhase): ends the open phase, may begin an iteration,
    /// begins a phase.
    private func phaseStarts<S: TimelineSink>(
        code: UInt64, startsIteration: Bool, process p: Int, thread t: Int, at ts: UInt64, sink: inout S
    ) {
        if let open = perThread[t].stack.last(where: { $0.slice == .phase }) {
            _ = close(.phase, id: open.id, thread: t, at: ts, sink: &sink)
        }
        if startsIteration { iterationBegins(process: p, thread: t, at: ts, sink: &sink) }
        let code = min(code, 7)
        perThread[t].stack.append(OpenSlice(slice: .phase, id: code))
        emit(TimelineOp(.begin, .phase, thread: t, at: ts, name: phaseNames[Int(code)]), sink: &sink)
    }

    /// A loop iteration begins: the open-resources counter, when it changed.
    private func iterationBegins<S: TimelineSink>(process p: Int, thread t: Int, at ts: UInt64, sink: inout S) {
        if openResources[p] != reportedOpen[p] {
            reportedOpen[p] = openResources[p]
            var op = TimelineOp(.counter, .phase, thread: t, at: ts, name: openResourcesName)
            op.fd = openResources[p]
            emit(op, sink: &sink)
        }
    }

    private func initName(_ type: Int) -> Int {
        if type < initNames.count && initNames[type] >= 0 { return initNames[type] }
        let n = names.id("init \(names[type])")
        if type >= initNames.count { initNames.append(contentsOf: repeatElement(-1, count: type - initNames.count + 1)) }
        initNames[type] = n
        return n
    }

    /// "ready fd N" by fd (an array for the small fds programs use, no hashing per ready fd).
    private func readyName(_ fd: Int64) -> Int {
        guard fd >= 0 && fd < 1 << 16 else { return names.id("ready fd \(fd)") }
        let i = Int(fd)
        if i < readyNames.count && readyNames[i] >= 0 { return readyNames[i] }
        if i >= readyNames.count { readyNames.append(contentsOf: repeatElement(-1, count: i - readyNames.count + 1)) }
        readyNames[i] = names.id("ready fd \(fd)")
        return readyNames[i]
    }

    /// One instant per ready fd that a resource owns, each starting a flow to that resource's next callback.
    private func readyFlows<S: TimelineSink>(
        fds: UnsafeBufferPointer<UInt64>, process p: Int, thread t: Int, at ts: UInt64,
        sink: inout S
    ) {
        for raw in fds {
            let fd = Int64(truncatingIfNeeded: raw)
            guard let owner = fdOwner[p][UInt64(bitPattern: fd)] else { continue }
            let flow = nextFlow &+ 1
            guard resources[p].update(owner, { $0.readyFlow = flow }) else { continue }
            _ = newFlow()
            let name = readyName(fd)
            var op = TimelineOp(.instant, .ready, thread: t, at: ts, name: name)
            op.fd = fd
            op.asyncID = owner
            op.flowOut = flow
            emit(op, sink: &sink)
        }
    }

    private func kernelCall<S: TimelineSink>(_ e: EventView, sink: inout S) {
        let pid = UInt32(truncatingIfNeeded: e.u(0))
        let tid = UInt32(truncatingIfNeeded: e.u(1))
        let t = kernelThread(pid: pid, tid: tid, sink: &sink)
        let exit = e.timestampNs
        let isEpoll = e.kind == .epollWait
        let duration = isEpoll ? e.u(7) : e.u(6)
        // The thread was in the kernel from enter to exit, so none of its user events fall inside;
        // clamping enter only absorbs the small offsets between the user and kernel clocks' conversions.
        let rawEnter = exit &- min(duration, exit)
        // Off-CPU stretches before the call are drawn before it; those inside it, inside its slice.
        let hasOff = !perThread[t].pendingOff.isEmpty
        if hasOff { flushOff(thread: t, before: rawEnter, sink: &sink) }
        let enter = min(max(rawEnter, perThread[t].lastTs), exit)
        var op = TimelineOp(.begin, .syscall, thread: t, at: enter, name: syscallName(e.u(2)))
        // A poll of several fds or a select has the fd it returned as ready, not one it waited on: no fd.
        op.fd = !isEpoll && TraceAnalyzer.waitsOnSeveralFds(nr: e.u(2), size: e.u(4)) != nil ? -1 : e.s(3)
        if isEpoll { perThread[t].waitedInEpoll = true }
        op.isLoopWait =
            isEpoll
            || (TraceAnalyzer.isPollLoopWait(nr: e.u(2), size: e.u(4)) && !perThread[t].waitedInEpoll
                && !threads[t].hasUserStream)
        if isEpoll {
            op.ret = e.s(6)
            op.size = e.u(4)
        } else {
            op.size = e.u(4)
            op.ret = e.s(5)
        }
        stats.syscalls &+= 1
        emit(op, sink: &sink)
        if hasOff && !perThread[t].pendingOff.isEmpty {
            let inside = blockedInName(e.u(2))
            for p in perThread[t].pendingOff { drawOff(p, thread: t, blockedName: inside, sink: &sink) }
            perThread[t].pendingOff.removeAll(keepingCapacity: true)
        }
        if isEpoll && useKernelPolls && !e.list.isEmpty {
            readyFlows(fds: e.list, process: processOfThread[t], thread: t, at: exit, sink: &sink)
        }
        emitEnd(.syscall, thread: t, at: exit, sink: &sink)
    }
}

/// A thread's open slices, innermost last: a raw buffer the timeline frees (no copy-on-write checks per push).
struct SliceStack {
    private var base: UnsafeMutablePointer<Timeline.OpenSlice>
    private var capacity = 16
    private(set) var count = 0

    init() { base = .allocate(capacity: 16) }

    func deallocate() { base.deallocate() }

    @inline(__always)
    mutating func append(_ s: Timeline.OpenSlice) {
        if count == capacity {
            let bigger = UnsafeMutablePointer<Timeline.OpenSlice>.allocate(capacity: 2 * capacity)
            bigger.moveInitialize(from: base, count: count)
            base.deallocate()
            base = bigger
            capacity *= 2
        }
        (base + count).initialize(to: s)
        count += 1
    }

    @inline(__always)
    mutating func popLast() -> Timeline.OpenSlice? {
        guard count > 0 else { return nil }
        count -= 1
        return base[count]
    }

    @inline(__always)
    func lastIndex(where match: (Timeline.OpenSlice) -> Bool) -> Int? {
        var i = count - 1
        while i >= 0 {
            if match(base[i]) { return i }
            i -= 1
        }
        return nil
    }

    @inline(__always)
    func last(where match: (Timeline.OpenSlice) -> Bool) -> Timeline.OpenSlice? { lastIndex(where: match).map { base[$0] } }

    @inline(__always)
    func contains(where match: (Timeline.OpenSlice) -> Bool) -> Bool { lastIndex(where: match) != nil }
}
