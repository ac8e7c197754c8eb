// Exports of a kernel-only format-3 trace with scheduler events, whose every number is known: the folded
// stacks and flame graph are thread → on CPU / syscall / off-CPU reason (beside the syscall, which stays a leaf), Perfetto draws each thread's
// blocked and runnable states inside the syscall they happened in, and every validator accepts the output.
import Foundation
import Testing
import TraceExports
import TraceFormat
import TraceReader

private enum Sched {
    static let pid: UInt32 = 900
    static let T: UInt64 = 1_000_000_000
    static func ms(_ v: Double) -> UInt64 { T + UInt64((v * 1_000_000).rounded()) }

    /// loop (900): epoll 1 → 10 ms (blocked 8.9 ms, runnable 0.1 ms), on CPU, read(fd 5) 30 → 50 ms (blocked 18,
    /// runnable 0.5), on CPU, preempted 60 → 65 ms, on CPU, epoll 70 → 80 ms (blocked 9.95).
    /// sleeper (901): clock_nanosleep 2 → 90 ms (blocked 87.8, runnable 0.05, woken by tid 900).
    static func write(to path: String) {
        var events: [(UInt64, Int, (inout ChunkBuilder) -> Void)] = []
        func add(_ ns: UInt64, _ body: @escaping (inout ChunkBuilder) -> Void) { events.append((ns, events.count, body)) }
        func name(_ tid: UInt32, _ n: String) {
            add(T) { b in
                let id = b.intern(n, ticks: T)
                b.beginEvent(.threadName, ticks: T); b.putUnsigned(UInt64(pid)); b.putUnsigned(UInt64(tid)); b.putStringID(id)
            }
        }
        func syscall(_ tid: UInt32, _ nr: UInt64, fd: Int64, ret: Int64, _ enter: UInt64, _ exit: UInt64) {
            add(exit) { b in
                b.beginEvent(.syscall, ticks: exit)
                for v in [UInt64(pid), UInt64(tid), nr] { b.putUnsigned(v) }
                b.putSigned(fd); b.putUnsigned(0); b.putSigned(ret); b.putUnsigned(exit - enter)
            }
        }
        func epoll(_ tid: UInt32, _ enter: UInt64, _ exit: UInt64) {
            add(exit) { b in
                b.beginEvent(.epollWait, ticks: exit)
                for v in [UInt64(pid), UInt64(tid), 232] { b.putUnsigned(v) }
                b.putSigned(3); b.putUnsigned(8); b.putSigned(-1); b.putSigned(0); b.putUnsigned(exit - enter); b.putList([UInt64]())
            }
        }
        func off(_ tid: UInt32, out: UInt64, state: UInt64, blocked: UInt64, runqueue: UInt64, waker: UInt32 = 0) {
            let inNs = out + blocked + runqueue
            add(inNs) { b in
                b.beginEvent(.offCPU, ticks: inNs)
                for v in [UInt64(pid), UInt64(tid), state, blocked, runqueue, waker == 0 ? 0 : UInt64(pid), UInt64(waker)] { b.putUnsigned(v) }
            }
        }
        name(900, "loop")
        name(901, "sleeper")
        name(902, "reaper")
        // reaper (902): 40 ms in wait4, a syscall the probes do not record (the scheduler names it).
        off(902, out: ms(5), state: 1 | (61 + 1) << 8, blocked: 40_000_000, runqueue: 0)
        off(900, out: ms(1.01), state: 1, blocked: 8_890_000, runqueue: 100_000)
        epoll(900, ms(1), ms(10))
        off(900, out: ms(31), state: 2, blocked: 18_000_000, runqueue: 500_000)
        syscall(900, 0, fd: 5, ret: 4096, ms(30), ms(50))
        off(900, out: ms(60), state: 0, blocked: 0, runqueue: 5_000_000)
        off(900, out: ms(70.05), state: 1, blocked: 9_950_000, runqueue: 0)
        epoll(900, ms(70), ms(80))
        off(901, out: ms(2.1), state: 1, blocked: 87_800_000, runqueue: 50_000, waker: 900)
        syscall(901, 230, fd: -1, ret: 0, ms(2), ms(90))
        // lost (903): asleep in clock_nanosleep 12 → 42 ms, a write at 43 ms; its switch-in not seen, the episode is
        // written at its next switch-out (50 ms), after both: it was back on a CPU by 42 ms. unseen (904): an episode
        // nothing bounds (20 → 30 ms), unknown.
        name(903, "lost")
        name(904, "unseen")
        let notSeen = UInt64(OffCPUState.switchInNotSeen.rawValue)
        syscall(903, 230, fd: -1, ret: 0, ms(12), ms(42))
        syscall(903, 1, fd: 1, ret: 1, ms(43), ms(43.1))
        off(903, out: ms(12.1), state: notSeen | (230 + 1) << 8, blocked: 0, runqueue: 37_900_000)
        off(904, out: ms(20), state: notSeen, blocked: 0, runqueue: 10_000_000)

        var b = ChunkBuilder(pid: pid, tid: 0, startNs: T, startTicks: T)
        for (_, _, body) in events.sorted(by: { ($0.0, $0.1) < ($1.0, $1.1) }) { body(&b) }
        var bytes = FileHeader(pid: pid, monotonicStartNs: T, realtimeStartNs: 0, program: "./sched").encode()
        bytes += b.seal(sequence: 0, endNs: ms(90), endTicks: ms(90), droppedCumulative: 0, flags: [.kernel])
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }
}

