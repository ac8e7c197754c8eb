// A server-shaped trace of many loop iterations (the export benchmark's shape, small): per iteration a poll
// phase, a kernel epoll wait returning the connection's fd 7, the connection's callback (resource 5) with a
// read and a write syscall inside, and a TickObject created there that runs and is destroyed.
import Foundation
import TraceFormat

enum LoopTrace {
    static let pid: UInt32 = 1000
    static let start: UInt64 = 1_000_000

    static func write(to path: String, iterations: Int) {
        var bytes = FileHeader(pid: pid, monotonicStartNs: start, realtimeStartNs: 0, program: "loop-server").encode()
        var u = ChunkBuilder(pid: pid, tid: pid, startNs: start, startTicks: start)
        var k = ChunkBuilder(pid: pid, tid: 0, startNs: start, startTicks: start)
        var t = start
        let tick = u.intern("TickObject", ticks: t)
        let tcp = u.intern("TCPWRAP", ticks: t)
        u.beginEvent(.initResource, ticks: t); u.putAsyncID(5); u.putStringID(tcp); u.putRelatedID(1)
        u.beginEvent(.resourceFD, ticks: t); u.putAsyncID(5); u.putSigned(7)
        func sys(_ nr: UInt64, exit: UInt64) {
            k.beginEvent(.syscall, ticks: exit)
            k.putUnsigned(UInt64(pid)); k.putUnsigned(UInt64(pid)); k.putUnsigned(nr); k.putSigned(7)
            k.putUnsigned(4096); k.putSigned(512); k.putUnsigned(100)
        }
        var nextID: UInt64 = 10
        for i in 0..<iterations {
            u.beginEvent(.loopIteration, ticks: t); u.putUnsigned(UInt64(i))
            u.beginEvent(.phaseEnter, ticks: t + 10); u.putUnsigned(4)
            u.beginEvent(.pollStart, ticks: t + 20); u.putSigned(-1)
            k.beginEvent(.epollWait, ticks: t + 500)
            k.putUnsigned(UInt64(pid)); k.putUnsigned(UInt64(pid)); k.putUnsigned(232); k.putSigned(3)
            k.putUnsigned(1024); k.putSigned(-1); k.putSigned(1); k.putUnsigned(450); k.putList([7])
            u.beginEvent(.pollEnd, ticks: t + 510); u.putUnsigned(1); u.putList([7])
            u.beginEvent(.before, ticks: t + 520); u.putAsyncID(5)
            sys(0, exit: t + 700)
            u.beginEvent(.initResource, ticks: t + 750); u.putAsyncID(nextID); u.putStringID(tick); u.putRelatedID(5)
            sys(1, exit: t + 900)
            u.beginEvent(.after, ticks: t + 950); u.putAsyncID(5)
            u.beginEvent(.before, ticks: t + 960); u.putAsyncID(nextID)
            u.beginEvent(.after, ticks: t + 990); u.putAsyncID(nextID)
            u.beginEvent(.destroy, ticks: t + 1_000); u.putAsyncID(nextID)
            u.beginEvent(.phaseLeave, ticks: t + 1_010); u.putUnsigned(4)
            nextID += 1
            t += 2_000
        }
        bytes += u.seal(sequence: 0, endNs: t, endTicks: t, droppedCumulative: 0, flags: [.final])
        bytes += k.seal(sequence: 0, endNs: t, endTicks: t, droppedCumulative: 0, flags: [.kernel, .final])
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }
}
