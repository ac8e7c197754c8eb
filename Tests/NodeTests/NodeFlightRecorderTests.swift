// `asynctrace record --flight-recorder` of a Node program: the preloads' events go into the window
// (not a file), and --dump-on-block dumps on loop stalls the kernel probes see (Node's hooks report no
// blocking callbacks themselves); each dump is a complete trace with Node's resources and callbacks.
import Foundation
import Testing
import TraceFormat
import TraceReader

/// A steady load of Immediates (each writes a byte to /dev/null) and a Timeout every second that
/// spins the loop for 300 ms, for 4.5 s.
private let stallingNodeProgram = #"""
    const fs = require('fs');
    const devnull = fs.openSync('/dev/null', 'w');
    let n = 0, stalls = 0;
    function spin(ms) { const end = Date.now() + ms; while (Date.now() < end) {} }
    const load = setInterval(() => {
      for (let i = 0; i < 20; i++) setImmediate(() => { n++; fs.writeSync(devnull, 'x'); });
    }, 1);
    const stall = setInterval(() => { stalls++; console.log('stall ' + stalls); spin(300); }, 1000);
    setTimeout(() => { clearInterval(load); clearInterval(stall); console.log('done ' + n); }, 4500);
    """#

@Suite(.serialized) struct NodeFlightRecorderTests {
    @Test func eachNodeStallLeavesADumpWithNodesCallbacks() throws {
        guard NodeRecordTests.kernelCapable else {
            print("KERNEL TEST SKIPPED: not root or no BTF; a Node flight recorder dumps on stalls the kernel probes see")
            try Test.cancel("KERNEL TEST SKIPPED: needs the kernel probes")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-flight-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/stalls.js"
        try stallingNodeProgram.write(toFile: script, atomically: true, encoding: .utf8)
        let rec = try runNodeTool([
            NodeRepo.executable("asynctrace"), "record", "--flight-recorder", "--keep", "3s",
            "--dump-on-block", "150ms", "--min-dump-interval", "500ms", "-o", dir + "/node.atrace",
            "--", node, script,
        ])
        #expect(rec.status == 0, "\(rec.stderr)")
        let stalls = rec.stdout.split(separator: "\n").filter { $0.hasPrefix("stall ") }.count
        #expect(stalls == 4, "\(rec.stdout)")
        let dumps = rec.stderr.split(separator: "\n").compactMap { line -> String? in
            guard let r = line.range(of: "asynctrace: wrote ") else { return nil }
            let rest = line[r.upperBound...]
            return rest.range(of: " (the last ").map { String(rest[..<$0.lowerBound]) }
        }
        // Every stall is in a dump, each dump saying why (a stall of Node's startup or exit may add one). Under
        // load a dump can be written after the next stall too and name both (it waits for node's batches).
        #expect(dumps.count >= 1 && dumps.count <= stalls + 1, "a dump per stall at most: \(rec.stderr)")
        let dumpLines = rec.stderr.split(separator: "\n").filter { $0.contains("asynctrace: wrote ") }
        #expect(dumpLines.allSatisfy { $0.contains("ms): a loop stall of ") }, "\(rec.stderr)")
        let stallsNamed = dumpLines.reduce(0) { $0 + $1.components(separatedBy: "a loop stall of ").count - 1 }
        #expect(stallsNamed >= stalls, "each stall is named by a dump: \(rec.stderr)")
        #expect(rec.stderr.contains("; 0 in none"), "no stall is left out of every dump: \(rec.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/node.atrace"), "a flight recorder writes only its dumps")
        for path in dumps {
            let reader = try TraceReader(path: path)
            #expect(reader.damage.isEmpty, "\(path): \(reader.damage.map(\.message))")
            var types: [UInt64: String] = [:]
            var open: [Int: [(UInt64, UInt64)]] = [:]
            var longest: (ns: UInt64, id: UInt64) = (0, 0)
            var nodeEvents = 0
            for e in reader.events() where !reader.streams[e.stream].isKernel {
                nodeEvents += 1
                switch e.kind {
                case .initResource: types[e.event.u(0)] = e.event.text
                case .before: open[e.stream, default: []].append((e.timestampNs, e.event.u(0)))
                case .after:
                    if let (start, id) = open[e.stream]?.popLast(), e.timestampNs - start > longest.ns { longest = (e.timestampNs - start, id) }
                default: break
                }
            }
            #expect(nodeEvents > 1000, "\(path): Node's events are in the window")
            #expect(longest.ns >= 290_000_000, "\(path): the 300 ms stall (longest callback \(longest.ns) ns)")
            #expect(types[longest.id] == "Timeout", "\(path): the stalling callback is a Timeout (its init restated if older than the window)")
            #expect(Set(types.values).contains("Immediate"))
            let report = try runNodeTool([NodeRepo.executable("asynctrace"), "report", path])
            #expect(report.status == 0 && report.stdout.contains("damage     none"), "\(report.stdout)")
        }
    }

    /// execSync waits for its child on a loop of its own (another epoll fd) inside the Timeout's callback: as for the
    /// report, that wait is the stall's, not the loop's. --dump-on-block took it for the loop's wait and the 400 ms
    /// stall for two short stretches, and wrote no dump.
    @Test func anExecSyncInsideACallbackIsAStallForDumpOnBlock() throws {
        guard NodeRecordTests.kernelCapable else {
            print("KERNEL TEST SKIPPED: not root or no BTF; --dump-on-block of a Node program needs the kernel probes")
            try Test.cancel("KERNEL TEST SKIPPED: needs the kernel probes")
        }
        let node = try #require(NodeRepo.node, "node is not installed (tools/install-deps.sh installs it)")
        let dir = NSTemporaryDirectory() + "asynctrace-node-flight-sync-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/sync.js"
        try """
        const { execSync } = require('child_process');
        setTimeout(function runsAChild() { execSync('sleep 0.4'); }, 200);
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let rec = try runNodeTool([
            NodeRepo.executable("asynctrace"), "record", "--flight-recorder", "--keep", "3s", "--dump-on-block", "250ms",
            "-o", dir + "/sync.atrace", "--", node, script,
        ])
        #expect(rec.status == 0, "\(rec.stderr)")
        let lengths = rec.stderr.components(separatedBy: "a loop stall of ").dropFirst().compactMap { rest in
            Double(rest.prefix { $0.isNumber || $0 == "." })
        }
        #expect(lengths.contains { $0 >= 390 }, "the 400 ms of execSync is one stall with a dump: \(rec.stderr)")
    }
}
