// The recorder: per-thread streams, a background writer, and the trace file.
// Starts from ASYNCTRACE_OUTPUT (how `asynctrace record` hands over) or from code.
@_spi(Recorder) import AsyncHooks
import CRecorderSupport
import Synchronization
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Why recording could not start (already recording, the file cannot be opened or written), in one line.
public struct RecorderError: Error, CustomStringConvertible, Sendable {
    /// The line to show.
    public let description: String
}

/// Counters of a recording, readable at any time.
public struct RecorderStatistics: Sendable, Equatable {
    /// Events in chunks written to the file.
    public var eventsWritten: UInt64
    /// Events dropped: buffers full, or in chunks that could not be written.
    public var eventsDropped: UInt64
    /// Chunks written.
    public var chunksWritten: UInt64
    /// Bytes of chunks written (headers included).
    public var bytesWritten: UInt64
}

/// How a recording buffers and writes: chunk size, memory, flush interval, append, creation stacks.
public struct RecorderOptions: Sendable {
    /// Payload bytes per chunk.
    public var chunkBytes: Int = 64 << 10
    /// Memory for chunks in flight, all threads together; past it events are dropped and counted.
    public var bufferBytes: Int = 8 << 20
    /// How often partly filled chunks of active threads are handed to the writer.
    public var flushIntervalMs: Int = 200
    /// Append to an existing trace (its header written by `asynctrace record`) instead of creating one.
    public var append: Bool = false
    /// Which resources get a creation stack (where they were created); ASYNCTRACE_CREATION_STACKS
    /// sets it for `startFromEnvironment`.
    public var creationStacks = CreationStackPolicy()
    /// For tests: the writer sleeps this long per chunk, to exercise dropping.
    @_spi(Testing) public var writerDelayMicroseconds: Int = 0

    /// The defaults: 64 KiB chunks, 8 MiB in flight, a flush every 200 ms, a new file, `CreationStackPolicy()`.
    public init() {}
}

final class Recorder: @unchecked Sendable {
    nonisolated(unsafe) static var shared: Recorder! = nil
    nonisolated(unsafe) static var streamKey = pthread_key_t()
    /// Bumped to make every thread hand over its partly filled chunk; its bits from
    /// `recordingShift` up count recordings, so streams of an earlier recording are told apart.
    static let flushEpoch = Atomic<UInt64>(0)
    static let recordingShift: UInt64 = 40
    static let lock = LockedValue<Bool>(false)
    /// A callback longer than this (TSC ticks) is reported to the flight recorder (--dump-on-block);
    /// UInt64.max: not asked for. Set before the hook is enabled.
    nonisolated(unsafe) static var blockThresholdTicks = UInt64.max
    nonisolated(unsafe) static var ticksPerNs = 1.0
    let lastBlockReportNs = Atomic<UInt64>(0)

    let fd: Int32
    let path: String
    let options: RecorderOptions
    let chunkPayloadBytes: Int
    let queue: ChunkQueue
    let hook = RecorderHook()
    let droppedEvents = Atomic<UInt64>(0)
    let eventsWritten = Atomic<UInt64>(0)
    let chunksWritten = Atomic<UInt64>(0)
    let bytesWritten = Atomic<UInt64>(0)
    let running = Atomic<Bool>(true)
    /// False once the process crashed or forked: no thread starts a stream of this recording any more
    /// (`stopEmitting`, the lock-free and allocation-free stand-in for disabling the hook).
    let emitting = Atomic<Bool>(true)
    /// Set in a forked child (single-threaded then): the writer thread and the file are the parent's.
    nonisolated(unsafe) var inForkedChild = false
    /// Chunks the writer has taken from the queue and not yet written.
    let writing = Atomic<Int>(0)
    let writeErrorReported = Atomic<Bool>(false)
    let writeFailureMessage: [UInt8]
    /// `asynctrace record`'s counters of what could not be written (nil when not under record).
    nonisolated(unsafe) var lossCounters: UnsafeMutablePointer<trace_loss_counters>?
    let flushCounted = Atomic<Bool>(false)
    var writerThread = pthread_t()
    let pid: UInt32

    /// Registered streams, readable without a lock (signal handlers walk it).
    static let maxStreams = 4096
    let streams: UnsafeMutablePointer<Stream?>
    let streamCount = Atomic<Int>(0)
    /// `makeStream` calls under way (counted before they read `emitting`): `stop` waits for them, so a
    /// stream made while it stops is in `streams` when it looks, and is finished.
    let streamsBeingMade = Atomic<Int>(0)

