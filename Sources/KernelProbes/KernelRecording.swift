// Probes + trace writer: what `asynctrace record` (and the tests) drive from one thread.
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// CLOCK_MONOTONIC now, in ns (the clock of every trace time).
package func monotonicNowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The kernel side of `asynctrace record`: drains a `KernelProbeSession` and writes its events as
/// the trace's kernel stream (with what /proc showed of the traced root at the start). Use from one thread.
public final class KernelRecording {
    /// The probes being drained.
    public let session: KernelProbeSession
    /// The writer of the kernel stream (its counters say what was written and lost).
    public private(set) var writer: KernelTraceWriter
    /// Every batch of events as it arrives (in ring order), before it is written.
    public var onEvents: ((ArraySlice<KernelEvent>) -> Void)?
    /// Pending events are written at least this often (ns), or sooner when many are pending.
    public var flushIntervalNs: UInt64 = 100_000_000
    private var lastFlushNs: UInt64 = 0
    private let rootPid: Int32
    /// Processes other than `rootPid` already running when tracing began (`--pid`'s descendants):
    /// their threads and fds are read from /proc too.
    public var otherPidsAtStart: [Int32] = []
    private let createdNs: UInt64
    private var snapshotTaken = false
    /// What /proc showed, held until the first write, and when it was read.
    private var snapshot: [KernelEvent] = []
    private var snapshotReadNs: UInt64 = 0
    /// When the latest poll of the ring began.
    private var pollStartNs: UInt64 = 0
    /// The processes' titles (argv rewritten), read from /proc at attach and after forks.
    private var titles = ProcessTitleWatch()
    /// Processes not given titles because too many were watched.
    public var processesWithoutTitles: UInt64 { titles.notTracked }
    /// The untraced threads that woke traced ones, named once each from /proc.
    private var wakers = WakerNames()
    /// The traced processes alive as far as the stream says (the root, those at start, forks minus exits): at
    /// the end, their threads still off a CPU get their episode so far. At most 65,536 are kept.
    private var livePids = Set<UInt32>()
    /// Every traced process seen (at most 65,536), with what tells its perf map from a stale one: their maps are
    /// copied into the trace at the end (`PerfMapCopy`).
    private var perfMapOwners: [UInt32: PerfMapOwner] = [:]
    /// Copy the traced processes' perf maps into the trace (at the end, and into flight dumps).
    package var copiesPerfMaps = true
    /// Where perf maps are read.
    package var perfMapDirectory = "/tmp"
    /// Perf maps copied into the trace at the end.
    package private(set) var perfMapsCopied = 0
    /// Copies of a perf map (at the end, or into a flight dump) that stopped short of its end.
    package private(set) var perfMapsCut = 0

    /// Writes the kernel stream of the process tree rooted at `rootPid` to `traceFD` (O_APPEND).
    /// The threads and fds `rootPid` has when the first events are pumped (a launched program has
    /// exec'd by then) are read from /proc and written as if seen when the recording was created,
    /// which is before tracing began, except those the probes saw made before the read; anything
    /// the probes see later supersedes them.
    public init(session: KernelProbeSession, traceFD: Int32, rootPid: Int32) {
        self.session = session
        self.writer = KernelTraceWriter(fd: traceFD, rootPid: UInt32(rootPid))
        self.writer.sampleTables = session.samples.tables
        self.rootPid = rootPid
        self.createdNs = monotonicNowNs()
        self.lastFlushNs = createdNs
    }

    /// Flight recorder: the kernel stream's chunks go to `sink` instead of the trace file.
    public func recordForFlight(retentionNs: UInt64, sink: @escaping ([UInt8]) -> Void) {
        writer.recordForFlight(retentionNs: retentionNs, sink: sink)
    }

    /// See `KernelTraceWriter.stateChunk`.
    public func flightStateChunk(atNs: UInt64) -> [UInt8] { writer.stateChunk(atNs: atNs) }

    /// For a flight dump whose window starts at `atNs`: the traced processes' perf maps now
    /// (`KernelTraceWriter.perfMapChunk`; nil: none). Maps cut to fit are counted in `perfMapsCut`.
    package func flightPerfMapChunk(atNs: UInt64) -> [UInt8]? {
        guard let (chunk, cut) = writer.perfMapChunk(perfMaps(), atNs: atNs) else { return nil }
        perfMapsCut += cut
        return chunk
    }

