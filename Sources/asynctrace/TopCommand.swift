// `asynctrace top`: a live view of a recording in progress, refreshed every interval. It follows a
// trace file as it grows (TraceFollower), or records itself by running `asynctrace record` on a
// program or a pid and following that file; the analyses are the report's (LiveTraceAnalysis).
import ArgumentParser
import TraceAnalyses
import TraceFormat
import TraceReader
import TraceReports
#if canImport(Glibc)
import Glibc
#endif

struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Live view of a recording: loops, threads, callbacks/s, the slowest callbacks and stalls, resources alive.",
        discussion: """
            asynctrace top app.atrace      follow a trace file while it is being recorded
            asynctrace top -- ./app args   record the program (as `record` does) and
                                           show it live
            asynctrace top --pid 1234      attach to the flight recorder of process
                                           1234 (`record --flight-recorder`; the
                                           recorder's pid or its program's), else
                                           record the process's kernel events

            Attached to a flight recorder, top first gets the window it keeps (as a dump would hold it), then \
            every chunk as the recorder takes it; the recording goes on unchanged when top quits, and a top \
            that cannot keep up is cut off by the recorder (never the other way round).

            Every interval (default 1 s) the view shows, for the events of that interval: each loop thread's \
            utilization and iteration p99, the threads (on CPU, blocked, runnable, and the syscall they were \
            blocked in most), callbacks per second by resource type, the slowest callbacks and loop stalls \
            with their syscalls (and stacks when recorded), and the resources alive by type. A callback shows \
            once it has ended and its thread's events reached the file (within 0.2 s of its end); the view \
            holds events back 0.3 s so threads' events arrive in time order.

            Keys: s cycles the threads' order (CPU, blocked, syscalls, name); c, b, y, n choose it; p or space \
            pauses the display (recording and analysis go on); q or Ctrl-C quits. The terminal is restored on \
            every exit, also on SIGTERM, SIGHUP and crashes.

            When standard output is not a terminal (or with --plain), one block of text is printed per \
            interval; following a file, top ends when every stream of the recording has ended; recording, \
            when the program ends.

            When top records, the trace is kept (default asynctrace-top-<pid>.atrace; -o to choose) so it can \
            be read afterwards with `asynctrace report`; the program's output and record's messages are \
            shown after the view closes (in --plain mode, as they come, on standard error). Quitting stops \
            the recording as Ctrl-C stops `record` (SIGINT to the program, which record forwards).

            Exit status: 0 the view ended normally (recording: the program's own status if it ended by \
            itself); 1 the trace cannot be followed (not a trace, unreadable) or recording failed to start; \
            64 invalid command line.
            """
    )

    @Option(name: .shortAndLong, help: "When recording: the trace file to write (default: asynctrace-top-<pid>.atrace).")
    var output: String?

    @Option(
        help:
            "Attach to the flight recorder of this process (the recorder's or its program's pid), else record the process's kernel events, and show them live."
    )
    var pid: Int32?

    @Flag(name: .customLong("no-kernel"), help: "When recording a program: do not attach the kernel probes.")
    var noKernel = false

    @Option(help: ArgumentHelp("Refresh interval (e.g. 1s, 500ms; 100ms to 1h).", valueName: "duration"))
    var interval: String = "1s"

    @Option(help: ArgumentHelp("Callbacks and stalls at least this long are marked blocking.", valueName: "duration"))
    var threshold: String = "10ms"

    @Option(help: "Rows per table (the terminal view fits them to the screen).")
    var rows: Int = 10

    @Flag(help: "Print one block of text per interval even on a terminal.")
    var plain = false

    @Option(help: "Stop after this many intervals.")
    var count: Int?

    @Argument(parsing: .captureForPassthrough, help: "A trace file to follow, or -- and the program to record with its arguments.")
    var arguments: [String] = []

    mutating func validate() throws {
        if arguments.first == "--help" || arguments.first == "-h" { throw CleanExit.helpRequest(self) }
        guard let iv = Quantities.duration(interval), iv >= 100_000_000, iv <= 3_600_000_000_000 else {
            throw ValidationError("--interval '\(interval)' must be a duration between 100ms and 1h (e.g. 1s, 500ms)")
        }
        guard Quantities.duration(threshold) != nil else {
            throw ValidationError("--threshold '\(threshold)' is not a duration; use for example 10ms, 250us or 1s")
        }
        guard rows >= 1 && rows <= 1_000 else { throw ValidationError("--rows must be between 1 and 1000") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        let program = arguments.first == "--"
        // captureForPassthrough hands on an option top does not have (`--duration 10s -- ./app`) as the first
        // argument: name it, rather than say a trace file or program is missing.
        if let first = arguments.first, first != "--", first.hasPrefix("-"), first.count > 1 {
            throw ValidationError("unknown option '\(first)' (see asynctrace top --help; --count N stops after N intervals)")
        }
        if pid != nil && !arguments.isEmpty { throw ValidationError("give either --pid, a trace file or -- and a program, not more than one") }
        if program && arguments.count < 2 { throw ValidationError("missing the program to record after --") }
        if !program && arguments.count > 1 {
            throw ValidationError("give one trace file to follow, or put the program to record after -- (asynctrace top -- ./app args)")
        }
        if pid == nil && arguments.isEmpty { throw ValidationError("give a trace file to follow, -- and a program to record, or --pid") }
        if (output != nil || noKernel) && pid == nil && !program {
            throw ValidationError("-o and --no-kernel apply only when top records (-- program or --pid)")
        }
        if pid != nil && noKernel { throw ValidationError("--pid records kernel events only; it cannot be combined with --no-kernel") }
    }

    func run() throws {
        let intervalNs = Quantities.duration(interval)!
        var options = AnalysisOptions()
        options.blockingThresholdNs = Quantities.duration(threshold)!
        options.top = rows
        let recording = pid != nil || arguments.first == "--"
        let path = recording ? (output ?? "asynctrace-top-\(getpid()).atrace") : arguments[0]
        let terminal = !plain && isatty(1) != 0
        LiveTerminal.installStopHandlers()

        // --pid of a flight recorder (or of the program it records): attach to its live feed.
        if let pid, let socket = FlightAddress.connectToRecorder(for: pid, live: true) {
            if output != nil { writeStderr("asynctrace top: -o is ignored: attached to a flight recorder, which writes only its dumps\n") }
            let feed: FlightFeedClient
            do {
                feed = try FlightFeedClient(socket: socket)
            } catch {
                Self.fail(error.message)
            }
            var view = LiveSession(
                path: feed.path, intervalNs: intervalNs, options: options, terminal: terminal, rows: rows,
                count: count, recorder: nil, feed: feed)
            view.text.source = "attached to the flight recorder of pid \(pid)"
            throw ExitCode(view.run())
        }

        var recorder: RecordChild? = nil
        if recording {
            // If top is killed (even with SIGKILL), record stops the program and finishes the trace.
            var args = ["record", "-o", path, "--stop-with-parent", String(getpid())]
            if let pid { args += ["--pid", String(pid)] }
            if noKernel { args.append("--no-kernel") }
            if arguments.first == "--" { args += ["--"] + arguments.dropFirst() }
            do {
                recorder = try RecordChild(arguments: args, passOutput: !terminal)
            } catch {
                Self.fail("cannot start recording: \(error.message)")
            }
        }
        var view = LiveSession(
            path: path, intervalNs: intervalNs, options: options, terminal: terminal, rows: rows,
            count: count, recorder: recorder, feed: nil)
        let status = view.run()
        throw ExitCode(status)
    }

    static func fail(_ message: String) -> Never {
        liveRestoreTerminal()
        writeStderr("asynctrace top: \(message)\n")
        Glibc.exit(1)
    }
}