    /// The fd is a flight recorder's socket: each chunk is one message (send, no SIGPIPE).
    let sendsMessages: Bool

    init(fd: Int32, path: String, options: RecorderOptions, sendsMessages: Bool = false) {
        self.fd = fd
        self.sendsMessages = sendsMessages
        self.path = path
        self.options = options
        self.chunkPayloadBytes = options.chunkBytes
        writeFailureMessage = Array("asynctrace: writing \(path) failed (disk full or I/O error); events are being dropped and counted\n".utf8)
        let bufferBytes = TraceFileFormat.chunkHeaderSize + options.chunkBytes
        queue = ChunkQueue(bufferBytes: bufferBytes, maxBuffers: max(4, options.bufferBytes / bufferBytes))
        streams = .allocate(capacity: Recorder.maxStreams)
        streams.initialize(repeating: nil, count: Recorder.maxStreams)
        pid = UInt32(getpid())
    }

    // MARK: streams

    /// This thread's stream, created on first use, with a hook call begun on it: the caller ends it with
    /// `leaveHook()` once its event is committed (so `stop` never seals a chunk being written).
    @inline(__always)
    static func currentStream() -> Stream? {
        guard let p = trace_current_stream() else { return makeStream() }
        let s = p.assumingMemoryBound(to: StreamState.self)
        // Counted before the epoch is read: stop changes the epoch first, then waits for the counts.
        trace_hook_enter(&s.pointee.hooksInProgress)
        let epoch = flushEpoch.load(ordering: .relaxed)
        if s.pointee.flushEpoch != epoch {
            // The top bits number the recording: a stream left from an earlier (or stopped) one is replaced.
            if s.pointee.flushEpoch >> recordingShift != epoch >> recordingShift {
                s.leaveHook()
                return makeStream()
            }
            s.rotate()
        }
        return s
    }

    /// This thread's stream as it is (nil before its first event; possibly of an ended recording),
    /// for events that only update deferred state.
    @inline(__always)
    static func existingStream() -> Stream? {
        trace_current_stream()?.assumingMemoryBound(to: StreamState.self)
    }

    @inline(never)
    static func makeStream() -> Stream? {
        guard let r = shared else { return nil }
        r.streamsBeingMade.add(1, ordering: .relaxed)
        defer { r.streamsBeingMade.subtract(1, ordering: .releasing) }
        guard r.running.load(ordering: .relaxed), r.emitting.load(ordering: .relaxed) else { return nil }
        let slot = r.streamCount.add(1, ordering: .relaxed).oldValue
        guard slot < maxStreams, let memory = r.queue.acquire() else {
            r.droppedEvents.add(1, ordering: .relaxed)
            return nil
        }
        let s = Stream.allocate(capacity: 1)
        s.initialize(
            to: StreamState(
                base: memory, cursor: memory, hooksInProgress: 1,  // the caller's hook call, as currentStream begins it
                limit: memory, end: memory, lastTicks: 0, shareStamp: false, deferredLoop: 0, prevAsyncID: 0,
                startTicks: 0, startNs: 0, eventCount: 0, nextStringID: 0, sequence: 0, droppedCumulative: 0,
                flushEpoch: flushEpoch.load(ordering: .relaxed), pid: r.pid, tid: trace_gettid(),
                stringChunk: .allocate(capacity: 1), stringID: .allocate(capacity: 1), stringCapacity: 0, slot: slot))
        s.beginChunk(memory)
        r.streams[slot] = s
        pthread_setspecific(streamKey, UnsafeMutableRawPointer(s))  // for the thread-exit hook
        trace_set_current_stream(UnsafeMutableRawPointer(s))
        // Identify the stream in its first chunk.
        if slot == 0 {
            let prog = RecorderStrings.intern(CommandLine.arguments.joined(separator: " "))
            let ref = s.stringRef(prog)
            var p = s.head(.processInfo)
            p = putVarint(UInt64(getppid()), at: p)
            p = putVarint(UInt64(ref), at: p)
            s.commit(p)
        }
        let ref = s.stringRef(RecorderStrings.intern(currentThreadName()))
        var p = s.head(.threadInfo)
        p = putVarint(UInt64(ref), at: p)
        s.commit(p)
        return s
    }

