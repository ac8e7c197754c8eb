// A NIO echo server recorded by `asynctrace record` (kernel probes on): the channels' read and write
// syscalls belong to the channels that own their fds. The CLI is the root package's (tools/test.sh builds
// it first; ASYNCTRACE_CLI overrides).
import Foundation
import Testing

func kernelSkipReason() -> String? {
    if geteuid() != 0 { return "not root (uid \(geteuid()))" }
    if access("/sys/kernel/btf/vmlinux", R_OK) != 0 { return "no /sys/kernel/btf/vmlinux (kernel without BTF)" }
    return nil
}

let adapterRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func asynctraceCLI() -> String {
    if let p = ProcessInfo.processInfo.environment["ASYNCTRACE_CLI"], !p.isEmpty { return p }
    return adapterRoot.appendingPathComponent("../../.build/debug/asynctrace").standardizedFileURL.path
}

/// An executable of this package, next to the test bundle.
func builtExecutable(_ name: String) -> String? {
    var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent(name).path
        if access(candidate, X_OK) == 0 { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}

/// Starts `argv` under `asynctrace record` (its stdout piped); returns the process, the pipe and the port
/// from the server's "PORT n" line.
func startRecorded(_ argv: [String], trace: String) throws -> (Process, Pipe, Int) {
    let record = Process()
    record.executableURL = URL(fileURLWithPath: asynctraceCLI())
    record.arguments = ["record", "-o", trace, "--"] + argv
    let out = Pipe()
    record.standardOutput = out
    try record.run()
    var line = Data()
    while true {
        let b = out.fileHandleForReading.readData(ofLength: 1)
        if b.isEmpty || b == Data([10]) { break }
        line += b
    }
    let text = String(decoding: line, as: UTF8.self)
    let port = try #require(text.hasPrefix("PORT ") ? Int(text.dropFirst(5)) : nil, "server said \(text)")
    return (record, out, port)
}

func connectLoopback(_ port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port)).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    try #require(ok == 0)
    return fd
}

/// `asynctrace report --json` of `trace`.
func reportJSON(_ trace: String) throws -> [String: Any] {
    let report = Process()
    report.executableURL = URL(fileURLWithPath: asynctraceCLI())
    report.arguments = ["report", "--json", trace]
    let json = Pipe()
    report.standardOutput = json
    try report.run()
    let data = json.fileHandleForReading.readDataToEndOfFile()
    report.waitUntilExit()
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

@Suite(.serialized) struct EchoRecordTests {
    /// asynctrace-nio-demo records itself (recorder, Concurrency install, handler, loop metrics);
    /// asynctrace-nio-oneline has the handler line only, and `record` injects the recorder.
    @Test(arguments: ["asynctrace-nio-demo", "asynctrace-nio-oneline"])
    func channelReadsOwnTheirReadSyscalls(server: String) throws {
        if let reason = kernelSkipReason() {
            print("KERNEL TEST SKIPPED: channelReadsOwnTheirReadSyscalls: \(reason)")
            try Test.cancel("kernel test skipped: \(reason)")
        }
        let cli = asynctraceCLI()
        try #require(access(cli, X_OK) == 0, "the asynctrace CLI is built (swift build in the repository root) or ASYNCTRACE_CLI set: \(cli)")
        let demo = try #require(builtExecutable(server))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("asynctrace-nio-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("echo.atrace").path

        let connections = 4, messages = 100
        let (record, _, port) = try startRecorded([demo, "echo", "--connections", String(connections)], trace: trace)
        for _ in 0..<connections {
            let fd = try connectLoopback(port)
            for i in 0..<messages {
                let message = Array("message \(i) of the echo test\n".utf8)
                _ = write(fd, message, message.count)
                var got = 0
                var buf = [UInt8](repeating: 0, count: 256)
                while got < message.count {
                    let r = read(fd, &buf, buf.count)
                    guard r > 0 else { break }
                    got += r
                }
                #expect(got == message.count)
            }
            close(fd)
        }
        record.waitUntilExit()  // the server exits after the last connection closes
        #expect(record.terminationStatus == 0)

        let root = try reportJSON(trace)
        let attribution = try #require(root["attribution"] as? [String: Any])
        let onResourceFDs = try #require(attribution["on_resource_fds"] as? Int)
        let byOwner = try #require(attribution["on_resource_fds_by_owner"] as? Int)
        // Each message: at least one read and one write on the server's end.
        #expect(onResourceFDs >= 2 * connections * messages, "\(attribution)")
        #expect(Double(byOwner) >= 0.99 * Double(onResourceFDs), "\(attribution)")

        // Per connection: its fd life names the channel type and holds its reads.
        let fds = try #require(root["fds"] as? [[String: Any]])
        let channelRows = fds.filter { ($0["resource_type"] as? String) == "NIOSocketChannel" }
        #expect(channelRows.count == connections, "\(fds.map { ($0["fd"] ?? "", $0["kind"] ?? "", $0["resource_type"] ?? "") })")
        for row in channelRows { #expect((row["reads"] as? Int ?? 0) >= messages) }
        #expect(fds.contains { ($0["resource_type"] as? String) == "NIOServerSocketChannel" })
    }
}