/// The view's loop: follow, analyse, draw, read keys.
struct LiveSession {
    let path: String
    let intervalNs: UInt64
    let terminal: Bool
    let maxIntervals: Int?
    var recorder: RecordChild?
    /// Attached to a flight recorder: its live feed, which `path` (a file in memory) receives.
    let feed: FlightFeedClient?
    var live: LiveTraceAnalysis
    var text = LiveTextOptions()
    var follower: TraceFollower?
    var last: LiveInterval?
    var intervals = 0
    var keys = false
    var ended = false

    init(
        path: String, intervalNs: UInt64, options: AnalysisOptions, terminal: Bool, rows: Int, count: Int?, recorder: RecordChild?,
        feed: FlightFeedClient?
    ) {
        self.feed = feed
        self.path = path
        self.intervalNs = intervalNs
        self.terminal = terminal
        self.maxIntervals = count
        self.recorder = recorder
        live = LiveTraceAnalysis(options: options)
        text.rows = rows
        text.source = recorder == nil ? "following \(path)" : "recording to \(path)"
    }

    static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    mutating func run() -> Int32 {
        if feed != nil { drainFeed() }
        if recorder == nil { openFollower(mustExist: true) }
        if terminal { keys = LiveTerminal.enter() }
        var next = Self.nowNs() + intervalNs
        var quit = false
        while !quit {
            if liveStopSignal != 0 { break }
            let now = Self.nowNs()
            if now < next || ended {
                let wait = ended ? 1_000 : Int32(min(1_000, (next - now) / 1_000_000 + 1))
                let pressed = LiveTerminal.readKeys(timeoutMs: wait, keys: keys, extraFD: recorder?.pollFD ?? feed?.pollFD ?? -1)
                recorder?.drainOutput()
                drainFeed()
                if liveResized != 0 {
                    liveResized = 0
                    redraw()
                }
                for k in pressed {
                    switch k {
                    case UInt8(ascii: "q"), UInt8(ascii: "Q"), 3, 4: quit = true
                    case UInt8(ascii: "p"), UInt8(ascii: " "): text.paused.toggle()
                    case UInt8(ascii: "s"): text.sort = text.sort.next
                    case UInt8(ascii: "c"): text.sort = .cpu
                    case UInt8(ascii: "b"): text.sort = .blocked
                    case UInt8(ascii: "y"): text.sort = .syscalls
                    case UInt8(ascii: "n"): text.sort = .name
                    default: continue
                    }
                    redraw(force: true)
                }
                if ended && !terminal { break }
                continue
            }
            next = max(next + intervalNs, now + intervalNs / 2)
            tick()
            intervals += 1
            if let m = maxIntervals, intervals >= m { break }
            if ended && !terminal { break }
        }
        return finish()
    }

