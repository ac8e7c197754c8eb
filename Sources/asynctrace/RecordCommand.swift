// `asynctrace record`: run a program (or attach to one) and write one trace file holding the
// program's own events (its recorder appends them) and the kernel probes' events.
import ArgumentParser
import CRecorderSupport
import KernelProbes
import TraceFlight
import TraceFormat
import TraceAnalyses
import TraceReader
import TraceText
#if canImport(Glibc)
import Glibc
#endif

struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Run a program and record a trace of it.",
        discussion: """
            The program runs with ASYNCTRACE_OUTPUT=<trace file> and ASYNCTRACE_APPEND=1, so programs on the \
            asynctrace runtime add their own events; the kernel probes (eBPF: root or CAP_BPF+CAP_PERFMON, and \
            a kernel with BTF) add its syscalls, for any program. Without probes, recording goes on with the \
            program's own events and says why. No shell runs between asynctrace and the program.

            The trace file (mode 0600) defaults to asynctrace-<pid>.atrace in the current directory, <pid> \
            being the program's. Under sudo the program runs as the invoking user (SUDO_UID/SUDO_GID) and the \
            file is created as that user, so it can only be where that user could write it. An existing file is \
            overwritten only if it is a regular file with one link owned by that user (or by you), and a \
            symbolic link as the last component of the path is never followed; its mode is left as it is.

            SIGINT, SIGTERM and SIGHUP sent to asynctrace are forwarded to the program. A second Ctrl-C sends \
            the program SIGTERM, a third SIGKILL (for programs that ignore SIGINT). If asynctrace itself is \
            killed, the program is killed too, and with the kernel probes every process it started (a small \
            guardian process, asynctrace-guard, outlives asynctrace for that): nothing is left running \
            untraced. With --duration the program \
            gets SIGTERM when the time is up (SIGKILL 2 s later if it is still running), and the exit status \
            is 0 if that is what ended it.

            With --pid, the kernel probes attach to a running process, the processes already below it (a \
            server's workers) and those they fork from then on, until --duration ends, the process exits, or Ctrl-C. You may attach only to processes you could \
            attach a debugger to (your own, or any with root or CAP_SYS_PTRACE). --flight-recorder works \
            there too: the window holds the process's kernel events, and --dump-on-block dumps on loop stalls \
            (a thread away from epoll_wait that long).

            Exit status: the program's own (128+N if it was killed by signal N); 127: the program was not \
            found; 126: it could not be executed; 64: invalid command line or environment; 74: the program \
            succeeded but events were lost because the trace file could not be written (disk full, I/O \
            error; the summary says how many); 1: asynctrace itself failed (cannot create the trace file, \
            --pid without kernel probes, without such a process, or without the right to trace it).
            """
    )

    @Option(name: .shortAndLong, help: "The trace file to write (default: asynctrace-<pid>.atrace).")
    var output: String?

    @Flag(name: .customLong("no-kernel"), help: "Do not attach the kernel probes.")
    var noKernel = false

    @Option(
        name: .customLong("buffer-size"),
        help: "Kernel ring buffer size, a power of two (e.g. 16M, 64MiB; default 16M).")
    var bufferSize: String?

    @Flag(
        name: .customLong("no-syscalls"),
        help: "Kernel probes without syscall records (nor fd identities, nor syscall wait stacks): cheaper on syscall-heavy servers.")
    var noSyscalls = false

    @Flag(
        name: .customLong("no-sched"),
        help: "Kernel probes without scheduler records (off-CPU waits, run-queue time, wakers): cheaper on servers switching often.")
    var noSched = false

    @Option(
        name: .customLong("sample-rate"),
        help: "CPU samples with stacks of the traced threads, per second per CPU (0: off).")
    var sampleRate: UInt32 = 999

    @Flag(name: .customLong("kernel-stacks"), help: "CPU samples carry the kernel stack too.")
    var kernelStacks = false

    @Option(
        name: .customLong("stack-copy"),
        help: ArgumentHelp(
            "Bytes of user stack each CPU sample copies (0, or 64 to 16K; default 8K), unwound by the code's CFI (.eh_frame) while recording, so code without frame pointers (swiftc -O, Debian's glibc) gets whole stacks; 0: frame pointers only. A long wait's copy (--stack-threshold) is 16K whenever this is not 0.",
            valueName: "size"))
    var stackCopy: String = "8K"
    @Flag(
        name: .customLong("unwind-later"),
        help:
            "Write CPU samples' stack copies into the trace for the reader to unwind, instead of unwinding them while recording (~60 more bytes per sample, less of the recorder's CPU)."
    )
    var unwindLater = false
    @Option(
        name: .customLong("stack-threshold"),
        help: "Record the user stack of every syscall and off-CPU wait this long or longer (e.g. 1ms, 500us; 0: none; default 1ms).")
    var stackThreshold: String = "1ms"

    @Flag(
        name: .customLong("no-perf-map"),
        help:
            "Do not ask Node (--perf-basic-prof-only-functions in NODE_OPTIONS), Python 3.12+ (PYTHONPERFSUPPORT=1) or a JVM (-XX:+DumpPerfMapAtExit -XX:+PreserveFramePointer in JAVA_TOOL_OPTIONS) for the perf map that names their JS, Python and Java frames (they then stay unnamed)."
    )
    var noPerfMap = false

    @Option(help: "Attach the kernel probes to this running process instead of starting a program.")
    var pid: Int32?

    @Option(help: "Stop after this long (e.g. 10s, 500ms, 2m; default: until the program exits or Ctrl-C).")
    var duration: String?

    /// `top` runs record as its child: when that parent is gone (even SIGKILLed), record stops the
    /// program as SIGTERM would and finishes the trace instead of recording on with nobody watching.
    @Option(name: .customLong("stop-with-parent"), help: .hidden)
    var stopWithParent: Int32?

    @Option(
        name: .customLong("creation-stacks"),
        help: ArgumentHelp(
            "Creation stacks of an AsyncHooks program's resources (our runtime, the Swift Concurrency adapter): on (handles and requests, the recorder's default), off, all (promises, ticks and jobs too), or N (handles and one in N of those); sets ASYNCTRACE_CREATION_STACKS for the program.",
            valueName: "on|off|all|N"))
    var creationStacks: String?

    /// The ASYNCTRACE_CREATION_STACKS value for --creation-stacks (nil: not a value it takes).
    static func creationStacksSetting(_ text: String) -> String? {
        switch text {
        case "on", "handles": return "handles"
        case "off", "0": return "off"
        case "all", "1": return "all"
        default:
            let n = text.hasPrefix("handles+") ? text.dropFirst(8) : Substring(text)
            guard !n.isEmpty, n.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(n), v > 0 else { return nil }
            return v == 1 ? "all" : "handles+\(v)"
        }
    }

    /// asynctrace-bench: print the recorder's own CPU time and sample counts as benchmark lines on stdout.
    @Flag(name: .customLong("bench-cpu"), help: .hidden)
    var benchCPU = false

    @OptionGroup(title: "Flight recorder") var flight: FlightOptions

    @OptionGroup(title: "Node.js") var node: NodeOptions

    @Argument(parsing: .captureForPassthrough, help: "The program and its arguments (after --).")
    var command: [String] = []

    mutating func validate() throws {
        // The passthrough argument also takes `record --help`.
        if command.first == "--help" || command.first == "-h" { throw CleanExit.helpRequest(self) }
        if command.first == "--" { command.removeFirst() }
        if pid != nil && !command.isEmpty { throw ValidationError("give either --pid or a program, not both") }
        if pid == nil && command.isEmpty { throw ValidationError("missing the program to run") }
        if pid != nil && noKernel { throw ValidationError("--pid records kernel events only; it cannot be combined with --no-kernel") }
        if node.loopPhases && noKernel {
            throw ValidationError("--node-loop-phases uses the kernel probes (uprobes); it cannot be combined with --no-kernel")
        }
        if let c = creationStacks {
            guard Self.creationStacksSetting(c) != nil else {
                throw ValidationError(
                    "--creation-stacks takes on, off, all or a number N (handles and one in N promises, ticks and jobs), not '\(c)'")
            }
            if pid != nil { throw ValidationError("--creation-stacks applies to a program record starts; it cannot be combined with --pid") }
        }
        try flight.validate()
        if let d = duration, Quantities.duration(d) == nil {
            throw ValidationError("cannot read duration '\(d)': give a number and a unit, e.g. 10s, 500ms, 2m (at most ~292 years)")
        }
        if stackThreshold != "0" && Quantities.duration(stackThreshold) == nil {
            throw ValidationError("cannot read --stack-threshold '\(stackThreshold)': give a duration, e.g. 1ms, 500us, or 0 for none")
        }
        if sampleRate > 100_000 { throw ValidationError("--sample-rate \(sampleRate) is more than 100000 per second") }
        guard let copy = Quantities.byteSize(stackCopy), copy == 0 || (copy >= 64 && copy <= UInt64(KernelProbeOptions.maxStackCopyBytes))
        else { throw ValidationError("--stack-copy must be 0 or a size from 64 to 16K (e.g. 8K), not '\(stackCopy)'") }
        _ = copy
        if let b = bufferSize {
            guard let n = Quantities.byteSize(b) else { throw ValidationError("cannot read buffer size '\(b)' (e.g. 16M, 64MiB)") }
            guard n >= 4096, n & (n - 1) == 0, n <= 1 << 31 else {
                throw ValidationError("the buffer size must be a power of two between 4K and 2G, not \(b)")
            }
        }
    }

    func run() throws {
        let options = KernelProbeOptions(
            ringBytes: bufferSize.flatMap(Quantities.byteSize) ?? KernelProbeOptions().ringBytes,
            sampleHz: sampleRate, kernelStacks: kernelStacks,
            stackCopyBytes: UInt32(Quantities.byteSize(stackCopy) ?? 0) & ~7,
            stackThresholdNs: stackThreshold == "0" ? 0 : Quantities.duration(stackThreshold) ?? 1_000_000,
            syscalls: !noSyscalls, scheduler: !noSched)
        if let pid {
            try attach(to: pid, options: options)
        } else {
            try launch(options: options)
        }
    }

    /// Stack copies are unwound as they come (the trace holds stacks, not copies); with --unwind-later
    /// only wait stacks' (the trace has no place for their copies).
    private func unwindWhileRecording(_ session: KernelProbeSession, _ options: KernelProbeOptions) {
        guard options.stackCopyBytes > 0 else { return }
        session.samples.unwinder = RecordTimeUnwinder()
        session.samples.samplesUnwoundLater = unwindLater
    }

    // MARK: running a program

    /// Whether --stop-with-parent's process is no longer our parent (we were re-parented: it exited
    /// or was killed). From then on our output goes nowhere: writes to it fail (EPIPE) instead of
    /// killing us before the trace is finished.
    private func parentHasGone() -> Bool {
        guard let expected = stopWithParent, getppid() != expected else { return false }
        if !RecordCommand.orphaned {
            RecordCommand.orphaned = true
            signal(SIGPIPE, SIG_IGN)
        }
        return true
    }
    nonisolated(unsafe) private static var orphaned = false

    private func launch(options: KernelProbeOptions) throws {
        let user = invokingUser()
        let program: String
        switch ProgramLookup.resolve(command[0], searchPath: getenv("PATH").map { String(cString: $0) }) {
        case .success(let p): program = p
        case .failure(let e): fail(e.description, exitCode: e.exitCode)
        }

        var session: KernelProbeSession?
        if !noKernel {
            do {
                session = try KernelProbeSession(options: options)
                if let why = session?.samplingError { note(why) }
                if let session { unwindWhileRecording(session, options) }
            } catch {
                note("\(error.description); recording the program's own events only")
            }
        }

        // The child is forked (held) before the file exists, so the file can carry its pid; it
        // learns the file's path when released.
        var environment = currentEnvironment().filter {
            !$0.hasPrefix("ASYNCTRACE_OUTPUT=") && !$0.hasPrefix("ASYNCTRACE_APPEND=") && !$0.hasPrefix("ASYNCTRACE_LOSS_FD=")
                && !$0.hasPrefix("ASYNCTRACE_FLIGHT_FD=") && !$0.hasPrefix("ASYNCTRACE_DUMP_ON_BLOCK=")
                && !(creationStacks != nil && $0.hasPrefix("ASYNCTRACE_CREATION_STACKS="))
        }
        if let c = creationStacks.flatMap(Self.creationStacksSetting) { environment.append("ASYNCTRACE_CREATION_STACKS=\(c)") }
        environment.append("ASYNCTRACE_APPEND=1")
        // What the program's recorder cannot write (disk full) is counted here, as it never reaches the file.
        var losses: UnsafeMutablePointer<trace_loss_counters>?
        let lossFD = trace_loss_counters_create(&losses)
        if lossFD >= 0 { environment.append("ASYNCTRACE_LOSS_FD=\(lossFD)") }
        SwiftConcurrencyLaunch.apply(to: &environment, program: program, note: note)
        if let user { environment = user.adjust(environment) }
        let nodeLaunch = NodeLaunch.prepare(
            options: node, program: program,
            owner: user.map { (UInt32(bitPattern: $0.uid), UInt32(bitPattern: $0.gid)) })
        if let nodeLaunch { environment = nodeLaunch.adjust(environment) }
        let sampling = (session?.sampledCPUs ?? 0) > 0
        environment = NodePerfMap.adjust(environment, program: program, force: node.force, enabled: !noPerfMap && sampling)
        environment = PythonPerfMap.adjust(environment, enabled: !noPerfMap && sampling)
        environment = JavaPerfMap.adjust(environment, enabled: !noPerfMap && sampling)
        let flightRecording = flight.enabled ? makeFlightRecording(user: user) : nil
        if let flightRecording { environment += flight.environment(socketFD: flightRecording.childFD) }
        let child: HeldProcess
        do {
            child = try HeldProcess(
                path: program, arguments: command, environment: environment, uid: user?.uid,
                gid: user?.gid, groups: user?.groups ?? [])
        } catch {
            fail(error.description, exitCode: error.exitCode)
        }
        if lossFD >= 0 { close(lossFD) }  // the held child has its copy
        // Set before the child is released: its recorder then knows it is the program's (root_state).
        losses?.pointee.root_pid = UInt32(bitPattern: child.pid)
        // If asynctrace is killed, what the program started dies with it too (the program itself has
        // PR_SET_PDEATHSIG); the tree's processes come from the probes' fork events. Forked after the
        // program, so the program stays asynctrace's first child (tools look for it there).
        let guardian = TreeGuardian()
        defer { guardian?.dismiss() }
        let path = absolutePath(output ?? "asynctrace-\(child.pid).atrace")
        let fd: Int32
        do {
            // A flight recorder writes no file until a dump (dumps are named after `path`).
            fd = flightRecording != nil ? -1 : try createTrace(path: path, pid: child.pid, program: programLine(command), owner: user)
        } catch {
            child.abandon()
            var st: Int32 = 0
            waitpid(child.pid, &st, 0)
            throw error
        }
        defer { if fd >= 0 { close(fd) } }
        var reserve = fd >= 0 ? openReserve(traceFD: fd, path: path, owner: user) : -1
        defer { if reserve >= 0 { close(reserve) } }

        let recording = session.map { KernelRecording(session: $0, traceFD: fd, rootPid: child.pid) }
        if let flightRecording {
            flightRecording.configure(rootPid: child.pid, program: programLine(command), output: path, kernel: recording)
            if let ns = flight.dumpOnBlockNs, recording != nil { flightRecording.watchLoopStalls(thresholdNs: ns) }
            flightRecording.start(recorderPid: getpid(), tracedPid: child.pid)
        }
        session?.trace(pid: child.pid, heldBeforeExec: true)
        let loopPhases = node.loopPhases ? session.map(NodeLoopPhases.init) : nil
        if node.loopPhases && session == nil { note("--node-loop-phases: no loop phases without the kernel probes") }
        loopPhases?.addHeld(pid: child.pid, program: program)
        guardian?.watch(pid: UInt32(bitPattern: child.pid))
        if let recording, loopPhases != nil || flightRecording != nil || guardian != nil {
            recording.onEvents = { events in
                loopPhases?.note(events)
                flightRecording?.kernelEvents(events)
                if let guardian {
                    for e in events where e.kind == .processFork { guardian.watch(pid: e.childPid) }
                }
            }
        }
        if let nodeLaunch {
            if let flightRecording { nodeLaunch.start(flight: flightRecording) } else { nodeLaunch.start(traceFD: fd) }
        }
        RecordingSignals.catchSignals(forwardingTo: child.pid)
        let start = monotonicNowNs()
        do {
            try child.release(extraEnvironment: flightRecording == nil ? "ASYNCTRACE_OUTPUT=\(path)" : nil)
        } catch {
            var st: Int32 = 0
            waitpid(child.pid, &st, 0)
            if flightRecording == nil { unlink(path) }  // nothing was recorded
            if error == .goneBeforeExec {  // e.g. a SIGTERM forwarded while it was held
                fail("\(error.description) (status \(exitStatus(st)))", exitCode: exitStatus(st))
            }
            fail(error.description, exitCode: error.exitCode)
        }

        var status: Int32 = 0
        let limit = duration.flatMap(Quantities.duration).map { start &+ $0 }
        var stopSentNs: UInt64?
        while true {
            if let recording {
                recording.pump(timeoutMs: 50)
            } else {
                usleep(50_000)
            }
            loopPhases?.poll()
            flightRecording?.poll()
            let r = waitpid(child.pid, &status, WNOHANG)
            if r == child.pid || (r < 0 && errno != EINTR && errno != 0) { break }
            // --duration (or the parent that started us is gone): SIGTERM, then SIGKILL if the
            // program is still running 2 s later.
            let now = monotonicNowNs()
            let orphaned = parentHasGone()
            if orphaned || (limit.map { now >= $0 } ?? false) {
                if stopSentNs == nil {
                    note(
                        orphaned
                            ? "the process that started this recording is gone; stopping the program (SIGTERM)"
                            : "--duration \(duration!) is up; stopping the program (SIGTERM)")
                    kill(child.pid, SIGTERM)
                    stopSentNs = now
                } else if let sent = stopSentNs, now - sent >= 2_000_000_000 {
                    kill(child.pid, SIGKILL)
                }
            }
        }
        let stats = recording?.finish()
        if let recording {
            noteProcessesWithoutTitles(recording)
            notePerfMapsCut(recording)
        }
        if benchCPU { printBenchCPU(recording?.session) }
        nodeLaunch?.finish()
        if let loopPhases { note(loopPhases.summary) }
        let userLost = losses.map { (events: $0.pointee.events_lost, errno: Int32(truncatingIfNeeded: $0.pointee.first_errno)) }
        let kernelLost = recording.map { (events: $0.writer.eventsLost, errno: $0.writer.firstWriteError) }
        let end = ProgramEnd(status: status, counters: losses?.pointee)
        if let flightRecording {
            flightRecording.finish()
            flightRecording.printSummary(startNs: start, kernel: stats, userLost: userLost)
            if let line = end.notFlushedLine { note(line) }
            var programStatus = exitStatus(status)
            if stopSentNs != nil && (programStatus == 128 + SIGTERM || programStatus == 128 + SIGKILL) { programStatus = 0 }
            throw ExitCode(programStatus)
        }
        appendUnwrittenNote(
            traceFD: fd, reserve: &reserve, path: path, pid: child.pid, userLost: userLost, kernelLost: kernelLost, end: end)
        let lost = printSummary(
            path: path, startNs: start, kernel: stats, probesOn: recording != nil,
            userLost: userLost, kernelLost: kernelLost, end: end)
        var programStatus = exitStatus(status)
        // Stopped by --duration as asked: that is a successful recording, not a failed program.
        if stopSentNs != nil && (programStatus == 128 + SIGTERM || programStatus == 128 + SIGKILL) { programStatus = 0 }
        throw ExitCode(programStatus == 0 && lost ? 74 : programStatus)
    }

    /// --bench-cpu: the recorder's CPU time (all its threads, not the program's) and what its samples became.
    private func printBenchCPU(_ session: KernelProbeSession?) {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        let cpuNs =
            (Int64(u.ru_utime.tv_sec) + Int64(u.ru_stime.tv_sec)) * 1_000_000_000
            + (Int64(u.ru_utime.tv_usec) + Int64(u.ru_stime.tv_usec)) * 1000
        let s = session?.samples
        let lines: [(String, UInt64)] = [
            ("record_cpu", UInt64(cpuNs)), ("record_samples", s?.samples ?? 0), ("record_copies", s?.stackCopies ?? 0),
            ("record_copies_not_needed", s?.copiesNotNeeded ?? 0),
            ("record_copies_unwound", s?.copiesUnwound ?? 0), ("record_copies_deferred", s?.copiesDeferred.values.reduce(0, +) ?? 0),
            ("record_samples_after_exit", s?.samplesAfterExit ?? 0), ("record_stacks_ended_in_unknown_code", s?.stacksEndedInUnknownCode ?? 0),
            ("record_wait_stacks", s?.waitStacks ?? 0),
        ]
        var text = ""
        for (name, v) in lines { text += "{\"benchmark\": \"\(name)\", \"ns_per_op\": \(v)}\n" }
        _ = text.withCString { write(1, $0, strlen($0)) }
    }

    /// The program's exit status as a shell reports it: 128+N when killed by signal N.
    private func exitStatus(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }

    // MARK: attaching to a running process

    private func attach(to pid: Int32, options: KernelProbeOptions) throws {
        guard pid > 0 else { fail("no process \(pid)", exitCode: 1) }
        if let refusal = TraceAccess.check(pid: pid) { fail(refusal, exitCode: 1) }
        NodeLaunch.noteIfAttachingToNode(pid: pid)
        let session: KernelProbeSession
        do {
            session = try KernelProbeSession(options: options)
            if let why = session.samplingError { note(why) }
            unwindWhileRecording(session, options)
        } catch {
            fail("\(error.description); --pid records kernel events only, so there is nothing to record", exitCode: 1)
        }
        let user = invokingUser()
        let path = absolutePath(output ?? "asynctrace-\(pid).atrace")
        // A flight recorder writes no file until a dump (dumps are named after `path`).
        let flightRecording = flight.enabled ? makeFlightRecording(user: user) : nil
        let fd = flightRecording != nil ? -1 : try createTrace(path: path, pid: pid, program: commandLine(of: pid), owner: user)
        defer { if fd >= 0 { close(fd) } }
        var reserve = fd >= 0 ? openReserve(traceFD: fd, path: path, owner: user) : -1
        defer { if reserve >= 0 { close(reserve) } }
        let recording = KernelRecording(session: session, traceFD: fd, rootPid: pid)
        if let flightRecording {
            flightRecording.configure(rootPid: pid, program: commandLine(of: pid), output: path, kernel: recording)
            if let ns = flight.dumpOnBlockNs { flightRecording.watchLoopStalls(thresholdNs: ns) }
            // No program of ours to hand chunks over: the window holds the kernel stream only.
            flightRecording.start(recorderPid: getpid(), tracedPid: pid)
        }
        RecordingSignals.catchSignals()
        let start = monotonicNowNs()
        let limit = duration.flatMap(Quantities.duration).map { start &+ $0 }
        session.trace(pid: pid)
        // Its processes already running (a server's workers: nginx, gunicorn, a node cluster): traced
        // too, as the ones it forks from now on are. Listed after the root is marked, and again, so
        // a process forked meanwhile by one not yet marked is not missed.
        var descendants: [Int32] = []
        var refused: [(Int32, String)] = []
        for _ in 0..<2 {
            for child in ProcessSnapshot.descendants(of: pid) where !descendants.contains(child) && !refused.contains(where: { $0.0 == child }) {
                if let why = TraceAccess.check(pid: child) {
                    if kill(child, 0) != 0 && errno == ESRCH { continue }  // exited meanwhile
                    refused.append((child, why))
                    continue
                }
                session.trace(pid: child)
                descendants.append(child)
            }
        }
        recording.otherPidsAtStart = descendants
        let loopPhases = node.loopPhases ? NodeLoopPhases(session: session) : nil
        loopPhases?.watch(pid)
        for child in descendants { loopPhases?.watch(child) }
        var exited = false
        recording.onEvents = { events in
            loopPhases?.note(events)
            if events.contains(where: { $0.kind == .processExit && $0.pid == UInt32(pid) }) { exited = true }
            flightRecording?.kernelEvents(events)
        }
        let what =
            flightRecording == nil
            ? "into \(path)"
            : "with a flight recorder (SIGUSR1 to \(getpid()) or `asynctrace dump --pid \(pid)` writes a dump)"
        let tree =
            descendants.isEmpty
            ? "" : " and of the \(descendants.count) process\(descendants.count == 1 ? "" : "es") below it (\(Self.pidList(descendants)))"
        note(
            "recording kernel events of process \(pid)\(tree) \(what)"
                + (limit == nil ? " until it exits or Ctrl-C" : " for \(duration!)"))
        for (child, why) in refused.prefix(3) { note("not recording process \(child) below it: \(why)") }
        // An attached CPython keeps the environment it was started with: without its perf map, samples name only
        // the interpreter's C (record -- PROGRAM sets PYTHONPERFSUPPORT=1 for what it launches).
        if session.sampledCPUs > 0 {
            let unnamed = ([pid] + descendants).compactMap { p in PythonPerfMap.pythonWithoutMap(pid: p).map { (p, $0) } }
            if let (first, version) = unnamed.first {
                let which = unnamed.count == 1 ? "process \(first) runs" : "\(unnamed.count) processes (\(Self.pidList(unnamed.map(\.0)))) run"
                note(
                    "\(which) CPython \(version) without a perf map: samples will name its C functions, not its Python ones; "
                        + "start it with PYTHONPERFSUPPORT=1 (or python -X perf) to have them named")
            }
            // Node alike: its JIT code is named only by the map node writes with --perf-basic-prof(-only-functions).
            let nodes = ([pid] + descendants).filter { NodePerfMap.nodeWithoutMap(pid: $0) }
            if let first = nodes.first {
                let which = nodes.count == 1 ? "process \(first) runs" : "\(nodes.count) processes (\(Self.pidList(nodes))) run"
                note(
                    "\(which) node without a perf map: samples will name V8's and node's C++ functions, not its JS ones; "
                        + "start node with --perf-basic-prof-only-functions (e.g. in NODE_OPTIONS) to have them named")
            }
        }
        if refused.count > 3 { note("... and \(refused.count - 3) more processes below it not recorded, for the same reasons") }
        while !exited && RecordingSignals.last == 0 && !parentHasGone() {
            if let limit, monotonicNowNs() >= limit { break }
            recording.pump(timeoutMs: 50)
            loopPhases?.poll()
            flightRecording?.poll()
            if kill(pid, 0) != 0 && errno == ESRCH { exited = true }
        }
        let stats = recording.finish()
        noteProcessesWithoutTitles(recording)
        notePerfMapsCut(recording)
        if let loopPhases { note(loopPhases.summary) }
        if let flightRecording {
            flightRecording.finish()
            flightRecording.printSummary(startNs: start, kernel: stats, userLost: nil)
            return
        }
        let kernelLost = (events: recording.writer.eventsLost, errno: recording.writer.firstWriteError)
        appendUnwrittenNote(traceFD: fd, reserve: &reserve, path: path, pid: pid, userLost: nil, kernelLost: kernelLost)
        let lost = printSummary(path: path, startNs: start, kernel: stats, probesOn: true, userLost: nil, kernelLost: kernelLost, end: ProgramEnd())
        if lost { throw ExitCode(74) }
    }

    /// Says how many forked processes were not watched for a title (beyond the watch's bound).
    private func noteProcessesWithoutTitles(_ recording: KernelRecording) {
        let n = recording.processesWithoutTitles
        guard n > 0 else { return }
        note("\(n) forked process\(n == 1 ? " was" : "es were") not watched for a process title (at most 4,096 at a time)")
    }

    /// Says how many perf maps were copied into the trace only in part (`PerfMapCopy.maxBytes`).
    private func notePerfMapsCut(_ recording: KernelRecording) {
        let n = recording.perfMapsCut
        guard n > 0 else { return }
        note(
            "\(n) cop\(n == 1 ? "y" : "ies") of a perf map into the trace or a dump stopped short (a map is copied up to "
                + "\(PerfMapCopy.maxBytes >> 20) MiB, a dump's maps up to 8 MiB in all): JIT code named further on stays unnamed there")
    }

    /// "6449, 6450" (at most 8, then "…").
    static func pidList(_ pids: [Int32]) -> String {
        pids.prefix(8).map(String.init).joined(separator: ", ") + (pids.count > 8 ? ", …" : "")
    }

    // MARK: the flight recorder

    private func makeFlightRecording(user: InvokingUser?) -> FlightRecording {
        let owner = trace_file_owner_identity(
            uid: user.map { Int($0.uid) } ?? -1, gid: user.map { Int($0.gid) } ?? -1,
            groups: user?.groups.map { UInt32($0) } ?? [])
        do {
            return try FlightRecording(
                limits: flight.limits, owner: owner, minAutomaticGapNs: flight.minDumpIntervalNs, onDisk: flight.keepOnDisk)
        } catch {
            fail("\(error)", exitCode: 1)
        }
    }

    // MARK: the trace file

    /// Creates the file with its header: as the invoking user under sudo, never through a planted
    /// symlink or hard link, never re-moding or re-owning a file it did not create (issue 13).
    private func createTrace(path: String, pid: Int32, program: String, owner: InvokingUser?) throws -> Int32 {
        var created: Int32 = 0
        var why: UnsafePointer<CChar>?
        let groups = owner?.groups.map { UInt32($0) } ?? []
        let fd = groups.withUnsafeBufferPointer { g in
            var identity = trace_file_owner(
                uid: owner.map { Int($0.uid) } ?? -1, gid: owner.map { Int($0.gid) } ?? -1,
                groups: g.baseAddress, group_count: g.count)
            return trace_open_output(path, 1, 0, &identity, &created, &why)
        }
        guard fd >= 0 else {
            let as_ = owner.map { " as uid \($0.uid) (the user who ran sudo)" } ?? ""
            let reason = why.map { "refusing to overwrite it: " + String(cString: $0) } ?? systemError()
            fail("cannot create \(path)\(as_): \(reason); choose another path with -o", exitCode: 1)
        }
        let header = FileHeader(
            pid: UInt32(pid), monotonicStartNs: monotonicNowNs(),
            realtimeStartNs: realtimeNowNs(), program: program
        ).encode()
        guard write(fd, header, header.count) == header.count else {
            fail("cannot write \(path): \(systemError())", exitCode: 1)
        }
        return fd
    }

    /// Disk space for the note of what could not be written (`trace_open_reserve`); -1 if the filesystem
    /// cannot give it (then a disk-full recording's file cannot say what it lost; `record`'s summary still does).
    private func openReserve(traceFD: Int32, path: String, owner: InvokingUser?) -> Int32 {
        let groups = owner?.groups.map { UInt32($0) } ?? []
        return groups.withUnsafeBufferPointer { g in
            var identity = trace_file_owner(
                uid: owner.map { Int($0.uid) } ?? -1, gid: owner.map { Int($0.gid) } ?? -1,
                groups: g.baseAddress, group_count: g.count)
            // 64 KiB covers any block size; a nearly full (or tiny) filesystem may still give 8 KiB.
            for bytes in [64 << 10, 8 << 10] {
                let fd = trace_open_reserve(traceFD, path, &identity, bytes)
                if fd >= 0 || errno != ENOSPC { return fd }
            }
            return -1
        }
    }

    /// When events could not be written (disk full), frees the reserve and appends the note of them, so the
    /// report says what the file lacks (an `unwrittenNote` chunk: TraceFormat's UnwrittenNote).
    private func appendUnwrittenNote(
        traceFD: Int32, reserve: inout Int32, path: String, pid: Int32,
        userLost: (events: UInt64, errno: Int32)?, kernelLost: (events: UInt64, errno: Int32)?, end: ProgramEnd = ProgramEnd()
    ) {
        let user = userLost?.events ?? 0
        let kernel = kernelLost?.events ?? 0
        guard traceFD >= 0, user > 0 || kernel > 0 || end.processesNotFlushed > 0 || end.signal > 0 else { return }
        if reserve >= 0 {
            close(reserve)
            reserve = -1
        }
        let error = (userLost?.events ?? 0) > 0 ? userLost!.errno : kernelLost?.errno ?? 0
        let chunk = UnwrittenNote(
            userEvents: user, kernelEvents: kernel, errno: error, processesNotFlushed: end.processesNotFlushed, programSignal: end.signal
        )
        .encodeChunk(pid: UInt32(bitPattern: pid), atNs: monotonicNowNs())
        var done = 0
        while done < chunk.count {
            let n = chunk.withUnsafeBytes { write(traceFD, $0.baseAddress! + done, chunk.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                note(
                    "cannot write the note of the lost events to \(path) either (\(systemError())): "
                        + "the report cannot show this loss, only this summary does")
                return
            }
            done += n
        }
    }

    /// Prints the summary line (and what was lost, if anything); returns whether events were lost
    /// because the file could not be written.
    private func printSummary(
        path: String, startNs: UInt64, kernel: KernelProbeStatistics?, probesOn: Bool,
        userLost: (events: UInt64, errno: Int32)?, kernelLost: (events: UInt64, errno: Int32)?, end: ProgramEnd
    ) -> Bool {
        let seconds = Double(monotonicNowNs() &- startNs) / 1e9
        let counts = TraceSummary.scan(path: path)
        let userDropped = counts.userDropped &+ (userLost?.events ?? 0)
        let kernelDropped = (kernel?.dropped ?? counts.kernelDropped) &+ (kernelLost?.events ?? 0)
        var line = "asynctrace: wrote \(path) (\(formatSeconds(seconds)); "
        line += "\(counts.userEvents) program events, "
        line += probesOn ? "\(counts.kernelEvents) kernel events; " : "no kernel events; "
        // A recorder that never wrote its buffers lost a number nobody can know: not "0".
        line += "dropped: \(userDropped)\(end.processesNotFlushed > 0 ? " + unknown" : "") program, \(probesOn ? String(kernelDropped) : "-") kernel)"
        if let k = kernel, let unseen = k.switchInsNotSeenText { line += "; " + unseen }
        if counts.damaged { line += "; warning: the file has a damaged chunk" }
        note(line)
        if let notFlushed = end.notFlushedLine { note(notFlushed + " (the report says so too)") }
        var lost = false
        for (side, loss) in [("program", userLost), ("kernel", kernelLost)] {
            guard let loss, loss.events > 0 else { continue }
            lost = true
            note(
                "lost \(loss.events) \(side) events that could not be written to \(path): "
                    + "\(String(cString: strerror(loss.errno))); the trace is incomplete (its report says so)")
        }
        return lost
    }
}

