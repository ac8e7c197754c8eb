// A task that blocks the cooperative pool in DispatchSemaphore.wait: the report says who signalled it. The
// blocking callback listed "futex wait 150 ms" and its stack; the thread that ended the wait was only in
// THREADS' totals over the whole recording.
import Foundation
import Testing

@Suite(.serialized) struct SemaphoreWakerTests {
    @Test func blockingTaskNamesTheThreadThatSignalledIt() throws {
        try requireKernel("blockingTaskNamesTheThreadThatSignalledIt")
        let program = try compileFixture("semaphore_in_task")
        let trace = scratch("semaphore_in_task.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let cli = builtExecutable("asynctrace")
        let rec = try run([cli, "record", "-o", trace, "--", program])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        #expect(rec.stdout.hasPrefix("semaphore-in-task 1"), "the program's own output: \(rec.stdout)")
        let report = try run([cli, "report", "--json", trace])
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any], "report --json: \(report.stdout)")
        let task = try #require(
            (json["blocking"] as? [[String: Any]] ?? []).first { $0["type"] as? String == "SwiftTask" },
            "no blocking SwiftTask: \(json["blocking"] ?? "-")")
        let wakers = task["wakers"] as? [[String: Any]] ?? []
        let first = try #require(wakers.first, "no wakers: \(task)")
        #expect(first["name"] as? String == "signaller", "\(wakers)")
        // It ended the 150 ms wait (a Dispatch worker may end a short one of its own first).
        #expect((first["ns"] as? Int ?? 0) >= 100_000_000, "\(wakers)")
        #expect((task["blocked_waits"] as? Int ?? 0) >= 1)
        let text = try run([cli, "report", trace])
        let block = text.stdout.components(separatedBy: "\n\n").first { $0.hasPrefix("BLOCKING") } ?? ""
        #expect(block.contains("by signaller (tid "), "\(block)")
        // The task held one of the pool's threads, not a loop.
        #expect(block.hasPrefix("BLOCKING: 1 callback ran 10.0 ms or longer"), "\(block)")
        #expect(block.contains("while one runs, its thread can run nothing else"), "\(block)")
    }
}