    /// Thread exit: the last chunk goes out marked final; the state is kept (signal handlers
    /// may still hold a pointer to it) but leaves the registry.
    static func streamExited(_ s: Stream) {
        guard let r = shared else { return }
        // As a hook call: either stop sees it and waits, or it sees stop (emitting off) and leaves the
        // stream to stop's own finish.
        trace_hook_enter(&s.pointee.hooksInProgress)
        defer { s.leaveHook() }
        guard r.emitting.load(ordering: .relaxed) else { return }
        r.finish(s)
    }

    func finish(_ s: Stream) {
        guard streams[s.pointee.slot] == s else { return }
        streams[s.pointee.slot] = nil
        if s.pointee.eventCount > 0 {
            var ticks: UInt64 = 0
            var ns: UInt64 = 0
            trace_clock_pair(&ticks, &ns)
            queue.submitFinal(s.pointee.pending(flags: [.final], endTicks: ticks, endNs: ns))
        } else {
            queue.recycle(s.pointee.base)
        }
    }

    // MARK: flight recorder

    /// Tells the flight recorder (record --flight-recorder) that a callback blocked for
    /// `lengthTicks`, ending now; at most one report per 100 ms. Never blocks.
    func reportBlock(lengthTicks: UInt64) {
        guard sendsMessages, running.load(ordering: .relaxed) else { return }
        let now = trace_clock_monotonic_ns()
        let last = lastBlockReportNs.load(ordering: .relaxed)
        guard now &- last >= 100_000_000,
            lastBlockReportNs.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged
        else { return }
        let lengthNs = UInt64(min(Double(lengthTicks) / Recorder.ticksPerNs, 1e18))
        sendControl(kind: 2, startNs: now &- min(lengthNs, now), endNs: now)
    }

    /// A 32-byte control message: "ATFLCTL1", kind, 0, startNs, endNs (the recorder's FlightControl).
    func sendControl(kind: UInt32, startNs: UInt64, endNs: UInt64) {
        var m: (UInt64, UInt32, UInt32, UInt64, UInt64) = (0, kind.littleEndian, 0, startNs.littleEndian, endNs.littleEndian)
        withUnsafeMutableBytes(of: &m) { raw in
            for (i, b) in "ATFLCTL1".utf8.enumerated() { raw[i] = b }
            _ = send(fd, raw.baseAddress, 32, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
    }

    // MARK: writer

    func startWriter() {
        let rc = pthread_create(
            &writerThread, nil,
            { _ in
                Recorder.shared.writerLoop()
                return nil
            }, nil)
        precondition(rc == 0, "asynctrace: cannot start the trace writer thread (\(rc))")
    }

    func writerLoop() {
        setThreadName(TraceFileFormat.recorderWriterThreadName)
        trace_block_async_signals()
        // For stop's barrier. Here, not in `start`: registering waits for an RCU grace period (10-16 ms
        // here), which the program's thread showed as a wait in every report; until it is done, stop's
        // barrier falls back to the global command.
        trace_process_barrier_register()
        var lastFlush = trace_clock_monotonic_ns()
        let interval = UInt64(max(1, options.flushIntervalMs)) * 1_000_000
        while true {
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            deadline.tv_nsec += 50_000_000
            if deadline.tv_nsec >= 1_000_000_000 {
                deadline.tv_sec += 1
                deadline.tv_nsec -= 1_000_000_000
            }
            _ = sem_timedwait(queue.ready, &deadline)
            // Counted from before the take: a crash handler that finds the queue empty waits for this batch.
            writing.add(1, ordering: .relaxed)
            let batch = queue.takeAll()
            writing.add(batch.count - 1, ordering: .relaxed)
            for c in batch {
                if options.writerDelayMicroseconds > 0 { usleep(UInt32(options.writerDelayMicroseconds)) }
                write(c)
                queue.recycle(c.memory)
                writing.subtract(1, ordering: .releasing)
            }
            let now = trace_clock_monotonic_ns()
            if now - lastFlush >= interval {
                lastFlush = now
                Recorder.flushEpoch.add(1, ordering: .relaxed)
            }
            if !running.load(ordering: .acquiring) {
                for c in queue.takeAll() { write(c) }
                return
            }
        }
    }

    /// Seals and writes one chunk with a single write() on the O_APPEND fd. Async-signal-safe
    /// apart from what the CRC tables need (built at start).
    func write(_ c: PendingChunk) {
        var h = c.header
        h.payloadLength = UInt32(c.length - TraceFileFormat.chunkHeaderSize)
        h.crc = 0
        let raw = UnsafeMutableRawPointer(c.memory)
        h.store(to: raw)
        h.crc = chunkCRC(raw, payloadLength: Int(h.payloadLength))
        h.store(to: raw)
        var done = 0
        while done < c.length {
            let n =
                sendsMessages
                ? send(fd, raw + done, c.length - done, Int32(MSG_NOSIGNAL))
                : Glibc.write(fd, raw + done, c.length - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                droppedEvents.add(UInt64(h.eventCount), ordering: .relaxed)
                trace_loss_counters_add(lossCounters, UInt64(h.eventCount), n < 0 ? errno : EIO)
                if !writeErrorReported.exchange(true, ordering: .relaxed) {
                    // Prepared at start: this may run in a fatal-signal handler, where allocating can deadlock.
                    writeFailureMessage.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress, $0.count) }
                }
                return
            }
            done += n
        }
        eventsWritten.add(UInt64(h.eventCount), ordering: .relaxed)
        chunksWritten.add(1, ordering: .relaxed)
        bytesWritten.add(UInt64(c.length), ordering: .relaxed)
    }

