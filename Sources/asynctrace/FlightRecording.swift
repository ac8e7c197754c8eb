// `record --flight-recorder`: the program's chunks arrive as messages on a socket, the kernel
// stream's from the probes' writer, and both stay in one bounded window (TraceFlight) until a
// trigger writes it out as a trace file: SIGUSR1, `asynctrace dump`, the program
// (`TraceRecorder.dump()`), or a callback that blocked longer than --dump-on-block.
import CRecorderSupport
import KernelProbes
import Synchronization
import TraceFlight
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// Control messages on the program's socket (a chunk starts with the chunk magic instead).
enum FlightControl {
    static let magic: [UInt8] = Array("ATFLCTL1".utf8)
    static let dumpRequest: UInt32 = 1
    static let blocked: UInt32 = 2
}

/// Set by the SIGUSR1 handler.
let flightSignalled = Atomic<Int>(0)

final class FlightRecording: @unchecked Sendable {
    let ring: FlightRing
    private(set) var rootPid: Int32 = 0
    private(set) var program = ""
    /// Dump paths: `<stem>-<UTC time>.atrace`, stem from -o (".atrace" removed).
    private(set) var stem = "asynctrace"
    private var kernel: KernelRecording?
    let owner: trace_file_owner_identity
    /// Our end of the program's socket; the program inherits the other (`childFD`).
    let socketFD: Int32
    private(set) var childFD: Int32
    var kernelState: ((UInt64) -> [UInt8])?
    /// The traced processes' perf maps for a dump (`KernelRecording.flightPerfMapChunk`).
    var kernelPerfMaps: ((UInt64) -> [UInt8]?)?
    /// Wait this long after a trigger before dumping: the program's recorder hands partly filled
    /// chunks over every 200 ms, so the dump holds what happened up to the trigger.
    var settleNs: UInt64 = 300_000_000
    let minAutomaticGapNs: UInt64
    private(set) var dumps: [String] = []
    private(set) var dumpErrors = 0
    private var listeners: [Int32] = []
    /// `asynctrace top` attached: where viewers connect, and the feeds they get.
    private var liveListeners: [Int32] = []
    private var feeds: [FlightFeed] = []
    static let maxFeeds = 4
    private var waitingClients: [Int32] = []
    /// A dump asked for (SIGUSR1, `asynctrace dump`, the program) is due then.
    private var dueNs: UInt64?
    /// What asked for the dump that is due (said in its line).
    private var dueReasons: [String] = []
    /// --dump-on-block: the automatic dump that is due, the stalls that no dump holds yet, and when the
    /// last automatic dump was written (the next may come --min-dump-interval later).
    private var automaticDueNs: UInt64?
    private var stalls: [PendingStall] = []
    private var lastAutomaticNs: UInt64?
    private var automaticDueHeldBack = false
    private var automaticDueFirstNs: UInt64 = 0
    /// Stalls a dump holds already, or no dump will (a second report of one is not a new stall).
    private var recentStalls: [PendingStall] = []
    /// The program has ended and every chunk is in: a dump now holds what ended just before.
    private var finishing = false
    private(set) var stallCounts = StallCounts()
    static let maxPendingStalls = 10_000
    private var lastProgramRequestNs: UInt64 = 0
    private let requests = LockedRequests()
    /// --dump-on-block seen from the kernel: loop threads away from epoll_wait too long.
    private var stallWatch: LoopStallWatch?
    /// Set when every process of the program has closed its end of the socket.
    private let receiverDone = Atomic<Bool>(false)
    private var receiver = pthread_t()

