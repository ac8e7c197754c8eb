// THREADS, LOOP STALLS, fd lives, errors by errno and the report window, on scripted v3 traces whose
// every number is known: a kernel-only program with a loop thread (a CPU-bound stall and a blocking file
// read), a thread sleeping in clock_nanosleep, one waiting on a futex that another wakes, and one burning CPU.
import Foundation
import Testing
import TraceFormat
@testable import TraceAnalyses
import TraceReader
import TraceReports

private let T: UInt64 = 1_000_000_000
private func ms(_ v: Double) -> UInt64 { T + UInt64((v * 1_000_000).rounded()) }

/// Times are ms after T (the recording's start). pid 500: node (500, the loop), sleeper 501, burner 502, waiter 503.
func scriptedThreadsTrace() -> String {
    var k = KernelScript(pid: 500, startNs: T)
    k.threadName(tid: 500, "node", at: T)
    k.threadName(tid: 501, "sleeper", at: T)
    k.threadName(tid: 502, "burner", at: T)
    k.threadName(tid: 503, "waiter", at: T)
    // fd 41: a file, closed; then a TCP connection, replaced by a dup of fd 3 (a pipe) without a close.
    k.fdOpen(tid: 500, fd: 41, kind: .file, "/srv/big.bin", at: ms(1))
    // The loop: wait, 100 ms CPU-bound stall (0.3 ms write, preempted 2 ms), wait, 80 ms stall in a 57 ms read.
    k.epollWait(tid: 500, enter: ms(2), exit: ms(10))
    k.offCPU(tid: 500, out: ms(2.001), state: 1, blocked: 7_900_000, runqueue: 50_000)
    k.syscall(tid: 500, nr: 1, fd: 1, size: 10, ret: 10, enter: ms(50), exit: ms(50.3))
    k.offCPU(tid: 500, out: ms(60), state: 0, blocked: 0, runqueue: 2_000_000)
    k.epollWait(tid: 500, enter: ms(110), exit: ms(120))
    k.offCPU(tid: 500, out: ms(110.01), state: 1, blocked: 9_900_000, runqueue: 0)
    k.syscall(tid: 500, nr: 0, fd: 41, size: 67_108_864, ret: 67_108_864, enter: ms(130), exit: ms(187))
    k.offCPU(tid: 500, out: ms(130.5), state: 2, blocked: 56_000_000, runqueue: 200_000)
    k.epollWait(tid: 500, enter: ms(200), exit: ms(300))
    k.offCPU(tid: 500, out: ms(200.01), state: 1, blocked: 99_900_000, runqueue: 0)
    k.syscall(tid: 500, nr: 3, fd: 41, ret: 0, enter: ms(300.1), exit: ms(300.2))
    k.fdOpen(tid: 500, fd: 41, kind: .tcp, "127.0.0.1:8080->127.0.0.1:5555", at: ms(301))
    k.fdOpen(tid: 500, fd: 41, kind: .pipe, sourceFd: 3, "pipe:[77]", at: ms(305))
    // fd 42: socket(), then connect's fdOpen (sourceFd == fd) names the same life; close_range(40, 50) ends both.
    k.fdOpen(tid: 500, fd: 42, kind: .tcp, "", at: ms(302))
    k.fdOpen(tid: 500, fd: 42, kind: .tcp, sourceFd: 42, "127.0.0.1:40312->127.0.0.1:8080", at: ms(303))
    k.syscall(tid: 500, nr: 436, fd: 40, size: 50, ret: 0, enter: ms(306), exit: ms(306.01))
    // sleeper: 200 ms in clock_nanosleep.
    k.syscall(tid: 501, nr: 230, fd: -1, ret: 0, enter: ms(5), exit: ms(205))
    k.offCPU(tid: 501, out: ms(5.01), state: 1, blocked: 199_900_000, runqueue: 50_000)
    // waiter: FUTEX_WAIT_PRIVATE (op 128) for 300 ms, woken by the burner.
    k.syscall(tid: 503, nr: 202, fd: 128, size: 0x7000, ret: 0, enter: ms(10), exit: ms(310))
    k.offCPU(tid: 503, out: ms(10.01), state: 1, blocked: 299_900_000, runqueue: 40_000, wakerTid: 502)
    // burner: on CPU from T, preempted 5 ms at 100 ms; two EAGAIN and one ECONNRESET; wakes the waiter.
    k.offCPU(tid: 502, out: ms(100), state: 0, blocked: 0, runqueue: 5_000_000)
    k.syscall(tid: 502, nr: 45, fd: 9, ret: -11, enter: ms(207), exit: ms(207.01))
    k.syscall(tid: 502, nr: 45, fd: 9, ret: -11, enter: ms(208), exit: ms(208.01))
    k.syscall(tid: 502, nr: 45, fd: 9, ret: -104, enter: ms(209), exit: ms(209.01))
    k.syscall(tid: 502, nr: 202, fd: 129, size: 0x7000, ret: 1, enter: ms(309.9), exit: ms(309.92))
    return writeTrace([k.stream()], pid: 500, startNs: T, program: "node server.js")
}

private func analysis(_ path: String, window: ClosedRange<UInt64>? = nil) throws -> TraceAnalysis {
    var o = AnalysisOptions()
    o.window = window
    return analyzeTrace(try TraceReader(path: path), options: o)
}

