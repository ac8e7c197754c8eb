// --dump-on-block from the kernel's view: a loop thread that stays away from epoll_wait longer than
// the threshold (the time from one wait's return to the next wait's entry: one loop iteration) is a
// stall, for any epoll loop (libuv, NIO, our runtime) without the program's help. A thread that waits in
// poll or select and never waited in epoll is a loop on poll (GLib, Python's socketserver), as for the
// report (TraceAnalyzer.pollWaitNrs). This is what
// makes --dump-on-block work with --pid and for Node programs, whose hooks report no blocking callbacks.
import KernelProbes

struct LoopStallWatch {
    let thresholdNs: UInt64
    /// Per thread (pid << 32 | tid): when its last epoll wait returned.
    private var lastReturnNs: [UInt64: UInt64] = [:]
    /// Threads that waited in epoll: their polls are not loop waits (a resolver's inside a callback).
    private var epollThreads: Set<UInt64> = []
    /// poll, select, pselect6, ppoll.
    static let pollWaitNrs: Set<UInt32> = [7, 23, 270, 271]
    static let maxThreads = 65_536

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
                    guard Self.pollWaitNrs.contains(e.nr), !epollThreads.contains(key) else { continue }
                } else if !epollThreads.contains(key) {
                    if epollThreads.count >= Self.maxThreads { epollThreads.removeAll() }
                    epollThreads.insert(key)
                }
                if let last = lastReturnNs[key], e.enterNs > last, e.enterNs - last >= thresholdNs {
                    ends.append(Stall(tid: e.tid, durationNs: e.enterNs - last, endNs: e.enterNs))
                }
                if lastReturnNs.count >= Self.maxThreads && lastReturnNs[key] == nil { lastReturnNs.removeAll() }
                lastReturnNs[key] = e.timestampNs
            case .threadExit:
                lastReturnNs[UInt64(e.pid) << 32 | UInt64(e.tid)] = nil
                epollThreads.remove(UInt64(e.pid) << 32 | UInt64(e.tid))
            default:
                break
            }
        }
        return ends
    }
}
