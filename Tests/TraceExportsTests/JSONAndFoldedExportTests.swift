import Foundation
import TraceFormat
import Testing
import TraceExports
import TraceReader

@Suite struct JSONAndFoldedExportTests {
    @Test func chromeJSONFollowsTheTraceEventFormat() throws {
        let dir = ScratchDirectory("chrome")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let out = dir.file("t.json")
        _ = try export(trace, .chrome, to: out)
        let r = try validate("chrome_check.py", [out])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        guard r["error"] == nil else { return }
        #expect(r["processes"] as? [String: String] == ["4242": "./server --port 0"])
        #expect(r["threads"] as? [String: String] == ["4242/100": "main", "4242/101": "worker", "4242/102": "thread 102"])
        let byThread = r["complete_by_thread"] as! [String: [String: Int]]
        #expect(
            byThread["100"] == [
                "TCPSERVERWRAP": 1, "TCPWRAP": 1, "Timeout": 1, "epoll_wait": 2, "accept4": 1,
                "read": 1, "write": 1, "timers phase": 2, "poll phase": 2, "epoll wait (loop)": 2,
                "init TCPWRAP": 1, "init Timeout": 1, "ready fd 5": 1, "ready fd 7": 1,
            ])
        #expect(byThread["101"] == ["(unknown resource)": 1, "init FSREQCALLBACK": 1])
        #expect(byThread["102"] == ["write": 1])
        let nesting = Set(r["nesting"] as! [String])
        #expect(nesting.isSuperset(of: ["TCPWRAP > read", "TCPSERVERWRAP > accept4", "Timeout > write", "poll phase > TCPWRAP"]))
        // Every flow has its source; the callback woken by epoll and created by a trigger binds the trigger's.
        #expect(r["flows_out"] as? Int == Synthetic.Expect.triggerFlows + Synthetic.Expect.readyFlows)
        #expect(r["flows_in"] as? Int == 3)
        #expect(r["instants"] as? Int == 1)
        #expect(r["counters"] as? Int == 2)
    }

    @Test func largeChromeJSONGetsAWarning() throws {
        let dir = ScratchDirectory("chrome-warn")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let reader = try TraceReader(path: trace)
        let small = try TraceExport.run(reader: reader, format: .chrome, outputPath: dir.file("a.json"))
        #expect(small.warnings.isEmpty)
        // The same file against a threshold below its size (the real one is 500 MB).
        let big = try TraceExport.run(
            reader: reader, format: .chrome, outputPath: dir.file("b.json"),
            chromeWarnBytes: small.bytesWritten - 1)
        #expect(big.warnings.count == 1)
        #expect(big.warnings.first?.contains("--format perfetto") == true)
    }

    @Test func speedscopeIsValidAgainstItsPublishedSchema() throws {
        let dir = ScratchDirectory("speedscope")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let out = dir.file("t.speedscope.json")
        _ = try export(trace, .speedscope, to: out)
        let r = try validate("speedscope_check.py", [out, Repo.speedscopeSchema])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        guard r["error"] == nil else { return }
        let profiles = r["profiles"] as! [String: [String: Int]]
        #expect(Set(profiles.keys) == ["main [100] pid 4242", "worker [101] pid 4242", "thread 102 pid 4242"])
        #expect(profiles["main [100] pid 4242"]?["TCPWRAP"] == 1)
        #expect(profiles["main [100] pid 4242"]?["read"] == 1)
        #expect(profiles["main [100] pid 4242"]?["poll phase"] == 2)
        #expect(profiles["thread 102 pid 4242"] == ["write": 1])
        // The schema check is real: a profile without its unit is rejected.
        let text = try String(contentsOfFile: out, encoding: .utf8)
        let broken = dir.file("broken.json")
        try text.replacingOccurrences(of: "\"unit\":\"nanoseconds\"", with: "\"unit\":\"fortnights\"")
            .write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(try validate("speedscope_check.py", [broken, Repo.speedscopeSchema])["error"] != nil)
    }

    @Test func foldedStacksByCallbackCountTimeInsideCallbacks() throws {
        let dir = ScratchDirectory("folded")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let out = dir.file("t.folded")
        _ = try export(trace, .folded, to: out)
        let r = try validate("folded_check.py", [out])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        let main = "server (4242) main [100]"
        #expect(
            r["stacks"] as? [String: Int] == [
                "\(main);TCPSERVERWRAP": 700, "\(main);TCPSERVERWRAP;accept4": 100,
                "\(main);TCPWRAP": 700, "\(main);TCPWRAP;read": 200,
                "\(main);Timeout": 200, "\(main);Timeout;write": 100,
                "server (4242) worker [101];(unknown resource)": 1000,
            ])
    }

    @Test func flamegraphPLDrawsTheFoldedStacks() throws {
        let dir = ScratchDirectory("folded-pl")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let out = dir.file("t.folded")
        _ = try export(trace, .folded, to: out)
        guard let drawn = try FlamegraphPL.expectAccepts(out, svg: dir.file("t.svg"), "synthetic") else { return }
        // 3 µs in callbacks; each frame as wide as the time under it.
        #expect(drawn.total == 3_000)
        let main = "server (4242) main [100]", worker = "server (4242) worker [101]"
        #expect(
            drawn.frames == [
                .init(name: "(unknown resource)", samples: 1_000), .init(name: "TCPSERVERWRAP", samples: 800),
                .init(name: "TCPWRAP", samples: 900), .init(name: "Timeout", samples: 300), .init(name: "accept4", samples: 100),
                .init(name: "read", samples: 200), .init(name: main, samples: 2_000), .init(name: worker, samples: 1_000),
                .init(name: "write", samples: 100),
            ])
        // Frames that end in a number (an unnamed thread, a connection's fd) are not misread as sample counts.
        _ = try export(trace, .folded, to: dir.file("wall.folded"), weight: .wall)
        let wall = try FlamegraphPL.expectAccepts(dir.file("wall.folded"), svg: dir.file("wall.svg"), "synthetic wall")
        #expect(wall?.frames.contains(.init(name: "server (4242) thread_102", samples: 50)) == true)
        _ = try export(trace, .folded, to: dir.file("causal.folded"), grouping: .causal)
        let causal = try FlamegraphPL.expectAccepts(dir.file("causal.folded"), svg: dir.file("causal.svg"), "synthetic causal")
        #expect(causal?.frames.contains(.init(name: "TCPWRAP #3 fd_7", samples: 1_200)) == true)
    }

    @Test func foldedStacksByCausalChainMakeOneTowerPerConnection() throws {
        let dir = ScratchDirectory("folded-causal")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let out = dir.file("t.folded")
        _ = try export(trace, .folded, to: out, grouping: .causal)
        let r = try validate("folded_check.py", [out])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        // Frames ending in a number get an underscore (flamegraph.pl would read "fd 5" as a sample count).
        let server = "TCPSERVERWRAP #2 fd_5", conn = "TCPSERVERWRAP #2 fd_5;TCPWRAP #3 fd_7"
        #expect(
            r["stacks"] as? [String: Int] == [
                server: 700, "\(server);accept4": 100, conn: 700, "\(conn);read": 200,
                "\(conn);Timeout": 200, "\(conn);Timeout;write": 100, "(unknown resource)": 1000,
            ])
    }

    @Test func wallWeightCountsEveryThreadsWholeSpan() throws {
        let dir = ScratchDirectory("folded-wall")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let out = dir.file("t.folded")
        _ = try export(trace, .folded, to: out, weight: .wall)
        let r = try validate("folded_check.py", [out])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        // main: first op 1_100 (timers phase) to last 11_800 (mark); worker 2_000-3_000; thread 102: its write.
        #expect(r["total"] as? Int == 10_700 + 1_000 + 50)
        let stacks = r["stacks"] as! [String: Int]
        #expect(stacks["server (4242) main [100];poll phase;epoll wait (loop);epoll_wait"] == 3_500 + 1_800)
        #expect(stacks["server (4242) main [100];poll phase;TCPWRAP;read"] == 200)
    }
}

