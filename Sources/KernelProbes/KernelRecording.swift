// Probes + trace writer: what `asynctrace record` (and the tests) drive from one thread.
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

public func monotonicNowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

public final class KernelRecording {
    public let session: KernelProbeSession
    public private(set) var writer: KernelTraceWriter
    /// Every batch of events as it arrives (in ring order), before it is written.
    public var onEvents: ((ArraySlice<KernelEvent>) -> Void)?
    public var flushIntervalNs: UInt64 = 100_000_000
    private var lastFlushNs: UInt64 = 0

    /// Writes the kernel stream of the process tree rooted at `rootPid` to `traceFD` (O_APPEND).
    public init(session: KernelProbeSession, traceFD: Int32, rootPid: Int32) {
        self.session = session
        self.writer = KernelTraceWriter(fd: traceFD, rootPid: UInt32(rootPid))
        self.lastFlushNs = monotonicNowNs()
    }

    /// Waits up to `timeoutMs` for events, then writes those old enough to be in order. What cannot
    /// be written is counted in `writer.eventsLost`.
    public func pump(timeoutMs: Int32) {
        let session = self.session, onEvents = self.onEvents
        writer.receive { pending in
            let before = pending.count
            if session.poll(timeoutMs: timeoutMs, into: &pending) > 0 { onEvents?(pending[before...]) }
        }
        let now = monotonicNowNs()
        if now - lastFlushNs >= flushIntervalNs || writer.pendingCount >= 1 << 18 {
            writer.flush(nowNs: now, droppedCumulative: session.statistics.dropped)
            lastFlushNs = now
        }
    }

    /// Stops the probes, drains the ring, writes everything left with a final chunk, and frees
    /// the probes.
    @discardableResult
    public func finish() -> KernelProbeStatistics {
        session.stop()  // else a busy process (a grandchild, an attached pid) keeps the ring full
        var empty = 0
        let session = self.session, onEvents = self.onEvents
        while empty < 2 {
            var got = 0
            writer.receive { pending in
                let before = pending.count
                got = session.poll(timeoutMs: 0, into: &pending)
                if got > 0 { onEvents?(pending[before...]) }
            }
            empty = got == 0 ? empty + 1 : 0
            if writer.pendingCount >= 1 << 18 {
                writer.flush(nowNs: monotonicNowNs(), droppedCumulative: session.statistics.dropped)
            }
        }
        let stats = session.statistics
        session.close()
        writer.flush(nowNs: monotonicNowNs(), droppedCumulative: stats.dropped, final: true)
        return stats
    }
}
