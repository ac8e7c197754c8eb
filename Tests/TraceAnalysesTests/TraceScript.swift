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

    // Kernel stream, format v3: threads, scheduling, fd identity.
    mutating func threadName(pid: UInt32, tid: UInt32, _ name: String, at ns: UInt64) {
        let id = builder.intern(name, ticks: ns)
        begin(.threadName, ns); builder.putUnsigned(UInt64(pid)); builder.putUnsigned(UInt64(tid)); builder.putStringID(id)
    }
    mutating func threadExit(pid: UInt32, tid: UInt32, at ns: UInt64) {
        begin(.threadExit, ns); builder.putUnsigned(UInt64(pid)); builder.putUnsigned(UInt64(tid))
    }
    /// Off the CPU from `out` (state: 0 preempted, 1 sleeping, 2 D), blocked then runnable, back on at out + blocked + runqueue.
    mutating func offCPU(
        pid: UInt32, tid: UInt32, out: UInt64, state: UInt64, blocked: UInt64, runqueue: UInt64,
        wakerPid: UInt32 = 0, wakerTid: UInt32 = 0
    ) {
        begin(.offCPU, out + blocked + runqueue)
        builder.putUnsigned(UInt64(pid)); builder.putUnsigned(UInt64(tid)); builder.putUnsigned(state)
        builder.putUnsigned(blocked); builder.putUnsigned(runqueue)
        builder.putUnsigned(UInt64(wakerPid)); builder.putUnsigned(UInt64(wakerTid))
    }
    /// An offCPU event with any field values (for hostile inputs).
    mutating func offCPURaw(
        pid: UInt32, tid: UInt32, at ns: UInt64, state: UInt64, blocked: UInt64, runqueue: UInt64,
        waker: (UInt32, UInt32)
    ) {
        begin(.offCPU, ns)
        builder.putUnsigned(UInt64(pid)); builder.putUnsigned(UInt64(tid)); builder.putUnsigned(state)
        builder.putUnsigned(blocked); builder.putUnsigned(runqueue)
        builder.putUnsigned(UInt64(waker.0)); builder.putUnsigned(UInt64(waker.1))
    }
    mutating func fdOpen(pid: UInt32, tid: UInt32, fd: Int64, kind: FDKind, sourceFd: Int64 = -1, _ detail: String, at ns: UInt64) {
        let id = builder.intern(detail, ticks: ns)
        begin(.fdOpen, ns)
        builder.putUnsigned(UInt64(pid)); builder.putUnsigned(UInt64(tid)); builder.putSigned(fd)
        builder.putUnsigned(UInt64(kind.rawValue)); builder.putSigned(sourceFd); builder.putStringID(id)
    }

    mutating func processFork(parent: UInt32, child: UInt32, at ns: UInt64) {
        begin(.processFork, ns); builder.putUnsigned(UInt64(parent)); builder.putUnsigned(UInt64(child))
    }
    mutating func processTitle(pid: UInt32, ppid: UInt32 = 0, _ title: String, at ns: UInt64) {
        let id = builder.intern(title, ticks: ns)
        begin(.processTitle, ns); builder.putUnsigned(UInt64(pid)); builder.putUnsigned(UInt64(ppid)); builder.putStringID(id)
    }

    func sealed() -> [UInt8] {
        builder.seal(
            sequence: sequence, endNs: lastNs, endTicks: lastNs, droppedCumulative: dropped,
            flags: kernel ? [.kernel, .final] : [.final])
    }
}

func writeTrace(_ streams: [StreamScript], pid: UInt32, startNs: UInt64, program: String = "./scripted") -> String {
    let path = NSTemporaryDirectory() + "asynctrace-analyses-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).atrace"
    var bytes = FileHeader(pid: pid, monotonicStartNs: startNs, realtimeStartNs: 0, program: program).encode()
    for s in streams { bytes += s.sealed() }
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    return path
}

/// Kernel events written in any order, sorted by their timestamp into one stream.
struct KernelScript {
    let pid: UInt32
    let startNs: UInt64
    private var events: [(ns: UInt64, order: Int, write: (inout StreamScript) -> Void)] = []

    init(pid: UInt32, startNs: UInt64) {
        self.pid = pid
        self.startNs = startNs
    }

    mutating func add(at ns: UInt64, _ write: @escaping (inout StreamScript) -> Void) { events.append((ns, events.count, write)) }

    mutating func threadName(tid: UInt32, _ name: String, at ns: UInt64, pid: UInt32? = nil) {
        let p = pid ?? self.pid
        add(at: ns) { $0.threadName(pid: p, tid: tid, name, at: ns) }
    }
    mutating func syscall(tid: UInt32, nr: UInt64, fd: Int64, size: UInt64 = 0, ret: Int64, enter: UInt64, exit: UInt64) {
        let p = pid
        add(at: exit) { $0.syscall(pid: p, tid: tid, nr: nr, fd: fd, size: size, ret: ret, enter: enter, exit: exit) }
    }
    mutating func epollWait(tid: UInt32, enter: UInt64, exit: UInt64) {
        let p = pid
        add(at: exit) { $0.epollWait(pid: p, tid: tid, epfd: 3, ret: 1, enter: enter, exit: exit, ready: [7]) }
    }
    mutating func offCPU(tid: UInt32, out: UInt64, state: UInt64, blocked: UInt64, runqueue: UInt64, wakerTid: UInt32 = 0) {
        let p = pid
        add(at: out + blocked + runqueue) {
            $0.offCPU(
                pid: p, tid: tid, out: out, state: state, blocked: blocked, runqueue: runqueue,
                wakerPid: wakerTid == 0 ? 0 : p, wakerTid: wakerTid)
        }
    }
    mutating func fdOpen(tid: UInt32, fd: Int64, kind: FDKind, sourceFd: Int64 = -1, _ detail: String, at ns: UInt64) {
        let p = pid
        add(at: ns) { $0.fdOpen(pid: p, tid: tid, fd: fd, kind: kind, sourceFd: sourceFd, detail, at: ns) }
    }

    mutating func processFork(child: UInt32, at ns: UInt64, parent: UInt32? = nil) {
        let p = parent ?? pid
        add(at: ns) { $0.processFork(parent: p, child: child, at: ns) }
    }
    mutating func processTitle(pid: UInt32, ppid: UInt32 = 0, _ title: String, at ns: UInt64) {
        add(at: ns) { $0.processTitle(pid: pid, ppid: ppid, title, at: ns) }
    }

    func stream() -> StreamScript {
        var s = StreamScript(pid: pid, tid: 0, kernel: true, startNs: startNs)
        for e in events.sorted(by: { ($0.ns, $0.order) < ($1.ns, $1.order) }) { e.write(&s) }
        return s
    }
}

func removeTrace(_ path: String) { try? FileManager.default.removeItem(atPath: path) }