// MARK: - helpers

/// How the program ended, and which recorders of its tree never wrote their buffers (from the shared counters).
struct ProgramEnd {
    /// The signal that killed the program (0: it exited).
    var signal: Int32 = 0
    /// The program's exit code when it exited.
    var exitCode: Int32 = 0
    /// Recorders (one per process) that started and did not write their buffers at the end.
    var processesNotFlushed: UInt64 = 0
    /// Whether the program's own recorder is one of them.
    var programNotFlushed = false

    init() {}

    init(status: Int32, counters: trace_loss_counters?) {
        signal = status & 0x7f
        exitCode = (status >> 8) & 0xff
        guard let c = counters else { return }
        // Each flushed recorder was started first; a crafted page cannot make this wrap.
        processesNotFlushed = c.recorders_started > c.recorders_flushed ? c.recorders_started - c.recorders_flushed : 0
        programNotFlushed = c.root_state & TRACE_RECORDER_STARTED != 0 && c.root_state & TRACE_RECORDER_FLUSHED == 0
    }

    /// The loss to say, or nil: which processes ended without writing their buffers, and that how much is unknown.
    var notFlushedLine: String? {
        guard processesNotFlushed > 0 else { return nil }
        var who: String
        if programNotFlushed {
            let how =
                signal != 0
                ? "killed by \(SignalNames.name(signal))" : "exited with status \(exitCode) without running the recorder's exit handler: _exit"
            who = "the program (\(how))"
            if processesNotFlushed > 1 { who += " and \(processesNotFlushed - 1) other process\(processesNotFlushed == 2 ? "" : "es") it started" }
        } else {
            who = "\(processesNotFlushed) process\(processesNotFlushed == 1 ? "" : "es") the program started"
        }
        return "\(who) ended without writing the recorder's buffers: the events its threads held since their last "
            + "written chunk are lost, how many is unknown"
    }
}

