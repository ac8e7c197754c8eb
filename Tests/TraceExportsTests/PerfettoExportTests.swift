import Foundation
import Testing
import TraceExports
import TraceFixtures

@Suite struct PerfettoExportTests {
    @Test func decodesWithPerfettosProtoAndReplaysExactly() throws {
        let dir = ScratchDirectory("perfetto")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let out = dir.file("t.perfetto-trace")
        let summary = try export(trace, .perfetto, to: out)
        #expect(summary.callbacks == UInt64(Synthetic.Expect.callbacks))
        #expect(summary.syscalls == UInt64(Synthetic.Expect.syscalls))

        let r = try validate("perfetto_check.py", [out])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        guard r["error"] == nil else { return }
        // Tracks: one process, its counter, three threads (one known only to the kernel).
        let tracks = r["tracks"] as! [[String: Any]]
        #expect(tracks.filter { $0["kind"] as? String == "thread" }.count == Synthetic.Expect.threads)
        #expect(
            tracks.contains { $0["kind"] as? String == "process" && $0["pid"] as? Int == Int(Synthetic.pid) && $0["name"] as? String == "server" })
        #expect(tracks.contains { $0["kind"] as? String == "thread" && $0["tid"] as? Int == 101 && $0["name"] as? String == "worker" })
        #expect(r["clock_snapshots"] as? Int == Synthetic.Expect.threads)