    init(limits: FlightLimits, owner: trace_file_owner_identity, minAutomaticGapNs: UInt64, onDisk directory: String? = nil) throws {
        if let directory {
            let disk = try FlightDiskWindow(
                directory: directory, owner: FlightFileOwner(uid: owner.uid, gid: owner.gid, groups: owner.groups), recorderPid: getpid())
            ring = FlightRing(limits: limits, disk: disk)
            let others = disk.foreignSegments()
            if !others.isEmpty {
                note(
                    "\(directory) holds \(others.count) segment\(others.count == 1 ? "" : "s") of another recording (a recorder that was "
                        + "killed?): left as they are and not counted in --keep; `asynctrace dump --segments \(directory)` makes a trace of them")
            }
        } else {
            ring = FlightRing(limits: limits)
        }
        self.owner = owner
        self.minAutomaticGapNs = minAutomaticGapNs
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw FlightSetupError(description: "cannot create the flight recorder's socket: \(String(cString: strerror(errno)))")
        }
        socketFD = pair[0]
        childFD = pair[1]
        _ = fcntl(childFD, F_SETFD, 0)  // inherited by the program (and its children) on purpose
        // Room for many chunks in flight: the program's writer blocks (and then drops, counted)
        // only when we fall behind by this much.
        var size: Int32 = 8 << 20
        if setsockopt(childFD, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(4)) != 0 {
            _ = setsockopt(childFD, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(4))
        }
        if setsockopt(socketFD, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(4)) != 0 {
            _ = setsockopt(socketFD, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(4))
        }
    }

    /// Once the program's pid is known: what dumps are called and carry, and the kernel stream
    /// (its chunks go into the window).
    func configure(rootPid: Int32, program: String, output: String, kernel: KernelRecording?) {
        self.rootPid = rootPid
        self.program = program
        stem = output.hasSuffix(".atrace") ? String(output.dropLast(".atrace".count)) : output
        self.kernel = kernel
        ring.setSegmentHeader(
            FileHeader(pid: UInt32(rootPid), monotonicStartNs: monotonicNowNs(), realtimeStartNs: realtimeNs(), program: program))
        if let kernel {
            let ring = self.ring
            kernel.recordForFlight(retentionNs: (ring.limits.keepNs ?? FlightLimits.defaultKeepNs) &+ 60_000_000_000) { bytes in
                guard let h = bytes.withUnsafeBytes({ ChunkHeader.load(from: $0.baseAddress!) }) else { return }
                ring.add(FlightChunk(bytes: bytes, header: h), nowNs: monotonicNowNs())
            }
            kernelState = { kernel.flightStateChunk(atNs: $0) }
            kernelPerfMaps = { kernel.flightPerfMapChunk(atNs: $0) }
        }
    }

    /// --dump-on-block for loop stalls the kernel probes see (any epoll loop; --pid; Node.js).
    func watchLoopStalls(thresholdNs: UInt64) {
        stallWatch = LoopStallWatch(thresholdNs: thresholdNs)
    }

    /// The kernel stream's events as they arrive (from the record loop's thread).
    func kernelEvents(_ events: ArraySlice<KernelEvent>) {
        guard stallWatch != nil else { return }
        for st in stallWatch!.stalls(in: events) {
            requests.add(
                .blocked(
                    startNs: st.endNs &- st.durationNs, endNs: st.endNs, why: "a loop stall of \(milliseconds(st.durationNs)) on thread \(st.tid)"))
        }
    }

    /// After the program was forked: our copy of its end is closed (so the receiver sees the end
    /// of the stream once every process of the program has exited), the receiver thread and the
    /// control sockets start, and SIGUSR1 is caught.
    func start(recorderPid: Int32, tracedPid: Int32) {
        close(childFD)
        childFD = -1
        // Whoever started us may have SIGUSR1 blocked (the mask survives exec): the trigger must work.
        signal(SIGUSR1) { _ in flightSignalled.add(1, ordering: .relaxed) }
        var usr1 = sigset_t()
        sigemptyset(&usr1)
        sigaddset(&usr1, SIGUSR1)
        pthread_sigmask(SIG_UNBLOCK, &usr1, nil)
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(
            &receiver, nil,
            { p in
                let me = Unmanaged<FlightRecording>.fromOpaque(p!).takeRetainedValue()
                me.receive()
                return nil
            }, box)
        pthread_detach(receiver)
        for name in [FlightAddress.recorder(recorderPid), FlightAddress.traced(tracedPid)] {
            if let fd = FlightAddress.listen(name) { listeners.append(fd) }
        }
        for name in [FlightAddress.liveRecorder(recorderPid), FlightAddress.liveTraced(tracedPid)] {
            if let fd = FlightAddress.listen(name, purpose: "`asynctrace top --pid`") { liveListeners.append(fd) }
        }
    }

    /// The receiver thread: every message is a chunk for the ring or a control message.
    private func receive() {
        let capacity = 16 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        while true {
            let n = recv(socketFD, buffer, capacity, Int32(MSG_TRUNC))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                receiverDone.store(true, ordering: .releasing)
                return
            }
            let now = monotonicNowNs()
            if n > capacity {
                ring.add(UnsafeRawBufferPointer(start: buffer, count: 0), nowNs: now)  // counted as rejected
                continue
            }
            let message = UnsafeRawBufferPointer(start: buffer, count: n)
            if n == 32 && message.prefix(8).elementsEqual(FlightControl.magic) {
                let kind = message.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
                let startNs = message.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
                let endNs = message.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
                let why = "a callback that blocked \(milliseconds(endNs > startNs ? endNs - startNs : 0))"
                // The program's times are believed only as far as they make sense (start <= end <= now).
                let end = min(endNs, now)
                requests.add(kind == FlightControl.blocked ? .blocked(startNs: min(startNs, end), endNs: end, why: why) : .program)
                continue
            }
            ring.add(message, nowNs: now)
        }
    }

    /// A chunk sealed by one of our own writers (the Node adapter's), for the window.
    func addOwnChunk(_ bytes: [UInt8]) {
        guard let h = bytes.withUnsafeBytes({ ChunkHeader.load(from: $0.baseAddress!) }) else { return }
        ring.add(FlightChunk(bytes: bytes, header: h), nowNs: monotonicNowNs())
    }

    /// From the record loop: takes triggers, writes a dump when one is due, lets old chunks go.
    func poll() {
        let now = monotonicNowNs()
        ring.evict(nowNs: now)
        var asked = flightSignalled.exchange(0, ordering: .relaxed) > 0
        if asked { dueReasons.append("SIGUSR1") }
        for r in requests.takeAll() {
            switch r {
            case .program:
                // The program may ask at most once a second (it may be hostile or looping).
                if now &- lastProgramRequestNs >= 1_000_000_000 || lastProgramRequestNs == 0 {
                    lastProgramRequestNs = now
                    asked = true
                    dueReasons.append("the program asked (TraceRecorder.dump())")
                }
            case .blocked(let startNs, let endNs, let why):
                stallSeen(PendingStall(startNs: startNs, endNs: endNs, why: why), nowNs: now)
            }
        }
        for l in listeners {
            while true {
                let c = accept(l, nil, nil)
                if c < 0 { break }
                _ = fcntl(c, F_SETFD, FD_CLOEXEC)
                if FlightAddress.mayAsk(c, owner: owner) {
                    waitingClients.append(c)
                    asked = true
                    dueReasons.append("`asynctrace dump`")
                } else {
                    FlightAddress.reply(c, "refused: only the user who started the recording (or root) may ask for a dump\n")
                    close(c)
                }
            }
        }
        for l in liveListeners {
            while true {
                let c = accept(l, nil, nil)
                if c < 0 { break }
                _ = fcntl(c, F_SETFD, FD_CLOEXEC)
                guard FlightAddress.mayAsk(c, owner: owner) else {
                    FlightAddress.reply(c, "refused: only the user who started the recording (or root) may watch it\n")
                    close(c)
                    continue
                }
                // Each feed may hold a copy of the window: a bounded number at once.
                guard feeds.count < Self.maxFeeds else {
                    FlightAddress.reply(c, "refused: \(Self.maxFeeds) viewers are attached already\n")
                    close(c)
                    continue
                }
                startFeed(c, nowNs: now)
            }
        }
        feeds.removeAll { feed in
            let status = feed.flush()
            if case .fellBehind(let queued) = status {
                note("a live viewer fell behind by \(queued >> 20) MiB; its feed was ended (the recording goes on)")
            }
            if status != .open { close(feed.fd) }
            return status != .open
        }
        if asked { dueNs = min(dueNs ?? (now + settleNs), now + settleNs) }
        let automatic = automaticDueNs.map { now >= $0 } ?? false
        if automatic || dueNs.map({ now >= $0 }) ?? false {
            if dueNs.map({ now >= $0 }) ?? false { dueNs = nil }
            if automatic { automaticDueNs = nil }
            let line = dump(reasons: dueReasons, automatic: automatic)
            dueReasons.removeAll()
            for c in waitingClients {
                FlightAddress.reply(c, line + "\n")
                close(c)
            }
            waitingClients.removeAll()
        }
    }

    /// A viewer connected: it gets the window as a trace, then every chunk as it comes.
    private func startFeed(_ fd: Int32, nowNs: UInt64) {
        do {
            let feed = try FlightFeed(
                fd: fd, ring: ring, rootPid: UInt32(rootPid), program: program, nowNs: nowNs,
                realtimeNowNs: realtimeNs(), kernelState: kernelState)
            feeds.append(feed)
        } catch {
            close(fd)
            note("cannot start a live feed: \(error.description)")
        }
    }

    /// The program has exited: once its last chunks are in (at most 2 s), a dump that was asked
    /// for or due is written now rather than lost.
    func finish() {
        var waited = 0
        while !receiverDone.load(ordering: .acquiring) && waited < 200 {
            usleep(10_000)
            waited += 1
        }
        poll()  // the last triggers
        finishing = true
        if dueNs != nil || automaticDueNs != nil {
            if dueNs != nil { dueNs = 0 }
            // A dump held back by --min-dump-interval is written now: the recording ends.
            if let due = automaticDueNs {
                if due > monotonicNowNs() && automaticDueHeldBack { dueReasons.append("written as the recording ended") }
                automaticDueNs = 0
            }
            poll()
        }
        for s in stalls { stallNotDumped(s, because: "the recording ended before a dump could hold it") }
        stalls.removeAll()
        for l in listeners + liveListeners { close(l) }
        listeners.removeAll()
        liveListeners.removeAll()
        // Viewers get the last chunks (for up to 2 s), then the end of the feed.
        waited = 0
        while !feeds.isEmpty && waited < 200 {
            feeds.removeAll { feed in
                let status = feed.flush()
                if status != .open || !feed.hasQueued { close(feed.fd) }
                return status != .open || !feed.hasQueued
            }
            if !feeds.isEmpty { usleep(10_000) }
            waited += 1
        }
        for feed in feeds { close(feed.fd) }
        feeds.removeAll()
        // The window's segments go with the recording (its dumps are written).
        ring.removeSegments()
    }

    /// Writes the window to a new file; returns the line to report. The line says what asked for it
    /// (`reasons`) and which stalls (--dump-on-block) it holds.
    @discardableResult
    func dump(reasons: [String] = [], automatic: Bool = false) -> String {
        let start = monotonicNowNs()
        if automatic { lastAutomaticNs = start }
        // Stalls that wait for a dump (this one may hold them): said in its line when it does.
        var why = reasons
        var written = false
        defer { stallsAfterDump(nowNs: start, written: written) }
        guard let (fd, path) = createDumpFile() else {
            dumpErrors += 1
            let line = "asynctrace: cannot create a dump file next to \(stem).atrace: \(String(cString: strerror(errno)))"
            note(line)
            return line
        }
        defer { close(fd) }
        do {
            let s = try FlightDump.write(
                to: fd, ring: ring, rootPid: UInt32(rootPid), program: program, nowNs: start,
                realtimeNowNs: realtimeNs(), kernelState: kernelState, perfMaps: kernelPerfMaps)
            dumps.append(path)
            written = true
            let ms = Double(monotonicNowNs() - start) / 1e6
            why = stallsHeld(by: s) + why
            let line =
                "asynctrace: wrote \(path) (the last \(seconds(s.endNs - s.startNs)): \(s.events) events, "
                + "\(s.bytes >> 10) KiB, in \(Int(ms.rounded())) ms)" + (why.isEmpty ? "" : ": " + why.joined(separator: ", "))
            note(line)
            return line
        } catch {
            dumpErrors += 1
            let line = "asynctrace: \(path): \(error.description)"
            note(line)
            return line
        }
    }

    /// A new file, never an existing one: `<stem>-<UTC time>.atrace`, then `-2`, `-3`… if taken.
    private func createDumpFile() -> (Int32, String)? {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = tm()
        var secs = ts.tv_sec
        gmtime_r(&secs, &t)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = ts.tv_nsec / 1_000_000
        let millis = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        let time = "\(t.tm_year + 1900)\(two(t.tm_mon + 1))\(two(t.tm_mday))T\(two(t.tm_hour))\(two(t.tm_min))\(two(t.tm_sec)).\(millis)Z"
        for attempt in 1...100 {
            let path = "\(stem)-\(time)\(attempt == 1 ? "" : "-\(attempt)").atrace"
            var created: Int32 = 0
            var why: UnsafePointer<CChar>?
            let fd = owner.groups.withUnsafeBufferPointer { g in
                var identity = trace_file_owner(uid: owner.uid, gid: owner.gid, groups: g.baseAddress, group_count: g.count)
                return withUnsafeMutablePointer(to: &identity) { trace_open_output(path, 0, 0, owner.uid >= 0 ? $0 : nil, &created, &why) }
            }
            if fd >= 0 && created == 1 { return (fd, path) }
            if fd >= 0 {
                close(fd)
            }  // it exists: never overwrite a dump
            else if errno != EEXIST && why == nil {
                return nil
            }
        }
        return nil
    }

    var statistics: FlightStatistics { ring.statistics }

    // MARK: --dump-on-block and --min-dump-interval

    /// A stall (a callback that blocked, or a loop stall) asks for an automatic dump: the window up to
    /// shortly after its end. At most one automatic dump is written per --min-dump-interval; a stall that
    /// comes sooner is not dropped: the dump that is due waits for it if its window then still holds every
    /// stall it is for, otherwise the next dump the interval allows is written for it, if the window will
    /// still hold it then. A stall no dump can hold is counted and said (never silent).
    private func stallSeen(_ stall: PendingStall, nowNs now: UInt64) {
        // One stall may be reported twice: by the program (a callback that blocked) and by the kernel
        // probes (its loop away from epoll_wait as long): the same stall, one entry.
        if let i = stalls.firstIndex(where: { $0.isMostly(stall) }) {
            stalls[i].startNs = min(stalls[i].startNs, stall.startNs)
            stalls[i].endNs = max(stalls[i].endNs, stall.endNs)
            stalls[i].why += " (\(stall.why))"
            let wanted = max(now, stalls[i].endNs) &+ settleNs
            if let due = automaticDueNs, due < wanted, windowHolds(stalls, atNs: wanted) { automaticDueNs = wanted }
            return
        }
        if recentStalls.contains(where: { $0.isMostly(stall) }) { return }
        stallCounts.seen += 1
        guard stalls.count < Self.maxPendingStalls else {
            stallNotDumped(stall, because: "\(Self.maxPendingStalls) stalls were waiting for a dump already")
            return
        }
        var s = stall
        let wanted = max(now, s.endNs) &+ settleNs
        if let due = automaticDueNs {
            s.heldBack = automaticDueHeldBack
            // The due dump would end before this stall: it waits for it (by up to one interval, as the
            // next dump could not come sooner) while its window still holds every stall it is for;
            // otherwise the stall waits for the next dump allowed.
            if due < wanted {
                if wanted <= automaticDueFirstNs &+ minAutomaticGapNs && windowHolds(stalls + [s], atNs: wanted) {
                    automaticDueNs = wanted
                } else {
                    s.heldBack = true
                }
            }
        } else {
            let allowed = lastAutomaticNs.map { $0 &+ minAutomaticGapNs } ?? 0
            automaticDueHeldBack = allowed > wanted
            s.heldBack = automaticDueHeldBack
            let at = max(allowed, wanted)
            guard windowHolds([s], atNs: at) else {
                stallCounts.heldBack += 1
                stallNotDumped(s, because: heldBackTooLong)
                return
            }
            automaticDueNs = at
            automaticDueFirstNs = at
        }
        if s.heldBack { stallCounts.heldBack += 1 }
        stalls.append(s)
    }

    private var heldBackTooLong: String {
        "--min-dump-interval (\(seconds(minAutomaticGapNs))) held it back and the window (\(seconds(ring.limits.keepNs ?? 0))) "
            + "will no longer hold it when the next automatic dump is allowed"
    }

    /// Whether a window ending at `atNs` starts before every one of `stalls` (by --keep's duration; a
    /// size-only window is taken to hold 10 s: whether it did is checked when the dump is written).
    private func windowHolds(_ stalls: [PendingStall], atNs: UInt64) -> Bool {
        let keep = ring.limits.keepNs ?? 10_000_000_000
        let start = atNs > keep ? atNs - keep : 0
        return stalls.allSatisfy { $0.startNs >= start }
    }

    /// The stalls a dump just written holds (start and end, and the settling time after it, inside its
    /// window): no longer pending. Returns what to say of them in the dump's line.
    private func stallsHeld(by summary: FlightDumpSummary) -> [String] {
        var said: [String] = []
        stalls.removeAll { s in
            guard s.startNs >= summary.startNs && s.endNs &+ (finishing ? 0 : settleNs) <= summary.endNs else { return false }
            stallCounts.dumped += 1
            recentStalls.append(s)
            if recentStalls.count > 64 { recentStalls.removeFirst() }
            if s.heldBack {
                stallCounts.heldBackDumped += 1
                said.append("\(s.why) (\(seconds(summary.endNs &- s.endNs)) ago: held back by --min-dump-interval)")
            } else {
                said.append(s.why)
            }
            return true
        }
        return said
    }

    /// After a dump: stalls that ended well before it but are not in it had left the window (its size
    /// bound) and are counted; those that came while it was due get the next automatic dump allowed.
    private func stallsAfterDump(nowNs: UInt64, written: Bool) {
        var waiting: [PendingStall] = []
        for s in stalls {
            if s.endNs &+ (finishing ? 0 : settleNs) <= nowNs {
                stallNotDumped(
                    s, because: written ? "the window no longer held it when the dump was written (--keep's size)" : "its dump could not be written")
            } else {
                waiting.append(s)
            }
        }
        stalls = []
        if waiting.isEmpty { automaticDueNs = nil }
        guard automaticDueNs == nil, !waiting.isEmpty else {
            stalls = waiting
            return
        }
        let allowed = lastAutomaticNs.map { $0 &+ minAutomaticGapNs } ?? 0
        let at = max(allowed, waiting.map { $0.endNs &+ settleNs }.max()!)
        automaticDueHeldBack = true
        for var s in waiting {
            if !s.heldBack && at > s.endNs &+ settleNs {
                s.heldBack = true
                stallCounts.heldBack += 1
            }
            if windowHolds([s], atNs: at) { stalls.append(s) } else { stallNotDumped(s, because: heldBackTooLong) }
        }
        if !stalls.isEmpty {
            automaticDueNs = at
            automaticDueFirstNs = at
        }
    }

    private func stallNotDumped(_ stall: PendingStall, because: String) {
        stallCounts.notDumped += 1
        recentStalls.append(stall)
        if recentStalls.count > 64 { recentStalls.removeFirst() }
        note("\(stall.why) is in no dump: \(because)")
    }

    /// The end-of-recording summary: dumps written, the window's memory, what was lost.
    func printSummary(startNs: UInt64, kernel: KernelProbeStatistics?, userLost: (events: UInt64, errno: Int32)?) {
        let st = ring.statistics
        let limits = ring.limits
        var keep = limits.keepNs.map { seconds($0) } ?? ""
        keep += (keep.isEmpty ? "" : ", ") + "at most \(limits.keepBytes >> 20) MiB"
        var kept = "kept at most \(st.peakBytes >> 10) KiB at once"
        if let disk = ring.disk {
            keep += " on disk in \(disk.directory)"
            kept =
                "the segment files took at most \(st.peakDiskBytes >> 10) KiB at once (\(st.segmentsCreated) segment\(st.segmentsCreated == 1 ? "" : "s") "
                + "written, removed now), holding up to \(st.peakBytes >> 10) KiB of chunks"
        }
        note(
            "flight recorder (\(keep)) ran \(seconds(monotonicNowNs() &- startNs)); \(kept); "
                + "\(dumps.count) dump\(dumps.count == 1 ? "" : "s") written" + (dumps.isEmpty ? " (SIGUSR1 or `asynctrace dump` writes one)" : ":"))
        for d in dumps { note("  \(d)") }
        let c = stallCounts
        if c.seen > 0 {
            note(
                "--dump-on-block: \(c.seen) stall\(c.seen == 1 ? "" : "s") (callbacks or loop stalls) asked for a dump; \(c.dumped) "
                    + "\(c.dumped == 1 ? "is" : "are") in one; \(c.heldBack) came too soon after an automatic dump "
                    + "(--min-dump-interval \(seconds(minAutomaticGapNs))), \(c.heldBackDumped) of them in a later dump; "
                    + "\(c.notDumped) in none")
        }
        if dumpErrors > 0 { note("\(dumpErrors) dump\(dumpErrors == 1 ? "" : "s") could not be written (see above)") }
        if st.chunksNotKept > 0 {
            note(
                "\(st.chunksNotKept) chunks were not kept on disk ("
                    + (st.diskErrno != 0
                        ? "writing a segment failed: \(String(cString: strerror(st.diskErrno)))"
                        : "no room: a dump was still reading the oldest segment")
                    + "); the dumps show the gaps")
        }
        if st.rejected > 0 { note("\(st.rejected) messages on the program's socket were not valid chunks and were ignored") }
        if let k = kernel, k.dropped > 0 { note("the kernel probes dropped \(k.dropped) events (the dumps count them where they fall)") }
        if let k = kernel, let unseen = k.switchInsNotSeenText { note(unseen + " (the dumps show them where they fall)") }
        if let u = userLost, u.events > 0 { note("the program could not hand over \(u.events) events (counted in the dumps where they fall)") }
    }
}

