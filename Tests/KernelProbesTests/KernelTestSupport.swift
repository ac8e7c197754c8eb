// Shared by the kernel probe tests: the skip rule, paths, recording a program, reading the trace back.
import Foundation
import Testing
import KernelProbes
import TraceFormat

/// nil when the kernel tests can run here, else why not (printed as `KERNEL TEST SKIPPED: ...`).
func kernelTestSkipReason() -> String? {
    if geteuid() != 0 { return "not root (uid \(geteuid()))" }
    if access("/sys/kernel/btf/vmlinux", R_OK) != 0 { return "no /sys/kernel/btf/vmlinux (kernel without BTF)" }
    return nil
}

/// Cancels the calling test when the kernel tests cannot run here: the test framework reports it as skipped,
/// and the printed marker lets tools/test.sh fail a run that skipped them on a machine that could run them.
func requireKernel(_ name: String) throws {
    guard let reason = kernelTestSkipReason() else { return }
    print("KERNEL TEST SKIPPED: \(name): \(reason)")
    try Test.cancel("kernel test skipped: \(reason)")
}

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// An executable product next to the test bundle (.build/<triple>/debug/NAME).
func builtExecutable(_ name: String) -> String? {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent(name).path
        if access(candidate, X_OK) == 0 { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}

func temporaryPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kernelprobes-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

struct RecordingResult {
    var events: [KernelEvent]  // as streamed, in ring order
    var statistics: KernelProbeStatistics
    var exitStatus: Int32
    var rootPid: Int32
    var tracePath: String
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Records `path args` the way `asynctrace record` does: held child, filter, exec, pump, finish.
/// `whileRunning` runs once after the program was released (for noise from other processes);
/// `firstPumpAfterMs` delays the first pump (a loaded recorder's).
func recordProgram(
    _ path: String, _ args: [String], options: KernelProbeOptions = KernelProbeOptions(),
    pollWhileRunning: Bool = true, firstPumpAfterMs: UInt32 = 0, whileRunning: (() -> Void)? = nil
) throws -> RecordingResult {
    let session = try KernelProbeSession(options: options)
    let child = try HeldProcess(
        path: path, arguments: [path] + args,
        environment: ProcessInfo.processInfo.environment.map { "\($0)=\($1)" })
    let tracePath = temporaryPath("trace-\(child.pid).atrace")
    let fd = open(tracePath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw TestFailure("cannot create \(tracePath)") }
    defer { close(fd) }
    let header = FileHeader(
        pid: UInt32(child.pid), monotonicStartNs: monotonicNowNs(), realtimeStartNs: 0,
        program: ([path] + args).joined(separator: " "))
    let hb = header.encode()
    guard write(fd, hb, hb.count) == hb.count else { throw TestFailure("cannot write header") }

    let recording = KernelRecording(session: session, traceFD: fd, rootPid: child.pid)
    var streamed: [KernelEvent] = []
    recording.onEvents = { streamed.append(contentsOf: $0) }
    session.trace(pid: child.pid)
    try child.release()
    whileRunning?()
    if firstPumpAfterMs > 0 { usleep(firstPumpAfterMs * 1000) }
    var status: Int32 = 0
    while true {
        if pollWhileRunning { recording.pump(timeoutMs: 10) }
        let r = waitpid(child.pid, &status, pollWhileRunning ? WNOHANG : 0)
        if r == child.pid { break }
        if r < 0 { throw TestFailure("waitpid: \(errno)") }
    }
    let stats = recording.finish()
    return RecordingResult(
        events: streamed, statistics: stats, exitStatus: status, rootPid: child.pid,
        tracePath: tracePath)
}

/// A trace file read back with TraceFormat's decoder, every chunk checked.
struct ScannedTrace {
    var header: FileHeader
    var chunks: [ChunkHeader] = []
    var events: [DecodedEvent] = []
}

func scanTrace(_ path: String) throws -> ScannedTrace {
    guard let data = FileManager.default.contents(atPath: path) else { throw TestFailure("cannot read \(path)") }
    let bytes = [UInt8](data)
    return try bytes.withUnsafeBytes { buf -> ScannedTrace in
        guard case .success(let (header, headerLength)) = FileHeader.decode(buf) else {
            throw TestFailure("bad file header")
        }
        var trace = ScannedTrace(header: header)
        var offset = headerLength
        while offset < buf.count {
            guard buf.count - offset >= TraceFileFormat.chunkHeaderSize,
                let ch = ChunkHeader.load(from: buf.baseAddress! + offset)
            else {
                throw TestFailure("bad chunk header at \(offset)")
            }
            let payloadStart = offset + TraceFileFormat.chunkHeaderSize
            let payloadEnd = payloadStart + Int(ch.payloadLength)
            guard payloadEnd <= buf.count else { throw TestFailure("truncated chunk at \(offset)") }
            let payload = UnsafeRawBufferPointer(rebasing: buf[payloadStart..<payloadEnd])
            guard ChunkHeader.computeCRC(header: buf.baseAddress! + offset, payload: payload) == ch.crc else {
                throw TestFailure("CRC mismatch in chunk at \(offset)")
            }
            var decoder = ChunkDecoder(header: ch, payload: payload)
            while let r = decoder.next() {
                switch r {
                case .success(let e): if e.kind != .stringDef { trace.events.append(e) }
                case .failure(let err): throw TestFailure("decode error \(err) in chunk at \(offset)")
                }
            }
            guard decoder.decoded == ch.eventCount else { throw TestFailure("event count mismatch at \(offset)") }
            trace.chunks.append(ch)
            offset = payloadEnd
        }
        return trace
    }
}

/// The kernel stream's events back as KernelEvents, to compare with what was streamed.
func kernelEvents(of trace: ScannedTrace) -> [KernelEvent] {
    trace.events.compactMap { d -> KernelEvent? in
        switch d.kind {
        case .syscall:
            var e = KernelEvent(kind: .syscall, pid: UInt32(d.u(0)), tid: UInt32(d.u(1)), timestampNs: d.timestampNs)
            e.nr = UInt32(d.u(2)); e.fd = Int32(d.s(3)); e.size = d.u(4); e.ret = d.s(5)
            e.enterNs = d.timestampNs - d.u(6)
            return e
        case .epollWait:
            var e = KernelEvent(kind: .epollWait, pid: UInt32(d.u(0)), tid: UInt32(d.u(1)), timestampNs: d.timestampNs)
            e.nr = UInt32(d.u(2)); e.fd = Int32(d.s(3)); e.size = d.u(4); e.timeoutMs = Int32(d.s(5)); e.ret = d.s(6)
            e.enterNs = d.timestampNs - d.u(7); e.epollData = d.list
            return e
        case .processFork:
            var e = KernelEvent(kind: .processFork, pid: UInt32(d.u(0)), tid: 0, timestampNs: d.timestampNs)
            e.childPid = UInt32(d.u(1))
            return e
        case .processExit:
            var e = KernelEvent(kind: .processExit, pid: UInt32(d.u(0)), tid: 0, timestampNs: d.timestampNs)
            e.exitCode = Int32(d.s(1))
            return e
        case .threadName:
            var e = KernelEvent(kind: .threadName, pid: UInt32(d.u(0)), tid: UInt32(d.u(1)), timestampNs: d.timestampNs)
            e.detail = d.text
            return e
        case .wakerName:
            var e = KernelEvent(kind: .wakerName, pid: UInt32(d.u(0)), tid: UInt32(d.u(1)), timestampNs: d.timestampNs)
            e.detail = d.text
            return e
        case .threadExit:
            return KernelEvent(kind: .threadExit, pid: UInt32(d.u(0)), tid: UInt32(d.u(1)), timestampNs: d.timestampNs)
        case .offCPU:
            var e = KernelEvent(kind: .offCPU, pid: UInt32(d.u(0)), tid: UInt32(d.u(1)), timestampNs: d.timestampNs)
            e.offCPUState = UInt8(d.u(2) & 0xFF); e.offCPUSyscall = UInt16(truncatingIfNeeded: d.u(2) >> 8)
            e.blockedNs = d.u(3); e.runqueueNs = d.u(4)
            e.wakerPid = UInt32(d.u(5)); e.wakerTid = UInt32(d.u(6))
            return e
        case .fdOpen:
            var e = KernelEvent(kind: .fdOpen, pid: UInt32(d.u(0)), tid: UInt32(d.u(1)), timestampNs: d.timestampNs)
            e.fd = Int32(d.s(2)); e.fdKind = UInt8(d.u(3)); e.sourceFd = Int32(d.s(4)); e.detail = d.text
            return e
        default:
            return nil
        }
    }
}

/// Runs a tool (no shell) to its end with stdout and stderr in one pipe, read until EOF before waiting (so a
/// chatty tool cannot fill the pipe and hang) with read(2) retried on EINTR (Foundation's
/// readDataToEndOfFile traps on it).
func runTool(_ path: String, _ args: [String], cwd: String? = nil) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let fd = pipe.fileHandleForReading.fileDescriptor
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buf, buf.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        data += buf[0..<n]
    }
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The first `name` on PATH that is executable.
func which(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let p = "\(dir)/\(name)"
        if access(p, X_OK) == 0 { return p }
    }
    return nil
}

