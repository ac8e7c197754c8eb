import Testing
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// The fixture executable sits next to the test bundle in the build directory.
func fixturePath() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    let exe = String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var dir = Substring(exe)
    while let slash = dir.lastIndex(of: "/") {
        dir = dir[..<slash]
        let candidate = String(dir) + "/asynctrace-fixtures"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return "asynctrace-fixtures"
}

/// Runs the fixture with the trace path in its environment; returns its wait status and stdout.
func runFixture(_ mode: String, _ n: Int, trace: String) -> (Int32, String) {
    var pipefd: [Int32] = [0, 0]
    pipe(&pipefd)
    let pid = fork()
    if pid == 0 {
        dup2(pipefd[1], 1)
        setenv("ASYNCTRACE_OUTPUT", trace, 1)
        unsetenv("ASYNCTRACE_APPEND")
        let path = fixturePath()
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), strdup(mode), strdup(String(n)), nil]
        execv(path, argv)
        _exit(127)
    }
    close(pipefd[1])
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let k = buf.withUnsafeMutableBytes { read(pipefd[0], $0.baseAddress, $0.count) }
        if k <= 0 { break }
        out.append(contentsOf: buf[0..<k])
    }
    close(pipefd[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (status, String(decoding: out, as: UTF8.self))
}

func hookEventCount(_ chunks: [ScannedChunk]) -> Int {
    chunks.flatMap(\.events).filter { [.initResource, .before, .after, .destroy].contains($0.kind) }.count
}

@Suite struct CrashTests {
    @Test func normalExitFlushesEverything() throws {
        let path = tempPath("normal")
        defer { unlink(path) }
        let (status, _) = runFixture("normal", 50_000, trace: path)
        #expect(status == 0)
        let (_, chunks) = try scanTrace(path)
        #expect(hookEventCount(chunks) == 200_000)
    }

    @Test(arguments: ["segv", "abort"])
    func crashingChildLeavesACompleteTrace(mode: String) throws {
        let path = tempPath(mode)
        defer { unlink(path) }
        let (status, _) = runFixture(mode, 30_000, trace: path)
        // It died of its signal (the handler re-raised it), and the handler wrote every buffer.
        let sig = status & 0x7f
        #expect(sig == (mode == "segv" ? SIGSEGV : SIGABRT))
        let (_, chunks) = try scanTrace(path)
        #expect(hookEventCount(chunks) == 120_000)
    }

    @Test("a crash while another thread holds AsyncHooks' registry lock still flushes and dies of its signal")
    func crashWithTheRegistryLockHeldElsewhere() throws {
        // The crash handler used to disable the hook (that lock, and allocation): it waited forever, until the
        // fixture's 20 s alarm (SIGALRM) ended it with nothing written.
        let path = tempPath("segv-locked")
        defer { unlink(path) }
        let (status, _) = runFixture("segv-locked", 10_000, trace: path)
        #expect(status & 0x7f == SIGSEGV)
        let (_, chunks) = try scanTrace(path)
        #expect(hookEventCount(chunks) == 40_000)
    }

    @Test("a child forked while another thread holds the registry lock exits at once")
    func forkWithTheRegistryLockHeldElsewhere() throws {
        // The fork handler used to disable the hook in the child, whose copy of that lock stays taken: the
        // child hung until the parent killed it after 20 s (status 9).
        let path = tempPath("fork-locked")
        defer { unlink(path) }
        let (status, out) = runFixture("fork-locked", 10, trace: path)
        #expect(status == 0)
        #expect(out.contains("child status 0"), "\(out)")
        // The parent ends with _exit (its recorder cannot stop with the lock held): nothing of the child's
        // 100 resources may be in the file.
        let (_, chunks) = try scanTrace(path)
        #expect(hookEventCount(chunks) <= 40)
    }

    @Test func sigkilledChildLeavesWhatReachedTheKernel() throws {
        let path = tempPath("sigkill")
        defer { unlink(path) }
        let (status, out) = runFixture("sigkill", 30_000, trace: path)
        #expect(status & 0x7f == SIGKILL)
        let written = UInt64(out.split(separator: " ").last.flatMap { UInt64($0.filter(\.isNumber)) } ?? 0)
        #expect(written >= 120_000)
        // Every chunk in the file is whole (scanTrace is strict), and it holds at least what the
        // recorder had written before the kill; the 1,000 resources after it are lost.
        let (_, chunks) = try scanTrace(path)
        let events = UInt64(chunks.reduce(0) { $0 + Int($1.header.eventCount) })
        #expect(events >= written)
        #expect(hookEventCount(chunks) >= 120_000 && hookEventCount(chunks) < 124_000)
    }
}