@Suite struct KernelThreadsExportTests {
    /// A poll of several fds, and a select, carry the fd they returned as ready, not one they waited on alone: the
    /// timeline's syscall slices give them no fd (Chrome's args "fd": -1), as before the probes recorded it; a
    /// poll of one fd keeps its fd.
    @Test func aWaitOnSeveralFdsHasNoFdInTheTimeline() throws {
        let dir = ScratchDirectory("several-fds")
        let trace = dir.file("t.atrace"), out = dir.file("t.json")
        let pid: UInt32 = 900, T: UInt64 = 1_000_000_000
        var b = ChunkBuilder(pid: pid, tid: 0, startNs: T, startTicks: T)
        // (nr, fd, size): poll of 3 fds (fd 7 ready), select (fd 5 ready), poll of fd 4 alone.
        for (i, call) in [(UInt64(7), Int64(7), UInt64(3)), (23, 5, 9), (7, 4, 1)].enumerated() {
            let exit = T + UInt64(i + 1) * 10_000_000
            b.beginEvent(.syscall, ticks: exit)
            for v in [UInt64(pid), UInt64(pid), call.0] { b.putUnsigned(v) }
            b.putSigned(call.1); b.putUnsigned(call.2); b.putSigned(1); b.putUnsigned(5_000_000)
        }
        var bytes = FileHeader(pid: pid, monotonicStartNs: T, realtimeStartNs: 0, program: "./waits").encode()
        bytes += b.seal(sequence: 0, endNs: T + 40_000_000, endTicks: T + 40_000_000, droppedCumulative: 0, flags: [.kernel])
        _ = FileManager.default.createFile(atPath: trace, contents: Data(bytes))
        _ = try export(trace, .chrome, to: out)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out)))
        let events = ((json as? [String: Any])?["traceEvents"] as? [[String: Any]]) ?? (json as? [[String: Any]]) ?? []
        let fds = events.filter { ["poll", "select"].contains($0["name"] as? String) }
            .map { (($0["args"] as? [String: Any])?["fd"] as? Int) ?? -2 }
        #expect(fds == [-1, -1, 4], "\(events.filter { ["poll", "select"].contains($0["name"] as? String) })")
    }

    @Test func foldedStacksAreThreadThenOnCPUSyscallAndOffCPUReason() throws {
        let dir = ScratchDirectory("sched-folded")
        let trace = dir.file("t.atrace"), out = dir.file("t.folded")
        Sched.write(to: trace)
        _ = try export(trace, .folded, to: out)
        var w: [String: UInt64] = [:]
        for line in try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n") {
            guard let sp = line.lastIndex(of: " ") else { continue }
            w[String(line[..<sp])] = UInt64(line[line.index(after: sp)...])
        }
        let loop = "sched (900) loop [900]", sleeper = "sched (900) sleeper [901]"
        // On CPU: 10 → 30, 50 → 60, 65 → 70 ms; the idle epoll waits are not busy.
        #expect(w[loop + ";on CPU"] == 35_000_000, "\(w)")
        #expect(w[loop + ";read"] == 1_500_000)
        #expect(w[loop + ";blocked in read"] == 18_000_000)
        #expect(w[loop + ";runnable (waiting for a CPU)"] == 500_000)
        #expect(w[loop + ";runnable (preempted)"] == 5_000_000)
        #expect(!w.keys.contains { $0.contains("epoll_wait") })
        #expect(w[sleeper + ";blocked in clock_nanosleep"] == 87_800_000)
        #expect(w[sleeper + ";runnable (waiting for a CPU)"] == 50_000)
        #expect(w[sleeper + ";clock_nanosleep"] == 150_000)
        #expect(w["sched (900) reaper [902];blocked in wait4"] == 40_000_000, "\(w)")
        _ = try FlamegraphPL.expectAccepts(out, svg: out + ".svg", "scheduler folded")
    }

    @Test func perfettoHasEachThreadsBlockedAndRunnableStatesInsideItsSyscalls() throws {
        let dir = ScratchDirectory("sched-perfetto")
        let trace = dir.file("t.atrace"), out = dir.file("t.perfetto-trace")
        Sched.write(to: trace)
        _ = try export(trace, .perfetto, to: out)
        let r = try validate("perfetto_check.py", [out])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        guard r["error"] == nil else { return }
        let tracks = r["tracks"] as! [[String: Any]]
        #expect(tracks.contains { $0["kind"] as? String == "thread" && $0["tid"] as? Int == 901 && $0["name"] as? String == "sleeper" })
        let byThread = r["slices_by_thread"] as! [String: [String: Int]]
        #expect(
            byThread["900"] == [
                "epoll_wait": 2, "blocked in epoll_wait": 2, "runnable (waiting for a CPU)": 2, "read": 1,
                "blocked in read": 1, "runnable (preempted)": 1,
            ], "\(byThread)")
        #expect(byThread["901"] == ["clock_nanosleep": 1, "blocked in clock_nanosleep": 1, "runnable (waiting for a CPU)": 1])
        // A switch-in not seen is unknown time only where nothing the thread did since bounds it.
        #expect(byThread["903"] == ["clock_nanosleep": 1, "write": 1], "\(byThread)")
        #expect(byThread["904"] == ["unknown: switch-in not seen (runnable or on CPU)": 1], "\(byThread)")
        let nesting = Set(r["nesting"] as! [String])
        for pair in [
            "read > blocked in read", "read > runnable (waiting for a CPU)", "epoll_wait > blocked in epoll_wait",
            "clock_nanosleep > blocked in clock_nanosleep",
        ] {
            #expect(nesting.contains(pair), "missing \(pair) in \(nesting)")
        }
        #expect(!nesting.contains { $0.hasPrefix("runnable (preempted)") || $0.hasSuffix("> runnable (preempted)") })

        for (format, script) in [(ExportFormat.chrome, "chrome_check.py"), (.speedscope, "speedscope_check.py")] {
            let o = dir.file("t.\(format.defaultExtension)")
            _ = try export(trace, format, to: o)
            let v = try validate(script, format == .speedscope ? [o, Repo.speedscopeSchema] : [o])
            #expect(v["error"] == nil, "\(format): \(v["error"] ?? "")")
        }
    }
}