    /// One interval: read what the recording appended, analyse it, show it.
    mutating func tick() {
        recorder?.drainOutput()
        drainFeed()
        let recorderDone = recorder?.poll() ?? feed?.ended ?? false
        if follower == nil { openFollower(mustExist: false) }
        if let f = follower {
            let grew = poll(f)
            // Nothing new: nothing more is coming soon, so hand out what is held back.
            live.consume(f, all: recorderDone || !grew)
            feed?.discard(below: f.discardableBelow)
            if recorder == nil && feed == nil && !grew && f.allStreamsEnded && f.chunksWaiting == 0 && f.pendingBytes == 0 { ended = true }
        }
        if recorderDone { ended = true }
        if var i = live.interval(wallSeconds: Double(intervalNs) / 1e9) {
            // The program runs on this machine: what its stalled threads do now.
            if !ended { i.inProgress = StallsInProgress.check(i) }
            last = i
        }
        if ended {
            let keysHint = terminal ? " q quits." : ""
            if feed != nil {
                text.status = "The flight recorder ended its feed (the program exited, or it stopped).\(keysHint)"
            } else {
                text.status =
                    recorder.map { "The recording ended (\($0.exitDescription)); the trace is in \(path).\(keysHint)" }
                    ?? "The recording ended (every stream wrote its final chunk).\(keysHint)"
            }
        }
        show()
    }

    func drainFeed() {
        guard let feed else { return }
        do {
            try feed.drain()
        } catch {
            TopCommand.fail(error.message)
        }
    }

    mutating func poll(_ f: TraceFollower) -> Bool {
        do {
            return try f.poll()
        } catch {
            stopRecorder()
            TopCommand.fail("cannot follow \(path): \(error.description)")
        }
    }

    mutating func openFollower(mustExist: Bool) {
        do {
            follower = try TraceFollower(path: path)
        } catch {
            if case .noSuchFile = error, !mustExist { return }
            stopRecorder()
            TopCommand.fail("cannot follow \(path): \(error.description)")
        }
    }

    func screenLines() -> [String] {
        var o = text
        guard let last else {
            var l = ["asynctrace top (\(o.source))", "waiting for events…"]
            if let s = o.status { l.append(s) }
            return l
        }
        if terminal {
            let (height, _) = LiveTerminal.size()
            // 5 tables or lists and ~14 fixed lines share the screen.
            o.rows = max(2, min(o.rows, (height - 16) / 5))
            if o.status == nil { o.status = "keys: s sort  c/b/y/n cpu/blocked/syscalls/name  p pause  q quit" }
        }
        return LiveText.render(last, options: o)
    }

