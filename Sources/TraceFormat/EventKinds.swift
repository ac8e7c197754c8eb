// The spec table: every event kind, its code and its arguments, in one place.
// Writers encode by it, the reader decodes by it, docs/trace-format.md describes it.
// Codes are never reused; a new kind gets a new code and the format's minor version rises.

/// How one argument is laid out after the kind byte and the timestamp delta.
public enum ArgEncoding: UInt8, Sendable {
    /// Unsigned LEB128 varint.
    case unsigned
    /// Zigzag LEB128 varint.
    case signed
    /// An async id, zigzag delta against the previous `asyncID` argument in the same chunk
    /// (0 at chunk start), so runs of events on one resource cost one byte.
    case asyncID
    /// An async id, zigzag delta against this event's first `asyncID` argument.
    case relatedID
    /// Index into the chunk's string table (defined by an earlier `stringDef` in the same chunk).
    case string
    /// Varint length and raw bytes (only `stringDef` uses it).
    case bytes
    /// Varint count, then that many unsigned varints.
    case list
    /// A process id, zigzag delta against the previous `pid` argument in the same chunk (0 at chunk
    /// start): samples of one process cost one byte for it (version 8).
    case pid
    /// A thread id, zigzag delta against the previous `tid` argument in the same chunk (0 at chunk start) (version 8).
    case tid
    /// A stack id, zigzag delta against the previous `stackID` argument in the same chunk (0 at chunk
    /// start): a thread sampled again in the same code, or in the stack defined just after the last one, costs one byte (version 8).
    case stackID
}

/// One argument of an event kind: its name (as in docs/trace-format.md) and how it is encoded.
public struct ArgSpec: Sendable {
    /// The argument's name.
    public let name: String
    /// How the argument is encoded.
    public let encoding: ArgEncoding
}

/// One row of the spec table: a kind, its name, its arguments in order and a one-line summary.
public struct EventSpec: Sendable {
    /// The kind (its one-byte code).
    public let kind: EventKind
    /// The kind's name (as in docs/trace-format.md and `asynctrace dump`).
    public let name: String
    /// The arguments in encoding order: `DecodedEvent.arg(_:)` 0, 1, ... (a string as its id, bytes and lists as their length).
    public let args: [ArgSpec]
    /// What an event of this kind says, in one line.
    public let summary: String
}

