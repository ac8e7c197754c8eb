// Dispatch names its worker threads by the last 15 bytes of their root queue's label (all a Linux thread
// name holds): Swift's cooperative pool ran as "oot.default-qos", a serial queue's and the main queue's work
// as "-qos.overcommit". The report and the exports name them by the label.
import Foundation
import Testing

@Suite(.serialized) struct DispatchThreadNameTests {
    @Test func cooperativePoolThreadsAreNamedByTheirQueue() throws {
        try requireKernel("cooperativePoolThreadsAreNamedByTheirQueue")
        // Its task blocks 200 ms in polls on one of the pool's threads.
        let program = try compileFixture("nested_run_loop")
        let trace = scratch("dispatch_names.atrace"), svg = scratch("dispatch_names.svg")
        defer {
            try? FileManager.default.removeItem(atPath: trace)
            try? FileManager.default.removeItem(atPath: svg)
        }
        let cli = builtExecutable("asynctrace")
        let rec = try run([cli, "record", "-o", trace, "--", program])
        #expect(rec.status == 0, "record failed: \(rec.stderr)")
        let report = try run([cli, "report", "--json", trace])
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any], "report --json: \(report.stdout)")
        let task = try #require(
            (json["blocking"] as? [[String: Any]] ?? []).first { $0["type"] as? String == "SwiftTask" }, "no blocking SwiftTask")
        #expect(task["thread"] as? String == "com.apple.root.default-qos", "the task's thread: \(task["thread"] ?? "nil")")
        let names = (json["threads"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(names.contains("com.apple.root.default-qos"), "\(names)")
        #expect(!names.contains { DispatchTails.all.contains($0) }, "a thread still named by Dispatch's cut: \(names)")
        let flame = try run([cli, "flamegraph", trace, "-o", svg])
        #expect(flame.status == 0, "flamegraph failed: \(flame.stderr)")
        let drawn = (try? String(contentsOfFile: svg, encoding: .utf8)) ?? ""
        #expect(drawn.contains("com.apple.root.default-qos ["), "the flame graph's thread frames")
        #expect(!DispatchTails.all.contains { drawn.contains(" \($0) [") }, "a flame graph frame named by Dispatch's cut")
    }
}

/// What the kernel keeps of the root queues' labels (seen here: `DispatchQueue.global(qos:)` workers' comm).
enum DispatchTails {
    static let all = ["oot.default-qos", "oot.utility-qos", ".background-qos", "r-initiated-qos", "-qos.overcommit"]
}
