// Every networking example, recorded for real (ASYNCTRACE_OUTPUT) and read back: the trace is intact,
// nothing was dropped, every init has its destroy, every before its after, nothing is open at exit.
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TraceAnalyses
import TraceReader

@Suite("Recorded network examples")
struct RecordedExamplesTests {
    static var examplesExecutable: String {
        // The test bundle and the executables share the build directory.
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = String(decoding: buf.prefix(max(0, n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(exe[..<exe.lastIndex(of: "/")!]) + "/asynctrace-examples"
    }

    /// Runs the scenario with the recorder on; returns the exit status and the trace path.
    func record(_ scenario: String) -> (Int32, String) {
        let path = "/tmp/asynctrace-net-example-\(scenario)-\(getpid()).atrace"
        unlink(path)
        var env = [String]()
        var p = environ
        while let e = p.pointee {
            let s = String(cString: e)
            if !s.hasPrefix("ASYNCTRACE_") { env.append(s) }
            p += 1
        }
        env.append("ASYNCTRACE_OUTPUT=\(path)")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let argv = [strdup(Self.examplesExecutable), strdup(scenario), nil]
        let envp = env.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0]!, &actions, nil, argv, envp) == 0 else { return (-1, path) }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return (status, path)
    }

    @Test(
        "every example scenario records a balanced trace",
        arguments: ["timers", "fs", "dns", "tcp-echo", "unix-echo", "udp-echo", "tls-echo", "http", "child", "blocking"])
    func balanced(scenario: String) throws {
        let (status, path) = record(scenario)
        defer { unlink(path) }
        #expect(status == 0, "\(scenario) exited with status \(status)")
        let a = analyzeTrace(try TraceReader(path: path))
        #expect(a.overview.damage.isEmpty)
        #expect(a.overview.droppedUser == 0)
        #expect(a.overview.count("init") > 0)
        #expect(
            a.overview.count("init") == a.overview.count("destroy"),
            "\(scenario): init \(a.overview.count("init")) destroy \(a.overview.count("destroy"))")
        #expect(a.overview.count("before") == a.overview.count("after"))
        #expect(a.openAtExit.isEmpty, "\(scenario): open at exit \(a.openAtExit)")
    }
}
