// A blocking Swift task is named in the report by what the runtime says of it: its name (Task(name:), recorded
// when it completes) and its kind. BLOCKING listed every one as "SwiftTask (async id 72057594037927938)",
// an id a reader cannot find in the program.
import Foundation
import Testing

@Suite(.serialized) struct TaskLabelTests {
    @Test func blockingTasksSayTheirNameAndKind() throws {
        let program = try compileFixture("named_tasks")
        let trace = scratch("named_tasks.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let cli = builtExecutable("asynctrace")
        let rec = try run([cli, "record", "--no-kernel", "-o", trace, "--", program])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        #expect(rec.stdout.hasPrefix("named-tasks"), "the program's own output: \(rec.stdout)")
        let text = try run([cli, "report", trace]).stdout
        let blocking = text.components(separatedBy: "\n\n").first { $0.hasPrefix("BLOCKING") } ?? ""
        #expect(blocking.contains(#", "slow-reader" task) blocked "#), "\(blocking)")
        #expect(blocking.contains(", async let) blocked "), "\(blocking)")
        #expect(blocking.contains(", group child) blocked "), "\(blocking)")
        let slowest = text.components(separatedBy: "\n\n").first { $0.hasPrefix("SLOWEST CALLBACKS") } ?? ""
        #expect(slowest.contains(#"SwiftTask "slow-reader" task "#), "\(slowest)")
        #expect(slowest.contains("SwiftTask async let "), "\(slowest)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(try run([cli, "report", "--json", trace]).stdout.utf8)) as? [String: Any])
        let labels = (json["blocking"] as? [[String: Any]] ?? []).compactMap { $0["label"] as? String }.sorted()
        #expect(labels == [#""slow-reader" task"#, "async let", "group child"], "\(json["blocking"] ?? "-")")
    }
}