    /// The perf maps of every traced process seen that are theirs (`PerfMapCopy`), by pid.
    private func perfMaps() -> [(pid: UInt32, text: [UInt8])] {
        guard copiesPerfMaps else { return [] }
        var out: [(pid: UInt32, text: [UInt8])] = []
        for pid in perfMapOwners.keys.sorted() {
            guard let owner = perfMapOwners[pid], let map = PerfMapCopy.read(pid: pid, owner: owner, directory: perfMapDirectory),
                !map.text.isEmpty
            else { continue }
            out.append((pid, map.text))
            if map.cut { perfMapsCut += 1 }
        }
        return out
    }

    /// CLOCK_REALTIME seconds at CLOCK_MONOTONIC `ns` (as the two clocks stand now).
    private func realtimeSeconds(ofMonotonicNs ns: UInt64) -> Double {
        var real = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        let now = monotonicNowNs()
        return Double(real.tv_sec) + Double(real.tv_nsec) / 1e9 - (Double(now) - Double(ns)) / 1e9
    }

    private func takeSnapshot() {
        guard !snapshotTaken else { return }
        snapshotTaken = true
        snapshot = ProcessSnapshot.events(pid: rootPid, timestampNs: createdNs)
        for pid in otherPidsAtStart { snapshot += ProcessSnapshot.events(pid: pid, timestampNs: createdNs) }
        for pid in [rootPid] + otherPidsAtStart where pid > 0 {
            if let owner = PerfMapCopy.owner(ofLiveProcess: UInt32(pid)) { perfMapOwners[UInt32(pid)] = owner }
        }
        // Parents first: each process is compared with its parent's command line if that is traced (the root's is not).
        for pid in [rootPid] + otherPidsAtStart {
            let parent = ProcessSnapshot.readSmallFile("/proc/\(pid)/stat", limit: 1024).flatMap(ProcessSnapshot.parentPid(stat:))
            if let e = titles.attach(pid: UInt32(pid), parent: UInt32(bitPattern: parent ?? 0), nowNs: createdNs) {
                snapshot.append(e)
            }
        }
        // After the read, not before: a thread made (or renamed) while /proc was being read shows
        // there with its new name, and its creation event must count as "seen before the read".
        snapshotReadNs = monotonicNowNs()
    }

    /// Before the first write: the snapshot joins the pending events, without what the probes saw
    /// made before /proc was read (a thread created, an fd opened since tracing began): /proc
    /// would show its later state at the earlier time. The first write waits for a poll begun after
    /// the read (`pump`), so the ring has delivered everything up to it.
    private func mergeSnapshot() {
        guard !snapshot.isEmpty else { return }
        let found = snapshot, readNs = snapshotReadNs, onEvents = self.onEvents
        snapshot = []
        writer.receive { pending in
            var seenThreads = Set<UInt64>(), seenFds = Set<UInt64>()
            for e in pending where e.timestampNs <= readNs {
                let key = UInt64(e.pid) << 32
                if e.kind == .threadName { seenThreads.insert(key | UInt64(e.tid)) }
                if e.kind == .fdOpen { seenFds.insert(key | UInt64(UInt32(bitPattern: e.fd))) }
            }
            let before = pending.count
            for e in found {
                let key = UInt64(e.pid) << 32
                if e.kind == .threadName && seenThreads.contains(key | UInt64(e.tid)) { continue }
                if e.kind == .fdOpen && seenFds.contains(key | UInt64(UInt32(bitPattern: e.fd))) { continue }
                pending.append(e)
            }
            if pending.count > before { onEvents?(pending[before...]) }
        }
    }

    /// Waits up to `timeoutMs` for events, then writes those old enough to be in order. What cannot
    /// be written is counted in `writer.eventsLost`.
    public func pump(timeoutMs: Int32) {
        let session = self.session, onEvents = self.onEvents
        pollStartNs = monotonicNowNs()
        var forksAndExits: [KernelEvent] = []
        var wakers = self.wakers
        writer.receive { pending in
            let before = pending.count
            if session.poll(timeoutMs: timeoutMs, into: &pending) > 0 {
                wakers.name(&pending, from: before, isTraced: session.isTraced(pid:))
                onEvents?(pending[before...])
                forksAndExits = pending[before...].filter { $0.kind == .processFork || $0.kind == .processExit }
            }
        }
        self.wakers = wakers
        takeSnapshot()  // first: a child forked before it is compared with its parent as read there
        watchProcesses(forksAndExits)
        rereadTitles(nowNs: monotonicNowNs())
        // Not before a poll that began after /proc was read (the next pump): what the probes saw made
        // or renamed between this poll and the read is not pending yet, and the snapshot would give such
        // a thread its later name at the recording's start (a loaded first pump, later than the flush
        // interval, wrote the snapshot right away: threadsHaveTheirNamesAndTheirReads saw gt-sleeper first).
        guard snapshot.isEmpty || pollStartNs > snapshotReadNs else { return }
        let now = monotonicNowNs()
        if now - lastFlushNs >= flushIntervalNs || writer.pendingCount >= 1 << 18 {
            mergeSnapshot()
            writer.flush(nowNs: now, droppedCumulative: session.statistics.dropped)
            lastFlushNs = now
        }
    }