private func invokingUser() -> InvokingUser? {
    switch InvokingUser.fromSudo() {
    case .success(let u): return u
    case .failure(let why): fail("\(why.description); unset it or run asynctrace without sudo", exitCode: 64)
    }
}

private struct SudoEnvironmentError: Error {
    var description: String
}

/// Under sudo: the user who ran sudo, so the program never runs as root by accident.
private struct InvokingUser {
    var uid: Int32
    var gid: Int32
    var groups: [gid_t]
    var name: String?
    var home: String?

    /// SUDO_UID/SUDO_GID when running as root; a value that is not a plain user id is an error
    /// (the environment can be crafted), root's own uid 0 means no change.
    static func fromSudo() -> Result<InvokingUser?, SudoEnvironmentError> {
        guard geteuid() == 0, let uText = getenv("SUDO_UID").map({ String(cString: $0) }) else { return .success(nil) }
        let gText = getenv("SUDO_GID").map { String(cString: $0) } ?? ""
        func id(_ t: String) -> Int32? {
            guard !t.isEmpty, t.count <= 10, t.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt32(t),
                v < UInt32(Int32.max)
            else { return nil }
            return Int32(v)
        }
        guard let u = id(uText) else { return .failure(SudoEnvironmentError(description: "SUDO_UID=\(uText) is not a user id")) }
        guard let g = id(gText) else { return .failure(SudoEnvironmentError(description: "SUDO_GID=\(gText) is not a group id")) }
        if u == 0 { return .success(nil) }
        var user = InvokingUser(uid: u, gid: g, groups: [], name: nil, home: nil)
        if let pw = getpwuid(uid_t(u)) {
            user.name = String(cString: pw.pointee.pw_name)
            user.home = String(cString: pw.pointee.pw_dir)
            var count: Int32 = 64
            var list = [gid_t](repeating: 0, count: Int(count))
            if getgrouplist(pw.pointee.pw_name, gid_t(g), &list, &count) == -1 {
                list = [gid_t](repeating: 0, count: Int(count))
                _ = getgrouplist(pw.pointee.pw_name, gid_t(g), &list, &count)
            }
            user.groups = Array(list.prefix(Int(max(count, 0))))
        } else {
            user.groups = [gid_t(g)]
        }
        return .success(user)
    }

