import Foundation
import Testing

/// A sibling executable (or library) of the test bundle in the build directory.
func builtExecutable(_ name: String) -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.fileExists(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return name
}

func scratch(_ name: String) -> String { NSTemporaryDirectory() + "asynctrace-concurrency-\(getpid())-\(name)" }

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

func run(_ argv: [String], environment: [String: String]? = nil, timeout: TimeInterval = 300) throws -> Run {
    let base = scratch("run-\(UInt64.random(in: 0...UInt64.max))")
    _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
    _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: base + ".out")
        try? FileManager.default.removeItem(atPath: base + ".err")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    if let environment { p.environment = environment }
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

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

/// Compiles Fixtures/<name>.swift with `swiftc -O` (once per test process) and returns the binary.
func compileFixture(_ name: String, extraFlags: [String] = []) throws -> String {
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/\(name).swift").path
    let output = scratch(name + (extraFlags.isEmpty ? "" : "-" + String(extraFlags.joined().hashValue & 0xffff)))
    if FileManager.default.isExecutableFile(atPath: output) { return output }
    let swiftc =
        ["/opt/swift/usr/bin/swiftc", "/usr/bin/swiftc"].first { FileManager.default.isExecutableFile(atPath: $0) }
        ?? "/usr/bin/env"
    let args = (swiftc == "/usr/bin/env" ? ["swiftc"] : []) + ["-O", "-parse-as-library", source, "-o", output] + extraFlags
    let r = try run([swiftc] + args)
    guard r.status == 0 else { throw FixtureError(description: "swiftc \(name) failed: \(r.stderr)") }
    return output
}

/// Cancels the calling test when the kernel probes cannot run here (not root, no BTF); the printed marker lets
/// tools/test.sh fail a run that skipped it on a machine that could run it.
func requireKernel(_ name: String) throws {
    var reason: String? = nil
    if geteuid() != 0 {
        reason = "not root (uid \(geteuid()))"
    } else if access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
        reason = "no /sys/kernel/btf/vmlinux (kernel without BTF)"
    }
    guard let reason else { return }
    print("KERNEL TEST SKIPPED: \(name): \(reason)")
    try Test.cancel("kernel test skipped: \(reason)")
}
