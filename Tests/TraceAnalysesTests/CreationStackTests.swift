import Foundation
import Testing
import TraceSymbols
@testable import TraceAnalyses

/// Creation stacks (issue 15 item 2b): a program on the runtime, recorded in process (no kernel
/// needed), leaks a heartbeat interval created in `startHeartbeat`; its open-at-exit entry must say
/// so. The example is a debug build (frame pointers kept), as the test build makes it.
@Suite(.serialized) struct CreationStackTests {
    private func run(_ exe: String, _ args: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: Data, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, o, String(decoding: e, as: UTF8.self))
    }

    private var examples: String {
        URL(fileURLWithPath: ReportCommandTests.executable).deletingLastPathComponent().appendingPathComponent("asynctrace-examples").path
    }

    /// Records `scenario` in process and returns the trace's path.
    private func record(_ scenario: String, creationStacks: String? = nil) throws -> String {
        let trace = NSTemporaryDirectory() + "asynctrace-creation-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).atrace"
        var env = ["ASYNCTRACE_OUTPUT": trace]
        if let creationStacks { env["ASYNCTRACE_CREATION_STACKS"] = creationStacks }
        let r = try run(examples, [scenario], environment: env)
        try #require(r.status == 0, "\(scenario) failed: \(r.stderr)")
        return trace
    }

    private func report(_ trace: String, _ args: [String] = ["--json"]) throws -> Data {
        let r = try run(ReportCommandTests.executable, ["report", trace] + args)
        try #require(r.status == 0, "report failed: \(r.stderr)")
        return r.stdout
    }

    private func functions(_ frames: Any?) -> [String] {
        ((frames as? [[String: Any]]) ?? []).map { ($0["function"] as? String) ?? "?" }
    }

    @Test func leakedIntervalNamesTheFunctionThatCreatedIt() throws {
        let trace = try record("leak")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let j = try #require(try JSONSerialization.jsonObject(with: report(trace)) as? [String: Any])
        let open = try #require(j["open_at_exit"] as? [[String: Any]])
        let timeouts = open.filter { $0["type"] as? String == "Timeout" }
        // The interval and the exit timer (its callback ended the process): two groups, one stack each.
        #expect(timeouts.count == 2, "\(open)")
        let stacks = timeouts.map { functions($0["created_at"]) }
        let heartbeat = try #require(stacks.first { $0.contains { $0.hasSuffix("startHeartbeat(everyMs:)") } }, "\(stacks)")
        // Innermost first: the runtime's API the program called, then the program's functions in call order.
        let i = try #require(heartbeat.firstIndex { $0.hasSuffix("startHeartbeat(everyMs:)") })
        #expect(i >= 1 && heartbeat[i - 1].hasSuffix("setInterval(_:_:)"), "\(heartbeat)")
        #expect(heartbeat.dropFirst(i + 1).first?.hasSuffix("leakScenario(_:)") == true, "\(heartbeat)")
        // No frame of the recorder or the hooks is left at the top.
        #expect(!heartbeat.contains { $0.contains("AsyncTraceRecorder.") || $0.contains("AsyncHooks.") }, "\(heartbeat)")
        // The exit timer was created by leakScenario itself, not by startHeartbeat.
        let exitTimer = try #require(stacks.first { !$0.contains { $0.hasSuffix("startHeartbeat(everyMs:)") } })
        #expect(
            exitTimer.first?.hasSuffix("setTimeout(_:_:)") == true && exitTimer.dropFirst().first?.hasSuffix("leakScenario(_:)") == true,
            "\(exitTimer)")
        #expect(j["creation_stacks_undefined"] as? Int == 0)

        let text = String(decoding: try report(trace, []), as: UTF8.self)
        #expect(text.contains("AsyncTraceRuntime.setInterval(_:_:) ← asynctrace_examples.startHeartbeat(everyMs:)"), "\(text)")
        let html = NSTemporaryDirectory() + "asynctrace-creation-\(getpid()).html"
        defer { try? FileManager.default.removeItem(atPath: html) }
        _ = try report(trace, ["--html", "-o", html])
        #expect(try String(contentsOfFile: html, encoding: .utf8).contains("startHeartbeat(everyMs:)"))
    }

    @Test func offRecordsNoCreationStacks() throws {
        let trace = try record("leak", creationStacks: "off")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let j = try #require(try JSONSerialization.jsonObject(with: report(trace)) as? [String: Any])
        let open = try #require(j["open_at_exit"] as? [[String: Any]])
        #expect(open.contains { $0["type"] as? String == "Timeout" } && open.allSatisfy { functions($0["created_at"]).isEmpty }, "\(open)")
    }

    /// `record --creation-stacks` sets the program's policy, over what its environment said; a value it
    /// does not take is refused before anything runs.
    @Test func recordCreationStacksFlagSetsThePolicy() throws {
        func recorded(_ flag: String, environment: [String: String]) throws -> [[String: Any]] {
            let trace = NSTemporaryDirectory() + "asynctrace-creation-flag-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).atrace"
            defer { try? FileManager.default.removeItem(atPath: trace) }
            let r = try run(
                ReportCommandTests.executable, ["record", "--no-kernel", "--creation-stacks", flag, "-o", trace, "--", examples, "leak"],
                environment: environment)
            try #require(r.status == 0, "record failed: \(r.stderr)")
            let j = try #require(try JSONSerialization.jsonObject(with: report(trace)) as? [String: Any])
            return try #require(j["open_at_exit"] as? [[String: Any]]).filter { $0["type"] as? String == "Timeout" }
        }
        let off = try recorded("off", environment: ["ASYNCTRACE_CREATION_STACKS": "all"])
        #expect(!off.isEmpty && off.allSatisfy { functions($0["created_at"]).isEmpty }, "\(off)")
        let on = try recorded("on", environment: ["ASYNCTRACE_CREATION_STACKS": "off"])
        #expect(on.contains { functions($0["created_at"]).contains { $0.hasSuffix("startHeartbeat(everyMs:)") } }, "\(on)")
        let every = try recorded("8", environment: [:])
        #expect(every.contains { functions($0["created_at"]).contains { $0.hasSuffix("startHeartbeat(everyMs:)") } }, "\(every)")
        for bad in ["sometimes", "-3", "99999999999999999999999", "handles+0", "1x"] {
            let r = try run(ReportCommandTests.executable, ["record", "--no-kernel", "--creation-stacks=\(bad)", "--", examples, "leak"])
            #expect(r.status == 64 && r.stderr.contains("--creation-stacks takes on, off, all or a number N"), "\(bad): \(r.status) \(r.stderr)")
        }
    }

    /// A blocking callback's entry says where its resource was created (a server's accepted TCPWRAP: inside the runtime).
    @Test func blockingCallbackSaysWhereItsResourceWasCreated() throws {
        let trace = try record("blocking")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let j = try #require(try JSONSerialization.jsonObject(with: report(trace)) as? [String: Any])
        let blocking = try #require(j["blocking"] as? [[String: Any]])
        let tcp = try #require(blocking.first { $0["type"] as? String == "TCPWRAP" }, "\(blocking)")
        let created = functions(tcp["created_at"])
        #expect(created.contains { $0.contains("AsyncTraceRuntime.") } && !created.contains { $0.contains("AsyncTraceRecorder.") }, "\(created)")
    }

    @Test func recorderAndRuntimeFramesAreCut() {
        func f(_ name: String?) -> CodeFrame { CodeFrame(function: name, module: "/bin/app", offset: 0) }
        let stack = [
            f("closure #1 (_:)"), f("AsyncTraceRecorder.CreationStacks.record(_:_:_:_:)"), f("@objc closure #1 (_:_:_:)"),
            f("static AsyncHooks.AsyncHooks.activeInit(_:_:_:_:)"), f("AsyncTraceRuntime.Timeout.init(loop:)"),
            f("AsyncTraceRuntime.setInterval(_:_:)"), f("app.startHeartbeat()"), f("app.main()"),
        ]
        #expect(
            TraceAnalysis.withoutRecorderFrames(stack).map(\.function) == [
                "AsyncTraceRuntime.setInterval(_:_:)", "app.startHeartbeat()", "app.main()",
            ])
        // Runtime frames all the way down (a resource the runtime made for itself): all kept.
        let runtimeOnly = [f("AsyncHooks.AsyncHooks.emitInit()"), f("AsyncTraceRuntime.TCP.accept()"), f("AsyncTraceRuntime.EventLoop.run()")]
        #expect(
            TraceAnalysis.withoutRecorderFrames(runtimeOnly).map(\.function) == [
                "AsyncTraceRuntime.TCP.accept()", "AsyncTraceRuntime.EventLoop.run()",
            ])
        // Release builds: specializations and merged functions.
        let release = [
            f("function signature specialization <Arg[4] = Dead> of static AsyncTraceRecorder.CreationStacks.record(_:_:_:_:)"),
            f("merged AsyncTraceRuntime.EventLoop.setTimeout(_:_:)"), f("merged AsyncTraceRuntime.setTimeout(_:_:)"),
            f("app.startHeartbeat()"),
        ]
        #expect(
            TraceAnalysis.withoutRecorderFrames(release).map(\.function) == ["merged AsyncTraceRuntime.setTimeout(_:_:)", "app.startHeartbeat()"])
        // A program's own type whose name ends in AsyncHooks is not the hooks module.
        let user = [f("AsyncTraceRecorder.RecorderHook.recordInit()"), f("MyAsyncHooks.make()"), f("main")]
        #expect(TraceAnalysis.withoutRecorderFrames(user).map(\.function) == ["MyAsyncHooks.make()", "main"])
    }
}