    /// HOME, USER and LOGNAME of the user, not root's.
    func adjust(_ env: [String]) -> [String] {
        var out = env.filter { !$0.hasPrefix("HOME=") && !$0.hasPrefix("USER=") && !$0.hasPrefix("LOGNAME=") }
        if let home { out.append("HOME=\(home)") }
        if let name { out += ["USER=\(name)", "LOGNAME=\(name)"] }
        return out
    }
}

extension KernelProbeStatistics {
    /// "1 off-CPU switch-in not seen by the kernel's sched_switch tracepoint (thread 123, 3.20 ms unknown)"; nil: none.
    var switchInsNotSeenText: String? {
        guard switchInsNotSeen > 0 else { return nil }
        let named = switchInsNotSeenThreads
        return Formatting.switchInsNotSeen(
            switchInsNotSeen, threads: named.map { "tid \($0)" }, moreThreads: switchInsNotSeenThreadCount - named.count,
            unknownNs: switchInsNotSeenNs)
    }
}

/// What the finished trace holds, as the reader indexes it (chunk headers; payloads are not decoded).
private struct TraceSummary {
    var userEvents: UInt64 = 0
    var kernelEvents: UInt64 = 0
    var userDropped: UInt64 = 0
    var kernelDropped: UInt64 = 0
    var damaged = false