/// Compiles a C program written by a test; returns the executable's path.
func compileC(_ source: String, name: String, flags: [String], libraries: [String] = []) throws -> String {
    guard let cc = which("cc") ?? which("gcc") else { throw TestFailure("no C compiler") }
    let src = temporaryPath("\(name).c"), out = temporaryPath(name)
    try source.write(toFile: src, atomically: true, encoding: .utf8)
    let r = try runTool(cc, flags + ["-o", out, src] + libraries)
    guard r.status == 0 else { throw TestFailure("cc failed: \(r.output)") }
    return out
}

/// Compiles the C file `source` (written by a test) into `binary` with the system's cc.
func compileCFile(_ source: String, to binary: String, flags: [String]) throws {
    let r = try runCapturing("/usr/bin/cc", flags + ["-o", binary, source])
    guard r.status == 0 else { throw TestFailure("cc failed: \(r.stderr)") }
}

/// `asynctrace report --json` of `trace` (with `options`), parsed; throws if the report fails or is no object.
func reportJSON(_ trace: String, options: [String] = []) throws -> [String: Any] {
    let r = try runCapturing(try asynctrace(), ["report", "--json"] + options + [trace])
    guard r.status == 0 else { throw TestFailure("report failed (\(r.status)): \(r.stderr)") }
    guard let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
        throw TestFailure("report --json printed no JSON object")
    }
    return j
}

