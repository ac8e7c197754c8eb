// Builds small traces event by event with the format's ChunkBuilder, for analyses with known answers.
import Foundation
import TraceFormat

/// Events of one stream, written as one chunk (ticks == ns).
struct StreamScript {
    let pid: UInt32
    let tid: UInt32
    let kernel: Bool
    var dropped: UInt64 = 0
    /// The chunk's sequence number (a stream written as several scripts: 0, 1, ...).
    var sequence: UInt64 = 0
    private(set) var builder: ChunkBuilder
    private(set) var lastNs: UInt64

    init(pid: UInt32, tid: UInt32, kernel: Bool = false, startNs: UInt64) {
        self.pid = pid
        self.tid = tid
        self.kernel = kernel
        builder = ChunkBuilder(pid: pid, tid: kernel ? 0 : tid, startNs: startNs, startTicks: startNs)
        lastNs = startNs
    }

    private mutating func begin(_ k: EventKind, _ ns: UInt64) {
        precondition(ns >= lastNs, "events of a stream must be written in time order")
        builder.beginEvent(k, ticks: ns)
        lastNs = ns
    }

    mutating func threadName(_ name: String, at ns: UInt64) {
        let id = builder.intern(name, ticks: ns)
        begin(.threadInfo, ns); builder.putStringID(id)
    }
    mutating func initResource(_ id: UInt64, _ type: String, trigger: UInt64, at ns: UInt64) {
        let t = builder.intern(type, ticks: ns)
        begin(.initResource, ns); builder.putAsyncID(id); builder.putStringID(t); builder.putRelatedID(trigger)
    }
    mutating func before(_ id: UInt64, at ns: UInt64) { begin(.before, ns); builder.putAsyncID(id) }
    mutating func after(_ id: UInt64, at ns: UInt64) { begin(.after, ns); builder.putAsyncID(id) }
    mutating func destroy(_ id: UInt64, at ns: UInt64) { begin(.destroy, ns); builder.putAsyncID(id) }
    mutating func resourceFD(_ id: UInt64, fd: Int64, at ns: UInt64) { begin(.resourceFD, ns); builder.putAsyncID(id); builder.putSigned(fd) }
    mutating func loopIteration(_ n: UInt64, at ns: UInt64) { begin(.loopIteration, ns); builder.putUnsigned(n) }
    mutating func phaseEnter(_ p: TraceLoopPhase, at ns: UInt64) { begin(.phaseEnter, ns); builder.putUnsigned(UInt64(p.rawValue)) }
    mutating func phaseLeave(_ p: TraceLoopPhase, at ns: UInt64) { begin(.phaseLeave, ns); builder.putUnsigned(UInt64(p.rawValue)) }
    mutating func phaseStart(_ p: TraceLoopPhase, startsIteration: Bool, at ns: UInt64) {
        begin(.phaseStart, ns); builder.putUnsigned(UInt64(p.rawValue)); builder.putUnsigned(startsIteration ? 1 : 0)
    }
    mutating func pollStart(timeoutMs: Int64, at ns: UInt64) { begin(.pollStart, ns); builder.putSigned(timeoutMs) }
    mutating func pollEnd(fds: [UInt64], at ns: UInt64) { begin(.pollEnd, ns); builder.putUnsigned(UInt64(fds.count)); builder.putList(fds) }

    /// A syscall on (pid, tid) that ran from `enter` to `exit` (kernel stream).
    mutating func syscall(pid: UInt32, tid: UInt32, nr: UInt64, fd: Int64, size: UInt64 = 0, ret: Int64, enter: UInt64, exit: UInt64) {
        begin(.syscall, exit)
        builder.putUnsigned(UInt64(pid)); builder.putUnsigned(UInt64(tid)); builder.putUnsigned(nr)
        builder.putSigned(fd); builder.putUnsigned(size); builder.putSigned(ret); builder.putUnsigned(exit - enter)
    }
    mutating func epollWait(pid: UInt32, tid: UInt32, epfd: Int64, ret: Int64, enter: UInt64, exit: UInt64, ready: [UInt64]) {
        begin(.epollWait, exit)
        builder.putUnsigned(UInt64(pid)); builder.putUnsigned(UInt64(tid)); builder.putUnsigned(232)
        builder.putSigned(epfd); builder.putUnsigned(64); builder.putSigned(-1); builder.putSigned(ret)
        builder.putUnsigned(exit - enter); builder.putList(ready)
    }

    func sealed() -> [UInt8] {
        builder.seal(sequence: sequence, endNs: lastNs, endTicks: lastNs, droppedCumulative: dropped,
                     flags: kernel ? [.kernel] : [])
    }
}

func writeTrace(_ streams: [StreamScript], pid: UInt32, startNs: UInt64, program: String = "./scripted") -> String {
    let path = NSTemporaryDirectory() + "asynctrace-analyses-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).atrace"
    var bytes = FileHeader(pid: pid, monotonicStartNs: startNs, realtimeStartNs: 0, program: program).encode()
    for s in streams { bytes += s.sealed() }
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    return path
}

func removeTrace(_ path: String) { try? FileManager.default.removeItem(atPath: path) }