    static func scan(path: String) -> TraceSummary {
        var s = TraceSummary()
        guard let reader = try? TraceReader(path: path) else {
            s.damaged = true
            return s
        }
        for stream in reader.streams {
            if stream.isKernel {
                s.kernelEvents &+= stream.eventCount
            } else {
                s.userEvents &+= stream.eventCount
            }
        }
        s.userDropped = reader.droppedUser
        s.kernelDropped = reader.droppedKernel
        s.damaged = !reader.damage.isEmpty
        return s
    }
}

private func note(_ message: String) {
    var line = message
    if !line.hasPrefix("asynctrace: ") { line = "asynctrace: " + line }
    line += "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// Prints `message` and exits with `exitCode`.
private func fail(_ message: String, exitCode: Int32) -> Never {
    note(message)
    exit(exitCode)
}

private func systemError() -> String { String(cString: strerror(errno)) }

private func currentEnvironment() -> [String] {
    var out: [String] = []
    var p = environ
    while let entry = p.pointee {
        out.append(String(cString: entry))
        p += 1
    }
    return out
}

private func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buf, buf.count) != nil else { return path }
    let cwd = String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return (cwd == "/" ? "" : cwd) + "/" + path
}

private func realtimeNowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The program line for the header: arguments joined, quoted where needed.
private func programLine(_ args: [String]) -> String {
    args.map { a in
        a.isEmpty || a.contains(where: { " \t\n'\"\\$`".contains($0) })
            ? "'" + a.replacingAll("'", with: "'\\''") + "'" : a
    }.joined(separator: " ")
}

/// /proc/PID/cmdline as a program line ("" if unreadable).
private func commandLine(of pid: Int32) -> String {
    let fd = open("/proc/\(pid)/cmdline", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 4096)
    let n = read(fd, &buf, buf.count)
    guard n > 0 else { return "" }
    return programLine(buf[0..<n].split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
}

private func formatSeconds(_ s: Double) -> String {
    s < 10 ? "\((s * 1000).rounded() / 1000) s" : "\((s * 10).rounded() / 10) s"
}

private extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