@Suite struct ThreadsReportTests {
    @Test func threadsSplitOnCPUBlockedAndRunQueueByReason() throws {
        let path = scriptedThreadsTrace()
        defer { removeTrace(path) }
        let a = try analysis(path)
        #expect(a.hasSchedulerEvents)
        #expect(a.threads.map(\.tid) == [500, 501, 502, 503])
        let byTid = Dictionary(uniqueKeysWithValues: a.threads.map { ($0.tid, $0) })
        let node = try #require(byTid[500]), sleeper = try #require(byTid[501])
        let burner = try #require(byTid[502]), waiter = try #require(byTid[503])
        #expect(node.name == "node" && node.isLoop && !sleeper.isLoop && !burner.isLoop)
        #expect(sleeper.offCPUByReason.first?.reason == "clock_nanosleep")
        #expect(sleeper.offCPUByReason.first?.ns == 199_900_000)
        #expect(sleeper.runqueueNs == 50_000)
        let futex = try #require(waiter.offCPUByReason.first)
        #expect(futex.reason == "futex wait" && futex.ns == 299_900_000 && futex.count == 1)
        #expect(futex.wakers.first == ThreadRef(pid: 500, tid: 502, name: "burner"))
        // The burner was seen from T (its name) to its last syscall's exit, off CPU only while preempted.
        #expect(burner.spanNs == 309_920_000)
        #expect(burner.runqueueNs == 5_000_000 && burner.offCPUNs == 0)
        #expect(burner.onCPUNs == 304_920_000)
        #expect(burner.errors == 3)
        // The loop thread: blocked in epoll 7.9 + 9.9 + 99.9 ms, in the read 56 ms (uninterruptible).
        let reasons = Dictionary(uniqueKeysWithValues: node.offCPUByReason.map { ($0.reason, $0.ns) })
        #expect(reasons["epoll_wait"] == 117_700_000)
        #expect(reasons["read"] == 56_000_000)
        #expect(node.runqueueNs == 2_250_000)
        #expect(node.longestStallNs == 100_000_000 && node.longestStallStartNs == ms(10))
        #expect(node.loopUtilization != nil)
    }

    @Test func loopStallsSayWhetherTheLoopRanOrWaitedAndOnWhat() throws {
        let path = scriptedThreadsTrace()
        defer { removeTrace(path) }
        let a = try analysis(path)
        #expect(a.stalls.map(\.durationNs) == [100_000_000, 80_000_000])
        #expect(a.stallsAtThreshold == 2 && a.stallsAtThresholdNs == 180_000_000)
        let cpu = a.stalls[0], read = a.stalls[1]
        #expect(cpu.thread == ThreadRef(pid: 500, tid: 500, name: "node"))
        #expect(cpu.onCPUNs == 98_000_000 && cpu.runqueueNs == 2_000_000 && cpu.kernelNs == 300_000)
        #expect(read.onCPUNs == 23_800_000 && read.blockedNs == 56_000_000)
        let r = try #require(read.syscalls.first)
        #expect(r.name == "read" && r.fd == 41 && r.fdDetail == "/srv/big.bin" && r.ns == 57_000_000)
        #expect(r.blockedNs == 56_000_000 && r.bytes == 67_108_864)

        let text = TextReport.render(a)
        #expect(text.contains("LOOP STALLS: 2 stretches between waits for events of 10.0 ms or longer (180 ms in total)"))
        #expect(text.contains("▶ 100 ms on node (tid 500) at +0.010 s"))
        #expect(text.contains("CPU-bound: 98.0 ms on CPU, 300 µs in the kernel"))
        #expect(text.contains("waiting: 56.0 ms blocked, mostly in read(fd 41 → /srv/big.bin)"))
        #expect(text.contains("read(fd 41 → /srv/big.bin) 57.0 ms (56.0 ms blocked), 64.0 MiB"))
        #expect(!text.contains("longest gaps between epoll waits"))
        #expect(text.contains("THREADS: 4 traced threads"))
        #expect(text.contains("sleeper (tid 501 pid 500) blocked in: clock_nanosleep 200 ms"))
        #expect(text.contains("waiter (tid 503 pid 500) blocked in: futex wait 300 ms (woken by burner (tid 502 pid 500))"))
    }

    @Test func everyFDLifeIsItsOwnRowWithKindPathAndPeer() throws {
        let path = scriptedThreadsTrace()
        defer { removeTrace(path) }
        let a = try analysis(path)
        let lives = a.io.fds.filter { $0.fd == 41 }
        #expect(lives.map(\.kind) == ["file", "tcp", "pipe"])
        // futex's fd field is its operation: no fd rows for 128/129.
        #expect(!a.io.fds.contains { $0.fd == 128 || $0.fd == 129 })
        #expect(lives[0].path == "/srv/big.bin" && lives[0].bytesRead == 67_108_864 && lives[0].reads == 1)
        #expect(lives[0].openedNs == ms(1) && lives[0].closedNs == ms(300.2))
        #expect(lives[1].path == nil && lives[1].local == "127.0.0.1:8080" && lives[1].peer == "127.0.0.1:5555")
        #expect(lives[1].openedNs == ms(301) && lives[1].closedNs == ms(305) && lives[1].reads == 0)
        #expect(lives[2].sourceFd == 3 && lives[2].closedNs == ms(306.01) && lives[2].openedBy?.name == "node")
        let connected = a.io.fds.filter { $0.fd == 42 }
        #expect(connected.count == 1 && connected.first?.peer == "127.0.0.1:8080" && connected.first?.local == "127.0.0.1:40312")
        #expect(connected.first?.openedNs == ms(302) && connected.first?.closedNs == ms(306.01))

        let json = JSONReport.render(a)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(obj["schema_version"] as? Int == 2)
        let fds = try #require(obj["fds"] as? [[String: Any]]).filter { $0["fd"] as? Int == 41 }
        #expect(fds.map { $0["kind"] as? String } == ["file", "tcp", "pipe"])
        #expect(fds[1]["peer"] as? String == "127.0.0.1:5555")
        #expect(fds[0]["closed_ns"] as? UInt64 == ms(300.2))
        let threads = try #require(obj["threads"] as? [[String: Any]])
        let waiter = try #require(threads.first { $0["tid"] as? Int == 503 })
        #expect(waiter["name"] as? String == "waiter" && waiter["is_loop"] as? Bool == false)
        let reason = try #require((waiter["off_cpu_by_reason"] as? [[String: Any]])?.first)
        #expect(reason["reason"] as? String == "futex wait" && reason["ns"] as? Int == 299_900_000 && reason["count"] as? Int == 1)
        let stalls = try #require(obj["stalls"] as? [[String: Any]])
        #expect(stalls.count == 2 && stalls[1]["on_cpu_ns"] as? Int == 23_800_000)
        let sys = try #require((stalls[1]["syscalls"] as? [[String: Any]])?.first)
        #expect(sys["name"] as? String == "read" && sys["fd"] as? Int == 41 && sys["ns"] as? Int == 57_000_000)
        #expect(sys["bytes"] as? Int == 67_108_864)
    }

