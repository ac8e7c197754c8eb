// What held a node process at its end depends on how it ended. One that called process.exit() with a ref'd interval
// still running read "the process exited by itself, status 0: none kept it alive"; one killed by SIGTERM listed its
// unref'd server and timers under "what kept the process alive". The preload now records each handle's and timer's
// ref state as it changes (and node's own timers made unref'd, such as a socket's timeout) and the callback that
// called process.exit(); the report says how the process ended and marks the unref'd groups.
import Foundation
import Testing

@Suite(.serialized) struct NodeProcessEndTests {
    static let program = #"""
        const net = require('net');
        setInterval(() => {}, 100000);
        setInterval(() => {}, 100000).unref();
        const server = net.createServer().listen(0, '127.0.0.1', () => {
          server.unref();
          const client = net.connect(server.address().port, '127.0.0.1', () => {
            client.setTimeout(100000);
            setTimeout(function end() {
              if (process.argv[2] === 'exit') process.exit(0);
              process.kill(process.pid, 'SIGTERM');
            }, 300);  // after the preload's 100 ms batch timer wrote all before it (a signal loses what was not written)
          });
        });
        """#

    @Test(arguments: ["exit", "term"]) func openAtExitSaysWhatHeldTheProcessByHowItEnded(_ ending: String) throws {
        if getuid() != 0 || !FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux") {
            print("KERNEL TEST SKIPPED: how node ended comes from the kernel probes: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-end-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/end.js", trace = dir + "/end.atrace"
        try Self.program.write(toFile: script, atomically: true, encoding: .utf8)
        let cli = NodeRepo.executable("asynctrace")
        let record = try runNodeTool([cli, "record", "-o", trace, "--", node, script, ending])
        #expect(FileManager.default.fileExists(atPath: trace), "record: \(record.stderr)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(try runNodeTool([cli, "report", trace, "--json"]).stdout.utf8)) as? [String: Any])
        let text = try runNodeTool([cli, "report", trace]).stdout
        let open = json["open_at_exit"] as? [[String: Any]] ?? []
        func count(_ type: String, unrefed: Bool) -> Int {
            open.filter { $0["type"] as? String == type && $0["unrefed"] as? Bool == unrefed }.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
        }
        // The unref'd interval and the socket's timeout (made unref'd by node) held nothing; the first interval did.
        #expect(count("Timeout", unrefed: true) == 2, "\(open)")
        #expect(count("Timeout", unrefed: false) >= 1, "\(open)")
        #expect(count("TCPSERVERWRAP", unrefed: true) == 1, "\(open)")
        #expect(count("TCPWRAP", unrefed: false) >= 1, "\(open)")
        #expect(text.contains("Timeout (unref'd)") && text.contains("TCPSERVERWRAP (unref'd)"), "\(text)")
        #expect(text.contains("unref'd: they did not keep the process alive"), "\(text)")
        #expect(json["exited_by_themselves_status"] is NSNull, "\(json["exited_by_themselves_status"] ?? "absent")")
        let calls = json["process_exit_calls"] as? [[String: Any]] ?? []
        if ending == "exit" {
            let call = try #require(calls.first, "\(json["process_exit_calls"] ?? "absent")")
            #expect(call["type"] as? String == "Timeout", "\(call)")
            let site = (call["created_at"] as? [[String: Any]])?.first
            #expect(site?["line"] as? Int == 8, "the end timer's site: \(call)")
            #expect(text.contains("the process ended by process.exit() in Timeout (async id "), "\(text)")
            #expect(text.contains("not by an empty loop: the ref'd ones would have kept it alive"), "\(text)")
        } else {
            #expect(calls.isEmpty, "\(calls)")
            #expect(json["killed_by_signal"] as? Int == 15, "\(json["killed_by_signal"] ?? "absent")")
            #expect(text.contains("killed by SIGTERM: the ref'd ones kept the process alive until then, or leaked"), "\(text)")
        }
    }

    /// Of two processes, the child killed by SIGTERM while the parent exited by itself: the heading read "killed by
    /// SIGTERM: … kept the process alive", as if of the parent too. It names the killed one.
    @Test func ofSeveralProcessesTheKilledOneIsNamed() throws {
        if getuid() != 0 || !FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux") {
            print("KERNEL TEST SKIPPED: how node ended comes from the kernel probes: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let program = """
            const { fork } = require('child_process');
            if (process.argv[2] === 'child') {
              setInterval(() => {}, 100000);
              setTimeout(() => process.send('ready'), 300);  // after the preload's 100 ms timer wrote its events
            } else {
              const child = fork(__filename, ['child']);
              child.on('message', () => child.kill('SIGTERM'));
            }
            """
        try withRecordedNodeScript(program, file: "parent.js", node: node, record: []) { r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            let parent = (r.json["trace"] as? [String: Any])?["pid"] as? Int
            let killed = try #require(r.json["killed_pid"] as? Int, "\(r.json["killed_pid"] ?? "absent")")
            #expect(killed != parent, "the child, not the parent \(parent ?? -1)")
            #expect(r.json["killed_by_signal"] as? Int == 15)
            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace]).stdout
            #expect(text.contains("pid \(killed) killed by SIGTERM: its ref'd ones kept it alive until then, or leaked"), "\(text)")
        }
    }

    /// A loop stuck in a callback until a signal killed the process never waits again: its last stretch was never
    /// listed (a cluster worker killed inside its request's handler lost its 22 ms stall, and the preload had not
    /// written the callback either). It is a stall ending at the thread's last event, saying the signal cut it.
    @Test func aLoopKilledInsideAStallKeepsThatStall() throws {
        if getuid() != 0 || !FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux") {
            print("KERNEL TEST SKIPPED: loop stalls of node come from the kernel probes: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let program = """
            setTimeout(function stuck() {
              const t = Date.now(); while (Date.now() - t < 200) {}
              process.kill(process.pid, 'SIGKILL');
            }, 50);
            """
        try withRecordedNodeScript(program, file: "stuck.js", node: node, record: []) { r in
            let stalls = r.json["stalls"] as? [[String: Any]] ?? []
            let killed = try #require(stalls.first { $0["killed_by_signal"] as? Int == 9 }, "\(stalls)")
            #expect((killed["duration_ns"] as? Int ?? 0) >= 190_000_000, "\(killed)")
            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace]).stdout
            #expect(text.contains("(SIGKILL killed the process inside it: the loop never waited again; at least this long)"), "\(text)")
        }
    }
}
