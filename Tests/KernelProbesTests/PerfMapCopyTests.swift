// A trace carries the perf maps of its processes (perfMap events, format 13): JIT frames are named by what the
// process wrote during the recording, not by whatever /tmp/perf-PID.map holds when the report is made (another
// process's after a pid reuse, or nothing on another machine). And the recorder, maybe root, copies only a map that
// is the process's own.
import Foundation
@testable import KernelProbes
import Testing
import TraceExports
import TraceFormat
import TraceReader
import TraceSymbols

@Suite(.serialized) struct PerfMapCopyTests {
    @Test func aNodeTraceNamesItsJSFunctionsWhateverTmpHoldsLater() throws {
        try requireKernel("aNodeTraceNamesItsJSFunctionsWhateverTmpHoldsLater")
        guard let node = which("node") else { Issue.record("node is not installed"); return }
        let script = temporaryPath("perfmap-burn-\(UUID().uuidString.prefix(8)).js")
        try """
        'use strict';
        function handleHash(n) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003; return x; }
        function serve() { const t = process.cpuUsage().user; let s = 0; while (process.cpuUsage().user - t < 500000) s += handleHash(20000); return s; }
        console.log(serve());
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let trace = try recordTrace([node, script], name: "perfmap-node")
        let reader = try TraceReader(path: trace)
        #expect(reader.header.version >= 13)
        // The copy: perfMap events of node's pid, naming handleHash.
        var copied: [UInt32: String] = [:]
        let it = reader.events()
        it.forEachView { v in
            if v.kind == .perfMap { copied[UInt32(truncatingIfNeeded: v.u(0)), default: ""] += v.textID >= 0 ? it.string(v.textID) : "" }
        }
        let pid = try #require(copied.first { $0.value.contains("handleHash") }?.key, "no perfMap event names handleHash: \(copied.keys)")
        // After the recording, /tmp's map for that pid names everything otherwise (a newer process's, say).
        let path = "/tmp/perf-\(pid).map"
        let original = try? Data(contentsOf: URL(fileURLWithPath: path))
        defer {
            if let original { try? original.write(to: URL(fileURLWithPath: path)) } else { try? FileManager.default.removeItem(atPath: path) }
        }
        try "1000 7ffffffff000 forgedByAnotherProcess\n".write(toFile: path, atomically: false, encoding: .utf8)
        let data = TraceSamples(reader: reader)
        let leaves = data.samples.filter { $0.pid == pid }.compactMap { data.frames(of: $0).first.map(data.frame) }
        #expect(leaves.filter { $0.function == "handleHash" && $0.file == script }.count >= 20, "\(leaves.count) samples")
        #expect(!leaves.contains { $0.function == "forgedByAnotherProcess" })
        // The views that name samples as they stream by time (folded stacks by code, Perfetto) have the copy before
        // the first sample: it is timed at the recording's start, in a stream of its own.
        let folded = temporaryPath("perfmap-node-\(UUID().uuidString.prefix(8)).folded")
        _ = try TraceExport.run(reader: reader, format: .folded, outputPath: folded, grouping: .code, weight: .wall)
        let text = try String(contentsOfFile: folded, encoding: .utf8)
        #expect(text.contains("handleHash"), "\(text.prefix(600))")
        #expect(!text.contains("forgedByAnotherProcess"))
        // And the trace reads without damage (the copy's stream ends with a final chunk).
        #expect(reader.damage.isEmpty, "\(reader.damage.map(\.message))")
    }

    /// A flight recorder's dump carries the maps too (a chunk of its own at the window's start).
    @Test func aFlightDumpNamesItsJSFunctionsWhateverTmpHoldsLater() throws {
        try requireKernel("aFlightDumpNamesItsJSFunctionsWhateverTmpHoldsLater")
        guard let node = which("node"), let exe = builtExecutable("asynctrace") else { Issue.record("node or asynctrace missing"); return }
        let dir = temporaryPath("perfmap-flight-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        function spinHard(ms) { const e = Date.now() + ms; let x = 0; while (Date.now() < e) x++; return x; }
        let n = 0; const t = setInterval(() => { spinHard(200); if (++n == 3) clearInterval(t); }, 300);
        """.write(toFile: dir + "/spin.js", atomically: true, encoding: .utf8)
        let r = try runTool(
            exe, ["record", "--flight-recorder", "--dump-on-block", "100ms", "-o", dir + "/app.atrace", "--", node, dir + "/spin.js"])
        #expect(r.status == 0, "\(r.output)")
        let dumps = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("app-") && $0.hasSuffix(".atrace") }
        let dump = try #require(dumps.first, "no dump: \(r.output)")
        let reader = try TraceReader(path: dir + "/" + dump)
        #expect(reader.damage.isEmpty, "\(reader.damage.map(\.message))")
        let pid = try #require(reader.streams.first { $0.isKernel }?.pid)
        let path = "/tmp/perf-\(pid).map"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "1000 7ffffffff000 forgedByAnotherProcess\n".write(toFile: path, atomically: false, encoding: .utf8)
        let data = TraceSamples(reader: reader)
        let functions = data.samples.compactMap { data.frames(of: $0).map(data.frame).first { $0.module == "[jit]" }?.function }
        #expect(functions.contains("spinHard"), "\(Set(functions))")
        #expect(!functions.contains("forgedByAnotherProcess"))
    }

    /// Hostile input: one chunk's 4 MiB string named by 300,000 perfMap events would be 1.2 TB of map text; what is
    /// kept is bounded, the rest counted, and reading stays quick.
    @Test func aCraftedTraceNamingOneMapManyTimesIsBounded() throws {
        let path = temporaryPath("perfmap-crafted-\(UUID().uuidString.prefix(8)).atrace")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var bytes = FileHeader(pid: 7, monotonicStartNs: 1_000, realtimeStartNs: 1_000, program: "crafted").encode()
        var b = ChunkBuilder(pid: 7, tid: 1, startNs: 2_000, startTicks: 2_000, reserve: 6 << 20)
        let text = b.intern(String(repeating: "1000 10 JS:*x /a.js:1:1\n", count: (4 << 20) / 24), ticks: 2_000)
        for _ in 0..<300_000 {
            b.beginEvent(.perfMap, ticks: 2_000)
            b.putUnsigned(7)
            b.putStringID(text)
        }
        var flags: ChunkFlags = .kernel
        flags.insert(.final)
        bytes += b.seal(sequence: 0, endNs: 2_000, endTicks: 2_000, droppedCumulative: 0, flags: flags)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let start = Date()
        let data = TraceSamples(reader: try TraceReader(path: path))
        #expect(data.symbolizer.perfMapBytesNotKept > 1_000_000_000_000, "\(data.symbolizer.perfMapBytesNotKept)")
        #expect(Date().timeIntervalSince(start) < 30, "\(Date().timeIntervalSince(start)) s")
        let report = try runTool(try #require(builtExecutable("asynctrace")), ["report", "--json", path])
        #expect(report.status == 0, "\(report.output.prefix(400))")
    }

    /// PerfMapCopy.read on real files: only a regular file with one name, the process's user's, written since it
    /// started; whole lines; bounded.
    @Test func onlyTheProcesssOwnMapIsCopied() throws {
        let dir = temporaryPath("perfmaps-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let me = PerfMapOwner(uid: getuid(), startedAtSeconds: Date().timeIntervalSince1970 - 10)
        // The process's own: whole lines only (the last one is still being written).
        try "1000 10 first\n2000 20 second\n3000 3".write(toFile: "\(dir)/perf-101.map", atomically: false, encoding: .utf8)
        let own = try #require(PerfMapCopy.read(pid: 101, owner: me, directory: dir))
        #expect(String(decoding: own.text, as: UTF8.self) == "1000 10 first\n2000 20 second\n" && !own.cut)
        // Another user's file under that name: not the process's.
        #expect(PerfMapCopy.read(pid: 101, owner: PerfMapOwner(uid: getuid() &+ 1, startedAtSeconds: me.startedAtSeconds), directory: dir) == nil)
        // Written before the process started (a pid reused): stale.
        #expect(
            PerfMapCopy.read(pid: 101, owner: PerfMapOwner(uid: getuid(), startedAtSeconds: Date().timeIntervalSince1970 + 60), directory: dir) == nil
        )
        // A link to another file (a user steering root's read of /tmp): refused, and a hard link too.
        let secret = "\(dir)/secret"
        try "1 1 secret\n".write(toFile: secret, atomically: false, encoding: .utf8)
        #expect(symlink(secret, "\(dir)/perf-102.map") == 0)
        #expect(PerfMapCopy.read(pid: 102, owner: me, directory: dir) == nil)
        #expect(link(secret, "\(dir)/perf-103.map") == 0)
        #expect(PerfMapCopy.read(pid: 103, owner: me, directory: dir) == nil)
        // A FIFO under the name: refused at once, no hang.
        #expect(mkfifo("\(dir)/perf-104.map", 0o600) == 0)
        #expect(PerfMapCopy.read(pid: 104, owner: me, directory: dir) == nil)
        // A directory: refused.
        try FileManager.default.createDirectory(atPath: "\(dir)/perf-105.map", withIntermediateDirectories: false)
        #expect(PerfMapCopy.read(pid: 105, owner: me, directory: dir) == nil)
        // Longer than the limit: whole lines up to it, said to be cut.
        try String(repeating: "4000 40 line\n", count: 100).write(toFile: "\(dir)/perf-106.map", atomically: false, encoding: .utf8)
        let cut = try #require(PerfMapCopy.read(pid: 106, owner: me, directory: dir, limit: 100))
        #expect(cut.cut && cut.text.count <= 100 && cut.text.count >= 100 - 13 && cut.text.last == UInt8(ascii: "\n"))
        // None: nil.
        #expect(PerfMapCopy.read(pid: 107, owner: me, directory: dir) == nil)
    }

    /// The writer's perf-map stream: parts of whole lines, the stream final, and a reader that takes the copy over /tmp.
    @Test func theCopyIsReadBackWholeAndWins() throws {
        let path = temporaryPath("perfmap-writer-\(UUID().uuidString.prefix(8)).atrace")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        let header = FileHeader(pid: 4242, monotonicStartNs: 1_000, realtimeStartNs: 1_000, program: "test").encode()
        _ = header.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var writer = KernelTraceWriter(fd: fd, rootPid: 4242)
        // 3 MiB of lines: more than one part (1 MiB each).
        var lines = ""
        for i in 0..<60_000 { lines += String(0x10_0000 + i * 0x40, radix: 16) + " 40 JS:*fn\(i) /srv/app.js:\(i):1\n" }
        writer.writePerfMaps([(pid: 4242, text: Array(lines.utf8)), (pid: 4243, text: [])], startNs: 2_000)
        writer.flush(nowNs: 3_000, droppedCumulative: 0, final: true)
        let reader = try TraceReader(path: path)
        #expect(reader.damage.isEmpty, "\(reader.damage.map(\.message))")
        var text = ""
        let it = reader.events()
        var times = Set<UInt64>()
        it.forEachView { v in
            if v.kind == .perfMap {
                #expect(v.u(0) == 4242)
                times.insert(v.timestampNs)
                text += it.string(v.textID)
            }
        }
        #expect(text == lines, "\(text.count) of \(lines.count) bytes read back")
        #expect(times == [2_000])
        let symbolizer = Symbolizer()
        symbolizer.perfMapDirectory = nil
        symbolizer.addPerfMapText(pid: 4242, Array(text.utf8))
        let id = symbolizer.frame(pid: 4242, address: 0x10_0000 + 59_999 * 0x40 + 8, timeNs: 0, isReturnAddress: false)
        let f = symbolizer.frames[id]
        #expect(f.function == "fn59999" && f.line == 59_999, "\(f)")
    }
}
