// Issue 6's acceptance runs, part 1: every bundled example recorded through the real CLI with the
// real kernel probes, read back through `asynctrace report --json`, balanced. (The blocking,
// tcp-echo and unmodified-program runs are in TraceAnalysesTests/ReportAcceptanceTests.)
import Foundation
import Testing

/// A sibling executable of the test bundle in the build directory.
func builtExecutable(_ name: String) -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return name
}

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

func run(_ argv: [String], timeout: TimeInterval = 120) throws -> Run {
    // Output goes to files, so a chatty child never blocks on a full pipe.
    let base = NSTemporaryDirectory() + "asynctrace-accept-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
    _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: base + ".out")
        try? FileManager.default.removeItem(atPath: base + ".err")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    p.standardOutput = FileHandle(forWritingAtPath: base + ".out")
    p.standardError = FileHandle(forWritingAtPath: base + ".err")
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning { p.terminate() }
    p.waitUntilExit()
    return Run(
        status: p.terminationStatus,
        stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
}

/// Kernel probes need root and BTF; without them `record` still works (user events only).
let kernelCapable = getuid() == 0 && FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux")

/// Records `scenario` with `asynctrace record` and returns the report's JSON.
func recordAndReport(_ scenario: String, extraReportArgs: [String] = []) throws -> [String: Any] {
    let trace = NSTemporaryDirectory() + "asynctrace-accept-\(getpid())-\(scenario).atrace"
    defer { try? FileManager.default.removeItem(atPath: trace) }
    let rec = try run([
        builtExecutable("asynctrace"), "record", "-o", trace, "--",
        builtExecutable("asynctrace-examples"), scenario,
    ])
    #expect(rec.status == 0, "record \(scenario) failed: \(rec.stderr)")
    let rep = try run([builtExecutable("asynctrace"), "report", trace, "--json"] + extraReportArgs)
    #expect(rep.status == 0, "report failed: \(rep.stderr)")
    let json = try JSONSerialization.jsonObject(with: Data(rep.stdout.utf8)) as? [String: Any]
    return try #require(json)
}

func int(_ any: Any?) -> Int { (any as? NSNumber)?.intValue ?? -1 }

let requiredScenarios = ["timers", "fs", "dns", "tcp-echo", "udp-echo", "unix-echo", "tls-echo", "http", "child", "blocking"]

@Suite(.serialized) struct ExampleRecordingTests {
    @Test func everyRequiredScenarioExists() throws {
        let help = try run([builtExecutable("asynctrace-examples"), "--help"])
        for s in requiredScenarios { #expect(help.stdout.contains(s), "scenario \(s) missing from --help") }
    }

    @Test(arguments: requiredScenarios)
    func scenarioRecordsABalancedTrace(scenario: String) throws {
        if !kernelCapable { print("KERNEL TEST SKIPPED: not root or no BTF; recording \(scenario) with user events only") }
        let r = try recordAndReport(scenario)
        let events = try #require(r["events"] as? [String: Any])
        #expect(int(events["before"]) > 0)
        #expect(int(events["before"]) == int(events["after"]), "before/after unbalanced in \(scenario)")
        // Every scenario ends with nothing pending: every resource was destroyed.
        #expect(int(events["init"]) == int(events["destroy"]), "init/destroy unbalanced in \(scenario)")
        let open = try #require(r["open_at_exit"] as? [[String: Any]])
        #expect(open.isEmpty, "\(scenario) left resources open: \(open)")
        let dropped = try #require(r["dropped"] as? [String: Any])
        #expect(int(dropped["user"]) == 0 && int(dropped["kernel"]) == 0)
        if kernelCapable {
            #expect(int(events["syscall"]) > 0, "no kernel events in \(scenario)")
            let trace = try #require(r["trace"] as? [String: Any])
            #expect(trace["kind"] as? String == "user+kernel")
        }
    }
}