/// One byte at the start of every event.
public struct EventKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The code.
    public let rawValue: UInt8
    /// The kind with code `rawValue` (known to this build or not: see `spec`).
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    // Stream bookkeeping
    /// Defines a string id for the rest of the chunk (id, text).
    @inlinable public static var stringDef: EventKind { EventKind(rawValue: 0x01) }
    /// The stream's thread name (name).
    @inlinable public static var threadInfo: EventKind { EventKind(rawValue: 0x02) }
    /// The stream's process, in the first chunk of every stream of a process (ppid, program).
    @inlinable public static var processInfo: EventKind { EventKind(rawValue: 0x03) }
    // Async hooks
    /// A resource was created (asyncID, type, triggerAsyncID, ...; see `spec`).
    @inlinable public static var initResource: EventKind { EventKind(rawValue: 0x08) }
    /// A callback begins (asyncID).
    @inlinable public static var before: EventKind { EventKind(rawValue: 0x09) }
    /// A callback ends (asyncID).
    @inlinable public static var after: EventKind { EventKind(rawValue: 0x0A) }
    /// A resource was freed (asyncID).
    @inlinable public static var destroy: EventKind { EventKind(rawValue: 0x0B) }
    /// A promise resolved (asyncID).
    @inlinable public static var promiseResolve: EventKind { EventKind(rawValue: 0x0C) }
    /// The resource owns this fd from now on; -1: no longer (asyncID, fd).
    @inlinable public static var resourceFD: EventKind { EventKind(rawValue: 0x0D) }
    /// `after()` did not match the innermost `before()` (expectedAsyncID, actualAsyncID).
    @inlinable public static var nestingError: EventKind { EventKind(rawValue: 0x0E) }
    /// A callback threw and nothing caught it (asyncID, message).
    @inlinable public static var uncaughtError: EventKind { EventKind(rawValue: 0x0F) }
    // User marks
    /// A user-named instant (name, executionAsyncID).
    @inlinable public static var mark: EventKind { EventKind(rawValue: 0x10) }
    /// A user-named span begins (spanID, name, executionAsyncID, ...; see `spec`).
    @inlinable public static var spanBegin: EventKind { EventKind(rawValue: 0x11) }
    /// A user-named span ends (spanID).
    @inlinable public static var spanEnd: EventKind { EventKind(rawValue: 0x12) }
    // Attributes (version 3): Swift tasks, distributed-tracing spans
    /// A resource's attribute as key=value: a Swift task's kind, priority, name (asyncID, attribute).
    @inlinable public static var resourceAttribute: EventKind { EventKind(rawValue: 0x13) }
    /// A span's attribute as key=value: trace.id, span.id, parent.span, a tracer's attributes (spanID, attribute).
    @inlinable public static var spanAttribute: EventKind { EventKind(rawValue: 0x14) }
    // 0x15...0x17: reserved for adapters (version 3)
    // Event-loop phases (runtime)
    /// An event-loop iteration begins (iteration).
    @inlinable public static var loopIteration: EventKind { EventKind(rawValue: 0x18) }
    /// A loop phase begins (phase: `TraceLoopPhase`).
    @inlinable public static var phaseEnter: EventKind { EventKind(rawValue: 0x19) }
    /// A loop phase ends (phase).
    @inlinable public static var phaseLeave: EventKind { EventKind(rawValue: 0x1A) }
    /// The loop is about to wait in epoll (timeoutMs; -1: no timeout).
    @inlinable public static var pollStart: EventKind { EventKind(rawValue: 0x1B) }
    /// epoll returned (readyCount, fds: the ready fds).
    @inlinable public static var pollEnd: EventKind { EventKind(rawValue: 0x1C) }
    /// A loop phase begins and the thread's open phase ends; startsIteration 1: an iteration begins too.
    @inlinable public static var phaseStart: EventKind { EventKind(rawValue: 0x1D) }
    // Kernel (eBPF) stream
    /// Kernel: a completed syscall, timestamped at its exit (pid, tid, nr, fd, size, ret, durationNs).
    @inlinable public static var syscall: EventKind { EventKind(rawValue: 0x20) }
    /// Kernel: a completed epoll wait with the data of up to 16 returned events (pid, tid, nr, epfd, ...).
    @inlinable public static var epollWait: EventKind { EventKind(rawValue: 0x21) }
    /// Kernel: a traced process forked (parentPid, childPid).
    @inlinable public static var processFork: EventKind { EventKind(rawValue: 0x22) }
    /// Kernel: a traced process exited (pid, exitCode).
    @inlinable public static var processExit: EventKind { EventKind(rawValue: 0x23) }
    // Kernel stream, version 3: threads, scheduling, fd identity
    /// Kernel: a traced thread's name (comm) at attach, at creation and after every rename (pid, tid, name).
    @inlinable public static var threadName: EventKind { EventKind(rawValue: 0x24) }
    /// Kernel: a traced thread ended (pid, tid).
    @inlinable public static var threadExit: EventKind { EventKind(rawValue: 0x25) }
    /// Kernel: a thread is back on a CPU; it left at timestamp - blockedNs - runqueueNs (state: `OffCPUState`).
    @inlinable public static var offCPU: EventKind { EventKind(rawValue: 0x26) }
    /// Kernel: an fd begins a new life: its `FDKind`, path or address, and the fd it was duplicated from.
    @inlinable public static var fdOpen: EventKind { EventKind(rawValue: 0x27) }
    // Kernel stream, version 3: CPU samples, their interned stacks, and the code mappings that name them
    /// Kernel: defines stack id (>= 1) for the rest of the stream: code addresses, innermost first.
    @inlinable public static var stackDef: EventKind { EventKind(rawValue: 0x28) }
    /// Kernel: a thread was on a CPU; its user and kernel stacks by `stackDef` id (0: none).
    @inlinable public static var cpuSample: EventKind { EventKind(rawValue: 0x29) }
    /// Kernel: an executable region of a traced process from now on: range, file offset, path, build id.
    @inlinable public static var mapping: EventKind { EventKind(rawValue: 0x2A) }
    /// Kernel: CPU sampling is on from here, one sample per periodNs of a thread's CPU time (periodNs, flags).
    @inlinable public static var sampling: EventKind { EventKind(rawValue: 0x2B) }
    // Kernel stream, version 4: a sample's user registers and stack copy, for unwinding by CFI
    /// Kernel: the user registers and stack copy of the `cpuSample` that follows, for unwinding by CFI.
    @inlinable public static var stackCopy: EventKind { EventKind(rawValue: 0x2C) }
    // Kernel stream, version 4: the user stack of a long wait (record --stack-threshold)
    /// Kernel: the user stack that made a long wait (record --stack-threshold): a syscall or time blocked.
    @inlinable public static var waitStack: EventKind { EventKind(rawValue: 0x2D) }
    // User stream, version 5: where a resource was created (AsyncHooks programs)
    /// Where resource asyncID (its init just before, in this stream) was created: a `stackDef` id of this stream.
    @inlinable public static var creationStack: EventKind { EventKind(rawValue: 0x2E) }
    // Kernel stream, version 5: a stack copy as the difference from the thread's previous one
    /// Kernel: a `stackCopy` as the difference from the same thread's copy baseNs earlier.
    @inlinable public static var stackCopyDelta: EventKind { EventKind(rawValue: 0x2F) }
    // Kernel stream, version 5: loop phases of an unmodified libuv program (node) from uprobes
    /// Kernel: a libuv loop thread of an unmodified program entered a phase (uprobe; as `phaseStart`).
    @inlinable public static var loopPhase: EventKind { EventKind(rawValue: 0x30) }
    // Kernel stream, version 6: how a stack unwound while recording was found
    /// Kernel: how each frame of stack id was unwound while recording (`UnwindMethod` per frame).
    @inlinable public static var stackUnwind: EventKind { EventKind(rawValue: 0x31) }
    // Kernel stream, version 7: a stack defined as new frames on the callers of an earlier one
    /// Kernel: defines stack id as its own innermost frames on the outermost `shared` frames of stack base, and how they were unwound.
    @inlinable public static var stackExtend: EventKind { EventKind(rawValue: 0x32) }
    // Kernel stream, version 8: a CPU sample with its pid, tid and stack as differences from the chunk's previous ones
    /// Kernel: a thread was on a CPU (as `cpuSample`; pid, tid and user stack as deltas in the chunk).
    @inlinable public static var sample: EventKind { EventKind(rawValue: 0x33) }
    // Kernel stream, version 9: a sample and the stackExtend of its new user stack as one event
    /// Kernel: a `sample` whose user stack is new, defined by the event as a `stackExtend` of that id would.
    @inlinable public static var sampleNewStack: EventKind { EventKind(rawValue: 0x34) }
    // Kernel stream, version 10: samples without a kernel stack, and stacks defined compactly (`CompactStack`)
    /// Kernel: a thread was on a CPU (as `sample`, without its kernel stack: it has none).
    @inlinable public static var userSample: EventKind { EventKind(rawValue: 0x35) }
    /// Kernel: a `userSample` whose user stack is new, defined by the event as `stackCompact` would.
    @inlinable public static var userSampleNewStack: EventKind { EventKind(rawValue: 0x36) }
    /// Kernel: defines stack id compactly: its base as a difference of ids, its shape, its own frames (`CompactStack`).
    @inlinable public static var stackCompact: EventKind { EventKind(rawValue: 0x37) }
    // Kernel stream, version 11: the title a process gave itself (argv rewritten: postgres, nginx, setproctitle)
    /// Kernel: a traced process's title, its /proc/PID/cmdline when that differs from its exec'd command line ("": none again) (pid, ppid, title).
    @inlinable public static var processTitle: EventKind { EventKind(rawValue: 0x38) }
    // Kernel stream, version 12: a thread outside the traced tree that woke one inside it
    /// Kernel: the name (comm) of a thread outside the traced tree that woke a traced one (another program, a
    /// kernel thread, the recorder), read once from /proc at its first wakeup seen (pid, tid, name).
    @inlinable public static var wakerName: EventKind { EventKind(rawValue: 0x39) }
    // Kernel stream, version 13: the JIT names a traced process wrote to its perf map, copied into the trace
    /// Kernel: part of a traced process's perf map (/tmp/perf-PID.map, "START SIZE NAME" lines), copied when the
    /// recording ended or a flight dump was made (pid, text).
    @inlinable public static var perfMap: EventKind { EventKind(rawValue: 0x3A) }

    /// The kind's row of the spec table; nil for a code this build does not know.
    public var spec: EventSpec? { EventSpecs.byCode[Int(rawValue)] }
    public var description: String { spec?.name ?? "unknown(0x\(String(rawValue, radix: 16)))" }
}

