// The public face of the recorder: start, stop, statistics, and the crash and exit paths.
@_spi(Recorder) import AsyncHooks
import CRecorderSupport
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// The in-process recorder: start and stop a recording of this process's hook events into a trace file,
/// its statistics; the file is flushed at exit and on a crash (fatal signal).
public enum TraceRecorder {
    /// Starts recording when `ASYNCTRACE_OUTPUT` is set (as `asynctrace record` does); a no-op
    /// otherwise or when already recording. Runtimes call this once at start-up.
    /// `ASYNCTRACE_APPEND=1` appends to a file whose header someone else wrote;
    /// `ASYNCTRACE_BUFFER_SIZE` (bytes, with an optional K/M/G suffix) sets the in-flight memory.
    @discardableResult
    public static func startFromEnvironment() -> Bool {
        if let flight = environment("ASYNCTRACE_FLIGHT_FD") {
            if isRecording { return true }
            return startFlight(fdText: flight)
        }
        guard let out = environment("ASYNCTRACE_OUTPUT"), !out.isEmpty else { return false }
        if isRecording { return true }
        var options = RecorderOptions()
        options.append = environment("ASYNCTRACE_APPEND") == "1"
        if let b = environment("ASYNCTRACE_BUFFER_SIZE").flatMap({ parseSize($0) }) { options.bufferBytes = b }
        if let p = creationStacksFromEnvironment() { options.creationStacks = p }
        do {
            try start(path: out, options: options)
            // Children inherit ASYNCTRACE_OUTPUT: they must append to this file, not truncate it.
            // (Only here: a program that starts recording from code keeps its environment as is.)
            if !options.append { setenv("ASYNCTRACE_APPEND", "1", 1) }
            return true
        } catch {
            writeStderr("asynctrace: not recording: \(error)\n")
            return false
        }
    }