struct FlightSetupError: Error, CustomStringConvertible {
    let description: String
}

/// Under sudo, the user dumps are created as (uid -1: as ourselves).
struct trace_file_owner_identity {
    var uid: Int
    var gid: Int
    var groups: [UInt32]
}

/// A stall (--dump-on-block) that no dump holds yet.
struct PendingStall {
    var startNs: UInt64
    var endNs: UInt64
    var why: String
    /// Its dump comes later than it would have without --min-dump-interval.
    var heldBack = false

    /// Whether the two overlap by at least half of the shorter (one stall reported twice).
    func isMostly(_ other: PendingStall) -> Bool {
        let overlapStart = max(startNs, other.startNs)
        let overlapEnd = min(endNs, other.endNs)
        guard overlapEnd > overlapStart else { return false }
        return (overlapEnd - overlapStart) * 2 >= min(endNs &- startNs, other.endNs &- other.startNs)
    }
}

/// What became of the stalls that asked for a dump.
struct StallCounts {
    var seen = 0
    var dumped = 0
    var heldBack = 0
    var heldBackDumped = 0
    var notDumped = 0
}

enum FlightRequest {
    case program
    case blocked(startNs: UInt64, endNs: UInt64, why: String)
}

final class LockedRequests: @unchecked Sendable {
    private var items: [FlightRequest] = []
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func add(_ r: FlightRequest) {
        pthread_mutex_lock(&mutex)
        items.append(r)
        pthread_mutex_unlock(&mutex)
    }
    func takeAll() -> [FlightRequest] {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        let out = items
        items.removeAll()
        return out
    }
}