    @Test func bytesAreBytesNotMessagesAndSendfileAndSpliceMoveThem() throws {
        var k = KernelScript(pid: 600, startNs: T)
        k.threadName(tid: 600, "nginx", at: T)
        k.fdOpen(tid: 600, fd: 7, kind: .tcp, "127.0.0.1:80->127.0.0.1:5000", at: ms(1))
        k.fdOpen(tid: 600, fd: 8, kind: .pipe, "", at: ms(1))
        k.fdOpen(tid: 600, fd: 9, kind: .udp, "127.0.0.1:53", at: ms(1))
        k.syscall(tid: 600, nr: 40, fd: 7, size: 4 << 20, ret: 2 << 20, enter: ms(2), exit: ms(3))  // sendfile: out_fd
        k.syscall(tid: 600, nr: 275, fd: 8, size: 65_536, ret: 4096, enter: ms(4), exit: ms(5))  // splice: fd_in
        k.syscall(tid: 600, nr: 299, fd: 9, size: 8, ret: 5, enter: ms(6), exit: ms(7))  // recvmmsg: 5 messages
        k.syscall(tid: 600, nr: 307, fd: 9, size: 8, ret: 3, enter: ms(8), exit: ms(9))  // sendmmsg: 3 messages
        let path = writeTrace([k.stream()], pid: 600, startNs: T, program: "nginx")
        defer { removeTrace(path) }
        let a = try analysis(path)
        let fd = Dictionary(uniqueKeysWithValues: a.io.fds.map { ($0.fd, $0) })
        #expect(fd[7]?.writes == 1 && fd[7]?.bytesWritten == 2 << 20)
        #expect(fd[8]?.reads == 1 && fd[8]?.bytesRead == 4096)
        #expect(fd[9]?.reads == 1 && fd[9]?.writes == 1 && fd[9]?.bytesRead == 0 && fd[9]?.bytesWritten == 0)
        let bytes = Dictionary(uniqueKeysWithValues: a.io.syscalls.map { ($0.name, $0.bytes) })
        #expect(bytes == ["sendfile": 2 << 20, "splice": 4096, "recvmmsg": 0, "sendmmsg": 0])
    }

    @Test func threadsThatNeverRanWhileRecordedShareOneLine() throws {
        var k = KernelScript(pid: 700, startNs: T)
        k.threadName(tid: 700, "server", at: T)
        for tid: UInt32 in 701...703 { k.threadName(tid: tid, "pool", at: T) }  // as /proc showed them at the attach
        k.syscall(tid: 700, nr: 0, fd: 5, size: 10, ret: 10, enter: ms(1), exit: ms(2))
        k.offCPU(tid: 700, out: ms(3), state: 1, blocked: 5_000_000, runqueue: 0)
        let path = writeTrace([k.stream()], pid: 700, startNs: T, program: "server")
        defer { removeTrace(path) }
        let a = try analysis(path)
        #expect(a.threads.count == 4)
        let text = TextReport.render(a)
        #expect(text.contains("3 threads did nothing while recorded (asleep throughout): pool ×3"), "\(text)")
        #expect(!text.contains("pool (tid 701"), "\(text)")
    }