    /// Starts recording into `path` (created mode 0600, or appended to with `options.append`).
    /// An existing file is used only if it is a regular file with one link, owned by this process's
    /// user, and a symlink as the last component is never followed; its mode is left as it is.
    public static func start(path: String, options: RecorderOptions = RecorderOptions()) throws {
        try Recorder.lock.withLock { started in
            if started { throw RecorderError(description: "already recording") }
            _ = CRC32C.checksum([0])  // build the CRC tables now, not in a signal handler
            var created: Int32 = 0
            var why: UnsafePointer<CChar>?
            let fd = trace_open_output(path, options.append ? 0 : 1, options.append ? 1 : 0, nil, &created, &why)
            if fd < 0 {
                let reason = why.map { String(cString: $0) } ?? String(cString: strerror(errno))
                throw RecorderError(description: "cannot open \(path): \(reason)")
            }
            if !options.append {
                let header = FileHeader(
                    pid: UInt32(getpid()), monotonicStartNs: trace_clock_monotonic_ns(),
                    realtimeStartNs: trace_clock_realtime_ns(),
                    program: CommandLine.arguments.joined(separator: " "))
                let bytes = header.encode()
                guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
                    close(fd)
                    throw RecorderError(description: "cannot write \(path): \(String(cString: strerror(errno)))")
                }
            }
            begin(Recorder(fd: fd, path: path, options: options))
            started = true
        }
    }

    /// Under `asynctrace record --flight-recorder`: chunks go as messages to the recorder's socket
    /// (ASYNCTRACE_FLIGHT_FD, inherited: a SOCK_SEQPACKET socket, anything else is refused), which
    /// keeps the last window and writes dumps.
    static func startFlight(fdText: String) -> Bool {
        guard let fd = Int32(fdText), fd > 2, trace_is_seqpacket_socket(fd) != 0 else {
            writeStderr("asynctrace: not recording: ASYNCTRACE_FLIGHT_FD=\(fdText) is not the flight recorder's socket\n")
            return false
        }
        Recorder.lock.withLock { started in
            if started { return }
            _ = CRC32C.checksum([0])
            var options = RecorderOptions()
            if let b = environment("ASYNCTRACE_BUFFER_SIZE").flatMap({ parseSize($0) }) { options.bufferBytes = b }
            if let p = creationStacksFromEnvironment() { options.creationStacks = p }
            if let ns = environment("ASYNCTRACE_DUMP_ON_BLOCK").flatMap({ UInt64($0) }), ns > 0 {
                // The threshold in TSC ticks: the hook compares ticks, never reading the clock for it.
                var t0: UInt64 = 0, n0: UInt64 = 0, t1: UInt64 = 0, n1: UInt64 = 0
                trace_clock_pair(&t0, &n0)
                usleep(5_000)
                trace_clock_pair(&t1, &n1)
                Recorder.ticksPerNs = n1 > n0 && t1 > t0 ? Double(t1 - t0) / Double(n1 - n0) : 1
                Recorder.blockThresholdTicks = UInt64(min(Double(ns) * Recorder.ticksPerNs, 1.8e19))
            }
            begin(Recorder(fd: fd, path: "the flight recorder", options: options, sendsMessages: true))
            started = true
        }
        return true
    }

    /// With the lock held: makes `r` the recorder and starts it.
    private static func begin(_ r: Recorder) {
        r.lossCounters = environment("ASYNCTRACE_LOSS_FD").flatMap { Int32($0) }.flatMap { trace_loss_counters_attach($0) }
        // Counted as started now, as flushed when it writes its buffers at the end: `record` tells a process
        // that ended without (_exit, SIGKILL) from one that had nothing left.
        trace_loss_counters_recorder(r.lossCounters, 0)
        Recorder.streamKey = makeStreamKey()
        let recording = (Recorder.flushEpoch.load(ordering: .relaxed) >> Recorder.recordingShift) + 1
        Recorder.flushEpoch.store(recording << Recorder.recordingShift, ordering: .relaxed)
        Recorder.shared = r
        CreationStacks.policy = r.options.creationStacks
        r.startWriter()
        if !exitHandlersInstalled {
            installExitHandlers()
            exitHandlersInstalled = true
        }
        AsyncHooks.enable(r.hook)
    }

    /// Stops recording and closes the file; every event so far is written (or counted as dropped).
    public static func stop() {
        Recorder.lock.withLock { started in
            guard started, let r = Recorder.shared else { return }
            r.stop()
            started = false
            stoppedStatistics = r.statistics
            // `shared` keeps the stopped recorder (never freed, not set to nil): a thread still inside a
            // hook call it entered before `disable` may yet reach for it, and must find a stopped
            // recorder (running == false), not nil.
        }
    }

    /// Whether a recording is running in this process.
    public static var isRecording: Bool { Recorder.lock.withLock { $0 } }

    /// Counters of the current recording (or of the last one, after `stop`).
    public static var statistics: RecorderStatistics {
        Recorder.lock.withLock { started in started ? (Recorder.shared?.statistics ?? stoppedStatistics) : stoppedStatistics }
    }

    nonisolated(unsafe) static var exitHandlersInstalled = false
    nonisolated(unsafe) static var stoppedStatistics = RecorderStatistics(
        eventsWritten: 0, eventsDropped: 0,
        chunksWritten: 0, bytesWritten: 0)

    /// Under `asynctrace record --flight-recorder`: asks the recorder to write the window it keeps
    /// (what happened up to now, from every thread and the kernel) to a new trace file, as SIGUSR1
    /// or `asynctrace dump` would. Returns at once; false when not recording for a flight recorder.
    @discardableResult
    public static func dump() -> Bool {
        Recorder.lock.withLock { started in
            guard started, let r = Recorder.shared, r.sendsMessages else { return false }
            Recorder.flushEpoch.add(1, ordering: .relaxed)
            let now = trace_clock_monotonic_ns()
            r.sendControl(kind: 1, startNs: now, endNs: now)
            return true
        }
    }

    /// Hands every thread's partly filled chunk to the writer at its next event.
    public static func requestFlush() { Recorder.flushEpoch.add(1, ordering: .relaxed) }

    /// An environment variable, except in a privileged (set-user-ID) process.
    static func environment(_ name: String) -> String? {
        trace_secure_getenv(name).map { String(cString: $0) }
    }

    /// ASYNCTRACE_CREATION_STACKS: off, handles (the default), all, or handles+N; what cannot be read is said.
    static func creationStacksFromEnvironment() -> CreationStackPolicy? {
        guard let text = environment("ASYNCTRACE_CREATION_STACKS"), !text.isEmpty else { return nil }
        guard let p = CreationStackPolicy(parsing: text) else {
            writeStderr("asynctrace: ignoring ASYNCTRACE_CREATION_STACKS=\(text): use off, handles, all or handles+N (one promise in N)\n")
            return nil
        }
        return p
    }

    /// ASYNCTRACE_BUFFER_SIZE: the same syntax as `record --buffer-size`; what cannot be read is
    /// said, not ignored silently.
    static func parseSize(_ s: String) -> Int? {
        guard let n = Quantities.byteSize(s), n <= UInt64(Int.max) else {
            writeStderr("asynctrace: ignoring ASYNCTRACE_BUFFER_SIZE=\(s): not a size (e.g. 64MiB, 512K)\n")
            return nil
        }
        return Int(n)
    }
}

// MARK: exit and crash paths

func installExitHandlers() {
    atexit { TraceRecorder.stop() }
    // Neither handler takes a lock or allocates: a crash may happen inside malloc or while another thread
    // holds AsyncHooks' registry lock (and a fork may copy that lock taken), where AsyncHooks.disable
    // would wait forever.
    trace_install_fatal_handlers { _ in
        guard let r = Recorder.shared else { return }
        r.stopEmitting()
        r.emergencyFlush()
    }
    pthread_atfork(nil, nil) {
        // A forked child runs no writer thread: it stops recording instead of corrupting the file.
        guard let r = Recorder.shared else { return }
        r.inForkedChild = true
        r.stopEmitting()
    }
}
