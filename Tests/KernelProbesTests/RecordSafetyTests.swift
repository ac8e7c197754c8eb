// Issue 13's campaign against `record`, as regression tests: planted links under sudo, files and
// devices it did not create, --pid on other users' processes, crafted arguments and environment,
// Ctrl-C on a program that ignores it, a killed recorder, a full disk. Each fails without its fix.
import Foundation
import Testing

private let isRoot = geteuid() == 0
private let nobody: uid_t = 65534

/// A directory owned by an unprivileged user (as in the campaign: the invoking user's own directory).
private func userDirectory(_ name: String) throws -> String {
    let dir = temporaryPath(name)
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    chown(dir, nobody, nobody)
    chmod(dir, 0o755)
    return dir
}

/// A root-owned file with known contents and mode, which no recording may touch.
private func victim(_ name: String) throws -> String {
    let path = temporaryPath(name)
    try? FileManager.default.removeItem(atPath: path)
    try "precious\n".write(toFile: path, atomically: false, encoding: .utf8)
    chmod(path, 0o644)
    return path
}

private func fileState(_ path: String) -> (uid: uid_t, mode: mode_t, size: Int, nlink: Int)? {
    var st = stat()
    guard lstat(path, &st) == 0 else { return nil }
    return (st.st_uid, st.st_mode & 0o7777, Int(st.st_size), Int(st.st_nlink))
}

private var sudoEnvironment: [String: String] {
    var env = ProcessInfo.processInfo.environment
    env["SUDO_UID"] = "\(nobody)"
    env["SUDO_GID"] = "\(nobody)"
    return env
}

