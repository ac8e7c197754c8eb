// `asynctrace record` end to end: the real binary, real programs, the real kernel.
import Foundation
import KernelProbes
import Testing
import TraceFormat
import TraceReader

func asynctrace() throws -> String {
    guard let exe = builtExecutable("asynctrace") else { throw TestFailure("asynctrace was not built") }
    return exe
}

/// Runs a command with separate stdout and stderr, an optional environment and a timeout.
func runCapturing(
    _ path: String, _ args: [String], environment: [String: String]? = nil,
    timeout: TimeInterval = 60, afterStart: ((Process) -> Void)? = nil
) throws
    -> (status: Int32, reason: Process.TerminationReason, stdout: String, stderr: String)
{
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    afterStart?(p)
    let deadline = Date().addingTimeInterval(timeout)
    // Read both pipes to the end (in the background for stderr) so a chatty child never blocks.
    nonisolated(unsafe) var errData = Data()
    let errDone = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        errDone.signal()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning {
        p.terminate()
        throw TestFailure("\(path) \(args) did not finish in \(timeout) s")
    }
    errDone.wait()
    return (
        p.terminationStatus, p.terminationReason, String(decoding: outData, as: UTF8.self),
        String(decoding: errData, as: UTF8.self)
    )
}

private func kernelSyscalls(_ path: String) throws -> [KernelEvent] {
    try kernelEvents(of: scanTrace(path)).filter { $0.kind == .syscall || $0.kind == .epollWait }
}

@Suite(.serialized) struct RecordCommandTests {
    @Test func recordsTheGroundTruthProgram() throws {
        try requireKernel("recordsTheGroundTruthProgram")
        guard let child = builtExecutable("kernel-groundtruth") else { throw TestFailure("kernel-groundtruth not built") }
        let trace = temporaryPath("cli-groundtruth.atrace"), results = temporaryPath("cli-groundtruth.txt")
        let r = try runCapturing(try asynctrace(), ["record", "-o", trace, "--", child, results])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("wrote \(trace)") && r.stderr.contains("dropped: 0 program, 0 kernel"), "\(r.stderr)")
        var st = stat()
        #expect(stat(trace, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let scanned = try scanTrace(trace)
        let facts = try String(contentsOfFile: results, encoding: .utf8)
        #expect(facts.contains("main \(scanned.header.pid)\n"), "header pid \(scanned.header.pid), child said: \(facts)")
        #expect(scanned.header.program == "\(child) \(results)")
        #expect(scanned.chunks.allSatisfy { $0.isKernel && $0.pid == scanned.header.pid && $0.tid == 0 })
        let events = kernelEvents(of: scanned)
        #expect(events.filter { $0.kind == .syscall && $0.nr == 1 && $0.fd == 100 && $0.size == 7 && $0.ret == 7 }.count == 1000)
        #expect(events.filter { $0.kind == .syscall && $0.nr == 0 && $0.fd == 101 && $0.ret == 4096 }.count == 500)
        #expect(events.filter { $0.kind == .epollWait }.count == 4)
        #expect(events.contains { $0.kind == .processExit && $0.pid == scanned.header.pid && $0.exitCode == 0 })

