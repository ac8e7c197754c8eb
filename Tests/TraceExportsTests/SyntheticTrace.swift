// A small, fully known trace written with the format's own ChunkBuilder: a server's main thread
// (accept → read → timer, with kernel syscalls inside the callbacks and epoll reporting the fds),
// a worker thread, and a thread seen only by the kernel probes.
import Foundation
import TraceFormat

enum Synthetic {
    static let pid: UInt32 = 4242
    static let base: UInt64 = 5_000_000_000

    /// What the exports must show, counted by hand from the events below.
    enum Expect {
        static let callbacks = 4  // TCPSERVERWRAP 2, TCPWRAP 3, Timeout 4, (unknown) 10
        static let syscalls = 6  // 2 epoll_wait, accept4, read, write (main), write (kernel-only thread)
        static let triggerFlows = 3  // TCPWRAP 3, Timeout 4, FSREQCALLBACK 11 created inside callbacks
        static let readyFlows = 2  // epoll → fd 5 (server), epoll → fd 7 (connection)
        static let flowsTerminated = 4  // FSREQCALLBACK 11 never runs
        static let threads = 3
    }

    struct Event {
        var kind: EventKind
        var t: UInt64
        var args: [Int64] = []
        var text: String? = nil
        var list: [UInt64] = []
    }

    static func user(_ kind: EventKind, _ t: UInt64, _ args: [Int64] = [], text: String? = nil, list: [UInt64] = []) -> Event {
        Event(kind: kind, t: base + t, args: args, text: text, list: list)
    }

    static func mainThread() -> [Event] {
        [
            user(.threadInfo, 0, text: "main"),
            user(.loopIteration, 1_000, [1]),
            user(.phaseEnter, 1_100, [0]),
            user(.initResource, 1_200, [2, 0, 1], text: "TCPSERVERWRAP"),
            user(.resourceFD, 1_250, [2, 5]),
            user(.phaseLeave, 1_300, [0]),
            user(.phaseEnter, 1_350, [4]),
            user(.pollStart, 1_400, [-1]),
            user(.pollEnd, 5_100, [1], list: [5]),
            user(.before, 5_200, [2]),
            user(.initResource, 5_300, [3, 0, 2], text: "TCPWRAP"),
            user(.resourceFD, 5_350, [3, 7]),
            user(.after, 6_000, [2]),
            user(.phaseLeave, 6_100, [4]),
            user(.loopIteration, 7_000, [2]),
            user(.phaseEnter, 7_100, [4]),
            user(.pollStart, 7_150, [-1]),
            user(.pollEnd, 9_050, [1], list: [7]),
            user(.before, 9_100, [3]),
            user(.initResource, 9_600, [4, 0, 3], text: "Timeout"),
            user(.after, 10_000, [3]),
            user(.phaseLeave, 10_100, [4]),
            user(.loopIteration, 11_000, [3]),
            user(.phaseEnter, 11_100, [0]),
            user(.before, 11_200, [4]),
            user(.after, 11_500, [4]),
            user(.destroy, 11_600, [4]),
            user(.phaseLeave, 11_700, [0]),
            user(.mark, 11_800, [0, 3], text: "done"),
        ]
    }

    static func workerThread() -> [Event] {
        [
            user(.threadInfo, 0, text: "worker"),
            user(.before, 2_000, [10]),
            user(.initResource, 2_500, [11, 0, 10], text: "FSREQCALLBACK"),
            user(.after, 3_000, [10]),
        ]
    }

    /// (tid, nr, fd, size, ret, exit, duration, epoll data)
    static func kernelCalls() -> [(UInt32, UInt64, Int64, UInt64, Int64, UInt64, UInt64, [UInt64])] {
        [
            (100, 232, 9, 1024, 1, 5_000, 3_500, [5]),  // epoll_wait 1_500 ... 5_000: fd 5 ready
            (102, 1, 1, 12, 12, 4_000, 50, []),  // write on a thread without a user stream
            (100, 288, 5, 0, 7, 5_500, 100, []),  // accept4 inside TCPSERVERWRAP's callback
            (100, 232, 9, 1024, 1, 9_000, 1_800, [7]),  // epoll_wait 7_200 ... 9_000: fd 7 ready
            (100, 0, 7, 65_536, 100, 9_500, 200, []),  // read inside TCPWRAP's callback
            (100, 1, 7, 100, 100, 11_400, 100, []),  // write inside the Timeout's callback
        ]
    }

