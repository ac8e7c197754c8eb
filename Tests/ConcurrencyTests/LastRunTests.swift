// A task's last run ends at its completion, even when the task it wakes ends the process at once: the async
// main returning right after `await task.value` exited while the pool thread was still leaving the task's run,
// the run's `after` was never written, and the report read the completed task as "still running when its
// process's events end: the program exited or was killed inside it".
import Foundation
import Testing

@Suite(.serialized) struct LastRunTests {
    @Test func aTaskThatCompletedBeforeTheExitIsNotStillRunning() throws {
        let program = try compileFixture("last_task_then_exit")
        // The pool thread stalls right after waking the main task, as if preempted there.
        let stall = scratch("stall_after_waking_main.so")
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/stall_after_waking_main.c").path
        let clang = ["/opt/swift/usr/bin/clang", "/usr/bin/clang", "/usr/bin/cc"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let built = try run([try #require(clang, "no C compiler"), "-shared", "-fPIC", "-O2", source, "-o", stall, "-ldl"])
        try #require(built.status == 0, "\(built.stderr)")
        // The stall makes the loss likely, not certain (2 of 3 runs lost the run's end before the fix): three runs.
        for attempt in 1...3 { try recordOnce(program: program, stall: stall, attempt: attempt) }
    }

    func recordOnce(program: String, stall: String, attempt: Int) throws {
        let trace = scratch("last_task_then_exit-\(attempt).atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let cli = builtExecutable("asynctrace")
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = stall
        let rec = try run([cli, "record", "--no-kernel", "-o", trace, "--", program], environment: environment)
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        #expect(rec.stdout.hasPrefix("last-task 7"), "the program's own output: \(rec.stdout)")

        let t = try RecordedTasks(path: trace)
        let task = try #require(t.tasks.values.first { t.tasks[$0.trigger] != nil }, "the detached task: \(t.describe())")
        #expect(task.destroyed && task.runs >= 1, "\(t.describe())")
        #expect(!t.openAtEnd.contains(task.id), "its run has no end: \(t.describe())")
        #expect(t.unbalanced == 0)
        let report = try run([cli, "report", trace])
        let blocking = report.stdout.components(separatedBy: "\n\n").first { $0.hasPrefix("BLOCKING") } ?? ""
        // (The main task's last run is unfinished, rightly: the process exits inside it.)
        let line = blocking.split(separator: "\n").first { $0.contains("SwiftTask (async id \(task.id), task) blocked") }
        #expect(line != nil, "\(blocking)")
        #expect(line.map { !$0.contains("still running when its process's events end") } ?? true, "\(blocking)")
    }

    /// Without kernel events the run's length came from the program's last event (the run's own before), so a
    /// task that slept 150 ms and then called exit() was not listed at all; the recorder's last chunk of its thread,
    /// sealed at the exit, shows it was still inside the run then.
    @Test func aTaskThatEndsTheProcessIsListedForAsLongAsItRan() throws {
        let program = try compileFixture("exit_after_sleep_in_task")
        let trace = scratch("exit_after_sleep_in_task.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let cli = builtExecutable("asynctrace")
        let rec = try run([cli, "record", "--no-kernel", "-o", trace, "--", program])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(try run([cli, "report", "--json", trace]).stdout.utf8)) as? [String: Any])
        let blocking = json["blocking"] as? [[String: Any]] ?? []
        let task = try #require(blocking.first { $0["label"] as? String == "task" }, "the task is not listed: \(blocking)")
        #expect(task["unfinished"] as? Bool == true, "\(task)")
        #expect((task["duration_ns"] as? Int ?? 0) >= 150_000_000, "\(task)")
    }
}