    var statistics: RecorderStatistics {
        RecorderStatistics(
            eventsWritten: eventsWritten.load(ordering: .relaxed),
            eventsDropped: droppedEvents.load(ordering: .relaxed),
            chunksWritten: chunksWritten.load(ordering: .relaxed),
            bytesWritten: bytesWritten.load(ordering: .relaxed))
    }

    /// From a fatal-signal handler or a forked child, where AsyncHooks.disable could wait forever for a
    /// registry lock held when the crash or the fork happened (and allocates): every thread's next event
    /// finds the recording's number changed and gets no stream, as after disabling the hook. Events
    /// already in progress on other threads finish, as they would after disable too.
    func stopEmitting() {
        emitting.store(false, ordering: .relaxed)
        Recorder.flushEpoch.add(1 << Recorder.recordingShift, ordering: .relaxed)
    }

    /// Stops recording: no new events, every stream's chunk written, the file closed.
    func stop() {
        if inForkedChild {
            // The parent records; this child's copies of its streams are not to be written, and the
            // writer thread to wait for does not exist here.
            running.store(false, ordering: .releasing)
            return
        }
        AsyncHooks.disable(hook)
        // A thread may be inside a hook it entered before `disable` (its chunk half written): no new
        // stream (emitting off) and a new epoch, then a barrier on every thread, then wait for each stream's
        // hook calls to end. Whatever entered before the barrier is counted; whatever after sees the epoch.
        stopEmitting()
        if trace_process_barrier() != 0 { usleep(20_000) }  // no membarrier: a grace period instead
        // A stream being made (its thread passed the emitting check before the barrier) is not in `streams`
        // yet: it would be skipped, and its chunks written without a final one (a loaded CI run of
        // stoppingWhileThreadsAreInsideHooksLeavesEveryChunkWhole: "1 of our streams have no final chunk").
        var spins = 0
        while streamsBeingMade.load(ordering: .acquiring) != 0 && spins < 1_000 {
            spins += 1
            if spins < 64 { sched_yield() } else { usleep(1_000) }
        }
        let n = min(streamCount.load(ordering: .relaxed), Recorder.maxStreams)
        for i in 0..<n {
            guard let s = streams[i] else { continue }
            if waitForHooks(s) {
                finish(s)
            } else {
                // A thread stopped inside a hook for a second (a debugger, SIGSTOP): its chunk is not
                // sealed under it; its events are counted as dropped instead.
                streams[i] = nil
                droppedEvents.add(UInt64(s.pointee.eventCount), ordering: .relaxed)
            }
        }
        running.store(false, ordering: .releasing)
        sem_post(queue.ready)
        pthread_join(writerThread, nil)
        close(fd)
        countFlushed()
    }

    /// Tells `record` this recorder wrote its buffers at the end, once (a fatal signal's flush and then the
    /// exit handler would count it twice, and hide another process that wrote nothing).
    func countFlushed() {
        if !flushCounted.exchange(true, ordering: .relaxed) { trace_loss_counters_recorder(lossCounters, 1) }
    }