    static func userChunk(tid: UInt32, _ events: [Event], sequence: UInt64 = 0) -> [UInt8] {
        var b = ChunkBuilder(pid: pid, tid: tid, startNs: base, startTicks: base)
        if tid == 100 {
            let prog = b.intern("./server --port 0", ticks: base)
            b.beginEvent(.processInfo, ticks: base)
            b.putUnsigned(1)
            b.putStringID(prog)
        }
        for e in events {
            let sid = e.text.map { b.intern($0, ticks: e.t) }
            b.beginEvent(e.kind, ticks: e.t)
            let spec = e.kind.spec!
            var argi = 0
            for a in spec.args {
                switch a.encoding {
                case .string: b.putStringID(sid!)
                case .list: b.putList(e.list)
                case .asyncID: b.putAsyncID(UInt64(e.args[argi]))
                case .relatedID: b.putRelatedID(UInt64(e.args[argi]))
                case .signed: b.putSigned(e.args[argi])
                case .unsigned: b.putUnsigned(UInt64(e.args[argi]))
                case .pid: b.putPid(UInt64(e.args[argi]))
                case .tid: b.putTid(UInt64(e.args[argi]))
                case .stackID: b.putStackID(UInt64(e.args[argi]))
                case .bytes: break
                }
                argi += 1
            }
        }
        let end = events.last!.t
        return b.seal(sequence: sequence, endNs: end, endTicks: end, droppedCumulative: 0, flags: [.final])
    }

    static func kernelChunk() -> [UInt8] {
        var b = ChunkBuilder(pid: pid, tid: 0, startNs: base, startTicks: base)
        for (tid, nr, fd, size, ret, exit, dur, data) in kernelCalls().sorted(by: { $0.5 < $1.5 }) {
            let isEpoll = SyscallNames.epollWaits.contains(nr)
            b.beginEvent(isEpoll ? .epollWait : .syscall, ticks: base + exit)
            b.putUnsigned(UInt64(pid))
            b.putUnsigned(UInt64(tid))
            b.putUnsigned(nr)
            b.putSigned(fd)
            if isEpoll {
                b.putUnsigned(size)  // maxEvents
                b.putSigned(-1)  // timeoutMs
                b.putSigned(ret)
                b.putUnsigned(dur)
                b.putList(data)
            } else {
                b.putUnsigned(size)
                b.putSigned(ret)
                b.putUnsigned(dur)
            }
        }
        return b.seal(
            sequence: 0, endNs: base + 11_400, endTicks: base + 11_400, droppedCumulative: 0,
            flags: [.kernel, .final])
    }

    /// Writes the trace; `kernel: false` leaves out the kernel stream (user-only trace, flows from pollEnd).
    static func write(to path: String, kernel: Bool = true) {
        var bytes = FileHeader(pid: pid, monotonicStartNs: base, realtimeStartNs: 1, program: "./server --port 0").encode()
        bytes += userChunk(tid: 100, mainThread())
        bytes += userChunk(tid: 101, workerThread())
        if kernel { bytes += kernelChunk() }
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { fatalError("cannot write \(path)") }
    }
}

/// A scratch directory per test, removed at the end.
final class ScratchDirectory {
    let path: String
    init(_ name: String) {
        path = NSTemporaryDirectory() + "asynctrace-export-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit {
        if ProcessInfo.processInfo.environment["ASYNCTRACE_KEEP_TEST_FILES"] == nil { try? FileManager.default.removeItem(atPath: path) }
    }
    func file(_ name: String) -> String { path + "/" + name }
}
