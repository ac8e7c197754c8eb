// The async main's work before its first `await` is a task run like any other: the program's `main` runs
// that job itself (swift_job_run, on the main thread), so no enqueue announced it and it was no run at all;
// a program that blocked there had no BLOCKING entry.
import Foundation
import Testing

@Suite(.serialized) struct MainFirstRunTests {
    @Test func theAsyncMainsFirstRunIsATaskRunOnTheMainThread() throws {
        let program = try compileFixture("main_first_run")
        let trace = scratch("main_first_run.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let cli = builtExecutable("asynctrace")
        let rec = try run([cli, "record", "--no-kernel", "-o", trace, "--", program])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        #expect(rec.stdout.contains("main-first-run after"), "the program's own output: \(rec.stdout)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(try run([cli, "report", "--json", "--threshold", "40ms", trace]).stdout.utf8))
                as? [String: Any])
        let blocking = json["blocking"] as? [[String: Any]] ?? []
        func tid(_ b: [String: Any]) -> Int? { b["tid"] as? Int }
        func pid(_ b: [String: Any]) -> Int? { b["pid"] as? Int }
        // The first run: 150 ms on the main thread (tid = pid), one task with the run after the await.
        let first = blocking.first { ($0["duration_ns"] as? Int ?? 0) >= 140_000_000 }
        #expect(first != nil, "no 150 ms run of the main task: \(blocking)")
        if let first { #expect(tid(first) != nil && tid(first) == pid(first), "on the main thread: \(first)") }
        let later = blocking.first { ($0["duration_ns"] as? Int ?? 0) >= 55_000_000 && ($0["duration_ns"] as? Int ?? 0) < 140_000_000 }
        #expect(later != nil, "the run after the await: \(blocking)")
        #expect(first?["async_id"] as? Int == later?["async_id"] as? Int, "one task, the main task")
    }
}
