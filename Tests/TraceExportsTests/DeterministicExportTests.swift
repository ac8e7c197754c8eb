// The same trace gives the same bytes in every format, whatever the process's hash seed: each export runs
// in its own `asynctrace` process without SWIFT_DETERMINISTIC_HASHING, so Swift seeds Set and Dictionary
// differently each time and anything that follows their iteration order shows up as a difference.
import Foundation
import Testing

@Suite struct DeterministicExportTests {
    /// Kernel recordings: the kernel's syscalls (epoll waits among them) and child processes go through
    /// every path of the exporters.
    @Test(arguments: ["child", "http"])
    func everyFormatIsTheSameInSeparateProcesses(_ scenario: String) throws {
        if geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
            print("KERNEL TEST SKIPPED: deterministic export of a kernel recording of \(scenario): needs root and /sys/kernel/btf/vmlinux")
            try Test.cancel("kernel test skipped: needs root and /sys/kernel/btf/vmlinux")
        }
        let exe = try #require(Repo.executable("asynctrace"))
        let dir = ScratchDirectory("deterministic-\(scenario)")
        let trace = dir.file("\(scenario).atrace")
        let rec = try runTool([exe, "record", "-o", trace, "--", Repo.executable("asynctrace-examples")!, scenario], timeout: 60)
        try #require(rec.status == 0, "record \(scenario) failed: \(rec.stderr.suffix(800))")

        var commands: [(name: String, args: [String])] = ["perfetto", "chrome", "speedscope", "folded"].map {
            ($0, ["export", trace, "--format", $0])
        }
        for by in ["callback", "causal"] {
            commands.append(("flamegraph-\(by)", ["flamegraph", trace, "--by", by]))
            commands.append(("folded-\(by)-wall", ["export", trace, "--format", "folded", "--by", by, "--weight", "wall"]))
        }
        // Several runs: a hash-order dependence over a few keys can give the same order twice by chance.
        let runs = 4
        for (name, args) in commands {
            var first: Data?
            for run in 0..<runs {
                let out = dir.file("\(name).\(run)")
                let r = try runTool(["/usr/bin/env", "-u", "SWIFT_DETERMINISTIC_HASHING", exe] + args + ["-o", out])
                try #require(r.status == 0, "\(name): \(r.stderr.suffix(500))")
                let bytes = try Data(contentsOf: URL(fileURLWithPath: out))
                #expect(!bytes.isEmpty, "\(name): empty output")
                if let first {
                    #expect(bytes == first, "\(scenario) \(name): run \(run) differs from run 0 (\(bytes.count) vs \(first.count) bytes)")
                } else {
                    first = bytes
                }
            }
        }
    }
}