/// Why a thread left the CPU (`offCPU.state`): the task state at `sched_switch`.
public enum OffCPUState: UInt8, Sendable, CaseIterable {
    /// Still runnable: preempted or yielded; all of its off-CPU time is run-queue wait.
    case preempted = 0
    /// Interruptible sleep (TASK_INTERRUPTIBLE): waiting in a syscall for an event, a timer or a lock.
    case sleeping = 1
    /// Uninterruptible sleep (TASK_UNINTERRUPTIBLE): typically disk I/O or a kernel lock.
    case uninterruptible = 2
    /// Stopped, traced, or a state this build does not name.
    case other = 3
    /// Not a task state: an episode whose switch-in the kernel's sched_switch tracepoint never delivered
    /// (docs/kernel-probes.md, "Switch-ins not seen"), written at the thread's next switch-out or exit (the timestamp: the latest the episode
    /// can have ended). `blockedNs` is its blocked part when its wakeup was seen (exact; else 0), `runqueueNs`
    /// the rest, unknown: run-queue wait, then on the CPU from the unseen switch-in.
    case switchInNotSeen = 4
    /// The state's name as reports print it.
    public var name: String {
        switch self {
        case .preempted: "preempted"
        case .sleeping: "sleeping"
        case .uninterruptible: "uninterruptible"
        case .other: "other"
        case .switchInNotSeen: "switch-in not seen"
        }
    }
}