    /// Forks and exits of `events` start and end the watch of a process's title, and its place among the live.
    private func watchProcesses(_ events: [KernelEvent]) {
        for e in events {
            if e.kind == .processFork {
                titles.forked(parent: e.pid, child: e.childPid, nowNs: e.timestampNs)
                if livePids.count < 65_536 { livePids.insert(e.childPid) }
                // A child has its parent's user (until an exec of a set-uid program, whose map is then refused) and
                // starts at the fork: no /proc read, it may be gone already.
                if let parent = perfMapOwners[e.pid], perfMapOwners.count < 65_536 {
                    perfMapOwners[e.childPid] = PerfMapOwner(uid: parent.uid, startedAtSeconds: realtimeSeconds(ofMonotonicNs: e.timestampNs))
                }
            }
            if e.kind == .processExit {
                titles.exited(pid: e.pid)
                livePids.remove(e.pid)
            }
        }
    }

    /// Re-reads the titles due by `nowNs` and adds what changed to the pending events.
    private func rereadTitles(nowNs: UInt64) {
        guard titles.anyDue(nowNs: nowNs) else { return }
        let found = titles.reread(nowNs: nowNs)
        guard !found.isEmpty else { return }
        let onEvents = self.onEvents
        writer.receive { pending in
            let before = pending.count
            pending.append(contentsOf: found)
            onEvents?(pending[before...])
        }
    }

    /// Stops the probes, drains the ring, writes everything left with a final chunk, and frees
    /// the probes.
    @discardableResult
    public func finish() -> KernelProbeStatistics {
        takeSnapshot()
        let stopNs = monotonicNowNs()
        session.stop()  // else a busy process (a grandchild, an attached pid) keeps the ring full
        var empty = 0
        let session = self.session, onEvents = self.onEvents
        while empty < 2 {
            var got = 0
            var forksAndExits: [KernelEvent] = []
            var wakers = self.wakers
            writer.receive { pending in
                let before = pending.count
                got = session.poll(timeoutMs: 0, into: &pending)
                if got > 0 {
                    // (The probes are stopped, not closed: the bitmap still says who was traced.)
                    wakers.name(&pending, from: before, isTraced: session.isTraced(pid:))
                    onEvents?(pending[before...])
                    forksAndExits = pending[before...].filter { $0.kind == .processFork || $0.kind == .processExit }
                }
            }
            self.wakers = wakers
            watchProcesses(forksAndExits)
            empty = got == 0 ? empty + 1 : 0
            if writer.pendingCount >= 1 << 18 {
                mergeSnapshot()
                writer.flush(nowNs: monotonicNowNs(), droppedCumulative: session.statistics.dropped)
            }
        }
        // Children forked lately are read once more now, whatever their delay: they may not be later.
        rereadTitles(nowNs: .max)
        // The threads asleep (or waiting for a CPU) at the end: their episodes so far, which no switch-in will write.
        var pids = livePids
        pids.insert(UInt32(bitPattern: rootPid))
        for p in otherPidsAtStart where p > 0 { pids.insert(UInt32(p)) }
        let open = session.episodesOpenAtStop(pids: pids.filter { session.isTraced(pid: $0) }.sorted(), stopNs: stopNs)
        if !open.isEmpty {
            writer.receive { pending in
                let before = pending.count
                pending.append(contentsOf: open)
                onEvents?(pending[before...])
            }
        }
        let stats = session.statistics
        session.close()
        mergeSnapshot()
        // Every traced process's perf map as it is now (a JVM writes its map at exit): the trace names its JIT
        // frames without /tmp, where the map may be another process's by the time of the report.
        let maps = perfMaps()
        perfMapsCopied = maps.count
        writer.writePerfMaps(maps, startNs: createdNs)
        writer.flush(nowNs: monotonicNowNs(), droppedCumulative: stats.dropped, final: true)
        return stats
    }
}