        // The project's reader sees the same: one clean kernel stream, nothing lost.
        let reader = try TraceReader(path: trace)
        #expect(reader.damage.isEmpty && reader.droppedKernel == 0)
        #expect(
            reader.streams.count == 1 && reader.streams.first?.isKernel == true
                && reader.streams.first?.endedCleanly == true)
        var byReader = 0
        var previous: UInt64 = 0
        var ordered = true
        for e in reader.events() {
            byReader += 1
            ordered = ordered && e.timestampNs >= previous
            previous = e.timestampNs
        }
        #expect(byReader == scanned.events.count && ordered)  // every kind, CPU samples and their stacks included
    }

    @Test func unmodifiedPythonProgramGivesExactCounts() throws {
        try requireKernel("unmodifiedPythonProgramGivesExactCounts")
        let trace = temporaryPath("cli-python.atrace")
        let script = "import os\nfor i in range(250): os.write(1, b'0123456789')\n"
        let r = try runCapturing(
            try asynctrace(),
            [
                "record", "--buffer-size", "4MiB", "-o", trace, "/usr/bin/python3",
                "-S", "-c", script,
            ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == String(repeating: "0123456789", count: 250))
        let writes = try kernelSyscalls(trace).filter { $0.nr == 1 && $0.fd == 1 }
        #expect(writes.count == 250)
        #expect(writes.allSatisfy { $0.size == 10 && $0.ret == 10 })
    }

    @Test func exitStatusIsTheProgramsOwn() throws {
        let exe = try asynctrace()
        let seven = try runCapturing(exe, ["record", "-o", temporaryPath("cli-exit7.atrace"), "--", "/bin/sh", "-c", "exit 7"])
        #expect(seven.status == 7, "\(seven.stderr)")
        let killed = try runCapturing(exe, ["record", "-o", temporaryPath("cli-kill.atrace"), "/bin/sh", "-c", "kill -TERM $$"])
        #expect(killed.status == 128 + SIGTERM, "\(killed.stderr)")
        let badBuffer = try runCapturing(exe, ["record", "--buffer-size", "3M", "/bin/true"])
        #expect(badBuffer.status == 64 && badBuffer.stderr.contains("power of two"), "\(badBuffer.stderr)")
        let nothing = try runCapturing(exe, ["record"])
        #expect(nothing.status == 64 && nothing.stderr.contains("missing the program"), "\(nothing.stderr)")
    }

    @Test func missingOrNonExecutableProgramFailsCleanly() throws {
        let exe = try asynctrace()
        let trace = temporaryPath("cli-missing.atrace")
        let missing = try runCapturing(exe, ["record", "-o", trace, "--", "no-such-program-xyz", "arg"])
        #expect(missing.reason == .exit && missing.status == 127)
        #expect(missing.stderr.contains("no-such-program-xyz: command not found"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: trace))
        let plain = temporaryPath("not-executable.txt")
        _ = FileManager.default.createFile(atPath: plain, contents: Data("hello".utf8), attributes: [.posixPermissions: 0o644])
        let denied = try runCapturing(exe, ["record", "-o", trace, plain])
        #expect(denied.reason == .exit && denied.status == 126)
        #expect(denied.stderr.contains("cannot execute: Permission denied"), "\(denied.stderr)")
        #expect(!FileManager.default.fileExists(atPath: trace))
    }

    @Test func noKernelWritesOnlyTheHeader() throws {
        let trace = temporaryPath("cli-nokernel.atrace")
        let r = try runCapturing(try asynctrace(), ["record", "--no-kernel", "-o", trace, "--", "/usr/bin/env"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("ASYNCTRACE_OUTPUT=\(trace)\n") && r.stdout.contains("ASYNCTRACE_APPEND=1\n"))
        let scanned = try scanTrace(trace)
        #expect(scanned.chunks.isEmpty && scanned.header.program == "/usr/bin/env")
    }

    @Test func withoutPrivilegesItSaysWhyAndGoesOn() throws {
        if geteuid() != 0 { return }  // needs root to become someone else; as non-root every run shows this path
        let dir = temporaryPath("unprivileged")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)
        let trace = dir + "/t.atrace"
        let r = try runCapturing(
            "/usr/bin/setpriv",
            [
                "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                try asynctrace(), "record", "-o", trace, "/bin/echo", "hi",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "hi\n")
        let lines = r.stderr.split(separator: "\n").filter { $0.contains("kernel probes off") }
        #expect(lines.count == 1 && lines[0].contains("needs root or CAP_BPF+CAP_PERFMON"), "\(r.stderr)")
        #expect(try scanTrace(trace).chunks.isEmpty)
    }

    @Test func underSudoTheProgramRunsAsTheInvokingUser() throws {
        if geteuid() != 0 { return }
        // The file is created as the invoking user, so in a directory of theirs.
        let dir = temporaryPath("cli-sudo")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chown(dir, 65534, 65534)
        let trace = dir + "/cli-sudo.atrace"
        var env = ProcessInfo.processInfo.environment
        env["SUDO_UID"] = "65534"
        env["SUDO_GID"] = "65534"
        let r = try runCapturing(try asynctrace(), ["record", "--no-kernel", "-o", trace, "/usr/bin/id", "-u"], environment: env)
        #expect(r.status == 0 && r.stdout == "65534\n", "\(r.stdout) \(r.stderr)")
        var st = stat()
        #expect(stat(trace, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534 && st.st_mode & 0o777 == 0o600)
    }

    @Test func sigtermIsForwardedToTheProgram() throws {
        let trace = temporaryPath("cli-sigterm.atrace")
        let start = Date()
        let r = try runCapturing(try asynctrace(), ["record", "-o", trace, "--", "/bin/sleep", "30"], timeout: 20) { p in
            // Once the program runs (exec'd, not held): a signal before that stops it before it starts.
            let children = "/proc/\(p.processIdentifier)/task/\(p.processIdentifier)/children"
            for _ in 0..<1000 {
                let kids = ((try? String(contentsOfFile: children, encoding: .utf8)) ?? "").split(separator: " ")
                if kids.contains(where: { (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8)) == "sleep\n" }) {
                    break
                }
                usleep(10_000)
            }
            kill(p.processIdentifier, SIGTERM)
        }
        #expect(r.status == 128 + SIGTERM, "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 15)
        #expect(r.stderr.contains("wrote \(trace)"))
    }

    @Test func attachesToARunningProcess() throws {
        try requireKernel("attachesToARunningProcess")
        // A steady writer (~1,000 writes/s: the debug-built reader stays quick).
        let dd = Process()
        dd.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        dd.arguments = ["-S", "-c", "import os, time\nwhile True:\n    os.write(1, b'x' * 16)\n    time.sleep(0.001)\n"]
        dd.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try dd.run()
        // SIGKILL: children of Foundation's Process inherit the test thread's blocked signals.
        defer { kill(dd.processIdentifier, SIGKILL); dd.waitUntilExit() }
        // Writing before the attach (its /proc/PID/io counts its writes, 5 of them its start-up): on a busy machine the interpreter can
        // take longer to start than a fixed wait.
        func writes() -> Int {
            let io = (try? String(contentsOfFile: "/proc/\(dd.processIdentifier)/io", encoding: .utf8)) ?? ""
            return io.split(separator: "\n").first { $0.hasPrefix("syscw: ") }.flatMap { Int($0.dropFirst(7)) } ?? 0
        }
        for _ in 0..<1000 where writes() < 25 { usleep(10_000) }
        try #require(writes() >= 25, "python3 did not start writing within 10 s")
        let trace = temporaryPath("cli-pid.atrace")
        let r = try runCapturing(
            try asynctrace(),
            [
                "record", "--pid", "\(dd.processIdentifier)", "--duration", "200ms",
                "-o", trace,
            ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(dd.isRunning)
        let scanned = try scanTrace(trace)
        #expect(scanned.header.pid == UInt32(dd.processIdentifier))
        #expect(scanned.header.program.hasPrefix("/usr/bin/python3 -S -c"))
        let events = kernelEvents(of: scanned)
        let writes = events.filter { $0.kind == .syscall && $0.nr == 1 }
        #expect(writes.count > 20)
        #expect(events.allSatisfy { $0.pid == UInt32(dd.processIdentifier) || $0.kind == .wakerName })  // (wakers outside it: their pid)
        #expect(writes.allSatisfy { $0.fd == 1 && $0.size == 16 && $0.ret == 16 })
        #expect(scanned.chunks.last?.flags.contains(.final) == true)
    }

    @Test func anIdleAttachedProcessIsRecordedForTheWholeDurationAsked() throws {
        try requireKernel("anIdleAttachedProcessIsRecordedForTheWholeDurationAsked")
        // A process asleep throughout the attach has its last event right after it: the report said
        // "duration 9.72 ms" for a 2 s recording, as if it had been cut short.
        let idle = Process()
        idle.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        idle.arguments = ["-S", "-c", "import time\ntime.sleep(60)\n"]
        try idle.run()
        defer { kill(idle.processIdentifier, SIGKILL); idle.waitUntilExit() }
        // Asleep in its clock_nanosleep (syscall 230) before the attach: a fixed wait can end, on a busy machine,
        // while the interpreter still starts, whose events would then span the recording.
        func asleep() -> Bool {
            (try? String(contentsOfFile: "/proc/\(idle.processIdentifier)/syscall", encoding: .utf8))?.hasPrefix("230 ") == true
        }
        for _ in 0..<1000 where !asleep() { usleep(10_000) }
        try #require(asleep(), "python3 did not fall asleep within 10 s")
        // Without the scheduler probes nothing happens after the attach: the events span a few ms of the 700.
        let trace = temporaryPath("cli-pid-idle.atrace")
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let r = try runCapturing(
            try asynctrace(), ["record", "--pid", "\(idle.processIdentifier)", "--duration", "700ms", "--no-sched", "-o", trace])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try runCapturing(try asynctrace(), ["report", "--json", trace])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let t = try #require(root["trace"] as? [String: Any])
        let recorded = t["recorded_ns"] as? Int ?? 0, span = t["duration_ns"] as? Int ?? .max
        #expect(recorded >= 690_000_000 && recorded < 5_000_000_000, "recorded_ns \(recorded)")
        #expect(span < recorded / 2, "the events span \(span) ns of \(recorded)")
        let text = try runCapturing(try asynctrace(), ["report", trace]).stdout
        #expect(text.contains(" recorded; events span "), "\(text.prefix(600))")
        // With them, the sleep it is in at the end is its episode so far: blocked in clock_nanosleep to the stop.
        let withSched = temporaryPath("cli-pid-idle-sched.atrace")
        defer { try? FileManager.default.removeItem(atPath: withSched) }
        let r2 = try runCapturing(try asynctrace(), ["record", "--pid", "\(idle.processIdentifier)", "--duration", "700ms", "-o", withSched])
        #expect(r2.status == 0, "\(r2.stderr)")
        let json2 = try runCapturing(try asynctrace(), ["report", "--json", withSched])
        let root2 = try #require(try JSONSerialization.jsonObject(with: Data(json2.stdout.utf8)) as? [String: Any])
        let recorded2 = (root2["trace"] as? [String: Any])?["recorded_ns"] as? Int ?? 0
        let thread = try #require((root2["threads"] as? [[String: Any]])?.first, "\(root2["threads"] ?? "none")")
        let reasons = (thread["off_cpu_by_reason"] as? [[String: Any]]) ?? []
        #expect(
            // Most of it: the episode starts where the probes do, which a loaded machine delays past a tenth of the
            // recording (a helper session saw it under 90% at load 8).
            reasons.contains { $0["reason"] as? String == "clock_nanosleep" && ($0["ns"] as? Int ?? 0) >= recorded2 * 3 / 4 },
            "recorded \(recorded2): \(reasons)")
    }

    /// Attached, a CPython 3.12+ keeps the environment it was started with: without PYTHONPERFSUPPORT=1 it writes
    /// no perf map and its samples name only the interpreter's C. record says so (whatever map an earlier process
    /// with its pid left), and not for one that writes it.
    @Test func attachingToAPythonWithoutItsPerfMapSaysHowToGetPythonNames() throws {
        try requireKernel("attachingToAPythonWithoutItsPerfMapSaysHowToGetPythonNames")
        guard let python = HotFunctionTests.python312() else {
            try Test.cancel("no CPython 3.12 or newer here (perf trampolines came with 3.12)")
        }
        for perfSupport in [false, true] {
            let idle = Process()
            idle.executableURL = URL(fileURLWithPath: python)
            idle.arguments = ["-S", "-c", "import time\ntime.sleep(60)\n"]
            var environment = ProcessInfo.processInfo.environment
            environment["PYTHONPERFSUPPORT"] = perfSupport ? "1" : nil
            idle.environment = environment
            try idle.run()
            defer { kill(idle.processIdentifier, SIGKILL); idle.waitUntilExit() }
            let pid = idle.processIdentifier
            defer { try? FileManager.default.removeItem(atPath: "/tmp/perf-\(pid).map") }
            // Asleep in its clock_nanosleep (syscall 230): started, its map (if any) opened.
            func asleep() -> Bool { (try? String(contentsOfFile: "/proc/\(pid)/syscall", encoding: .utf8))?.hasPrefix("230 ") == true }
            for _ in 0..<1000 where !asleep() { usleep(10_000) }
            try #require(asleep(), "python did not fall asleep within 10 s")
            if !perfSupport {
                // A map an earlier process with this pid left behind (nobody removes them; hundreds sat in a CI
                // machine's /tmp, and the note went missing): written an hour ago, it is not this python's.
                let stale = "/tmp/perf-\(pid).map"
                try "7f0000000000 10 py::stale:/old.py\n".write(toFile: stale, atomically: false, encoding: .utf8)
                var times = [timeval(tv_sec: time(nil) - 3600, tv_usec: 0), timeval(tv_sec: time(nil) - 3600, tv_usec: 0)]
                #expect(utimes(stale, &times) == 0)
            }
            let trace = temporaryPath("cli-pid-python-\(perfSupport).atrace")
            defer { try? FileManager.default.removeItem(atPath: trace) }
            let r = try runCapturing(try asynctrace(), ["record", "--pid", "\(pid)", "--duration", "200ms", "-o", trace])
            #expect(r.status == 0, "\(r.stderr)")
            let said = r.stderr.contains("process \(pid) runs CPython 3.") && r.stderr.contains("PYTHONPERFSUPPORT=1")
            #expect(said == !perfSupport, "PYTHONPERFSUPPORT \(perfSupport ? "set" : "not set"): \(r.stderr)")
        }
    }

    @Test func attachingToAProcessAlsoRecordsTheProcessesAlreadyBelowIt() throws {
        try requireKernel("attachingToAProcessAlsoRecordsTheProcessesAlreadyBelowIt")
        // A parent that sleeps (a server's master) with a child and a grandchild that write, all running
        // before the attach (nginx, gunicorn, a node cluster): their writes are in the trace, with their fds.
        let tree = Process()
        tree.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        tree.arguments = [
            "-S", "-c",
            """
            import os, time
            def writer():
                while True:
                    os.write(1, b'y' * 24)
                    time.sleep(0.002)
            if os.fork() == 0:
                if os.fork() == 0:
                    writer()
                writer()
            while True:
                time.sleep(1)
            """,
        ]
        tree.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try tree.run()
        defer {
            // The whole tree: the parent's children are in its process group only if it made one, so by pid.
            for pid in descendantsOf(tree.processIdentifier) { kill(pid, SIGKILL) }
            kill(tree.processIdentifier, SIGKILL)
            tree.waitUntilExit()
        }
        var below: [Int32] = []
        for _ in 0..<200 where below.count < 2 {
            usleep(10_000)
            below = descendantsOf(tree.processIdentifier)
        }
        try #require(below.count == 2, "the test's process tree did not start: \(below)")
        let trace = temporaryPath("cli-pid-tree.atrace")
        let r = try runCapturing(
            try asynctrace(), ["record", "--pid", "\(tree.processIdentifier)", "--duration", "300ms", "-o", trace])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("and of the 2 processes below it"), "\(r.stderr)")
        let events = kernelEvents(of: try scanTrace(trace))
        for pid in below {
            let writes = events.filter { $0.kind == .syscall && $0.nr == 1 && $0.pid == UInt32(pid) }
            #expect(writes.count > 10 && writes.allSatisfy { $0.fd == 1 && $0.ret == 24 }, "pid \(pid): \(writes.count) writes")
            // Its threads and fds as /proc showed them at the attach.
            #expect(events.contains { $0.kind == .threadName && $0.pid == UInt32(pid) })
            #expect(events.contains { $0.kind == .fdOpen && $0.pid == UInt32(pid) && $0.fd == 1 })
        }
    }

    /// Processes below `pid` now, by their /proc/N/stat parent.
    private func descendantsOf(_ pid: Int32) -> [Int32] {
        var parent: [Int32: Int32] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let n = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(n)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let p = Int32(fields[1]) { parent[n] = p }
        }
        var out: [Int32] = [], frontier: Set<Int32> = [pid]
        while !frontier.isEmpty {
            let next = parent.filter { frontier.contains($0.value) }.map(\.key)
            out += next
            frontier = Set(next)
        }
        return out
    }
}