/// What an fd refers to (`fdOpen.kind`).
public enum FDKind: UInt8, Sendable, CaseIterable {
    /// The kinds; `unknown`: the probe could not tell.
    case unknown = 0, file = 1, directory = 2, tcp = 3, udp = 4, unix = 5, socket = 6, pipe = 7, eventfd = 8,
        timerfd = 9, epoll = 10, signalfd = 11, inotify = 12, device = 13, pidfd = 14, ioUring = 15, netlink = 16
    /// The kind's name as reports print it ("io_uring" for `ioUring`).
    public var name: String {
        switch self {
        case .unknown: "unknown"
        case .file: "file"
        case .directory: "directory"
        case .tcp: "tcp"
        case .udp: "udp"
        case .unix: "unix"
        case .socket: "socket"
        case .pipe: "pipe"
        case .eventfd: "eventfd"
        case .timerfd: "timerfd"
        case .epoll: "epoll"
        case .signalfd: "signalfd"
        case .inotify: "inotify"
        case .device: "device"
        case .pidfd: "pidfd"
        case .ioUring: "io_uring"
        case .netlink: "netlink"
        }
    }
}

/// Loop phases as the file codes them (AsyncHooks.LoopPhase uses the same values), in Node's order.
public enum TraceLoopPhase: UInt8, Sendable, CaseIterable {
    /// Node's phases, in loop order.
    case timers = 0, pending = 1, idle = 2, prepare = 3, poll = 4, check = 5, close = 6
    /// The phase's name as reports print it.
    public var name: String {
        switch self {
        case .timers: "timers"
        case .pending: "pending"
        case .idle: "idle"
        case .prepare: "prepare"
        case .poll: "poll"
        case .check: "check"
        case .close: "close"
        }
    }
}

/// The spec table: every event kind, its code, its arguments and a summary (docs/trace-format.md describes it).
public enum EventSpecs {
    private static func a(_ n: String, _ e: ArgEncoding) -> ArgSpec { ArgSpec(name: n, encoding: e) }