    func show() {
        if terminal {
            if !text.paused { redraw() }
        } else if last != nil {
            writeOut(screenLines().joined(separator: "\n") + "\n\n")
        }
    }

    func redraw(force: Bool = false) {
        guard terminal, force || !text.paused else { return }
        let (rows, columns) = LiveTerminal.size()
        LiveTerminal.draw(screenLines(), rows: rows, columns: columns)
    }

    mutating func stopRecorder() {
        recorder?.stop()
    }

    mutating func finish() -> Int32 {
        liveRestoreTerminal()
        var status: Int32 = 0
        if var r = recorder {
            let endedByItself = r.finished
            r.stop()
            if terminal { r.printOutputTail() }
            writeStderr("asynctrace top: the trace is in \(path) (asynctrace report \(path))\n")
            if endedByItself { status = r.exitStatus }
            recorder = r
        }
        return status
    }
}

/// `asynctrace record` run as a child of top, writing the file top follows. Its output (and the
/// program's) comes through a pipe, so it never writes over the view.
struct RecordChild {
    let pid: pid_t
    let outputFD: Int32
    /// False once record and the program closed their output (the pipe then stays readable at EOF).
    private(set) var outputOpen = true
    var pollFD: Int32 { outputOpen ? outputFD : -1 }
    let passOutput: Bool
    private(set) var finished = false
    private(set) var rawStatus: Int32 = 0
    private var tail: [UInt8] = []

    struct SpawnError: Error { let message: String }

    init(arguments: [String], passOutput: Bool) throws(SpawnError) {
        self.passOutput = passOutput
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError(message: String(cString: strerror(errno))) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Its own process group: a Ctrl-C on the terminal reaches top only, which stops record once
        // (a second SIGINT would make record escalate to SIGTERM).
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGWINCH] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let exe = "/proc/self/exe"
        let argv: [UnsafeMutablePointer<CChar>?] = (["asynctrace"] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, exe, &actions, &attr, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw SpawnError(message: String(cString: strerror(rc)))
        }
        pid = child
        outputFD = fds[0]
    }

    /// Reads what record and the program wrote; passes it on (plain mode) or keeps the last 16 KiB.
    mutating func drainOutput() {
        var buf = [UInt8](repeating: 0, count: 65_536)
        while outputOpen {
            let n = read(outputFD, &buf, buf.count)
            if n == 0 {
                outputOpen = false
                close(outputFD)
            }
            if n <= 0 { return }
            if passOutput {
                buf.withUnsafeBytes { _ = write(2, $0.baseAddress, n) }
            } else {
                tail.append(contentsOf: buf[0..<n])
                if tail.count > 16_384 { tail.removeFirst(tail.count - 16_384) }
            }
        }
    }

    /// Whether record has exited (reaps it).
    mutating func poll() -> Bool {
        guard !finished else { return true }
        var st: Int32 = 0
        if waitpid(pid, &st, WNOHANG) == pid {
            finished = true
            rawStatus = st
        }
        return finished
    }

    var exitStatus: Int32 {
        let sig = rawStatus & 0x7F
        return sig == 0 ? (rawStatus >> 8) & 0xFF : 128 + sig
    }

    var exitDescription: String {
        let sig = rawStatus & 0x7F
        return sig == 0 ? "record exited with status \(exitStatus)" : "record was killed by signal \(sig)"
    }

    /// Stops the recording as Ctrl-C stops `record`, then harder if it does not end.
    mutating func stop() {
        guard !poll() else { return }
        for (sig, waitMs) in [(SIGINT, 5_000), (SIGTERM, 2_000), (SIGKILL, 2_000)] {
            kill(pid, sig)
            var waited = 0
            while waited < waitMs {
                drainOutput()
                if poll() { return }
                usleep(20_000)
                waited += 20
            }
        }
    }

    func printOutputTail() {
        guard !tail.isEmpty else { return }
        writeStderr("asynctrace top: output of record and the program (last \(tail.count) bytes):\n")
        tail.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        if tail.last != UInt8(ascii: "\n") { writeStderr("\n") }
    }
}