/// How `asynctrace dump` finds a flight recorder: abstract unix sockets (no file to plant or
/// race) named after the recorder's pid and the traced program's. Either side checks the other's
/// credentials: a recorder answers only its user (or root), a client believes only a recorder run
/// by itself or root.
enum FlightAddress {
    static func recorder(_ pid: Int32) -> String { "asynctrace-flight/recorder/\(pid)" }
    static func traced(_ pid: Int32) -> String { "asynctrace-flight/traced/\(pid)" }

    static func address(_ name: String) -> (sockaddr_un, socklen_t) {
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8.prefix(100))
        withUnsafeMutableBytes(of: &a.sun_path) { p in
            p[0] = 0  // abstract namespace
            for (i, b) in bytes.enumerated() { p[i + 1] = b }
        }
        return (a, socklen_t(MemoryLayout<sa_family_t>.size + 1 + bytes.count))
    }

    static func liveRecorder(_ pid: Int32) -> String { "asynctrace-flight/live/recorder/\(pid)" }
    static func liveTraced(_ pid: Int32) -> String { "asynctrace-flight/live/traced/\(pid)" }

    /// The names to try for `pid`: as the traced program, as a recorder, then its ancestors as
    /// traced programs (a process the program started).
    static func candidates(for pid: Int32, live: Bool) -> [String] {
        var out = live ? [liveTraced(pid), liveRecorder(pid)] : [traced(pid), recorder(pid)]
        var p = parent(of: pid)
        var depth = 0
        while let q = p, q > 1, depth < 64 {
            out.append(live ? liveTraced(q) : traced(q))
            p = parent(of: q)
            depth += 1
        }
        return out
    }

    /// Connects to the first candidate run by us or root (a recorder run by anyone else is not believed).
    static func connectToRecorder(for pid: Int32, live: Bool) -> Int32? {
        let me = getuid()
        for name in candidates(for: pid, live: live) {
            guard let fd = connect(name) else { continue }
            if let uid = peerUID(fd), uid == 0 || uid == me || uid == geteuid() { return fd }
            note("ignoring @\(name): it is not run by you or root")
            close(fd)
        }
        return nil
    }

    static func parent(of pid: Int32) -> Int32? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 1024)
        let n = read(fd, &buf, buf.count)
        guard n > 0 else { return nil }
        // "pid (comm) state ppid ...": comm may hold anything, so read after the last ')'.
        guard let close = buf[0..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buf[(close + 1)..<n].split(separator: UInt8(ascii: " "))
        guard fields.count >= 2 else { return nil }
        return Int32(String(decoding: fields[1], as: UTF8.self))
    }

    static func listen(_ name: String, purpose: String = "`asynctrace dump`") -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        var (a, len) = address(name)
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } } == 0
        guard ok, Glibc.listen(fd, 8) == 0 else {
            note(
                "cannot listen for \(purpose) as @\(name) (\(String(cString: strerror(errno))))"
                    + (purpose == "`asynctrace dump`" ? ": SIGUSR1 still dumps" : ""))
            close(fd)
            return nil
        }
        return fd
    }

    static func connect(_ name: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var (a, len) = address(name)
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) } } == 0
        if !ok {
            close(fd)
            return nil
        }
        return fd
    }

    static func peerUID(_ fd: Int32) -> uid_t? {
        var uid: UInt32 = 0
        guard trace_peer_uid(fd, &uid) == 0 else { return nil }
        return uid
    }

    static func mayAsk(_ fd: Int32, owner: trace_file_owner_identity) -> Bool {
        guard let uid = peerUID(fd) else { return false }
        return uid == 0 || uid == geteuid() || (owner.uid >= 0 && Int(uid) == owner.uid)
    }

    static func reply(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

private func realtimeNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

private func milliseconds(_ ns: UInt64) -> String { "\((ns + 500_000) / 1_000_000) ms" }

private func seconds(_ ns: UInt64) -> String {
    let s = Double(ns) / 1e9
    return s < 10 ? "\((s * 10).rounded() / 10) s" : "\(Int(s.rounded())) s"
}

private func note(_ message: String) {
    var line = message
    if !line.hasPrefix("asynctrace: ") { line = "asynctrace: " + line }
    line += "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}