    /// Every kind this build knows, in code order.
    public static let all: [EventSpec] = [
        EventSpec(
            kind: .stringDef, name: "stringDef", args: [a("id", .unsigned), a("text", .bytes)],
            summary: "defines string id for the rest of this chunk"),
        EventSpec(
            kind: .threadInfo, name: "threadInfo", args: [a("name", .string)],
            summary: "the stream's thread name"),
        EventSpec(
            kind: .processInfo, name: "processInfo", args: [a("ppid", .unsigned), a("program", .string)],
            summary: "the stream's process (first chunk of every stream of a process)"),
        EventSpec(
            kind: .initResource, name: "init",
            args: [a("asyncID", .asyncID), a("type", .string), a("triggerAsyncID", .relatedID)],
            summary: "a resource was created"),
        EventSpec(kind: .before, name: "before", args: [a("asyncID", .asyncID)], summary: "a callback begins"),
        EventSpec(kind: .after, name: "after", args: [a("asyncID", .asyncID)], summary: "a callback ends"),
        EventSpec(kind: .destroy, name: "destroy", args: [a("asyncID", .asyncID)], summary: "a resource was freed"),
        EventSpec(
            kind: .promiseResolve, name: "promiseResolve", args: [a("asyncID", .asyncID)],
            summary: "a promise resolved"),
        EventSpec(
            kind: .resourceFD, name: "resourceFD", args: [a("asyncID", .asyncID), a("fd", .signed)],
            summary: "the resource owns this fd from now on (-1: no longer)"),
        EventSpec(
            kind: .nestingError, name: "nestingError",
            args: [a("expectedAsyncID", .asyncID), a("actualAsyncID", .relatedID)],
            summary: "after() did not match the innermost before()"),
        EventSpec(
            kind: .uncaughtError, name: "uncaughtError", args: [a("asyncID", .asyncID), a("message", .string)],
            summary: "a callback threw and nothing caught it"),
        EventSpec(
            kind: .mark, name: "mark", args: [a("name", .string), a("executionAsyncID", .asyncID)],
            summary: "a user-named instant"),
        EventSpec(
            kind: .spanBegin, name: "spanBegin",
            args: [a("spanID", .unsigned), a("name", .string), a("executionAsyncID", .asyncID)],
            summary: "a user-named span begins"),
        EventSpec(kind: .spanEnd, name: "spanEnd", args: [a("spanID", .unsigned)], summary: "a user-named span ends"),
        EventSpec(
            kind: .resourceAttribute, name: "resourceAttribute", args: [a("asyncID", .asyncID), a("attribute", .string)],
            summary: "a resource's attribute, as key=value (a Swift task's kind, priority, name)"),
        EventSpec(
            kind: .spanAttribute, name: "spanAttribute", args: [a("spanID", .unsigned), a("attribute", .string)],
            summary: "a span's attribute, as key=value (trace.id, span.id, parent.span, and a tracer's attributes)"),
        EventSpec(
            kind: .loopIteration, name: "loopIteration", args: [a("iteration", .unsigned)],
            summary: "an event-loop iteration begins"),
        EventSpec(kind: .phaseEnter, name: "phaseEnter", args: [a("phase", .unsigned)], summary: "a loop phase begins"),
        EventSpec(kind: .phaseLeave, name: "phaseLeave", args: [a("phase", .unsigned)], summary: "a loop phase ends"),
        EventSpec(
            kind: .pollStart, name: "pollStart", args: [a("timeoutMs", .signed)],
            summary: "the loop is about to wait in epoll (-1: no timeout)"),
        EventSpec(
            kind: .pollEnd, name: "pollEnd", args: [a("readyCount", .unsigned), a("fds", .list)],
            summary: "epoll returned; the ready fds"),
        EventSpec(
            kind: .phaseStart, name: "phaseStart", args: [a("phase", .unsigned), a("startsIteration", .unsigned)],
            summary: "a loop phase begins and the thread's open phase ends; startsIteration 1: a loop iteration begins too"),
        EventSpec(
            kind: .syscall, name: "syscall",
            args: [
                a("pid", .unsigned), a("tid", .unsigned), a("nr", .unsigned), a("fd", .signed),
                a("size", .unsigned), a("ret", .signed), a("durationNs", .unsigned),
            ],
            summary: "a completed syscall; the timestamp is its exit, enter = exit - durationNs"),
        EventSpec(
            kind: .epollWait, name: "epollWait",
            args: [
                a("pid", .unsigned), a("tid", .unsigned), a("nr", .unsigned), a("epfd", .signed),
                a("maxEvents", .unsigned), a("timeoutMs", .signed), a("ret", .signed),
                a("durationNs", .unsigned), a("data", .list),
            ],
            summary: "a completed epoll wait with the data of up to 16 returned events"),
        EventSpec(
            kind: .processFork, name: "processFork", args: [a("parentPid", .unsigned), a("childPid", .unsigned)],
            summary: "a traced process forked"),
        EventSpec(
            kind: .processExit, name: "processExit", args: [a("pid", .unsigned), a("exitCode", .signed)],
            summary: "a traced process exited"),
        EventSpec(
            kind: .threadName, name: "threadName", args: [a("pid", .unsigned), a("tid", .unsigned), a("name", .string)],
            summary: "a traced thread's name (comm): at attach, when the thread is created, after every rename"),
        EventSpec(
            kind: .threadExit, name: "threadExit", args: [a("pid", .unsigned), a("tid", .unsigned)],
            summary: "a traced thread ended"),
        EventSpec(
            kind: .offCPU, name: "offCPU",
            args: [
                a("pid", .unsigned), a("tid", .unsigned), a("state", .unsigned), a("blockedNs", .unsigned),
                a("runqueueNs", .unsigned), a("wakerPid", .unsigned), a("wakerTid", .unsigned),
            ],
            summary:
                "a traced thread is back on a CPU; the timestamp is the switch-in, it left the CPU at timestamp - blockedNs - runqueueNs (state: bits 0-7 OffCPUState; bits 8 and up: 1 + the syscall it slept in as the scheduler saw it, 0: none or not known). State 4 (switchInNotSeen): the switch-in was never seen; the timestamp is the next switch-out or exit, blockedNs the blocked part if the wakeup was seen, runqueueNs the rest, unknown (neither on nor off the CPU)"
        ),
        EventSpec(
            kind: .fdOpen, name: "fdOpen",
            args: [
                a("pid", .unsigned), a("tid", .unsigned), a("fd", .signed), a("kind", .unsigned),
                a("sourceFd", .signed), a("detail", .string),
            ],
            summary:
                "an fd begins a new life: its kind (FDKind), path or local->peer address, and the fd it was duplicated from (-1: none); tid 0 for fds found open at attach. fd < 0: an open that failed (fd is -errno, detail the path it asked for), no life"
        ),
        EventSpec(
            kind: .stackDef, name: "stackDef", args: [a("id", .unsigned), a("frames", .list)],
            summary: "defines stack id (>= 1) for the rest of the stream: code addresses, innermost first"),
        EventSpec(
            kind: .cpuSample, name: "cpuSample",
            args: [a("pid", .unsigned), a("tid", .unsigned), a("userStack", .unsigned), a("kernelStack", .unsigned)],
            summary: "a traced thread was on a CPU; its user and kernel stacks by stackDef id (0: none)"),
        EventSpec(
            kind: .mapping, name: "mapping",
            args: [
                a("pid", .unsigned), a("start", .unsigned), a("end", .unsigned), a("fileOffset", .unsigned),
                a("path", .string), a("buildID", .list),
            ],
            summary:
                "an executable region of a traced process from now on (it replaces overlapping earlier ones of the pid): file path (empty: anonymous, e.g. JIT code) and the ELF build id, one byte per list element"
        ),
        EventSpec(
            kind: .stackCopy, name: "stackCopy",
            args: [
                a("pid", .unsigned), a("tid", .unsigned), a("ip", .unsigned), a("sp", .unsigned), a("bp", .unsigned),
                a("bytes", .unsigned), a("words", .list),
            ],
            summary:
                "the user registers and user stack (`bytes` copied from sp up) of the cpuSample that follows with the same tid and time, for unwinding by CFI; words: per kept 8-byte word the gap to the previous kept word's index, then its value, a pointer into the stack as (value - sp) << 1 | 1, any other as value << 1; words not kept are zero"
        ),
        EventSpec(
            kind: .waitStack, name: "waitStack",
            args: [
                a("pid", .unsigned), a("tid", .unsigned), a("userStack", .unsigned), a("cause", .unsigned),
                a("what", .unsigned), a("fd", .signed), a("durationNs", .unsigned),
            ],
            summary:
                "the user stack (stackDef id) that made a long wait; cause 0: the end of syscall `what` on `fd` (as in syscall) after durationNs, the timestamp its exit; cause 1: back on a CPU after durationNs blocked outside traced syscalls in state `what` (as offCPU's state: OffCPUState, and above bit 8 the syscall), fd -1"
        ),
        EventSpec(
            kind: .stackCopyDelta, name: "stackCopyDelta",
            args: [
                a("pid", .unsigned), a("tid", .unsigned), a("ip", .unsigned), a("sp", .unsigned), a("bp", .unsigned),
                a("bytes", .unsigned), a("baseNs", .unsigned), a("words", .list),
            ],
            summary:
                "a stackCopy given as the difference from the same thread's copy baseNs earlier (in the same chunk): that copy's words at the addresses this one covers, then `words` (as stackCopy's; a value 0 clears the word)"
        ),
        EventSpec(
            kind: .creationStack, name: "creationStack", args: [a("asyncID", .asyncID), a("stack", .unsigned)],
            summary:
                "where resource asyncID (its init just before, in this stream) was created: a stackDef id of this stream (return addresses, innermost first)"
        ),
        EventSpec(
            kind: .loopPhase, name: "loopPhase",
            args: [a("pid", .unsigned), a("tid", .unsigned), a("phase", .unsigned), a("startsIteration", .unsigned)],
            summary:
                "a libuv loop thread of an unmodified program entered a phase (TraceLoopPhase), seen by a uprobe on libuv (record --node-loop-phases); as phaseStart of that thread, startsIteration 1: a loop iteration begins too"
        ),
        EventSpec(
            kind: .stackUnwind, name: "stackUnwind", args: [a("id", .unsigned), a("methods", .list)],
            summary:
                "stack id (its stackDef just before) was unwound by the recorder from a stack copy; per frame, innermost first, how its caller was found (UnwindMethod: 0 CFI, 1 frame pointers in the copy, 2 the kernel's frame-pointer walk, 3 stack scan), and a last 4 when unwinding ended in the last frame before the outermost one"
        ),
        EventSpec(
            kind: .stackExtend, name: "stackExtend",
            args: [a("id", .unsigned), a("base", .unsigned), a("shared", .unsigned), a("own", .unsigned), a("framesThenMethods", .list)],
            summary:
                "defines stack id (>= 1) as stackDef would: `own` frames of its own (innermost first) followed by the outermost `shared` frames of stack base, defined earlier in this stream; the list holds the own frames, each as the zigzag difference from the frame after it (the last own frame: from the first shared one, or from 0 when none is shared), then the stack's methods as stackUnwind's: those of the own frames, the shared frames keeping base's (more methods than own frames: the whole stack's; none with own frames: the stack was not unwound from a copy)"
        ),
        EventSpec(
            kind: .sample, name: "sample",
            args: [a("pid", .pid), a("tid", .tid), a("userStack", .stackID), a("kernelStack", .unsigned)],
            summary:
                "a traced thread was on a CPU, as cpuSample (same arguments), with pid, tid and the user stack id written as differences from the previous sample's in the chunk"
        ),
        EventSpec(
            kind: .sampleNewStack, name: "sampleNewStack",
            args: [
                a("pid", .pid), a("tid", .tid), a("userStack", .stackID), a("kernelStack", .unsigned), a("base", .unsigned),
                a("shared", .unsigned), a("own", .unsigned), a("framesThenMethods", .list),
            ],
            summary:
                "a sample (same first four arguments) whose user stack is new: first defines userStack as a stackExtend with id userStack and the other arguments would, then is the sample (its kind byte, time and id written once)"
        ),
        EventSpec(
            kind: .userSample, name: "userSample",
            args: [a("pid", .pid), a("tid", .tid), a("userStack", .stackID)],
            summary: "a traced thread was on a CPU, as sample (same encodings) without a kernel stack (it has none)"
        ),
        EventSpec(
            kind: .userSampleNewStack, name: "userSampleNewStack",
            args: [a("pid", .pid), a("tid", .tid), a("userStack", .stackID), a("base", .signed), a("shape", .unsigned), a("frames", .list)],
            summary:
                "a userSample (same first three arguments) whose user stack is new: first defines userStack as stackCompact with id userStack and the other arguments would, then is the sample"
        ),
        EventSpec(
            kind: .stackCompact, name: "stackCompact",
            args: [a("id", .unsigned), a("base", .signed), a("shape", .unsigned), a("frames", .list)],
            summary:
                "defines stack id (>= 1) as stackDef would, compactly: base is id minus the id of the stack it shares its outer frames with (0: none), shape the unwinding methods' code + 8 x the base's innermost frames it does not share, frames its own frames (and method runs): see CompactStack"
        ),
        EventSpec(
            kind: .sampling, name: "sampling", args: [a("periodNs", .unsigned), a("flags", .unsigned)],
            summary: "CPU sampling is on from here: one sample per periodNs of a thread's CPU time; flags bit 0: samples carry kernel stacks"),
        EventSpec(
            kind: .processTitle, name: "processTitle", args: [a("pid", .unsigned), a("ppid", .unsigned), a("title", .string)],
            summary:
                "a traced process's title: its /proc/PID/cmdline (NULs as spaces) when it differs from the command line it was exec'd with, read at attach and after a fork; \"\": no title again"
        ),
        EventSpec(
            kind: .wakerName, name: "wakerName", args: [a("pid", .unsigned), a("tid", .unsigned), a("name", .string)],
            summary:
                "the name (comm) of a thread outside the traced tree that woke a traced one (an offCPU's waker: another program, a kernel thread), read from /proc at its first wakeup seen; names only, it is not a traced thread"
        ),
        EventSpec(
            kind: .perfMap, name: "perfMap", args: [a("pid", .unsigned), a("text", .string)],
            summary:
                "whole lines of the perf map a traced process wrote (/tmp/perf-PID.map: \"START SIZE NAME\", hex; Node, CPython 3.12+, a JVM name their JIT code there), copied when the recording ended or a flight dump was made; a pid's parts in stream order are its map. A trace of version 13 or later names JIT code only by these: a /tmp map read later may be another process's"
        ),
    ]

