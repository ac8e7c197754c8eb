// Process titles end to end: a real process tree whose children rewrite their argv the way postgres, nginx and
// setproctitle do, recorded launched and with --pid: each titled child is named by its title in THREADS, JSON
// and the Chrome export; a child that keeps its command line or execs has none.
import Foundation
import Testing
@testable import KernelProbes

@Suite(.serialized) struct ProcessTitleEndToEndTests {
    /// `titlesrv MS`: forks "worker A" (sets its title at once), after MS ms "checkpointer B" (sets it at once),
    /// a child that keeps its command line, and one that execs sleep; each lives about a second.
    static let source = #"""
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/wait.h>
        #include <unistd.h>
        #include <fcntl.h>
        static char *area; static size_t areaLen;
        static void busy(void) {  /* syscalls for THREADS to count, for about a second */
            for (int i = 0; i < 20; i++) { int fd = open("/dev/null", O_RDONLY); close(fd); usleep(50000); }
        }
        static pid_t child(const char *title, int execs) {
            pid_t p = fork();
            if (p != 0) return p;
            if (execs) { execl("/bin/sleep", "sleep", "1", (char *)0); _exit(127); }
            if (title) { memset(area, 0, areaLen); snprintf(area, areaLen, "%s", title); }  /* as postgres does */
            busy();
            _exit(0);
        }
        int main(int argc, char **argv) {
            area = argv[0]; areaLen = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) - argv[0]);
            int delayMs = argc > 1 ? atoi(argv[1]) : 0;
            child("titlesrv: worker A", 0);
            usleep(delayMs * 1000);
            child("titlesrv: checkpointer B", 0);
            child(0, 0);
            child(0, 1);
            while (wait(0) > 0) {}
            return 0;
        }
        """#

    /// The padding argument leaves room in argv for a title longer than the program's path.
    static func program() throws -> String {
        try compileC(source, name: "titlesrv", flags: ["-O1"])
    }

    static let padding = String(repeating: "p", count: 40)

    /// Checks the report and export of `trace` recorded from `root`.
    func check(trace: String, root: Int32) throws {
        let exe = try asynctrace()
        let json = try runCapturing(exe, ["report", "--json", trace])
        try #require(json.status == 0, "report failed: \(json.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let titles = try #require(j["process_titles"] as? [[String: Any]])
        let byTitle = Dictionary(titles.map { ($0["title"] as? String ?? "?", $0) }, uniquingKeysWith: { a, _ in a })
        #expect(Set(byTitle.keys) == ["titlesrv: worker A", "titlesrv: checkpointer B"], "\(titles)")
        for (_, p) in byTitle {
            #expect(p["ppid"] as? Int == Int(root) && p["program"] as? String == "titlesrv", "\(p)")
        }
        let text = try runCapturing(exe, ["report", trace])
        try #require(text.status == 0, "report failed: \(text.stderr)")
        for t in byTitle.values {
            let pid = t["pid"] as? Int ?? -1
            #expect(text.stdout.contains("\(t["title"] as? String ?? "?") (tid \(pid))"), "\(text.stdout)")
            #expect(text.stdout.contains("\(t["title"] as? String ?? "?") (pid \(pid), titlesrv, child of \(root))"))
        }
        let chrome = temporaryPath("titles-\(root).json")
        defer { try? FileManager.default.removeItem(atPath: chrome) }
        #expect(try runTool(exe, ["export", "--format", "chrome", "-o", chrome, trace]).status == 0)
        let exported = try String(contentsOfFile: chrome, encoding: .utf8)
        for title in byTitle.keys {
            #expect(
                exported.contains(
                    "\"name\":\"process_name\",\"pid\":\(byTitle[title]?["pid"] as? Int ?? -1),\"tid\":0,\"args\":{\"name\":\"\(title)\"}"))
        }
    }

    @Test func launchedChildrenAreNamedByTheirTitles() throws {
        try requireKernel("launchedChildrenAreNamedByTheirTitles")
        let binary = try Self.program()
        let trace = temporaryPath("titles-launched.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let rec = try runCapturing(try asynctrace(), ["record", "-o", trace, "--", binary, "100", Self.padding])
        try #require(rec.status == 0, "record failed: \(rec.stderr)")
        let j = try runCapturing(try asynctrace(), ["report", "--json", trace])
        let o = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
        let root = try #require((o["trace"] as? [String: Any])?["pid"] as? Int)
        try check(trace: trace, root: Int32(root))
    }

    /// Attached to a running tree: worker A had its title before the attach (read from /proc then),
    /// checkpointer B forks after it.
    @Test func attachedChildrenAreNamedByTheirTitles() throws {
        try requireKernel("attachedChildrenAreNamedByTheirTitles")
        let binary = try Self.program()
        let trace = temporaryPath("titles-attached.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let program = Process()
        program.executableURL = URL(fileURLWithPath: binary)
        program.arguments = ["700", Self.padding]
        try program.run()
        defer { if program.isRunning { kill(program.processIdentifier, SIGKILL) }; program.waitUntilExit() }
        usleep(250_000)  // worker A forked and titled
        let rec = try runCapturing(try asynctrace(), ["record", "--pid", "\(program.processIdentifier)", "-o", trace])
        try #require(rec.status == 0, "record failed: \(rec.stderr)")
        try check(trace: trace, root: program.processIdentifier)
    }
}

/// A flight recorder's dump says each live process's latest title again at its start, as it says thread names.
@Suite struct ProcessTitleFlightStateTests {
    @Test func aDumpRepeatsTheLatestTitleOfALiveProcess() {
        var state = KernelFlightState(retentionNs: 10_000_000_000)
        for (pid, tid) in [(40, 40), (41, 41), (41, 42), (43, 43)] as [(UInt32, UInt32)] {
            var n = KernelEvent(kind: .threadName, pid: pid, tid: tid, timestampNs: 1_000)
            n.detail = "srv"
            state.note(n)
        }
        for (pid, title, at) in [(41, "srv: worker", 2_000), (41, "srv: worker busy", 3_000), (43, "srv: gone", 2_000)]
            as [(UInt32, String, UInt64)]
        {
            var t = KernelEvent(kind: .processTitle, pid: pid, tid: 0, timestampNs: at)
            t.parentPid = 40
            t.detail = title
            state.note(t)
        }
        state.note(KernelEvent(kind: .processExit, pid: 43, tid: 43, timestampNs: 4_000))
        let titles = state.events(atNs: 5_000).filter { $0.kind == .processTitle }
        #expect(titles.map(\.pid) == [41] && titles.first?.detail == "srv: worker busy" && titles.first?.parentPid == 40)
        #expect(titles.first?.timestampNs == 5_000)
    }
}