@Suite(.serialized) struct RecordSafetyTests {
    @Test("under sudo a symlink planted by the invoking user is not followed", .enabled(if: isRoot, "needs root"))
    func plantedSymlinkUnderSudo() throws {
        let dir = try userDirectory("sudo-symlink"), target = try victim("symlink-victim")
        let before = fileState(target)
        #expect(symlink(target, dir + "/t.atrace") == 0)
        let r = try runCapturing(
            try asynctrace(), ["record", "--no-kernel", "-o", dir + "/t.atrace", "/bin/true"],
            environment: sudoEnvironment)
        #expect(r.status == 1 && r.stderr.contains("symbolic link"), "\(r.stderr)")
        let after = fileState(target)
        #expect(after?.uid == 0 && after?.mode == before?.mode && after?.size == before?.size)
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "precious\n")
    }

    @Test("under sudo a hard link to another user's file is neither truncated nor re-owned", .enabled(if: isRoot, "needs root"))
    func plantedHardLinkUnderSudo() throws {
        let dir = try userDirectory("sudo-hardlink"), target = try victim("hardlink-victim")
        #expect(link(target, dir + "/t.atrace") == 0)
        let r = try runCapturing(
            try asynctrace(), ["record", "--no-kernel", "-o", dir + "/t.atrace", "/bin/true"],
            environment: sudoEnvironment)
        #expect(r.status == 1 && r.stderr.contains("cannot create"), "\(r.stderr)")
        let after = fileState(target)
        #expect(after?.uid == 0 && after?.mode == 0o644 && after?.size == 9)
    }

    @Test("under sudo the file is created by the invoking user, only where that user may write", .enabled(if: isRoot, "needs root"))
    func createdAsTheInvokingUser() throws {
        let dir = try userDirectory("sudo-create")
        let ok = try runCapturing(
            try asynctrace(), ["record", "--no-kernel", "-o", dir + "/t.atrace", "/bin/true"],
            environment: sudoEnvironment)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(fileState(dir + "/t.atrace")?.uid == nobody)
        // A root-only directory: root could write there, the invoking user cannot, so neither may record.
        let rootOnly = temporaryPath("root-only")
        try? FileManager.default.createDirectory(atPath: rootOnly, withIntermediateDirectories: true)
        chmod(rootOnly, 0o755)
        let denied = try runCapturing(
            try asynctrace(), ["record", "--no-kernel", "-o", rootOnly + "/t.atrace", "/bin/true"],
            environment: sudoEnvironment)
        #expect(denied.status == 1 && denied.stderr.contains("Permission denied"), "\(denied.stderr)")
        #expect(fileState(rootOnly + "/t.atrace") == nil)
    }

    @Test("a device or a file it did not create keeps its mode", .enabled(if: isRoot, "needs root"))
    func existingFilesKeepTheirMode() throws {
        let dev = temporaryPath("devnull-copy")
        unlink(dev)
        #expect(mknod(dev, S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0)
        chmod(dev, 0o666)
        let r = try runCapturing(try asynctrace(), ["record", "--no-kernel", "-o", dev, "/bin/true"])
        #expect(r.status == 1 && r.stderr.contains("not a regular file"), "\(r.stderr)")
        #expect(fileState(dev)?.mode == 0o666)
        // An existing regular file of the caller's is overwritten, and keeps its mode.
        let own = temporaryPath("own-0644.atrace")
        try "old".write(toFile: own, atomically: false, encoding: .utf8)
        chmod(own, 0o644)
        let r2 = try runCapturing(try asynctrace(), ["record", "--no-kernel", "-o", own, "/bin/true"])
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(fileState(own)?.mode == 0o644 && (fileState(own)?.size ?? 0) > 3)
    }

    @Test("the in-process recorder does not follow a symlink in ASYNCTRACE_OUTPUT")
    func inProcessRecorderRefusesSymlinks() throws {
        guard let fixture = builtExecutable("asynctrace-fixtures") else { throw TestFailure("fixtures not built") }
        let target = temporaryPath("inprocess-victim")
        try "precious\n".write(toFile: target, atomically: false, encoding: .utf8)
        chmod(target, 0o644)
        let link = temporaryPath("inprocess-link.atrace")
        unlink(link)
        #expect(symlink(target, link) == 0)
        var env = ProcessInfo.processInfo.environment
        env["ASYNCTRACE_OUTPUT"] = link
        env["ASYNCTRACE_APPEND"] = nil
        let r = try runCapturing(fixture, ["normal", "10"], environment: env)
        #expect(r.stderr.contains("symbolic link"), "\(r.stderr)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "precious\n" && fileState(target)?.mode == 0o644)
    }

    @Test(
        "--pid refuses another user's process without CAP_SYS_PTRACE, even with CAP_BPF+CAP_PERFMON",
        .enabled(if: isRoot, "needs root"))
    func pidOfAnotherUserIsRefused() throws {
        try requireKernel("pidOfAnotherUserIsRefused")
        // The binary must be reachable by the unprivileged user: a copy in a world-readable place.
        let exe = temporaryPath("asynctrace-copy")
        unlink(exe)
        // Copied by cp, not in this process: a child forked meanwhile by a parallel test would inherit our
        // write fd of the copy, and exec of it would fail with "Text file busy" (ETXTBSY).
        let cp = try runCapturing("/bin/cp", [try asynctrace(), exe])
        try #require(cp.status == 0, "cp: \(cp.stderr)")
        chmod(exe, 0o755)
        chmod((exe as NSString).deletingLastPathComponent, 0o755)
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["30"]
        try sleeper.run()
        defer { kill(sleeper.processIdentifier, SIGKILL); sleeper.waitUntilExit() }
        let dir = try userDirectory("pid-refused")
        let caps = [
            "--reuid=\(nobody)", "--regid=\(nobody)", "--clear-groups", "--inh-caps=+bpf,+perfmon",
            "--ambient-caps=+bpf,+perfmon", "--",
        ]
        let r = try runCapturing(
            "/usr/bin/setpriv",
            caps + [
                exe, "record", "--pid", "\(sleeper.processIdentifier)",
                "--duration", "200ms", "-o", dir + "/t.atrace",
            ])
        #expect(r.status == 1 && r.stderr.contains("you may not trace process"), "\(r.stderr)")
        #expect(fileState(dir + "/t.atrace") == nil)
        // Its own process: allowed (the probes load with those capabilities).
        let own = try runCapturing(
            "/usr/bin/setpriv",
            caps + [
                "/bin/sh", "-c",
                "/bin/sleep 5 >/dev/null 2>&1 & \(exe) record --pid $! --duration 200ms -o \(dir)/own.atrace; s=$?; kill $!; exit $s",
            ])
        #expect(own.status == 0 && own.stderr.contains("wrote \(dir)/own.atrace"), "\(own.stderr)")
    }

    @Test("crafted arguments and environment are refused with status 64, never a crash")
    func craftedArgumentsAreRefused() throws {
        for duration in ["1e20", "18446744073s", "-1s", "nan", "10", "s", "1e400ms"] {
            let r = try runCapturing(try asynctrace(), ["record", "--no-kernel", "--duration=\(duration)", "/bin/true"])
            #expect(r.status == 64 && r.stderr.contains("cannot read duration"), "\(duration): \(r.status) \(r.stderr)")
        }
        if isRoot {
            for uid in ["-1", "abc", "99999999999", "4294967295", ""] {
                var env = ProcessInfo.processInfo.environment
                env["SUDO_UID"] = uid
                env["SUDO_GID"] = "0"
                let r = try runCapturing(
                    try asynctrace(),
                    [
                        "record", "--no-kernel", "-o", temporaryPath("sudo-uid.atrace"),
                        "/bin/true",
                    ], environment: env)
                #expect(r.status == 64 && r.stderr.contains("SUDO_UID"), "SUDO_UID=\(uid): \(r.status) \(r.stderr)")
            }
        }
    }

    @Test("a second Ctrl-C stops a program that ignores SIGINT")
    func secondInterruptEscalates() throws {
        let trace = temporaryPath("ignores-sigint.atrace")
        let ready = temporaryPath("ignores-sigint.ready")
        unlink(ready)
        let script = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nopen('\(ready)', 'w').close()\ntime.sleep(30)\n"
        let start = Date()
        let r = try runCapturing(
            try asynctrace(), ["record", "--no-kernel", "-o", trace, "/usr/bin/python3", "-S", "-c", script],
            timeout: 25
        ) { p in
            for _ in 0..<1000 where access(ready, F_OK) != 0 { usleep(10_000) }
            kill(p.processIdentifier, SIGINT)  // forwarded, ignored
            usleep(200_000)
            kill(p.processIdentifier, SIGINT)  // escalates to SIGTERM
        }
        #expect(r.status == 128 + SIGTERM, "\(r.stderr)")
        #expect(r.stderr.contains("sending SIGTERM"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 20)
    }

    @Test("a killed recorder does not leave its program running")
    func killedRecorderTakesTheProgramWithIt() throws {
        let pidFile = temporaryPath("orphan.pid")
        unlink(pidFile)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try asynctrace())
        p.arguments = [
            "record", "--no-kernel", "-o", temporaryPath("orphan.atrace"), "/bin/sh", "-c",
            "echo $$ > \(pidFile); exec /bin/sleep 30",
        ]
        try p.run()
        var child: pid_t = 0
        for _ in 0..<1000 {
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let v = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                child = v
                break
            }
            usleep(10_000)
        }
        #expect(child > 0)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let gone = endsWithin5Seconds(child)
        #expect(gone, "process \(child) still runs after its recorder was killed")
        if !gone { kill(child, SIGKILL) }
    }

    @Test("a killed recorder does not leave what its program started running either (the guardian)")
    func killedRecorderTakesTheWholeTreeWithIt() throws {
        try requireKernel("killedRecorderTakesTheWholeTreeWithIt")
        let pidFile = temporaryPath("tree.pids")
        unlink(pidFile)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try asynctrace())
        // A grandchild, and a great-grandchild under a shell that is itself a grandchild: neither has the
        // program's PR_SET_PDEATHSIG.
        p.arguments = [
            "record", "-o", temporaryPath("tree.atrace"), "/bin/sh", "-c",
            "/bin/sleep 301 & echo $! >> \(pidFile); /bin/sh -c '/bin/sleep 302 & echo $! >> \(pidFile); wait' & wait",
        ]
        try p.run()
        var pids: [pid_t] = []
        for _ in 0..<1000 {
            let text = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
            pids = text.split(separator: "\n").compactMap { pid_t($0) }
            if pids.count == 2 { break }
            usleep(10_000)
        }
        #expect(pids.count == 2)
        usleep(300_000)  // the probes' fork events reach the recorder in batches
        kill(p.processIdentifier, SIGKILL)
        // (Not waitUntilExit here: Foundation waits until the surviving grandchildren release its pipes.)
        defer { p.waitUntilExit() }
        for pid in pids {
            let gone = endsWithin5Seconds(pid)
            #expect(gone, "process \(pid) (started by the program's children) still runs after its recorder was killed")
            if !gone { kill(pid, SIGKILL) }
        }
    }

    @Test("--duration stops a launched program and counts as success")
    func durationStopsALaunchedProgram() throws {
        let start = Date()
        let r = try runCapturing(
            try asynctrace(),
            [
                "record", "--no-kernel", "--duration", "300ms", "-o",
                temporaryPath("duration.atrace"), "/bin/sleep", "30",
            ], timeout: 20)
        #expect(r.status == 0 && r.stderr.contains("--duration 300ms is up"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test("a disk that fills while recording: the loss is counted and said, exit status 74", .enabled(if: isRoot, "needs root"))
    func fullDiskIsCountedAndSaid() throws {
        try requireKernel("fullDiskIsCountedAndSaid")
        guard let fixture = builtExecutable("asynctrace-fixtures") else { throw TestFailure("fixtures not built") }
        let mnt = temporaryPath("small-fs")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let mounted = try runCapturing("/bin/mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt])
        #expect(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? runCapturing("/bin/umount", [mnt]) }
        // Program events (the fixture emits 4 per resource) and kernel events, far beyond 64 KiB.
        let r = try runCapturing(try asynctrace(), ["record", "-o", mnt + "/t.atrace", fixture, "normal", "200000"])
        #expect(r.status == 74, "\(r.status) \(r.stderr)")
        let lost = r.stderr.split(separator: "\n").filter { $0.contains("lost ") && $0.contains("No space left on device") }
        #expect(lost.contains { $0.contains("program events") }, "\(r.stderr)")
        #expect(!r.stderr.contains("dropped: 0 program"), "\(r.stderr)")
        // The file says so too: record kept disk space in reserve for the note of what it could not write.
        let json = try runCapturing(try asynctrace(), ["report", "--json", mnt + "/t.atrace"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let unwritten = object?["unwritten"] as? [String: Any]
        let user = (unwritten?["user"] as? NSNumber)?.uint64Value ?? 0
        let kernel = (unwritten?["kernel"] as? NSNumber)?.uint64Value ?? 0
        #expect(user > 0 && unwritten?["error"] as? String == "ENOSPC", "\(String(describing: unwritten)) \(json.stderr)")
        let said = lost.compactMap { line in line.split(separator: " ").dropFirst(2).first.flatMap { UInt64($0) } }
        #expect(said.reduce(0, +) == user + kernel, "record said \(lost), the file says user \(user) kernel \(kernel)")
        let text = try runCapturing(try asynctrace(), ["report", mnt + "/t.atrace"])
        #expect(text.stdout.contains("unwritten  ") && text.stdout.contains("the disk was full"), "\(text.stdout.prefix(1500))")
    }
}

/// Whether `pid` is gone (or a zombie waiting for init to reap it) within 5 s.
private func endsWithin5Seconds(_ pid: pid_t) -> Bool {
    for _ in 0..<500 {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        if stat.isEmpty || stat.contains(") Z ") { return true }
        usleep(10_000)
    }
    return false
}