/// Records `program` with `asynctrace record` (extra record options first); the trace's path.
func recordTrace(_ program: [String], options: [String] = [], name: String) throws -> String {
    guard let exe = builtExecutable("asynctrace") else { throw TestFailure("asynctrace was not built") }
    let trace = temporaryPath("\(name).atrace")
    let r = try runTool(exe, ["record", "-o", trace] + options + ["--"] + program)
    guard r.status == 0 else { throw TestFailure("record failed (\(r.status)): \(r.output)") }
    return trace
}

/// The function names of a report JSON stack's `frames` (its display name where no function is known), innermost first.
func names(_ stack: [String: Any]) -> [String] {
    ((stack["frames"] as? [[String: Any]]) ?? []).map { ($0["function"] as? String) ?? ($0["name"] as? String) ?? "?" }
}

/// `want` appears in `list` in this order (other frames may sit between: inlined or unwound differently).
func inOrder(_ want: [String], in list: [String]) -> Bool {
    var i = 0
    for n in list where i < want.count && n == want[i] { i += 1 }
    return i == want.count
}

/// C for the test programs (needs stdio.h, string.h, unistd.h): `asleep_in(tid, call)` says whether thread or
/// process `tid` sleeps (state S) in the syscall whose /proc/TID/syscall line starts with `call` ("232 ":
/// epoll_wait; "0 0x5 ": a read of fd 5), and `until_asleep_in(tid, call)` waits for it (at most ~10 s). A
/// program's helper starts its timed part only then: on a busy machine a fixed sleep races the wait it is
/// meant to end, and a wait that starts late comes out shorter than the test says.
let asleepInSyscallC = """
    static int asleep_in(int tid, const char *call) {
        char path[64], buf[512] = {0}; FILE *f;
        snprintf(path, sizeof path, "/proc/%d/syscall", tid);
        if (!(f = fopen(path, "r"))) return 0;
        int in = fgets(buf, sizeof buf, f) && strncmp(buf, call, strlen(call)) == 0; fclose(f);
        snprintf(path, sizeof path, "/proc/%d/stat", tid);
        if (!(f = fopen(path, "r"))) return 0;
        memset(buf, 0, sizeof buf); fgets(buf, sizeof buf, f); fclose(f);
        char *close = strrchr(buf, ')');
        return in && close && close[2] == 'S';
    }
    static void until_asleep_in(int tid, const char *call) {
        for (int i = 0; i < 10000 && !asleep_in(tid, call); i++) usleep(1000);
    }
    """

/// A program started for a `--pid` test, with a pipe on its stdin (the test writes to it to say "go on"); killed
/// and reaped when the test is done with it (`stop`).
struct StartedProgram {
    let process = Process()
    let stdin = Pipe()
    var pid: Int32 { process.processIdentifier }

    init(_ binary: String) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.standardInput = stdin
        try process.run()
    }

    /// Waits up to 10 s for `condition` (polled every 10 ms, /proc's view of the program); throws `what` if it never holds.
    func wait(for what: String, _ condition: () -> Bool) throws {
        var waited = 0
        while !condition() && waited < 10_000 {
            usleep(10_000)
            waited += 10
        }
        guard condition() else { throw TestFailure("\(what) within 10 s") }
    }

    func stop() {
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}

/// `asynctrace record --pid PID` (options after it) started and read until it says it records: the probes trace the
/// process from then on. `finish` reads the rest of what it says and waits for its end.
final class AttachedRecording {
    let process = Process()
    private let output = Pipe()
    private(set) var said: [UInt8] = []
    var text: String { String(decoding: said, as: UTF8.self) }

    init(pid: Int32, options: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try asynctrace())
        process.arguments = ["record", "--pid", "\(pid)"] + options
        process.standardOutput = output
        process.standardError = output
        try process.run()
        while !text.contains("recording kernel events of process") && readSome() {}
        guard text.contains("recording kernel events of process") else {
            stop()
            throw TestFailure("record --pid did not start: \(text)")
        }
    }

    private func readSome() -> Bool {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = read(output.fileHandleForReading.fileDescriptor, &buf, buf.count)
        if n < 0 && errno == EINTR { return true }
        if n > 0 { said += buf[0..<n] }
        return n > 0
    }

    /// Reads the rest of its output and waits for its end: its exit status.
    func finish() -> Int32 {
        while readSome() {}
        process.waitUntilExit()
        return process.terminationStatus
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
