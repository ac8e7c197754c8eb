// --dump-on-block from the kernel's view: a loop thread that stays away from epoll_wait longer than
// the threshold (the time from one wait's return to the next wait's entry: one loop iteration) is a
// stall, for any epoll loop (libuv, NIO, our runtime) without the program's help. A thread that waits in
// poll or select and never waited in epoll is a loop on poll (GLib, Python's socketserver), as for the
// report (TraceAnalyzer.isPollLoopWait), and so is a loop on io_uring_enter waiting for completions. Worker pools that take turns at one epoll fd (Go's netpoller, Tokio's
// driver) park in futex waits while another worker has the poller: for them, as for the report
// (SharedPollers), a futex wait ends a stretch like an epoll wait, a look with timeout 0 is no wait, and a
// thread that only looks (Go's sysmon) is no loop; else an idle Go server dumped on every park. A thread that
// polls a few times on its way to other waits is no loop either, as for the report
// (ThreadTracker.pollCallersThatAreNoLoop): multiprocessing's main thread, 6 polls then 2.4 s in futex waits,
// dumped a 'stall' of 2.4 s. A wait on another epoll fd while the thread's loop's epoll fd is open is a loop of
// its own run inside the stretch (Node's execSync waits for its child that way), as for the report
// (TraceAnalyzer's nestedLoopWait): it ends no stretch; else an execSync of 300 ms left no stall. This is what
// makes --dump-on-block work with --pid and for Node programs, whose hooks report no blocking callbacks.
import KernelProbes
import TraceAnalyses

struct LoopStallWatch {
    let thresholdNs: UInt64
    /// Per thread (pid << 32 | tid): when its last epoll wait returned.
    private var lastReturnNs: [UInt64: UInt64] = [:]
    /// Threads that waited in epoll: their polls are not loop waits (a resolver's inside a callback).
    private var epollThreads: Set<UInt64> = []
    static let futexNr: UInt32 = 202
    static let closeNr: UInt32 = 3
    static let maxThreads = 65_536
    private var pollers = SharedPollers()
    /// Threads that waited in poll or select and not epoll: their waits so far and the time they were blocked.
    private var pollCallers: [UInt64: PollCaller] = [:]
    /// Per thread: the epoll fd its loop waits on (its last wait that was not a nested loop's).
    private var loopEpollFDs: [UInt64: Int32] = [:]
    /// Those epoll fds (pid << 32 | fd) still open.
    private var openLoopEpollFDs = Set<UInt64>()

    struct PollCaller {
        var polls: UInt64 = 0
        var pollNs: UInt64 = 0
        var blockedNs: UInt64 = 0
        /// The report's rule: under 20 polls, and they were under a tenth of its blocked time.
        var isNoLoop: Bool {
            let (tenfold, overflow) = pollNs.multipliedReportingOverflow(by: 10)
            return polls < 20 && !overflow && tenfold < blockedNs
        }
    }

    init(thresholdNs: UInt64) { self.thresholdNs = thresholdNs }

    struct Stall {
        var tid: UInt32
        var durationNs: UInt64
        /// The next wait's entry.
        var endNs: UInt64
    }

    /// The stalls in `events`, in order.
    mutating func stalls(in events: ArraySlice<KernelEvent>) -> [Stall] {
        var ends: [Stall] = []
        for e in events {
            switch e.kind {
            case .epollWait, .syscall:
                let key = UInt64(e.pid) << 32 | UInt64(e.tid)
                if e.kind == .syscall {
                    if e.nr == Self.closeNr && e.ret == 0 {
                        pollers.closed(pid: e.pid, fd: Int64(e.fd))
                        if !openLoopEpollFDs.isEmpty { openLoopEpollFDs.remove(UInt64(e.pid) << 32 | UInt64(UInt32(bitPattern: e.fd))) }
                    }
                    // A pool worker's futex wait (that has blocked in epoll) is its idle time, as an epoll wait.
                    let parked = e.nr == Self.futexNr && pollers.isWorker(pid: e.pid, tid: e.tid) && pollers.hasBlocked(pid: e.pid, tid: e.tid)
                    let pollWait = TraceAnalyzer.isPollLoopWait(nr: UInt64(e.nr), size: e.size)
                    guard parked || (pollWait && !epollThreads.contains(key)) else { continue }
                    if !parked {
                        if pollCallers.count >= Self.maxThreads && pollCallers[key] == nil { pollCallers.removeAll() }
                        var c = pollCallers[key, default: PollCaller()]
                        let noLoop = c.isNoLoop
                        c.polls &+= 1
                        c.pollNs = c.pollNs.addingSaturated(e.durationNs)
                        pollCallers[key] = c
                        if noLoop {
                            lastReturnNs[key] = e.timestampNs
                            continue
                        }
                    }
                } else {
                    var joined: [UInt64] = []
                    let wait = pollers.waited(pid: e.pid, tid: e.tid, epfd: Int64(e.fd), timeoutMs: Int64(e.timeoutMs), joinedNeverBlocked: &joined)
                    for k in joined { lastReturnNs[k] = nil }  // their stretches so far were looks in passing
                    // (A lone loop's waits all count, a look included: a loop under load may never block.)
                    if wait == .polled || (pollers.isWorker(pid: e.pid, tid: e.tid) && !pollers.hasBlocked(pid: e.pid, tid: e.tid)) {
                        continue
                    }
                    if let loopFD = loopEpollFDs[key], loopFD != e.fd,
                        openLoopEpollFDs.contains(UInt64(e.pid) << 32 | UInt64(UInt32(bitPattern: loopFD)))
                    {
                        continue  // a nested loop's wait: the thread's loop is still away
                    }
                    if loopEpollFDs.count >= Self.maxThreads && loopEpollFDs[key] == nil { loopEpollFDs.removeAll() }
                    loopEpollFDs[key] = e.fd
                    if e.fd >= 0 {
                        if openLoopEpollFDs.count >= Self.maxThreads { openLoopEpollFDs.removeAll() }
                        openLoopEpollFDs.insert(UInt64(e.pid) << 32 | UInt64(UInt32(bitPattern: e.fd)))
                    }
                    if !epollThreads.contains(key) {
                        if epollThreads.count >= Self.maxThreads { epollThreads.removeAll() }
                        epollThreads.insert(key)
                    }
                }
                if let last = lastReturnNs[key], e.enterNs > last, e.enterNs - last >= thresholdNs {
                    ends.append(Stall(tid: e.tid, durationNs: e.enterNs - last, endNs: e.enterNs))
                }
                if lastReturnNs.count >= Self.maxThreads && lastReturnNs[key] == nil { lastReturnNs.removeAll() }
                lastReturnNs[key] = e.timestampNs
            case .offCPU:
                let key = UInt64(e.pid) << 32 | UInt64(e.tid)
                if pollCallers[key] != nil { pollCallers[key]!.blockedNs = pollCallers[key]!.blockedNs.addingSaturated(e.blockedNs) }
            case .threadExit:
                lastReturnNs[UInt64(e.pid) << 32 | UInt64(e.tid)] = nil
                loopEpollFDs[UInt64(e.pid) << 32 | UInt64(e.tid)] = nil
                epollThreads.remove(UInt64(e.pid) << 32 | UInt64(e.tid))
                pollCallers[UInt64(e.pid) << 32 | UInt64(e.tid)] = nil
            default:
                break
            }
        }
        return ends
    }
}
