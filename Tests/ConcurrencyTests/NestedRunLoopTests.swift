// A Swift task running a nested run loop (Foundation's Process.waitUntilExit, RunLoop.run): its thread
// waits in epoll many times inside one recorded callback, so each stretch between those waits lies inside
// the task. The report said "outside every recorded callback: 100%" of every stretch but the last.
import Foundation
import Testing

@Suite(.serialized) struct NestedRunLoopTests {
    @Test func stretchesInsideARunningTaskCountAsInsideIt() throws {
        try requireKernel("stretchesInsideARunningTaskCountAsInsideIt")
        let program = try compileFixture("nested_run_loop")
        let trace = scratch("nested_run_loop.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let cli = builtExecutable("asynctrace")
        let rec = try run([cli, "record", "-o", trace, "--", program])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        #expect(rec.stdout.hasPrefix("nested-run-loop "), "the program's own output: \(rec.stdout)")
        let report = try run([cli, "report", "--json", "--threshold", "20ms", trace])
        #expect(report.status == 0, "report failed: \(report.stderr)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any], "report --json: \(report.stdout)")
        // The task's run: the one blocking SwiftTask callback, on the thread of the stretches.
        let blocking = (json["blocking"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "SwiftTask" }
        let task = try #require(blocking.first, "no blocking SwiftTask: \(json["blocking"] ?? "-")")
        let tid = task["tid"] as? Int
        let start = task["start_ns"] as? Int ?? 0, end = start + (task["duration_ns"] as? Int ?? 0)
        // 5 turns of epoll look + 40 ms poll: 4 stretches between the looks, each inside the task's run.
        let stalls = (json["stalls"] as? [[String: Any]] ?? []).filter {
            $0["tid"] as? Int == tid && ($0["duration_ns"] as? Int ?? 0) >= 20_000_000
        }
        #expect(stalls.count == 4, "stalls of the task's thread: \(stalls.map { ($0["duration_ns"] ?? 0, $0["in_callbacks_ns"] ?? 0) })")
        for s in stalls {
            let sStart = s["start_ns"] as? Int ?? 0, d = s["duration_ns"] as? Int ?? 0
            #expect(sStart >= start && sStart + d <= end, "the stretch lies inside the task's run")
            #expect(s["in_callbacks_ns"] as? Int == d, "all of it inside the task: \(s["in_callbacks_ns"] ?? "nil") of \(d) ns")
        }
        let text = try run([cli, "report", "--threshold", "20ms", trace])
        #expect(!text.stdout.contains("outside every recorded callback"), "\(text.stdout)")
    }
}
