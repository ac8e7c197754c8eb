import Foundation
import Testing
import TraceAnalyses
import TraceReader

/// The report on real recordings: the bundled examples run on the real runtime with the in-process
/// recorder (ASYNCTRACE_OUTPUT), then read back.
@Suite struct RecordedExampleTests {
    func record(_ scenario: String) throws -> String {
        let dir = URL(fileURLWithPath: ReportCommandTests.executable).deletingLastPathComponent()
        let exe = dir.appendingPathComponent("asynctrace-examples").path
        try #require(FileManager.default.isExecutableFile(atPath: exe), "build asynctrace-examples first: \(exe)")
        let path = NSTemporaryDirectory() + "asynctrace-example-\(scenario)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).atrace"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = [scenario]
        var env = ProcessInfo.processInfo.environment
        env["ASYNCTRACE_OUTPUT"] = path
        env.removeValue(forKey: "ASYNCTRACE_APPEND")
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "\(scenario) exited with \(p.terminationStatus)")
        return path
    }

    @Test func blockingScenarioIsFlagged() throws {
        let path = try record("blocking")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let a = analyzeTrace(try TraceReader(path: path))
        #expect(a.overview.damage.isEmpty && a.overview.droppedUser == 0)
        #expect(a.overview.count("init") == a.overview.count("destroy"))
        #expect(a.overview.count("before") == a.overview.count("after"))
        // The scenario blocks one callback for 200 ms with a synchronous sleep.
        // (On a loaded machine preemption can stretch another callback past the 10 ms threshold: only the
        // 200 ms one must be long.)
        #expect(a.blocking.count >= 1 && a.blocking.longest.filter { $0.durationNs >= 150_000_000 }.count == 1)
        let b = try #require(a.blocking.longest.first)
        #expect(b.durationNs >= 195_000_000 && b.durationNs < 1_000_000_000)
        #expect(a.slowestCallbacks.first?.asyncID == b.asyncID)
        #expect(b.causalChain.last == b.type && !b.type.isEmpty)
        let loop = try #require(a.loop)
        #expect(loop.iterationNs.maxNs >= b.durationNs)
        #expect(a.openAtExit.isEmpty)
    }

    @Test func tcpEchoBalancesAndMeasuresReadiness() throws {
        let path = try record("tcp-echo")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let a = analyzeTrace(try TraceReader(path: path))
        #expect(a.overview.damage.isEmpty)
        #expect(a.overview.count("before") == a.overview.count("after"))
        let tcp = try #require(a.resources.first { $0.type == "TCPWRAP" })
        #expect(tcp.created >= 2 && tcp.callbacks.count >= 200)
        // Every connection's fd was reported ready by epoll and then handed to its TCPWRAP callback.
        let tcpFDs = a.io.fds.filter { $0.resourceType == "TCPWRAP" }
        #expect(!tcpFDs.isEmpty && tcpFDs.allSatisfy { $0.readyToCallbackNs.count > 0 })
        // (No assertion on blocking here: on a loaded machine preemption can stretch any callback past 10 ms.)
    }
}
