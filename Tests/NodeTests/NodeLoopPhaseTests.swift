// `record --node-loop-phases`: libuv's iterations and phases of a stock node from uprobes on its
// binary, on the real kernel. A program of known structure (a chain of immediates, one per
// iteration, then timers 2 ms apart) is recorded with the hooks too, so each callback can be placed
// in the phase the uprobes saw around it: every Immediate must run inside a `check` phase, every
// Timeout inside a `timers` phase.
import Foundation
import Testing
import TraceFormat
import TraceReader

/// 60 immediates in a chain, then 25 timeouts 2 ms apart, then exit.
let loopPhaseProgram = #"""
    let n = 0, t = 0;
    function immediate() { if (++n < 60) setImmediate(immediate); else setTimeout(timer, 2); }
    function timer() { if (++t < 25) setTimeout(timer, 2); }
    setImmediate(immediate);
    """#

/// A process that keeps its loop busy with a 5 ms interval for a few seconds (for --pid).
let loopPhaseAttachProgram = #"""
    const i = setInterval(() => {}, 5);
    setTimeout(() => clearInterval(i), 4000);
    """#

@Suite(.serialized) struct NodeLoopPhaseTests {
    static var kernelSkipReason: String? {
        if getuid() != 0 { return "not root" }
        if !FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux") { return "no BTF" }
        return nil
    }

    func requireKernelAndNode(_ name: String) throws -> String {
        if let reason = Self.kernelSkipReason {
            print("KERNEL TEST SKIPPED: \(name): \(reason)")
            try Test.cancel("kernel test skipped: \(reason)")
        }
        return try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
    }

    struct Phases {
        /// The main thread's phases in time order: (phase, start, end).
        var intervals: [(phase: UInt64, start: UInt64, end: UInt64)] = []
        var iterations = 0
        var threads = Set<UInt64>()
        /// Callbacks of the main thread's user stream: (type, before, after).
        var callbacks: [(type: String, start: UInt64, end: UInt64)] = []
    }

    func readPhases(_ path: String, pid: UInt32) throws -> Phases {
        let reader = try TraceReader(path: path)
        var p = Phases()
        var phaseStarts: [(phase: UInt64, ns: UInt64)] = []
        var types: [UInt64: String] = [:]
        var open: [(id: UInt64, ns: UInt64)] = []
        reader.events().forEach { s, e in
            let st = reader.streams[s]
            switch e.kind {
            case .loopPhase:
                p.threads.insert(e.u(0) << 32 | e.u(1))
                guard e.u(0) == UInt64(pid), e.u(1) == UInt64(pid) else { return }
                phaseStarts.append((e.u(2), e.timestampNs))
                if e.u(3) != 0 { p.iterations += 1 }
            case .initResource where !st.isKernel && st.tid == pid:
                types[e.u(0)] = e.text
            case .before where !st.isKernel && st.tid == pid:
                open.append((e.u(0), e.timestampNs))
            case .after where !st.isKernel && st.tid == pid:
                if let b = open.popLast() { p.callbacks.append((types[b.id] ?? "?", b.ns, e.timestampNs)) }
            default: break
            }
        }
        for (i, s) in phaseStarts.enumerated() {
            p.intervals.append((s.phase, s.ns, i + 1 < phaseStarts.count ? phaseStarts[i + 1].ns : .max))
        }
        return p
    }

    /// The phase the uprobes saw at the middle of [start, end] (the callback's clock is mapped onto the
    /// kernel's to within a few µs), or nil.
    func phase(of start: UInt64, _ end: UInt64, in p: Phases) -> UInt64? {
        let mid = start / 2 + end / 2
        return p.intervals.last { $0.start <= mid }.flatMap { mid < $0.end ? $0.phase : nil }
    }

    @Test func immediatesRunInCheckAndTimersInTimers() throws {
        let node = try requireKernelAndNode("node loop phases")
        let dir = NSTemporaryDirectory() + "asynctrace-loop-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/phases.js", trace = dir + "/phases.atrace"
        try loopPhaseProgram.write(toFile: script, atomically: true, encoding: .utf8)
        let rec = try runNodeTool([
            NodeRepo.executable("asynctrace"), "record", "--node-loop-phases", "--sample-rate", "0",
            "-o", trace, "--", node, script,
        ])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        #expect(rec.stderr.contains("node loop phases: uprobes on libuv in 1 process"), "\(rec.stderr)")
        let header = try TraceReader(path: trace).header
        let p = try readPhases(trace, pid: header.pid)

        // Iterations: one per immediate and one per timer at least (the immediates' loop never waits).
        #expect(p.iterations >= 60 + 25, "iterations \(p.iterations)")
        #expect(p.iterations <= 60 + 25 + 40, "iterations \(p.iterations): far more than the program makes")
        let name = { (ph: UInt64) in TraceLoopPhase(rawValue: UInt8(ph))?.name ?? "?" }
        // Every iteration runs libuv's phases in order: timers, pending, idle, prepare, poll, check, close.
        let order = p.intervals.map { name($0.phase) }
        let firstTimers = try #require(order.firstIndex(of: "timers"))
        let cycle = ["timers", "pending", "idle", "prepare", "poll", "check", "close"]
        for (i, ph) in order[firstTimers...].prefix(7 * 60).enumerated() {
            #expect(ph == cycle[i % 7], "phase \(i) after the first timers is \(ph), not \(cycle[i % 7]): \(order.prefix(30))")
            if ph != cycle[i % 7] { break }
        }

        // Each callback inside the phase libuv runs it in.
        let immediates = p.callbacks.filter { $0.type == "Immediate" }
        let timeouts = p.callbacks.filter { $0.type == "Timeout" }
        #expect(immediates.count == 60 && timeouts.count == 25, "\(immediates.count) immediates, \(timeouts.count) timeouts")
        for c in immediates { #expect(phase(of: c.start, c.end, in: p).map(name) == "check", "an Immediate at \(c.start)") }
        for c in timeouts { #expect(phase(of: c.start, c.end, in: p).map(name) == "timers", "a Timeout at \(c.start)") }

        // The report's loop section works unchanged on it.
        let rep = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(rep.stdout.utf8)) as? [String: Any])
        let loop = try #require(json["loop"] as? [String: Any])
        #expect(loop["source"] as? String == "uprobes")
        let phases = loop["phases"] as? [[String: Any]] ?? []
        let check = phases.first { $0["phase"] as? String == "check" }
        #expect(((check?["count"] as? NSNumber)?.intValue ?? 0) >= 60, "phases: \(phases)")
        let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace]).stdout
        #expect(text.contains("phases from uprobes on libuv") && text.contains("time per phase: timers"), "\(text.prefix(2000))")

        // The exports draw the phases as slices on the loop thread's own track, the callbacks inside them;
        // each validates.
        func export(_ format: String, _ validator: String, _ extra: [String] = []) throws -> [String: Any] {
            let out = dir + "/phases." + format
            let e = try runNodeTool([NodeRepo.executable("asynctrace"), "export", trace, "--format", format, "-o", out])
            #expect(e.status == 0, "\(format): \(e.stderr)")
            let v = try runNodeTool(["/usr/bin/env", "python3", NodeRepo.root + "/Tests/TraceExportsTests/validators/" + validator, out] + extra)
            #expect(v.status == 0, "\(validator): \(v.stdout.prefix(500)) \(v.stderr.prefix(500))")
            return (try? JSONSerialization.jsonObject(with: Data(v.stdout.utf8)) as? [String: Any]) ?? [:]
        }
        let main = "\(header.pid)"
        let perfetto = try export("perfetto", "perfetto_check.py")
        let byThread = perfetto["slices_by_thread"] as? [String: [String: Int]] ?? [:]
        #expect((byThread[main]?["check phase"] ?? 0) >= 60 && (byThread[main]?["timers phase"] ?? 0) >= 25, "\(byThread[main] ?? [:])")
        for (name, json) in [("perfetto", perfetto), ("chrome", try export("chrome", "chrome_check.py"))] {
            let nesting = Set(json["nesting"] as? [String] ?? [])
            #expect(
                nesting.contains("check phase > Immediate") && nesting.contains("timers phase > Timeout"),
                "\(name): callbacks inside their phases: \(nesting.sorted())")
        }
        let schema = NodeRepo.root + "/Tests/TraceExportsTests/Fixtures/speedscope-file-format-schema.json"
        let speedscope = try export("speedscope", "speedscope_check.py", [schema])
        let profile = (speedscope["profiles"] as? [String: [String: Int]] ?? [:]).first { $0.key.hasPrefix("node [\(main)]") }?.value
        #expect((profile?["check phase"] ?? 0) >= 60, "speedscope: the loop thread's phases as frames: \(String(describing: profile))")
    }

    @Test func attachingWithPidGetsThePhasesToo() throws {
        let node = try requireKernelAndNode("node loop phases --pid")
        let dir = NSTemporaryDirectory() + "asynctrace-loop-pid-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/busy.js", trace = dir + "/attach.atrace"
        try loopPhaseAttachProgram.write(toFile: script, atomically: true, encoding: .utf8)
        let program = Process()
        program.executableURL = URL(fileURLWithPath: node)
        program.arguments = [script]
        try program.run()
        defer { if program.isRunning { program.terminate() }; program.waitUntilExit() }
        usleep(300_000)  // node is in its loop
        let rec = try runNodeTool([
            NodeRepo.executable("asynctrace"), "record", "--pid", "\(program.processIdentifier)",
            "--node-loop-phases", "--duration", "1s", "--sample-rate", "0", "-o", trace,
        ])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        let p = try readPhases(trace, pid: UInt32(program.processIdentifier))
        // A 5 ms interval for 1 s: ~200 iterations (fewer on a loaded machine, never none).
        #expect(p.iterations >= 40, "iterations \(p.iterations)")
        #expect(Set(p.intervals.map(\.phase)).count == 7, "all seven phases seen")
        let rep = try runNodeTool([NodeRepo.executable("asynctrace"), "report", trace, "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(rep.stdout.utf8)) as? [String: Any])
        #expect((json["loop"] as? [String: Any])?["source"] as? String == "uprobes")
        // Samples off: nothing to say about node's perf map.
        #expect(!rec.stderr.contains("without a perf map"), "\(rec.stderr)")
    }

    /// A node attached with --pid keeps the flags it was started with: one started without a perf map gets a note
    /// that its JS frames will be unnamed, and how to have them named; one started with the flag gets none.
    @Test func attachingToNodeWithoutAPerfMapSaysSo() throws {
        let node = try requireKernelAndNode("node --pid without a perf map")
        let dir = NSTemporaryDirectory() + "asynctrace-node-map-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/busy.js"
        try loopPhaseAttachProgram.write(toFile: script, atomically: true, encoding: .utf8)
        for withMap in [false, true] {
            let program = Process()
            program.executableURL = URL(fileURLWithPath: node)
            program.arguments = (withMap ? ["--perf-basic-prof-only-functions"] : []) + [script]
            try program.run()
            defer { if program.isRunning { program.terminate() }; program.waitUntilExit() }
            let pid = program.processIdentifier
            defer { try? FileManager.default.removeItem(atPath: "/tmp/perf-\(pid).map") }
            usleep(300_000)  // node is in its loop (and has written its map's first lines)
            let rec = try runNodeTool([
                NodeRepo.executable("asynctrace"), "record", "--pid", "\(pid)", "--duration", "200ms", "-o", dir + "/a.atrace",
            ])
            #expect(rec.status == 0, "record failed: \(rec.stderr)")
            #expect(
                rec.stderr.contains("process \(pid) runs node without a perf map") == !withMap,
                "started with the map flag: \(withMap): \(rec.stderr)")
        }
    }
}
