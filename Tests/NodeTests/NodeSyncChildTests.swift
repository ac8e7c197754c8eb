// A callback that waits for a child synchronously (`execSync`, `spawnSync`): node runs a libuv loop of its
// own inside the callback and waits in epoll_pwait on that loop's epoll fd. That wait was taken for the
// thread's loop being idle: the stall was cut in two around it and left out of LOOP STALLS, and the
// blocking callback said "blocked outside traced syscalls". It is now the callback's syscall, and the stall's
// when it runs outside every recorded callback (after an `await`).
import Foundation
import Testing

@Suite(.serialized) struct NodeSyncChildTests {
    static let kernelCapable = getuid() == 0 && FileManager.default.isReadableFile(atPath: "/sys/kernel/btf/vmlinux")

    static let program = #"""
        const { execSync } = require('child_process');
        setTimeout(function waitForChild() { execSync('sleep 0.4'); }, 20);
        """#

    @Test func aCallbackWaitingForAChildSynchronouslyIsAStallInItsEpollWait() throws {
        if !Self.kernelCapable {
            print("KERNEL TEST SKIPPED: a callback's wait for a child in node's own epoll loop: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(Self.program, file: "execsync.js", node: node, record: ["--sample-rate", "0"], report: ["--threshold", "100ms"]) {
            r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            func ns(_ o: [String: Any], _ k: String) -> UInt64 { (o[k] as? NSNumber)?.uint64Value ?? 0 }
            func epollWait(_ syscalls: Any?) -> [String: Any]? {
                (syscalls as? [[String: Any]] ?? []).first { ["epoll_wait", "epoll_pwait", "epoll_pwait2"].contains($0["name"] as? String ?? "") }
            }
            let blocking = r.json["blocking"] as? [[String: Any]] ?? []
            let callback = try #require(blocking.first { $0["type"] as? String == "Timeout" }, "blocking: \(blocking)")
            #expect(ns(callback, "duration_ns") >= 390_000_000, "\(callback)")
            let wait = try #require(epollWait(callback["syscalls"]), "the callback's syscalls: \(callback["syscalls"] ?? [])")
            #expect(ns(wait, "blocked_ns") >= 300_000_000, "\(wait)")
            #expect(wait["fd_detail"] as? String == "epoll", "\(wait)")

            // One stall of the whole callback, inside it, its wait named.
            let stalls = r.json["stalls"] as? [[String: Any]] ?? []
            let stall = try #require(stalls.first { ns($0, "duration_ns") >= 390_000_000 }, "stalls: \(stalls)")
            #expect(ns(stall, "in_callbacks_ns") >= 390_000_000, "\(stall)")
            #expect((stall["callback"] as? [String: Any])?["type"] as? String == "Timeout", "\(stall)")
            #expect(ns(try #require(epollWait(stall["syscalls"]), "\(stall)"), "blocked_ns") >= 300_000_000)

            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace, "--threshold", "100ms"]).stdout
            #expect(text.contains("mostly in epoll_pwait(fd "), "\(text)")
            // (The callback's and the stall's verdicts: another process, the child's shell, may wait on a page fault.)
            let verdicts = text.split(separator: "\n").filter { $0.contains("waiting: ") }
            #expect(!verdicts.isEmpty && verdicts.allSatisfy { !$0.contains("outside traced syscalls") }, "\(text)")
        }
    }

    /// Without the hooks (record --no-node-hooks, as with --pid) no callback is known: the child's wait is still
    /// no idle time of the loop but a stall in it (it was cut in two around a wait taken for the loop's).
    @Test func withoutTheHooksTheWaitForAChildIsAStallInItsEpollWait() throws {
        if !Self.kernelCapable {
            print("KERNEL TEST SKIPPED: a wait for a child without the hooks: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(
            Self.program, file: "execsync.js", node: node, record: ["--no-node-hooks", "--sample-rate", "0"], report: ["--threshold", "100ms"]
        ) { r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            func ns(_ o: [String: Any], _ k: String) -> UInt64 { (o[k] as? NSNumber)?.uint64Value ?? 0 }
            let stalls = r.json["stalls"] as? [[String: Any]] ?? []
            let stall = try #require(stalls.first { ns($0, "duration_ns") >= 390_000_000 }, "stalls: \(stalls)")
            let wait = try #require(
                (stall["syscalls"] as? [[String: Any]] ?? []).first {
                    ["epoll_wait", "epoll_pwait", "epoll_pwait2"].contains($0["name"] as? String ?? "")
                },
                "\(stall)")
            #expect(ns(wait, "blocked_ns") >= 300_000_000 && wait["fd_detail"] as? String == "epoll", "\(wait)")
        }
    }

    /// After an `await` (promises unrecorded) the child's wait runs outside every recorded callback: its waits
    /// on the child loop's epoll fd were taken for the thread's loop being idle ("busy 6%", no stall at all).
    static let programAfterAwait = #"""
        const { execFileSync } = require('child_process');
        setTimeout(async function waitAfterAnAwait() {
          await new Promise((resolve) => setImmediate(resolve));
          execFileSync('/bin/sleep', ['0.4']);
          setTimeout(() => {}, 50);  // the loop waits again after it
        }, 20);
        """#

    @Test func aWaitForAChildAfterAnAwaitIsAStallInItsEpollWait() throws {
        if !Self.kernelCapable {
            print("KERNEL TEST SKIPPED: a wait for a child after an await: not root or no BTF")
            try Test.cancel("kernel test skipped: not root or no BTF")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        try withRecordedNodeScript(
            Self.programAfterAwait, file: "awaitexec.js", node: node, record: ["--sample-rate", "0"], report: ["--threshold", "100ms"]
        ) { r in
            #expect(r.record.status == 0, "record: \(r.record.stderr)")
            func ns(_ o: [String: Any], _ k: String) -> UInt64 { (o[k] as? NSNumber)?.uint64Value ?? 0 }
            let stalls = r.json["stalls"] as? [[String: Any]] ?? []
            let stall = try #require(stalls.first { ns($0, "duration_ns") >= 390_000_000 }, "stalls: \(stalls)")
            #expect(ns(stall, "in_callbacks_ns") < 100_000_000, "the wait ran outside every recorded callback: \(stall)")
            let wait = try #require(
                (stall["syscalls"] as? [[String: Any]] ?? []).first {
                    ["epoll_wait", "epoll_pwait", "epoll_pwait2"].contains($0["name"] as? String ?? "")
                },
                "\(stall)")
            #expect(ns(wait, "blocked_ns") >= 300_000_000, "\(wait)")
            #expect(wait["fd_detail"] as? String == "epoll", "\(wait)")
            let text = try runNodeTool([NodeRepo.executable("asynctrace"), "report", r.trace, "--threshold", "100ms"]).stdout
            #expect(text.contains("mostly in epoll_pwait(fd "), "\(text)")
        }
    }
}