    @Test func waitsOutsideTracedSyscallsAreNamedForTheSyscallTheSchedulerSaw() throws {
        // A master process: 1 s in wait4 (not recorded), 20 ms in vfork (uninterruptible), 5 ms of page faults
        // (no syscall), and the rest of an epoll_pwait begun before tracing (recorded, but its enter never seen).
        var k = KernelScript(pid: 800, startNs: T)
        k.threadName(tid: 800, "master", at: T)
        k.offCPU(tid: 800, out: ms(1), state: 1, blocked: 50_000_000, runqueue: 0)  // no syscall known: old traces
        k.offCPU(tid: 800, out: ms(60), state: 1 | (232 + 1) << 8, blocked: 100_000_000, runqueue: 0)
        k.offCPU(tid: 800, out: ms(200), state: 1 | (61 + 1) << 8, blocked: 1_000_000_000, runqueue: 0)
        k.offCPU(tid: 800, out: ms(1300), state: 2 | (58 + 1) << 8, blocked: 20_000_000, runqueue: 1_000)
        k.offCPU(tid: 800, out: ms(1400), state: 2, blocked: 5_000_000, runqueue: 0)
        k.syscall(tid: 800, nr: 0, fd: 3, size: 1, ret: 1, enter: ms(1500), exit: ms(1500.01))
        let path = writeTrace([k.stream()], pid: 800, startNs: T, program: "master")
        defer { removeTrace(path) }
        let a = try analysis(path)
        let master = try #require(a.threads.first { $0.tid == 800 })
        let reasons = Dictionary(uniqueKeysWithValues: master.offCPUByReason.map { ($0.reason, $0.ns) })
        #expect(
            reasons == [
                "wait4": 1_000_000_000, "epoll_wait": 100_000_000, "sleeping outside traced syscalls": 50_000_000, "vfork": 20_000_000,
                "uninterruptible (D) outside traced syscalls, e.g. a page fault": 5_000_000,
            ], "\(reasons)")
        #expect(TextReport.render(a).contains("blocked in: wait4 1.00 s"), "\(TextReport.render(a))")
    }

    @Test func errorsAreBrokenDownByErrno() throws {
        let path = scriptedThreadsTrace()
        defer { removeTrace(path) }
        let a = try analysis(path)
        let recv = try #require(a.io.syscalls.first { $0.name == "recvfrom" })
        #expect(recv.errors == 3)
        #expect(recv.errorsByErrno.map(\.errno) == ["EAGAIN", "ECONNRESET"])
        #expect(recv.errorsByErrno.map(\.count) == [2, 1])
        #expect(TextReport.render(a).contains("3 (EAGAIN 2, ECONNRESET 1)"))
    }

    @Test func aWindowCountsOnlyWhatHappenedInsideIt() throws {
        let path = scriptedThreadsTrace()
        defer { removeTrace(path) }
        let a = try analysis(path, window: ms(115)...ms(310))
        // The 100 ms stall began before the window: only the 80 ms one is whole inside it.
        #expect(a.stalls.map(\.durationNs) == [80_000_000])
        let sleeper = try #require(a.threads.first { $0.tid == 501 })
        // Its sleep began at 5 ms: only the part inside the window (from 115 ms) counts.
        #expect(sleeper.offCPUByReason.first?.ns == ms(204.96) - ms(115) - 50_000)
        #expect(TextReport.render(a).contains("window     +0.115 s to +0.310 s"))
    }

    /// `report --from` skipped every event before the window, fdOpen too: redis-server's clients, connected
    /// before it, were "write(fd 14)" inside it where the whole trace said "write(fd 14 → 127.0.0.1:6391->…)".
    @Test func aWindowKnowsTheFdsOpenedBeforeIt() throws {
        var k = KernelScript(pid: 800, startNs: T)
        k.threadName(tid: 800, "server", at: T)
        k.fdOpen(tid: 800, fd: 5, kind: .tcp, "127.0.0.1:6391->127.0.0.1:57126", at: ms(1))
        k.fdOpen(tid: 800, fd: 6, kind: .file, "/tmp/gone-before", at: ms(2))
        k.syscall(tid: 800, nr: 3, fd: 6, ret: 0, enter: ms(3), exit: ms(3.01))  // closed before the window
        k.fdOpen(tid: 800, fd: 6, kind: .file, "/tmp/open-across", at: ms(4))
        k.epollWait(tid: 800, enter: ms(5), exit: ms(110))
        k.syscall(tid: 800, nr: 1, fd: 5, size: 5, ret: 5, enter: ms(120), exit: ms(140))  // a 20 ms write in a stall
        k.syscall(tid: 800, nr: 3, fd: 6, ret: 0, enter: ms(141), exit: ms(141.01))
        k.epollWait(tid: 800, enter: ms(150), exit: ms(160))
        let path = writeTrace([k.stream()], pid: 800, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path, window: ms(100)...ms(200))
        let socket = try #require(a.io.fds.first { $0.fd == 5 }, "\(a.io.fds.map { ($0.fd, $0.detail) })")
        #expect(socket.kind == "tcp" && socket.peer == "127.0.0.1:57126" && socket.writes == 1)
        // fd 6's first life ended before the window: no row; its second, closed inside it, is one.
        #expect(a.io.fds.filter { $0.fd == 6 }.map(\.path) == ["/tmp/open-across"])
        let stall = try #require(a.stalls.first)
        #expect(stall.syscalls.first?.fdDetail == "127.0.0.1:6391->127.0.0.1:57126", "\(stall.syscalls)")
    }

    /// A stall's futex calls are named by their operation, as THREADS names the waits: postgres's 353 ms stall
    /// listed "futex() 18.5 ms in 2 calls (14.5 ms blocked)" (an LWLock wait) with the wakes merged into it.
    @Test func aStallsFutexCallsAreNamedByTheirOperation() throws {
        var k = KernelScript(pid: 900, startNs: T)
        k.threadName(tid: 900, "backend", at: T)
        k.epollWait(tid: 900, enter: ms(1), exit: ms(10))
        // FUTEX_WAIT_PRIVATE (op 128) 40 ms, blocked, then a FUTEX_WAKE_PRIVATE (op 129).
        k.syscall(tid: 900, nr: 202, fd: 128, size: 0x7000, ret: 0, enter: ms(20), exit: ms(60))
        k.offCPU(tid: 900, out: ms(20.01), state: 1, blocked: 39_900_000, runqueue: 50_000)
        k.syscall(tid: 900, nr: 202, fd: 129, size: 0x7000, ret: 1, enter: ms(61), exit: ms(61.01))
        k.epollWait(tid: 900, enter: ms(62), exit: ms(70))
        let path = writeTrace([k.stream()], pid: 900, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path)
        let stall = try #require(a.stalls.first)
        #expect(stall.syscalls.map(\.name) == ["futex wait", "futex wake"], "\(stall.syscalls)")
        let text = TextReport.render(a)
        #expect(text.contains("mostly in futex wait;") && text.contains("futex wait 40.0 ms (39.9 ms blocked)"), "\(text)")
        #expect(!text.contains("futex wait()") && !text.contains("futex wake()"), "\(text)")
    }

    /// The counts of a reason's wakers add up to its waits: redis-server's AOF thread said "fdatasync 49.9 ms (43×,
    /// woken 33× by interrupts, 4× by tid 22366, 1× by tid 612)", 5 waits unaccounted (ended by threads not named).
    @Test func wakerCountsAddUpToTheWaits() throws {
        var k = KernelScript(pid: 950, startNs: T)
        k.threadName(tid: 950, "syncer", at: T)
        // 10 futex waits of 1 ms: 4 ended by tid 951, 2 by 952, 1 each by 953, 954 and 955, 1 by an interrupt.
        let wakers: [UInt32] = [951, 951, 951, 951, 952, 952, 953, 954, 955, 0]
        for (i, w) in wakers.enumerated() {
            let t = 10 + 10 * Double(i)
            k.syscall(tid: 950, nr: 202, fd: 128, size: 0x7000, ret: 0, enter: ms(t), exit: ms(t + 1.01))
            k.offCPU(tid: 950, out: ms(t + 0.005), state: 1, blocked: 1_000_000, runqueue: 0, wakerTid: w)
        }
        let path = writeTrace([k.stream()], pid: 950, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path)
        let line = try #require(TextReport.render(a).split(separator: "\n").first { $0.contains("syncer (tid 950) blocked in:") })
        #expect(
            line.contains("(10×, woken 4× by tid 951 pid 950, 2× by tid 952 pid 950, 1× by interrupts, 3× by other threads)"), "\(line)")
    }

    @Test func aBlockingCallbackThatSleepsIsWaitingNotCPUBound() throws {
        var m = StreamScript(pid: 600, tid: 600, startNs: T)
        var k = KernelScript(pid: 600, startNs: T)
        m.threadName("main", at: T)
        m.initResource(2, "Timeout", trigger: 1, at: T)
        m.before(2, at: ms(10))
        // usleep(2000): clock_nanosleep, off CPU 2 ms.
        k.syscall(tid: 600, nr: 230, fd: -1, ret: 0, enter: ms(10.5), exit: ms(12.61))
        k.offCPU(tid: 600, out: ms(10.6), state: 1, blocked: 2_000_000, runqueue: 0)
        m.after(2, at: ms(13))
        let path = writeTrace([m, k.stream()], pid: 600, startNs: T)
        defer { removeTrace(path) }
        var o = AnalysisOptions()
        o.blockingThresholdNs = 1_000_000
        let a = analyzeTrace(try TraceReader(path: path), options: o)
        let c = try #require(a.blocking.longest.first)
        #expect(c.durationNs == 3_000_000 && c.blockedNs == 2_000_000 && c.onCPUNs == 1_000_000)
        #expect(c.syscalls.first?.name == "clock_nanosleep" && c.syscalls.first?.blockedNs == 2_000_000)
        let text = TextReport.render(a)
        #expect(text.contains("waiting: 2.00 ms blocked, mostly in clock_nanosleep; 1.00 ms on CPU"))
        #expect(!text.contains("CPU-bound"))
    }

    @Test func hostileSchedulerFieldsSaturateInsteadOfTrapping() throws {
        var k = KernelScript(pid: 700, startNs: T)
        k.threadName(tid: 700, "x", at: T)
        k.add(at: ms(1)) { $0.offCPURaw(pid: 700, tid: 700, at: ms(1), state: 1, blocked: .max / 2, runqueue: .max, waker: (.max, .max)) }
        k.add(at: ms(2)) { $0.offCPURaw(pid: 700, tid: 700, at: ms(2), state: 7, blocked: .max, runqueue: 2, waker: (0, 0)) }
        // A state whose syscall bits are out of any range, and one naming a syscall number x86_64 has not.
        k.add(at: ms(2.5)) { $0.offCPURaw(pid: 700, tid: 700, at: ms(2.5), state: .max, blocked: 10, runqueue: 2, waker: (0, 0)) }
        k.add(at: ms(2.6)) { $0.offCPURaw(pid: 700, tid: 700, at: ms(2.6), state: 1 | 5_000 << 8, blocked: 10, runqueue: 0, waker: (0, 0)) }
        k.syscall(tid: 700, nr: 202, fd: Int64.min, size: .max, ret: Int64.min, enter: ms(1), exit: ms(3))
        let path = writeTrace([k.stream()], pid: 700, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path)
        let t = try #require(a.threads.first)
        // Off-CPU time is cut to the recording: never more than the thread's span.
        #expect(t.offCPUNs &+ t.runqueueNs <= t.spanNs)
        _ = TextReport.render(a)
        _ = JSONReport.render(a)
    }

    /// A loop on poll/select from a crafted trace: a wait begun long before the recording, one of no time, failing,
    /// and a poll after an epoll wait. Nothing traps, and the loop's numbers stay within its span.
    @Test func hostilePollLoopWaitsSaturate() throws {
        var k = KernelScript(pid: 710, startNs: T)
        k.threadName(tid: 710, "poller", at: T)
        k.syscall(tid: 710, nr: 7, fd: -1, size: .max, ret: Int64.min, enter: ms(1), exit: ms(2))
        k.syscall(tid: 710, nr: 23, fd: -1, size: 1, ret: 1, enter: ms(3), exit: ms(3))  // no time at all
        k.syscall(tid: 710, nr: 271, fd: -1, size: 1, ret: 0, enter: 0, exit: ms(4))  // began before the recording
        k.syscall(tid: 710, nr: 270, fd: -1, size: 1, ret: 0, enter: ms(40), exit: ms(50))
        k.epollWait(tid: 711, enter: ms(1), exit: ms(2))
        k.syscall(tid: 711, nr: 7, fd: -1, size: 1, ret: 0, enter: ms(10), exit: ms(30))
        let path = writeTrace([k.stream()], pid: 710, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path)
        let poller = try #require(a.threads.first { $0.tid == 710 })
        #expect(poller.isLoop)
        #expect(poller.loopUtilization.map { $0 >= 0 && $0 <= 1 } ?? true)
        #expect(poller.longestStallNs <= poller.spanNs)
        // The other thread waited in epoll first: its poll is a syscall inside its stall, not its idle time.
        let other = try #require(a.threads.first { $0.tid == 711 })
        #expect(other.epollWaits == 1)
        _ = TextReport.render(a)
        _ = JSONReport.render(a)
    }

    /// An off-CPU episode whose switch-in the kernel's tracepoint never delivered, as the probes write it at the
    /// thread's next switch-out: its blocked part (wakeup seen) counts as a wait in its syscall, the rest is
    /// unknown: not on-CPU, not run-queue wait, and shown as a loss.
    @Test func aSwitchInNotSeenIsALossAndItsUnknownTimeIsNotOnCPU() throws {
        var k = KernelScript(pid: 800, startNs: T)
        k.threadName(tid: 800, "worker", at: T)
        k.offCPU(tid: 800, out: ms(10), state: 1, blocked: 5_000_000, runqueue: 100_000)
        // Asleep in read from 20 ms, woken at 23 ms; its switch-in not seen; the next switch-out at 30 ms (preempted
        // still inside the read, back on at 31 ms). The read ends at 32 ms, after the lost episode is written: nothing
        // bounds the episode before 30 ms.
        k.syscall(tid: 800, nr: 0, fd: 5, size: 100, ret: 100, enter: ms(19.9), exit: ms(32))
        let lost = UInt64(OffCPUState.switchInNotSeen.rawValue) | (0 + 1) << 8
        k.add(at: ms(30)) {
            $0.offCPURaw(pid: 800, tid: 800, at: ms(30), state: lost, blocked: 3_000_000, runqueue: 7_000_000, waker: (800, 801))
        }
        k.offCPU(tid: 800, out: ms(30), state: 0, blocked: 0, runqueue: 1_000_000)
        k.syscall(tid: 800, nr: 1, fd: 1, size: 1, ret: 1, enter: ms(39.9), exit: ms(40))
        let path = writeTrace([k.stream()], pid: 800, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path)
        let t = try #require(a.threads.first { $0.tid == 800 })
        #expect(t.spanNs == 40_000_000)
        #expect(t.switchInsNotSeen == 1 && t.unknownNs == 7_000_000)
        #expect(t.offCPUNs == 8_000_000 && t.runqueueNs == 1_100_000)
        #expect(t.onCPUNs == 40_000_000 - 8_000_000 - 1_100_000 - 7_000_000)
        #expect(t.offCPUByReason.first { $0.reason == "read" }?.ns == 3_000_000)
        #expect(a.overview.switchInsNotSeenCount == 1 && a.overview.switchInsNotSeenNs == 7_000_000)
        #expect(a.overview.switchInsNotSeen.first?.thread == ThreadRef(pid: 800, tid: 800, name: "worker"))
        let text = TextReport.render(a)
        #expect(
            text.contains(
                "unseen     1 off-CPU switch-in not seen by the kernel's sched_switch tracepoint (thread worker (tid 800), 7.00 ms unknown)"))
        let j = try #require(try JSONSerialization.jsonObject(with: Data(JSONReport.render(a).utf8)) as? [String: Any])
        let unseen = try #require(j["switch_ins_not_seen"] as? [String: Any])
        #expect(unseen["count"] as? Int == 1 && unseen["unknown_ns"] as? Int == 7_000_000)
        #expect((unseen["threads"] as? [[String: Any]])?.first?["tid"] as? Int == 800)
        let jt = try #require((j["threads"] as? [[String: Any]])?.first { $0["tid"] as? Int == 800 })
        #expect(jt["unknown_ns"] as? Int == 7_000_000 && jt["on_cpu_ns"] as? Int == 23_900_000)
        let html = try ReportCommandTests().report([path, "--html", "-o", "-"])
        #expect(html.stdout.contains("data-key=\"switch_ins_not_seen.count\" data-value=\"1\""), "\(html.stderr)")
        // A trace without one says nothing of it in text, and 0 in JSON.
        let plain = scriptedThreadsTrace()
        defer { removeTrace(plain) }
        let b = try analysis(plain)
        #expect(b.overview.switchInsNotSeen.isEmpty && !TextReport.render(b).contains("unseen"))
    }

    /// A switch-in not seen while asleep in a syscall whose exit came before the next switch-out: the thread ran
    /// that exit, so the episode ends there, blocked in the syscall, nothing unknown. A loop's 30 ms sleep in a
    /// stall read "clock_nanosleep 30.1 ms, 0 blocked" and "30.1 ms unknown" (a full test run under load).
    @Test func aSwitchInNotSeenEndsAtTheExitOfTheSyscallItSleptIn() throws {
        var k = KernelScript(pid: 820, startNs: T)
        k.threadName(tid: 820, "loop", at: T)
        k.epollWait(tid: 820, enter: ms(1), exit: ms(10))
        // Stall from 10 ms: asleep in clock_nanosleep 12 → 42 ms (switch-out at 12.1, wakeup not seen, switch-in not
        // seen), then a write at 43 ms; the next switch-out at 50 ms writes the lost episode, after both exits.
        k.syscall(tid: 820, nr: 230, fd: -1, ret: 0, enter: ms(12), exit: ms(42))
        k.syscall(tid: 820, nr: 1, fd: 1, size: 1, ret: 1, enter: ms(43), exit: ms(43.1))
        let lost = UInt64(OffCPUState.switchInNotSeen.rawValue) | (230 + 1) << 8
        k.add(at: ms(50)) {
            $0.offCPURaw(pid: 820, tid: 820, at: ms(50), state: lost, blocked: 0, runqueue: 37_900_000, waker: (0, 0))
        }
        // A read asleep 52 → 60 ms, woken at 57 ms (seen); the lost episode comes at its next switch-out, 70 ms.
        k.syscall(tid: 820, nr: 0, fd: 5, size: 10, ret: 10, enter: ms(51.9), exit: ms(60))
        k.add(at: ms(70)) {
            $0.offCPURaw(pid: 820, tid: 820, at: ms(70), state: lost & 0xFF | 1 << 8, blocked: 5_000_000, runqueue: 13_000_000, waker: (820, 821))
        }
        k.epollWait(tid: 820, enter: ms(71), exit: ms(80))
        let path = writeTrace([k.stream()], pid: 820, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path)
        let t = try #require(a.threads.first { $0.tid == 820 })
        #expect(t.switchInsNotSeen == 2 && t.switchInsClosedBySyscall == 2 && t.unknownNs == 0, "\(t)")
        #expect(t.offCPUByReason.first { $0.reason == "clock_nanosleep" }?.ns == 29_900_000)
        #expect(t.offCPUByReason.first { $0.reason == "read" }?.ns == 5_000_000)
        // The sleep's waker is nobody's (not an interrupt): its wakeup was not seen.
        #expect(t.offCPUByReason.first { $0.reason == "clock_nanosleep" }?.wokenByInterrupt == 0)
        #expect(t.runqueueNs == 3_000_000)
        #expect(a.overview.switchInsClosedBySyscall == 2 && a.overview.switchInsNotSeenNs == 0)
        let stall = try #require(a.stalls.first { $0.thread.tid == 820 })
        #expect(stall.durationNs == 61_000_000)
        #expect(stall.syscalls.first { $0.name == "clock_nanosleep" }?.blockedNs == 29_900_000, "\(stall.syscalls)")
        #expect(stall.syscalls.first { $0.name == "read" }?.blockedNs == 5_000_000, "\(stall.syscalls)")
        #expect(stall.blockedNs == 34_900_000 && stall.runqueueNs == 3_000_000)
        let text = TextReport.render(a)
        #expect(text.contains("0 ns unknown); each ended at the exit of the syscall they slept in, blocked there until then\n"), "\(text)")
        #expect(text.contains("mostly in clock_nanosleep"), "\(text)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(JSONReport.render(a).utf8)) as? [String: Any])
        #expect((j["switch_ins_not_seen"] as? [String: Any])?["closed_by_syscall"] as? Int == 2)
    }

    @Test func hostileSwitchInNotSeenTimesSaturate() throws {
        var k = KernelScript(pid: 900, startNs: T)
        k.threadName(tid: 900, "x", at: T)
        let lost = UInt64(OffCPUState.switchInNotSeen.rawValue)
        for (i, (blocked, runqueue)) in [(UInt64.max, UInt64.max), (.max, 0), (0, .max), (.max / 2 + 1, .max / 2 + 1)].enumerated() {
            let at = ms(1 + Double(i))
            k.add(at: at) {
                $0.offCPURaw(pid: 900, tid: 900, at: at, state: lost | .max << 8, blocked: blocked, runqueue: runqueue, waker: (.max, .max))
            }
        }
        k.add(at: .max) { $0.offCPURaw(pid: 900, tid: 900, at: .max, state: lost, blocked: .max, runqueue: .max, waker: (0, 0)) }
        let path = writeTrace([k.stream()], pid: 900, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path)
        let t = try #require(a.threads.first)
        #expect(t.switchInsNotSeen == 5)
        #expect(t.offCPUNs.addingSaturated(t.runqueueNs).addingSaturated(t.unknownNs) <= t.spanNs)
        #expect(a.overview.switchInsNotSeenCount == 5)
        _ = TextReport.render(a)
        _ = JSONReport.render(a)
    }
}

