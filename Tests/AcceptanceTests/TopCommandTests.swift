// `asynctrace top` end to end: following a recording in progress as plain text, and the terminal view
// in a real terminal (tmux): a stalled callback shows within 2 s, keys work, the terminal comes back
// as it was.
import Foundation
import Testing

@Suite(.serialized) struct TopCommandTests {
    private func temporary(_ name: String) -> String {
        NSTemporaryDirectory() + "asynctrace-top-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(name)"
    }

    private func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    @Test func plainTextFollowsARecordingInProgressUntilItEnds() throws {
        let trace = temporary("plain.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let record = Process()
        record.executableURL = URL(fileURLWithPath: builtExecutable("asynctrace"))
        record.arguments =
            ["record", "-o", trace] + (kernelCapable ? [] : ["--no-kernel"])
            + ["--", builtExecutable("asynctrace-examples"), "stalls", "4", "1000", "200"]
        record.standardOutput = FileHandle.nullDevice
        record.standardError = FileHandle.nullDevice
        try record.run()
        defer { if record.isRunning { record.terminate() } }
        #expect(waitFor(seconds: 20) { FileManager.default.fileExists(atPath: trace) })
        // stdout is a file: one block of text per interval; top ends when every stream has ended.
        let top = try run([builtExecutable("asynctrace"), "top", trace], timeout: 60)
        record.waitUntilExit()
        #expect(top.status == 0, "top failed: \(top.stderr)")
        let blocks = top.stdout.components(separatedBy: "asynctrace top — ").count - 1
        #expect(blocks >= 3, "expected a block per second:\n\(top.stdout)")
        let blocking = top.stdout.components(separatedBy: "BLOCKING Timeout").count - 1
        #expect(blocking >= 3, "every 200 ms stall is listed once:\n\(top.stdout)")
        #expect(top.stdout.contains("The recording ended"))
        #expect(top.stdout.contains("Callbacks by type"))
        #expect(!top.stdout.contains("\u{1B}["), "no terminal escapes in plain text")
        if kernelCapable {
            #expect(top.stdout.contains("syscalls: read"), "the stall's synchronous read is named:\n\(top.stdout)")
            #expect(top.stdout.contains("STALL"))
        }
        // Every interval's blocking callbacks are listed once: no stall counted in two intervals.
        #expect(blocking <= 4)
    }

    @Test func terminalViewShowsAStallWithinTwoSecondsAndRestoresTheTerminal() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") else {
            try Test.cancel("tmux is not installed (tools/install-deps.sh installs it)")
        }
        let trace = temporary("tui.atrace")
        let before = temporary("stty-before"), after = temporary("stty-after"), status = temporary("status")
        defer { for f in [trace, before, after, status] { try? FileManager.default.removeItem(atPath: f) } }
        let session = "asynctrace-top-test-\(getpid())"
        let top =
            [builtExecutable("asynctrace"), "top", "-o", trace] + (kernelCapable ? [] : ["--no-kernel"])
            + ["--", builtExecutable("asynctrace-examples"), "stalls", "12", "2000", "300"]
        let script = "stty -a > \(before); \(top.joined(separator: " ")); echo $? > \(status); stty -a > \(after); sleep 30"
        let paneFile = temporary("pane")
        defer { try? FileManager.default.removeItem(atPath: paneFile) }
        // Not through Foundation's Process: the tmux server it starts inherits Process's bookkeeping
        // descriptors and waitUntilExit never returns.
        func tmux(_ args: [String]) throws -> String {
            var pid: pid_t = 0
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, paneFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            let argv: [UnsafeMutablePointer<CChar>?] = (["tmux"] + args).map { strdup($0) } + [nil]
            defer { for a in argv { free(a) } }
            guard posix_spawn(&pid, "/usr/bin/tmux", &actions, nil, argv, environ) == 0 else { return "" }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            return (try? String(contentsOfFile: paneFile, encoding: .utf8)) ?? ""
        }
        _ = try tmux(["new-session", "-d", "-s", session, "-x", "200", "-y", "60", "sh", "-c", script])
        defer { _ = try? tmux(["kill-session", "-t", session]) }
        func pane() -> String { (try? tmux(["capture-pane", "-p", "-t", session])) ?? "" }

        var seen: Date? = nil
        #expect(
            waitFor(seconds: 30) {
                if pane().contains("BLOCKING Timeout") { seen = Date() }
                return seen != nil
            }, "no blocking callback on screen:\n\(pane())")
        let screen = pane()
        #expect(screen.contains("Loop thread"))
        #expect(screen.contains("keys: s sort"))

        _ = try tmux(["send-keys", "-t", session, "s"])
        #expect(waitFor(seconds: 5) { pane().contains("sort: blocked") }, "s did not change the order:\n\(pane())")
        _ = try tmux(["send-keys", "-t", session, "p"])
        #expect(waitFor(seconds: 5) { pane().contains("[paused]") }, "p did not pause:\n\(pane())")
        _ = try tmux(["send-keys", "-t", session, "q"])
        #expect(waitFor(seconds: 20) { FileManager.default.fileExists(atPath: after) }, "q did not quit:\n\(pane())")
        #expect((try? String(contentsOfFile: status, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        let sttyBefore = try String(contentsOfFile: before, encoding: .utf8)
        let sttyAfter = try String(contentsOfFile: after, encoding: .utf8)
        #expect(sttyBefore == sttyAfter, "the terminal's settings were not restored")
        #expect(!pane().contains("Loop thread"), "the alternate screen was not left")

        // When did the first stall begin (wall clock)? From the trace top kept.
        let report = try run([builtExecutable("asynctrace"), "report", "--json", trace])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any])
        let info = try #require(json["trace"] as? [String: Any])
        let blocking = try #require(json["blocking"] as? [[String: Any]])
        let starts = blocking.compactMap { ($0["start_ns"] as? NSNumber)?.uint64Value }
        let firstStart = try #require(starts.min())
        let realStart = try #require((info["realtime_start_ns"] as? NSNumber)?.uint64Value)
        let monoStart = try #require((info["recording_start_ns"] as? NSNumber)?.uint64Value)
        let stallWall = Double(realStart + (firstStart - monoStart)) / 1e9
        let latency = try #require(seen).timeIntervalSince1970 - stallWall
        print("top showed the first stall \(String(format: "%.2f", latency)) s after it began")
        #expect(latency > 0 && latency <= 2.0, "shown \(latency) s after the stall began")
    }
}
