// Synthetic traces written straight with TraceFormat's ChunkBuilder, shared by the export benchmark
// and the export tests (one generator, so the tests check the shape the benchmark measures).
#if canImport(Glibc)
import Glibc
#endif
import TraceFormat

/// A busy server's loop: per iteration a poll phase, a kernel epoll wait reporting the connection's fd 7,
/// the connection's callback (resource 5) with a read and a write syscall inside (100 ns each, ending at
/// t + 700 and t + 900), and a TickObject created there that runs and is destroyed; iteration i starts
/// at `start + 2_000 × i` ns. Written in chunks of `iterationsPerChunk` iterations per stream.
public enum LoopTrace {
    public static let pid: UInt32 = 1000
    public static let start: UInt64 = 1_000_000
    public static let iterationsPerChunk = 1_000

    public static func write(to path: String, iterations: Int) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        func put(_ bytes: [UInt8]) { bytes.withUnsafeBytes { precondition(Glibc.write(fd, $0.baseAddress, $0.count) == $0.count) } }
        let tid = pid
        put(FileHeader(pid: pid, monotonicStartNs: start, realtimeStartNs: 0, program: "loop-server").encode())
        var t = start
        var nextID: UInt64 = 10
        var seq: UInt64 = 0
        var done = 0
        while done < iterations {
            var u = ChunkBuilder(pid: pid, tid: tid, startNs: t, startTicks: t, reserve: 64 << 10)
            var k = ChunkBuilder(pid: pid, tid: 0, startNs: t, startTicks: t, reserve: 64 << 10)
            let tick = u.intern("TickObject", ticks: t)
            if seq == 0 {
                let tcp = u.intern("TCPWRAP", ticks: t)
                u.beginEvent(.initResource, ticks: t); u.putAsyncID(5); u.putStringID(tcp); u.putRelatedID(1)
                u.beginEvent(.resourceFD, ticks: t); u.putAsyncID(5); u.putSigned(7)
            }
            func sys(_ nr: UInt64, exit: UInt64, dur: UInt64) {
                k.beginEvent(.syscall, ticks: exit)
                k.putUnsigned(UInt64(pid)); k.putUnsigned(UInt64(tid)); k.putUnsigned(nr); k.putSigned(7)
                k.putUnsigned(4096); k.putSigned(512); k.putUnsigned(dur)
            }
            for _ in 0..<min(iterationsPerChunk, iterations - done) {
                u.beginEvent(.loopIteration, ticks: t); u.putUnsigned(UInt64(done))
                u.beginEvent(.phaseEnter, ticks: t + 10); u.putUnsigned(4)
                u.beginEvent(.pollStart, ticks: t + 20); u.putSigned(-1)
                k.beginEvent(.epollWait, ticks: t + 500)
                k.putUnsigned(UInt64(pid)); k.putUnsigned(UInt64(tid)); k.putUnsigned(232); k.putSigned(3)
                k.putUnsigned(1024); k.putSigned(-1); k.putSigned(1); k.putUnsigned(450); k.putList([7])
                u.beginEvent(.pollEnd, ticks: t + 510); u.putUnsigned(1); u.putList([7])
                u.beginEvent(.before, ticks: t + 520); u.putAsyncID(5)
                sys(0, exit: t + 700, dur: 100)
                u.beginEvent(.initResource, ticks: t + 750); u.putAsyncID(nextID); u.putStringID(tick); u.putRelatedID(5)
                sys(1, exit: t + 900, dur: 100)
                u.beginEvent(.after, ticks: t + 950); u.putAsyncID(5)
                u.beginEvent(.before, ticks: t + 960); u.putAsyncID(nextID)
                u.beginEvent(.after, ticks: t + 990); u.putAsyncID(nextID)
                u.beginEvent(.destroy, ticks: t + 1_000); u.putAsyncID(nextID)
                u.beginEvent(.phaseLeave, ticks: t + 1_010); u.putUnsigned(4)
                nextID += 1
                done += 1
                t += 2_000
            }
            // The last chunks are final, as a recorder that stopped cleanly writes them.
            let last: ChunkFlags = done == iterations ? [.final] : []
            put(u.seal(sequence: seq, endNs: t, endTicks: t, droppedCumulative: 0, flags: last))
            put(k.seal(sequence: seq, endNs: t, endTicks: t, droppedCumulative: 0, flags: last.union(.kernel)))
            seq += 1
        }
    }
}