@Suite struct ReportWindowCommandTests {
    @Test func fromAndToPickATimeWindow() throws {
        let path = scriptedThreadsTrace()
        defer { removeTrace(path) }
        let r = try ReportCommandTests().report([path, "--json", "--from", "+115ms", "--to", "+0.31s"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect((j["stalls"] as? [[String: Any]])?.map { $0["duration_ns"] as? Int } == [80_000_000])
        let w = try #require((j["trace"] as? [String: Any])?["window"] as? [String: Any])
        #expect(w["from_ns"] as? Int == Int(ms(115)) && w["to_ns"] as? Int == Int(ms(310)))
        // The same window as CLOCK_MONOTONIC timestamps and as UTC wall-clock (the scripted header's realtime start is 0).
        let mono = try ReportCommandTests().report([path, "--json", "--from", "@\(ms(115))", "--to", "@\(ms(310))"])
        #expect(mono.stdout == r.stdout)
        let wall = try ReportCommandTests().report([path, "--json", "--from", "1970-01-01T00:00:00.115Z", "--to", "1970-01-01T00:00:00.310Z"])
        #expect(wall.stdout == r.stdout)
        let whole = try ReportCommandTests().report([path, "--json"])
        #expect(((try JSONSerialization.jsonObject(with: Data(whole.stdout.utf8)) as? [String: Any])?["stalls"] as? [Any])?.count == 2)
    }

    @Test func aTimeThatIsNotOneIsAUsageError() throws {
        let path = scriptedThreadsTrace()
        defer { removeTrace(path) }
        let bad = try ReportCommandTests().report([path, "--from", "soon"])
        #expect(bad.status == 64 && bad.stderr.contains("--from 'soon' is not a time"))
        let reversed = try ReportCommandTests().report([path, "--from", "+2s", "--to", "+1s"])
        #expect(reversed.status == 1 && reversed.stderr.contains("--from is after --to"))
    }
}

@Suite struct UnnamedFDKindTests {
    /// An fd without a path or address is named by its kind where that says what it is: node's
    /// 'write(fd 17) 8 B' in every callback was libuv's wake-up eventfd, uvloop's spawn 'read(fd 21) 49.2 ms'
    /// a pipe (the child's exec), and nothing said so.
    @Test func pipesAndEventfdsAreNamedByTheirKind() throws {
        var k = KernelScript(pid: 700, startNs: T)
        k.threadName(tid: 700, "loop", at: T)
        k.fdOpen(tid: 700, fd: 17, kind: .eventfd, "", at: ms(1))
        k.fdOpen(tid: 700, fd: 21, kind: .pipe, "", at: ms(1))
        k.fdOpen(tid: 700, fd: 5, kind: .file, "", at: ms(1))
        k.epollWait(tid: 700, enter: ms(2), exit: ms(10))
        k.syscall(tid: 700, nr: 1, fd: 17, size: 8, ret: 8, enter: ms(11), exit: ms(11.01))
        k.syscall(tid: 700, nr: 0, fd: 21, size: 4, ret: 0, enter: ms(12), exit: ms(40))
        k.syscall(tid: 700, nr: 0, fd: 5, size: 4, ret: 4, enter: ms(41), exit: ms(42))
        k.epollWait(tid: 700, enter: ms(60), exit: ms(70))
        let path = writeTrace([k.stream()], pid: 700, startNs: T, program: "python3 app.py")
        defer { removeTrace(path) }
        let a = analyzeTrace(try TraceReader(path: path), options: AnalysisOptions())
        let stall = try #require(a.stalls.first)
        let byFD = Dictionary(uniqueKeysWithValues: stall.syscalls.map { ($0.fd, $0.fdDetail) })
        #expect(byFD[17] == "eventfd" && byFD[21] == "pipe")
        #expect(byFD[5] == .some(nil), "a file without its path stays unnamed")
        let text = TextReport.render(a)
        #expect(text.contains("read(fd 21 → pipe) 28.0 ms"), "\(text)")
        #expect(text.contains("write(fd 17 → eventfd)"))
        #expect(text.contains("read(fd 5) "))
    }
}

/// Opens that failed keep the path they asked for (an fdOpen with fd -errno after the syscall): the SYSCALLS
/// section names them, most failed first; they begin no fd life. A crafted trace's unpaired or odd ones saturate.
@Suite struct FailedOpenPathTests {
    @Test func failedOpensAreNamedByPathAndErrorAndMakeNoFdRows() throws {
        var k = KernelScript(pid: 900, startNs: T)
        k.threadName(tid: 900, "prober", at: T)
        var at = ms(1)
        func failed(_ nr: UInt64, _ errno: Int64, _ path: String) {
            k.syscall(tid: 900, nr: nr, fd: -100, ret: -errno, enter: at, exit: at + 1_000)
            k.fdOpen(tid: 900, fd: -errno, kind: .unknown, path, at: at + 1_000)
            at += 10_000
        }
        for _ in 0..<3 { failed(257, 2, "/etc/app/config.yaml") }
        failed(257, 2, "/etc/app/config.yml")
        failed(257, 20, "/etc/passwd/x")
        failed(2, 2, "legacy.conf")  // open(2), its own row
        // A successful open: a life as before.
        k.syscall(tid: 900, nr: 257, fd: -100, ret: 5, enter: at, exit: at + 1_000)
        k.fdOpen(tid: 900, fd: 5, kind: .file, "/etc/hosts", at: at + 1_000)
        // Hostile: an fdOpen with fd < 0 paired with no failed syscall, one whose fd is not the syscall's return,
        // one with Int64.min, and a failed syscall whose fdOpen never comes.
        k.fdOpen(tid: 900, fd: -2, kind: .unknown, "/unpaired", at: ms(5))
        k.syscall(tid: 900, nr: 257, fd: -100, ret: -13, enter: ms(6), exit: ms(6.1))
        k.fdOpen(tid: 900, fd: -2, kind: .unknown, "/wrong-errno", at: ms(6.1))
        k.syscall(tid: 900, nr: 257, fd: -100, ret: Int64.min, enter: ms(7), exit: ms(7.1))
        k.fdOpen(tid: 900, fd: Int64.min, kind: .unknown, "/min", at: ms(7.1))
        k.syscall(tid: 900, nr: 257, fd: -100, ret: -2, enter: ms(8), exit: ms(8.1))
        let path = writeTrace([k.stream()], pid: 900, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path)
        let openat = try #require(a.io.syscalls.first { $0.name == "openat" })
        #expect(openat.failedPaths.first == FailedPath(path: "/etc/app/config.yaml", errno: "ENOENT", count: 3), "\(openat.failedPaths)")
        #expect(openat.failedPaths.contains(FailedPath(path: "/etc/passwd/x", errno: "ENOTDIR", count: 1)))
        #expect(!openat.failedPaths.contains { ["/unpaired", "/wrong-errno"].contains($0.path) }, "\(openat.failedPaths)")
        #expect(openat.failedPathCount == openat.failedPaths.count && openat.failedPathCount <= 4)
        let open = try #require(a.io.syscalls.first { $0.name == "open" })
        #expect(open.failedPaths == [FailedPath(path: "legacy.conf", errno: "ENOENT", count: 1)])
        #expect(a.io.fds.allSatisfy { $0.fd >= 0 }, "\(a.io.fds.map(\.fd))")
        #expect(a.io.fds.contains { $0.fd == 5 && $0.path == "/etc/hosts" })
        let text = TextReport.render(a)
        #expect(text.contains("openat failed on "), "\(text)")
        #expect(text.contains("3× ENOENT /etc/app/config.yaml"), "\(text)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(JSONReport.render(a).utf8)) as? [String: Any])
        let rows = try #require(json["syscalls"] as? [[String: Any]])
        let jOpenat = try #require(rows.first { $0["name"] as? String == "openat" })
        let paths = try #require(jOpenat["failed_paths"] as? [[String: Any]])
        #expect(paths.first?["path"] as? String == "/etc/app/config.yaml" && paths.first?["count"] as? Int == 3)
    }

    /// A program probing more distinct paths than are told apart: the rest are counted, not named, and not lost.
    @Test func failedPathsBeyondTheBoundAreCounted() throws {
        var k = KernelScript(pid: 901, startNs: T)
        var at = ms(1)
        let n = 4096 + 10
        for i in 0..<n {
            k.syscall(tid: 901, nr: 257, fd: -100, ret: -2, enter: at, exit: at + 100)
            k.fdOpen(tid: 901, fd: -2, kind: .unknown, "/probe/\(i)", at: at + 100)
            at += 1_000
        }
        let path = writeTrace([k.stream()], pid: 901, startNs: T)
        defer { removeTrace(path) }
        let a = try analysis(path)
        let openat = try #require(a.io.syscalls.first { $0.name == "openat" })
        #expect(openat.failedPathCount == 4096)
        #expect(openat.failedWithPath == UInt64(n))
        #expect(openat.failedPaths.count == SyscallStats.failedPathsShown)
    }
}