    /// Lookup by code; nil where no kind is defined.
    public static let byCode: [EventSpec?] = {
        var t = [EventSpec?](repeating: nil, count: 256)
        for s in all { t[Int(s.kind.rawValue)] = s }
        return t
    }()

    /// The most arguments any kind has.
    public static let maxArgs = 9
}

/// The `frames` list of `stackExtend`: each own frame (innermost first) as the zigzag difference from the
/// frame after it, the last from the first shared frame (0 if none): frames of one module are close
/// to each other, so a difference takes fewer bytes than an address.
public enum StackExtension {
    /// The list for `own` (innermost first) above the frame `above`.
    public static func encode(_ own: some BidirectionalCollection<UInt64>, above: UInt64) -> [UInt64] {
        var out = [UInt64](repeating: 0, count: own.count)
        var next = above
        for (i, f) in own.enumerated().reversed() {
            let d = Int64(bitPattern: f &- next)
            out[i] = UInt64(bitPattern: (d << 1) ^ (d >> 63))
            next = f
        }
        return out
    }

    /// The own frames (innermost first) of a `frames` list above the frame `above`.
    public static func decode(_ list: some BidirectionalCollection<UInt64>, above: UInt64) -> [UInt64] {
        var out = [UInt64](repeating: 0, count: list.count)
        var next = above
        for (i, z) in list.enumerated().reversed() {
            let d = Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1)
            next = next &+ UInt64(bitPattern: d)
            out[i] = next
        }
        return out
    }
}