@Suite struct CausalChainTests {
    /// A chain of `n` resources, each created inside the previous one's callback; types from `types`, cycled.
    func chainTrace(_ path: String, n: Int, types: [String]) {
        var events: [Synthetic.Event] = [Synthetic.user(.threadInfo, 0, text: "main")]
        var t: UInt64 = 100
        events.append(Synthetic.user(.initResource, t, [10, 0, 1], text: types[0]))
        for i in 0..<n {
            let id = Int64(10 + i)
            t += 100
            events.append(Synthetic.user(.before, t, [id]))
            events.append(Synthetic.user(.initResource, t + 10, [id + 1, 0, id], text: types[(i + 1) % types.count]))
            events.append(Synthetic.user(.after, t + 50, [id]))
            events.append(Synthetic.user(.destroy, t + 60, [id]))
        }
        var bytes = FileHeader(pid: Synthetic.pid, monotonicStartNs: Synthetic.base, realtimeStartNs: 1, program: "chain").encode()
        bytes += Synthetic.userChunk(tid: 100, events)
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { fatalError("cannot write \(path)") }
    }

    @Test func runsOfOneTypeFoldIntoOneFrame() throws {
        let dir = ScratchDirectory("chain-same")
        chainTrace(dir.file("t.atrace"), n: 500, types: ["HTTPCLIENTREQUEST"])
        _ = try export(dir.file("t.atrace"), .folded, to: dir.file("t.folded"), grouping: .causal)
        let r = try validate("folded_check.py", [dir.file("t.folded")])
        #expect(r["stacks"] as? [String: Int] == ["HTTPCLIENTREQUEST": 500 * 50])
    }

    @Test func longChainsStopGrowingAtTheDepthCap() throws {
        let dir = ScratchDirectory("chain-mixed")
        chainTrace(dir.file("t.atrace"), n: 500, types: ["A", "B"])
        _ = try export(dir.file("t.atrace"), .folded, to: dir.file("t.folded"), grouping: .causal)
        let r = try validate("folded_check.py", [dir.file("t.folded")])
        let stacks = r["stacks"] as! [String: Int]
        #expect(r["total"] as? Int == 500 * 50)
        let depths = stacks.keys.map { $0.split(separator: ";").count }
        #expect(depths.max() == StackAggregator.maxCausalDepth)
        #expect(stacks.count == StackAggregator.maxCausalDepth)
    }
}