        let byThread = r["slices_by_thread"] as! [String: [String: Int]]
        #expect(
            byThread["100"] == [
                "TCPSERVERWRAP": 1, "TCPWRAP": 1, "Timeout": 1, "epoll_wait": 2, "accept4": 1,
                "read": 1, "write": 1, "timers phase": 2, "poll phase": 2, "epoll wait (loop)": 2,
            ])
        #expect(byThread["101"] == ["(unknown resource)": 1])
        #expect(byThread["102"] == ["write": 1])

        // Kernel syscalls nest inside the callbacks that made them; epoll waits inside the loop's poll.
        let nesting = Set(r["nesting"] as! [String])
        for pair in [
            "TCPSERVERWRAP > accept4", "TCPWRAP > read", "Timeout > write", "epoll wait (loop) > epoll_wait",
            "poll phase > TCPSERVERWRAP", "poll phase > epoll wait (loop)", "timers phase > Timeout",
        ] {
            #expect(nesting.contains(pair), "missing \(pair) in \(nesting)")
        }
        // Exact syscall times: enter = exit - duration.
        let syscalls = r["syscalls"] as! [[Any]]
        let read = syscalls.first { $0[1] as? String == "read" }!
        #expect(read[2] as? Int == Int(Synthetic.base + 9_300))
        #expect(read[3] as? Int == 200)

        // Callback annotations: async id and trigger (the slice's name is the type).
        let args = r["callback_args"] as! [[String: Any]]
        #expect(args.contains { $0["name"] as? String == "TCPWRAP" && $0["async_id"] as? Int == 3 && $0["trigger_async_id"] as? Int == 2 })
        #expect(args.contains { $0["name"] as? String == "Timeout" && $0["async_id"] as? Int == 4 && $0["trigger_async_id"] as? Int == 3 })

        // Flows: trigger → first callback, epoll-ready → the callback it woke.
        #expect(r["flows_started"] as? Int == Synthetic.Expect.triggerFlows + Synthetic.Expect.readyFlows)
        #expect(r["flows_terminated"] as? Int == Synthetic.Expect.flowsTerminated)
        // The fds a kernel epoll wait returned start their flows on the epoll_wait slice (no instant per fd).
        let links = r["flow_links"] as! [String: Int]
        #expect(
            links == [
                "epoll_wait -> TCPSERVERWRAP": 1, "epoll_wait -> TCPWRAP": 1,
                "init TCPWRAP -> TCPWRAP": 1, "init Timeout -> Timeout": 1,
            ])
        let instants = r["instants"] as! [[String: Any]]
        #expect(!instants.contains { ($0["name"] as? String)?.hasPrefix("ready fd") == true })
        #expect(instants.contains { $0["name"] as? String == "init TCPWRAP" && $0["parent"] as? String == "TCPSERVERWRAP" })
        #expect(instants.contains { $0["name"] as? String == "done" })
        // Open resources at the loop iterations where the count changed: server, connection, worker's FSREQCALLBACK, then + timer.
        #expect(r["counters"] as? [Int] == [3, 4])
    }

    @Test func userOnlyTraceTakesReadyFlowsFromTheLoopsPollEnd() throws {
        let dir = ScratchDirectory("perfetto-user")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace, kernel: false)
        let out = dir.file("t.perfetto-trace")
        _ = try export(trace, .perfetto, to: out)
        let r = try validate("perfetto_check.py", [out])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        guard r["error"] == nil else { return }
        let instants = r["instants"] as! [[String: Any]]
        #expect(
            instants.filter { ($0["name"] as? String)?.hasPrefix("ready fd") == true }.allSatisfy {
                $0["parent"] as? String == "epoll wait (loop)"
            })
        #expect(r["flows_started"] as? Int == Synthetic.Expect.triggerFlows + Synthetic.Expect.readyFlows)
        #expect(r["flows_terminated"] as? Int == Synthetic.Expect.flowsTerminated)
        let links = r["flow_links"] as! [String: Int]
        #expect(links["ready fd 7 -> TCPWRAP"] == 1 && links["ready fd 5 -> TCPSERVERWRAP"] == 1, "\(links)")
    }

    /// A server-shaped trace of many loop iterations: flow ids are recycled (one-byte varints) and still link
    /// every flow the way trace_processor does; a resource's trigger is written on its first callback only;
    /// every slice's time is the trace's to the nanosecond.
    @Test func recyclesFlowIDsWritesTriggersOnceAndKeepsExactTimes() throws {
        let dir = ScratchDirectory("perfetto-loop")
        let trace = dir.file("t.atrace")
        let iterations = 300
        LoopTrace.write(to: trace, iterations: iterations)
        let out = dir.file("t.perfetto-trace")
        let summary = try export(trace, .perfetto, to: out)
        #expect(summary.callbacks == UInt64(2 * iterations))
        let r = try validate("perfetto_check.py", [out])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        guard r["error"] == nil else { return }
        // Per iteration: a ready flow (epoll → connection) and a trigger flow (connection → its TickObject).
        #expect(r["flows_started"] as? Int == 2 * iterations)
        #expect(r["flows_terminated"] as? Int == 2 * iterations)
        #expect(
            r["flow_links"] as? [String: Int] == [
                "epoll_wait -> TCPWRAP": iterations,
                "init TickObject -> TickObject": iterations,
            ])
        #expect((r["max_flow_id"] as? Int ?? .max) < 128, "flow ids were not recycled")
        let args = r["callback_args"] as! [[String: Any]]
        let connection = args.filter { $0["name"] as? String == "TCPWRAP" }
        #expect(connection.count == iterations && connection.allSatisfy { $0["async_id"] as? Int == 5 })
        #expect(connection.filter { $0["trigger_async_id"] != nil }.count == 1)
        let ticks = args.filter { $0["name"] as? String == "TickObject" }
        #expect(ticks.count == iterations && ticks.allSatisfy { $0["trigger_async_id"] as? Int == 5 })
        // Exact times: each iteration's read is [t + 600, t + 700], its write [t + 800, t + 900] (t = 2_000 × i).
        let syscalls = r["syscalls"] as! [[Any]]
        let reads = syscalls.filter { $0[1] as? String == "read" }.map { ($0[2] as! Int, $0[3] as! Int) }
        let writes = syscalls.filter { $0[1] as? String == "write" }.map { ($0[2] as! Int, $0[3] as! Int) }
        #expect(reads.count == iterations && writes.count == iterations)
        for i in 0..<min(reads.count, writes.count) {
            let t = Int(LoopTrace.start) + 2_000 * i
            #expect(reads[i] == (t + 600, 100) && writes[i] == (t + 800, 100), "iteration \(i)")
        }
    }
}
