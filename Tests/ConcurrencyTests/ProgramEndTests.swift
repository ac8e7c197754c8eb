// A Swift program that ends inside a task. Where the recorder can write its buffers (exit, a fatal signal,
// a signal whose default action ends the process) the trace has the ending task's run; where it cannot
// (_exit, SIGKILL) the loss is not silent: record's summary, the report and its JSON say an unknown number
// of events was lost. Before, both read "dropped: 0", and a SIGHUP lost the buffers without a word.
import Foundation
import Testing
import TraceFormat
import TraceReader

@Suite(.serialized) struct ProgramEndTests {
    struct Recorded {
        var status: Int32
        var summary: String
        var text: String
        var json: [String: Any]
        var tasks: RecordedTasks
        /// The tasks in the order they were created: the first detached task, the ending one, (the last one).
        var createdInOrder: [UInt64]
    }

    func record(_ mode: String, ignoringSIGINT: Bool = false) throws -> Recorded {
        let program = try compileFixture("ending_in_task")
        let trace = scratch("ending-\(mode).atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let cli = builtExecutable("asynctrace")
        var argv = [cli, "record", "--no-kernel", "-o", trace, "--", program, mode]
        if ignoringSIGINT {
            // The program starts with SIGINT ignored, as a background job of a shell script does.
            argv = ["/bin/sh", "-c", "trap '' INT; exec \"$@\"", "sh"] + argv
        }
        let rec = try run(argv, environment: ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { $1 })
        let report = try run([cli, "report", trace])
        let jsonText = try run([cli, "report", "--json", trace])
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(jsonText.stdout.utf8)) as? [String: Any], "report --json: \(jsonText.stdout)")
        let reader = try TraceReader(path: trace)
        var order: [UInt64] = []
        let it = reader.events()
        while let e = it.next() {
            if e.event.kind == .initResource && e.event.text == "SwiftTask" { order.append(UInt64(bitPattern: e.event.arg(0))) }
        }
        let tasks = try RecordedTasks(path: trace)
        // The main task is announced too (it created the others): only the tasks a task created.
        order.removeAll { tasks.tasks[tasks.tasks[$0]?.trigger ?? 0] == nil }
        return Recorded(status: rec.status, summary: rec.stderr, text: report.stdout, json: json, tasks: tasks, createdInOrder: order)
    }

    func notFlushed(_ r: Recorded) -> Int? { (r.json["dropped"] as? [String: Any])?["processes_not_flushed"] as? Int }

    @Test(arguments: ["_exit", "sigkill"])
    func anEndThatCannotFlushIsAnUnknownLossNotZero(mode: String) throws {
        let r = try record(mode)
        #expect(r.status == (mode == "_exit" ? 3 : 128 + SIGKILL), "\(r.summary)")
        #expect(r.summary.contains("dropped: 0 + unknown program"), "\(r.summary)")
        let how = mode == "_exit" ? "exited with status 3 without running the recorder's exit handler: _exit" : "killed by SIGKILL"
        #expect(r.summary.contains("the program (\(how)) ended without writing the recorder's buffers"), "\(r.summary)")
        #expect(r.summary.contains("how many is unknown"), "\(r.summary)")
        #expect(r.text.contains("  dropped    none counted (user 0, kernel 0)\n"), "\(r.text)")
        #expect(r.text.contains("  lost       an unknown number of events: 1 process ended without writing its recorder's buffers"), "\(r.text)")
        #expect(notFlushed(r) == 1, "\(r.json["dropped"] ?? "-")")
        #expect(r.json["program_signal"] as? String == (mode == "sigkill" ? "SIGKILL" : nil), "\(r.json["program_signal"] ?? "-")")
        #expect(r.text.contains("  ended      the program was killed by SIGKILL\n") == (mode == "sigkill"), "\(r.text)")
    }

    @Test(arguments: ["exit", "fatal", "abort", "sighup"])
    func anEndThatCanFlushKeepsTheEndingTasksRun(mode: String) throws {
        let r = try record(mode)
        let signal: Int32? = ["fatal": r.status - 128, "abort": SIGABRT, "sighup": SIGHUP][mode]
        if mode == "exit" { #expect(r.status == 3) } else { #expect(r.status == 128 + signal!, "\(r.summary)") }
        #expect(notFlushed(r) == 0, "\(r.summary)")
        #expect(r.summary.contains("dropped: 0 program"), "\(r.summary)")
        #expect(!r.text.contains("  lost  "), "\(r.text)")
        // The first task ran and completed; the ending task's run began (its thread's buffer was written).
        #expect(r.createdInOrder.count == 2, "\(r.createdInOrder) \(r.tasks.describe())")
        guard r.createdInOrder.count == 2 else { return }
        let (first, ending) = (r.createdInOrder[0], r.createdInOrder[1])
        #expect(r.tasks.tasks[first]?.destroyed == true, "\(r.tasks.describe())")
        #expect((r.tasks.tasks[ending]?.runs ?? 0) >= 1, "the ending task's run is lost: \(r.tasks.describe())")
        #expect(r.tasks.openAtEnd.contains(ending), "\(r.tasks.describe())")
        if let signal {
            #expect(r.json["program_signal"] as? String == signalName(signal), "\(r.json["program_signal"] ?? "-")")
            #expect(r.text.contains("  ended      the program was killed by \(signalName(signal))\n"), "\(r.text)")
        } else {
            #expect(r.json["program_signal"] is NSNull, "\(r.json["program_signal"] ?? "-")")
        }
    }

    @Test func anIgnoredSignalLeavesTheRecordingRunning() throws {
        let r = try record("ignored-sigint", ignoringSIGINT: true)
        #expect(r.status == 0, "\(r.summary)")
        #expect(notFlushed(r) == 0, "\(r.summary)")
        // The task after the ignored SIGINT is recorded: the recording did not stop at the signal.
        #expect(r.createdInOrder.count == 3, "\(r.tasks.describe())")
        if let last = r.createdInOrder.last, r.createdInOrder.count == 3 {
            #expect(r.tasks.tasks[last]?.destroyed == true, "\(r.tasks.describe())")
        }
    }

    func signalName(_ signal: Int32) -> String {
        [SIGHUP: "SIGHUP", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP", SIGABRT: "SIGABRT"][signal] ?? "signal \(signal)"
    }
}
