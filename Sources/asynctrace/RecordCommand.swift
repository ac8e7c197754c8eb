// `asynctrace record`: run a program (or attach to one) and write one trace file holding the
// program's own events (its recorder appends them) and the kernel probes' events.
import ArgumentParser
import KernelProbes
import TraceFormat
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
            file belongs to that user. SIGINT, SIGTERM and SIGHUP sent to asynctrace are forwarded to the program.

            With --pid, the kernel probes attach to a running process (and the processes it forks from then \
            on) until --duration ends, the process exits, or Ctrl-C.

            Exit status: the program's own (128+N if it was killed by signal N); 127: the program was not \
            found; 126: it could not be executed; 64: invalid command line; 1: asynctrace itself failed \
            (cannot write the trace file, --pid without kernel probes or without such a process).
            """
    )

    @Option(name: .shortAndLong, help: "The trace file to write (default: asynctrace-<pid>.atrace).")
    var output: String?

    @Flag(name: .customLong("no-kernel"), help: "Do not attach the kernel probes.")
    var noKernel = false

    @Option(name: .customLong("buffer-size"),
            help: "Kernel ring buffer size, a power of two (e.g. 16M, 64MiB; default 16M).")
    var bufferSize: String?

    @Option(help: "Attach the kernel probes to this running process instead of starting a program.")
    var pid: Int32?

    @Option(help: "With --pid: stop after this long (e.g. 10s, 500ms, 2m; default: until Ctrl-C or exit).")
    var duration: String?

    @Argument(parsing: .captureForPassthrough, help: "The program and its arguments (after --).")
    var command: [String] = []

    mutating func validate() throws {
        // The passthrough argument also takes `record --help`.
        if command.first == "--help" || command.first == "-h" { throw CleanExit.helpRequest(self) }
        if command.first == "--" { command.removeFirst() }
        if pid != nil && !command.isEmpty { throw ValidationError("give either --pid or a program, not both") }
        if pid == nil && command.isEmpty { throw ValidationError("missing the program to run") }
        if pid != nil && noKernel { throw ValidationError("--pid records kernel events only; it cannot be combined with --no-kernel") }
        if duration != nil && pid == nil { throw ValidationError("--duration goes with --pid") }
        if let d = duration, parseDuration(d) == nil { throw ValidationError("cannot read duration '\(d)' (e.g. 10s, 500ms, 2m)") }
        if let b = bufferSize {
            guard let n = parseSize(b) else { throw ValidationError("cannot read buffer size '\(b)' (e.g. 16M, 64MiB)") }
            guard n >= 4096, n & (n - 1) == 0, n <= 1 << 31 else {
                throw ValidationError("the buffer size must be a power of two between 4K and 2G, not \(b)")
            }
        }
    }

    func run() throws {
        let options = KernelProbeOptions(ringBytes: bufferSize.flatMap(parseSize) ?? KernelProbeOptions().ringBytes)
        if let pid {
            try attach(to: pid, options: options)
        } else {
            try launch(options: options)
        }
    }

    // MARK: running a program

    private func launch(options: KernelProbeOptions) throws {
        let user = InvokingUser.fromSudo()
        let program: String
        switch ProgramLookup.resolve(command[0], searchPath: getenv("PATH").map { String(cString: $0) }) {
        case .success(let p): program = p
        case .failure(let e): fail(e.description, exitCode: e.exitCode)
        }

        var session: KernelProbeSession?
        if !noKernel {
            do {
                session = try KernelProbeSession(options: options)
            } catch {
                note("\(error.description); recording the program's own events only")
            }
        }

        // The child is forked (held) before the file exists, so the file can carry its pid; it
        // learns the file's path when released.
        var environment = currentEnvironment().filter {
            !$0.hasPrefix("ASYNCTRACE_OUTPUT=") && !$0.hasPrefix("ASYNCTRACE_APPEND=")
        }
        environment.append("ASYNCTRACE_APPEND=1")
        if let user { environment = user.adjust(environment) }
        let child: HeldProcess
        do {
            child = try HeldProcess(path: program, arguments: command, environment: environment, uid: user?.uid,
                                    gid: user?.gid, groups: user?.groups ?? [])
        } catch {
            fail(error.description, exitCode: error.exitCode)
        }
        let path = absolutePath(output ?? "asynctrace-\(child.pid).atrace")
        let fd: Int32
        do {
            fd = try createTrace(path: path, pid: child.pid, program: programLine(command), owner: user)
        } catch {
            child.abandon()
            var st: Int32 = 0
            waitpid(child.pid, &st, 0)
            throw error
        }
        defer { close(fd) }

        let recording = session.map { KernelRecording(session: $0, traceFD: fd, rootPid: child.pid) }
        session?.trace(pid: child.pid)
        RecordingSignals.catchSignals(forwardingTo: child.pid)
        let start = monotonicNowNs()
        do {
            try child.release(extraEnvironment: "ASYNCTRACE_OUTPUT=\(path)")
        } catch {
            var st: Int32 = 0
            waitpid(child.pid, &st, 0)
            unlink(path)  // nothing was recorded
            if error == .goneBeforeExec {  // e.g. a SIGTERM forwarded while it was held
                fail("\(error.description) (status \(exitStatus(st)))", exitCode: exitStatus(st))
            }
            fail(error.description, exitCode: error.exitCode)
        }

        var status: Int32 = 0
        var writeError: TraceWriteError?
        while true {
            if let recording, writeError == nil {
                do { try recording.pump(timeoutMs: 50) } catch { writeError = error }
                let r = waitpid(child.pid, &status, WNOHANG)
                if r == child.pid || (r < 0 && errno != EINTR) { break }
            } else {
                let r = waitpid(child.pid, &status, 0)
                if r == child.pid || (r < 0 && errno != EINTR) { break }
            }
        }
        var stats: KernelProbeStatistics?
        if let recording, writeError == nil {
            do { stats = try recording.finish() } catch { writeError = error }
        }
        if let writeError { note("\(writeError.description); the kernel events after that point are lost") }
        printSummary(path: path, startNs: start, kernel: stats, probesOn: recording != nil)
        throw ExitCode(exitStatus(status))
    }

    /// The program's exit status as a shell reports it: 128+N when killed by signal N.
    private func exitStatus(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }

    // MARK: attaching to a running process

    private func attach(to pid: Int32, options: KernelProbeOptions) throws {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { fail("no process \(pid)", exitCode: 1) }
        let session: KernelProbeSession
        do {
            session = try KernelProbeSession(options: options)
        } catch {
            fail("\(error.description); --pid records kernel events only, so there is nothing to record", exitCode: 1)
        }
        let user = InvokingUser.fromSudo()
        let path = absolutePath(output ?? "asynctrace-\(pid).atrace")
        let fd = try createTrace(path: path, pid: pid, program: commandLine(of: pid), owner: user)
        defer { close(fd) }
        let recording = KernelRecording(session: session, traceFD: fd, rootPid: pid)
        RecordingSignals.catchSignals()
        let start = monotonicNowNs()
        let limit = duration.flatMap(parseDuration).map { start + $0 }
        session.trace(pid: pid)
        var exited = false
        recording.onEvents = { events in
            if events.contains(where: { $0.kind == .processExit && $0.pid == UInt32(pid) }) { exited = true }
        }
        note("recording kernel events of process \(pid) into \(path)"
             + (limit == nil ? " until it exits or Ctrl-C" : " for \(duration!)"))
        while !exited && RecordingSignals.last == 0 {
            if let limit, monotonicNowNs() >= limit { break }
            do { try recording.pump(timeoutMs: 50) } catch { fail(error.description, exitCode: 1) }
            if kill(pid, 0) != 0 && errno == ESRCH { exited = true }
        }
        let stats: KernelProbeStatistics
        do { stats = try recording.finish() } catch { fail(error.description, exitCode: 1) }
        printSummary(path: path, startNs: start, kernel: stats, probesOn: true)
    }

    // MARK: the trace file

    /// Creates the file (mode 0600, owned by the invoking user under sudo) with its header.
    private func createTrace(path: String, pid: Int32, program: String, owner: InvokingUser?) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { fail("cannot create \(path): \(systemError())", exitCode: 1) }
        fchmod(fd, 0o600)  // an existing file keeps its mode through O_CREAT
        if let owner, fchown(fd, uid_t(owner.uid), gid_t(owner.gid)) != 0 {
            fail("cannot give \(path) to uid \(owner.uid): \(systemError())", exitCode: 1)
        }
        let header = FileHeader(pid: UInt32(pid), monotonicStartNs: monotonicNowNs(),
                                realtimeStartNs: realtimeNowNs(), program: program).encode()
        guard write(fd, header, header.count) == header.count else {
            fail("cannot write \(path): \(systemError())", exitCode: 1)
        }
        return fd
    }

    private func printSummary(path: String, startNs: UInt64, kernel: KernelProbeStatistics?, probesOn: Bool) {
        let seconds = Double(monotonicNowNs() - startNs) / 1e9
        let counts = TraceSummary.scan(path: path)
        var line = "asynctrace: wrote \(path) (\(formatSeconds(seconds)); "
        line += "\(counts.userEvents) program events, "
        line += probesOn ? "\(counts.kernelEvents) kernel events; " : "no kernel events; "
        line += "dropped: \(counts.userDropped) program, \(probesOn ? String(kernel?.dropped ?? counts.kernelDropped) : "-") kernel)"
        if counts.damaged { line += "; warning: the file has a damaged chunk" }
        note(line)
    }
}

// MARK: - helpers

/// Under sudo: the user who ran sudo, so the program never runs as root by accident.
private struct InvokingUser {
    var uid: Int32
    var gid: Int32
    var groups: [gid_t]
    var name: String?
    var home: String?

    static func fromSudo() -> InvokingUser? {
        guard geteuid() == 0, let u = getenv("SUDO_UID").flatMap({ Int32(String(cString: $0)) }),
              let g = getenv("SUDO_GID").flatMap({ Int32(String(cString: $0)) }), u != 0 else { return nil }
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
        }
        return user
    }

    /// HOME, USER and LOGNAME of the user, not root's.
    func adjust(_ env: [String]) -> [String] {
        var out = env.filter { !$0.hasPrefix("HOME=") && !$0.hasPrefix("USER=") && !$0.hasPrefix("LOGNAME=") }
        if let home { out.append("HOME=\(home)") }
        if let name { out += ["USER=\(name)", "LOGNAME=\(name)"] }
        return out
    }
}

/// Chunk headers of a finished trace, summed (payloads are skipped, not decoded).
private struct TraceSummary {
    var userEvents: UInt64 = 0
    var kernelEvents: UInt64 = 0
    var userDropped: UInt64 = 0
    var kernelDropped: UInt64 = 0
    var damaged = false

    static func scan(path: String) -> TraceSummary {
        var s = TraceSummary()
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return s }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 40 + TraceFileFormat.maxProgramBytes)
        let n = pread(fd, &head, head.count, 0)
        guard n > 0, case .success(let (_, headerLength)) = head.withUnsafeBytes({
            FileHeader.decode(UnsafeRawBufferPointer(rebasing: $0[0..<n]))
        }) else { s.damaged = true; return s }
        var offset = off_t(headerLength)
        var droppedByStream: [UInt64: UInt64] = [:]  // (pid << 32 | tid) -> cumulative
        var chunk = [UInt8](repeating: 0, count: TraceFileFormat.chunkHeaderSize)
        while true {
            let r = pread(fd, &chunk, chunk.count, offset)
            if r == 0 { break }
            guard r == chunk.count, let h = chunk.withUnsafeBytes({ ChunkHeader.load(from: $0.baseAddress!) }) else {
                s.damaged = true
                break
            }
            if h.isKernel {
                s.kernelEvents += UInt64(h.eventCount)
                s.kernelDropped = max(s.kernelDropped, h.droppedCumulative)
            } else {
                s.userEvents += UInt64(h.eventCount)
                let key = UInt64(h.pid) << 32 | UInt64(h.tid)
                droppedByStream[key] = max(droppedByStream[key] ?? 0, h.droppedCumulative)
            }
            offset += off_t(chunk.count) + off_t(h.payloadLength)
        }
        s.userDropped = droppedByStream.values.reduce(0, +)
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

/// "10s", "500ms", "2m", "1.5", "100us" -> ns.
private func parseDuration(_ text: String) -> UInt64? {
    let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
    var number = Substring(text)
    var scale = 1e9
    for (suffix, s) in units where text.hasSuffix(suffix) {
        number = text.dropLast(suffix.count)
        scale = s
        break
    }
    guard let v = Double(number), v >= 0, v.isFinite else { return nil }
    return UInt64(v * scale)
}

/// "16M", "64MiB", "4096", "1G", "512k" -> bytes.
private func parseSize(_ text: String) -> UInt64? {
    var t = text.uppercased()
    for suffix in ["IB", "B"] where t.hasSuffix(suffix) && t.count > suffix.count {
        t = String(t.dropLast(suffix.count))
        break
    }
    var scale: UInt64 = 1
    if let last = t.last, let s = ["K": UInt64(1) << 10, "M": 1 << 20, "G": 1 << 30][String(last)] {
        scale = s
        t.removeLast()
    }
    guard let v = UInt64(t), v <= UInt64.max / scale else { return nil }
    return v * scale
}

private func formatSeconds(_ s: Double) -> String {
    s < 10 ? "\((s * 1000).rounded() / 1000) s" : "\((s * 10).rounded() / 10) s"
}

private extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