    /// Whether the stream's thread left every hook call within a second (yielding the CPU meanwhile).
    private func waitForHooks(_ s: Stream) -> Bool {
        var spins = 0
        while trace_hook_count(&s.pointee.hooksInProgress) != 0 {
            spins += 1
            if spins > 1_000 { return false }
            if spins < 64 { sched_yield() } else { usleep(1_000) }
        }
        return true
    }

    /// From a fatal signal handler: write what every stream has. The only wait is for the writer
    /// thread's batch in progress (bounded): once the handler re-raises, those chunks would be lost.
    func emergencyFlush() {
        // A stopped recorder's fd is closed (its number may belong to another file by now); a forked
        // child's streams are copies of the parent's, which the parent writes.
        guard running.load(ordering: .acquiring), !inForkedChild else { return }
        let drained = queue.drainIfAvailable { write($0) }
        var waited = 0
        while writing.load(ordering: .acquiring) > 0 && waited < 2_000 {
            usleep(1_000)
            waited += 1
        }
        // Queued chunks behind a lock the crash left taken, or a writer stuck for 2 s, are lost: then this
        // process is not counted as flushed, and `record` says its recording ended with an unknown loss.
        let everythingHandedOver = drained && writing.load(ordering: .acquiring) == 0
        let n = min(streamCount.load(ordering: .relaxed), Recorder.maxStreams)
        for i in 0..<n {
            guard let s = streams[i], s.pointee.eventCount > 0 else { continue }
            var ticks: UInt64 = 0
            var ns: UInt64 = 0
            trace_clock_pair(&ticks, &ns)
            write(s.pointee.pending(flags: [.final], endTicks: ticks, endNs: ns))
            s.pointee.eventCount = 0
            s.pointee.cursor = s.pointee.base + TraceFileFormat.chunkHeaderSize
        }
        if everythingHandedOver { countFlushed() }
    }
}

/// The chunk's CRC32C (header with a zero CRC field, then payload; the header was just stored with
/// crc 0): the SSE4.2 instruction where the CPU has it, TraceFormat's software table otherwise.
func chunkCRC(_ chunk: UnsafeMutableRawPointer, payloadLength: Int) -> UInt32 {
    var ok: Int32 = 0
    let crc = trace_crc32c_hw(0, chunk, TraceFileFormat.chunkHeaderSize + payloadLength, &ok)
    if ok != 0 { return crc }
    return ChunkHeader.computeCRC(
        header: chunk,
        payload: UnsafeRawBufferPointer(
            start: chunk + TraceFileFormat.chunkHeaderSize,
            count: payloadLength))
}

extension StreamState {
    func pending(flags: ChunkFlags, endTicks: UInt64, endNs: UInt64) -> PendingChunk {
        PendingChunk(
            memory: base, length: cursor - base,
            header: ChunkHeader(
                flags: flags, eventCount: eventCount, pid: pid, tid: tid, sequence: sequence,
                startNs: startNs, endNs: max(endNs, startNs), startTicks: startTicks,
                endTicks: max(endTicks, lastTicks), droppedCumulative: droppedCumulative))
    }
}

/// Each recording gets its own key, so a thread's stream from an earlier recording in the
/// same process is never picked up again.
func makeStreamKey() -> pthread_key_t {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key) { p in
        if let p { Recorder.streamExited(p.assumingMemoryBound(to: StreamState.self)) }
    }
    precondition(rc == 0, "asynctrace: pthread_key_create failed (\(rc))")
    return key
}

/// Names recorded as strings (resource types, mark names, thread names) share the hooks'
/// interning table, so every name is a small integer on the hot path.
enum RecorderStrings {
    static func intern(_ s: String) -> UInt32 { ResourceTypeRegistry.intern(s) }
    static func name(of i: UInt32) -> String { ResourceTypeRegistry.name(of: i) }
}

func currentThreadName() -> String {
    var buf = [CChar](repeating: 0, count: 32)
    if trace_thread_name(&buf, buf.count) == 0 {
        let name = String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if !name.isEmpty { return name }
    }
    return "thread"
}

func setThreadName(_ name: String) { trace_set_thread_name(name) }

func writeStderr(_ s: String) {
    var bytes = Array(s.utf8)
    _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
}
