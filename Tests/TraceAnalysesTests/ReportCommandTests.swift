import Foundation
import Testing
import TraceFormat

/// `asynctrace report` as users run it: the built executable, its output and its exit status.
@Suite struct ReportCommandTests {
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var executable: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // The xctest bundle sits next to the products (Linux: a file; elsewhere: a directory).
        var candidate = dir.appendingPathComponent("asynctrace").path
        if !FileManager.default.fileExists(atPath: candidate) {
            candidate = dir.deletingLastPathComponent().appendingPathComponent("asynctrace").path
        }
        return candidate
    }

    func report(_ args: [String], in directory: String? = nil) throws -> Run {
        let exe = Self.executable
        try #require(FileManager.default.isExecutableFile(atPath: exe), "build the asynctrace executable first: \(exe)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["report"] + args
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    private func temp(_ bytes: [UInt8]) -> String {
        let path = NSTemporaryDirectory() + "asynctrace-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).atrace"
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    @Test func textReportShowsTheBlockingCallbackAndItsSyscall() throws {
        let path = scriptedServerTrace()
        defer { removeTrace(path) }
        let r = try report([path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("BLOCKING: 1 callback ran 10.0 ms or longer"))
        #expect(r.stdout.contains("▶ Timeout (async id 4) blocked main (tid 100) for 20.0 ms, at +0.002 s"))
        #expect(r.stdout.contains("caused by  TCPSERVERWRAP → TCPWRAP → Timeout"))
        #expect(r.stdout.contains("read(fd 9) 20.0 ms, 4.0 KiB"))
        #expect(r.stdout.contains("dropped    7 events (user 5, kernel 2)"))
        #expect(r.stdout.contains("damage     none"))
        #expect(r.stdout.contains("OPEN AT EXIT: 2 resources"))
    }

    @Test func jsonHasTheDocumentedFields() throws {
        let path = scriptedServerTrace()
        defer { removeTrace(path) }
        let r = try report([path, "--json", "--top", "1", "--threshold", "5us"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(j["schema_version"] as? Int == 2)
        let trace = j["trace"] as! [String: Any]
        #expect(trace["program"] as? String == "./server" && trace["pid"] as? Int == 100)
        #expect(
            trace["duration_ns"] as? Int == 23_071_000 && trace["format_version"] as? Int == Int(TraceFileFormat.currentVersion)
                && trace["path"] as? String == path)
        let events = j["events"] as! [String: Any]
        for (k, v) in ["init": 3, "before": 3, "after": 3, "destroy": 1, "promise_resolve": 0, "syscall": 6] {
            #expect(events[k] as? Int == v, "events.\(k)")
        }
        #expect((j["dropped"] as! [String: Any])["user"] as? Int == 5 && (j["dropped"] as! [String: Any])["kernel"] as? Int == 2)
        let loop = j["loop"] as! [String: Any]
        #expect(loop["iterations"] as? Int == 4 && (loop["iteration_ns"] as! [String: Any])["max"] as? Int == 20_020_000)
        #expect(loop["utilization"] as? Double != nil)
        let resources = j["resources"] as! [[String: Any]]
        #expect(resources.first?["type"] as? String == "Timeout" && resources.first?["callback_ns_max"] as? Int == 20_009_000)
        #expect(resources.allSatisfy { $0["count"] != nil && $0["callbacks"] != nil && $0["callback_ns_total"] != nil })
        let syscalls = j["syscalls"] as! [[String: Any]]
        let read = try #require(syscalls.first { $0["name"] as? String == "read" })
        #expect(
            read["count"] as? Int == 3 && read["bytes"] as? Int == 4_196 && read["attributed"] as? Int == 3 && read["ns_total"] as? Int == 20_001_500)
        let fd7 = try #require((j["fds"] as! [[String: Any]]).first { $0["fd"] as? Int == 7 })
        #expect(fd7["reads"] as? Int == 2 && fd7["writes"] as? Int == 1 && fd7["bytes_read"] as? Int == 100 && fd7["bytes_written"] as? Int == 100)
        #expect((fd7["ready_to_callback_ns"] as! [String: Any])["p50"] as? Int == 2_048)
        // --threshold 5us: all three callbacks block; --top 1 keeps the longest.
        let blocking = j["blocking"] as! [[String: Any]]
        #expect(blocking.count == 1 && (j["blocking_summary"] as! [String: Any])["count"] as? Int == 3)
        #expect(
            blocking[0]["async_id"] as? Int == 4 && blocking[0]["type"] as? String == "Timeout" && blocking[0]["duration_ns"] as? Int == 20_009_000)
        let inner = blocking[0]["syscalls"] as! [[String: Any]]
        #expect(inner.count == 1 && inner[0]["name"] as? String == "read" && inner[0]["fd"] as? Int == 9 && inner[0]["ns"] as? Int == 20_000_000)
        let busiest = try #require(j["busiest_second"] as? [String: Any])
        #expect(busiest["index"] as? Int == 0 && busiest["start_ns"] as? Int == 1_000_000_000)
        #expect(busiest["busy_ns"] as? Int == 7_000 + 7_500 + 20_009_000 && busiest["seconds_with_callbacks"] as? Int == 1)
        let open = j["open_at_exit"] as! [[String: Any]]
        #expect(Set(open.compactMap { $0["type"] as? String }) == ["TCPWRAP", "TCPSERVERWRAP"] && open.allSatisfy { $0["count"] as? Int == 1 })
    }

    @Test func outputFileAndHTML() throws {
        let path = scriptedServerTrace()
        defer { removeTrace(path) }
        let out = NSTemporaryDirectory() + "asynctrace-cli-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: out + ".txt"); try? FileManager.default.removeItem(atPath: out + ".html") }
        let text = try report([path, "-o", out + ".txt"])
        #expect(text.status == 0 && text.stdout.isEmpty && text.stderr.contains("wrote \(out).txt"))
        #expect(try String(contentsOfFile: out + ".txt", encoding: .utf8).contains("BLOCKING: 1 callback"))
        let html = try report([path, "--html", "-o", out + ".html"])
        #expect(html.status == 0, "\(html.stderr)")
        let page = try String(contentsOfFile: out + ".html", encoding: .utf8)
        #expect(page.lowercased().contains("<html") && page.contains("Timeout"))
        let both = try report([path, "--html", "--json"])
        #expect(both.status == 64)
        let unwritable = try report([path, "-o", "/nonexistent-dir/report.txt"])
        #expect(unwritable.status == 1 && unwritable.stderr.contains("cannot create"))
    }

    /// Without -o, each trace's page is named after it: two traces' pages were both report.html, the second
    /// replacing the first.
    @Test func htmlPagesAreNamedAfterTheirTraces() throws {
        let path = scriptedServerTrace()
        defer { removeTrace(path) }
        let dir = NSTemporaryDirectory() + "asynctrace-html-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["api", "worker"] {
            try FileManager.default.copyItem(atPath: path, toPath: "\(dir)/\(name).atrace")
            let r = try report(["\(name).atrace", "--html"], in: dir)
            #expect(r.status == 0 && r.stderr.contains("wrote \(name).html"), "\(r.stderr)")
        }
        let pages = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".html") }.sorted()
        #expect(pages == ["api.html", "worker.html"])
        for page in pages {
            let html = try String(contentsOfFile: "\(dir)/\(page)", encoding: .utf8)
            #expect(html.contains(page.replacingOccurrences(of: ".html", with: ".atrace")), "\(page) is its trace's page")
        }
    }

    @Test func damagedTraceIsReportedWithWhatWasLost() throws {
        let path = scriptedServerTrace()
        defer { removeTrace(path) }
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes.removeLast(10)  // cut the kernel chunk (written last)
        let cut = temp(bytes)
        defer { removeTrace(cut) }
        let r = try report([cut])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("damage     1 damaged region skipped, ~9 events lost:"))
        #expect(r.stdout.contains("the file ends inside chunk 0 of the kernel stream of pid 100"))
        #expect(r.stdout.contains("BLOCKING: 1 callback"))  // the user stream is intact
        let j = try report([cut, "--json"])
        let damage = (try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any])["damage"] as! [String: Any]
        #expect(damage["events_lost"] as? Int == 9 && (damage["regions"] as! [Any]).count == 1)
    }

    @Test func withoutAPathTheNewestTraceInTheDirectoryIsRead() throws {
        let dir = NSTemporaryDirectory() + "asynctrace-cli-dir-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let none = try report([], in: dir)
        #expect(none.status == 1 && none.stderr.contains("no *.atrace file in the current directory"))
        let older = scriptedServerTrace(), newer = scriptedServerTrace()
        try FileManager.default.moveItem(atPath: older, toPath: dir + "/old.atrace")
        try FileManager.default.moveItem(atPath: newer, toPath: dir + "/new.atrace")
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)], ofItemAtPath: dir + "/old.atrace")
        let r = try report([], in: dir)
        #expect(r.status == 0 && r.stdout.contains("trace      new.atrace"), "\(r.stderr)")
    }

    @Test func badInputGetsAClearMessageAndStatus() throws {
        let missing = try report(["/nonexistent/trace.atrace"])
        #expect(missing.status == 1 && missing.stderr.contains("/nonexistent/trace.atrace: no such file") && missing.stdout.isEmpty)
        let script = temp(Array("#!/bin/sh\necho hi\n".utf8))
        defer { removeTrace(script) }
        let notTrace = try report([script])
        #expect(notTrace.status == 1 && notTrace.stderr.contains("not an asynctrace trace file"))
        let empty = temp([])
        defer { removeTrace(empty) }
        let e = try report([empty])
        #expect(e.status == 1 && e.stderr.contains("the file is empty"))
        var newer = FileHeader(pid: 1, monotonicStartNs: 0, realtimeStartNs: 0, program: "x").encode()
        newer[8] = 0x7f
        let n = temp(newer)
        defer { removeTrace(n) }
        let nr = try report([n])
        #expect(nr.status == 1 && nr.stderr.contains("written by a newer asynctrace"))
        let dir = try report([NSTemporaryDirectory()])
        #expect(dir.status == 1 && dir.stderr.contains("is a directory"))
        let badThreshold = try report([script, "--threshold", "soon"])
        #expect(badThreshold.status == 64 && badThreshold.stderr.contains("--threshold 'soon' is not a duration"))
        let badTop = try report([script, "--top", "-3"])
        #expect(badTop.status == 64)
    }
}
