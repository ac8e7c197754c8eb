// Issue 13: the reading commands on paths a user may be handed. A FIFO is refused at once instead of
// hanging; an output that is the trace itself (by name, symbolic or hard link) is refused before anything
// is truncated; a flame graph of a trace whose weights overflow is drawn, not trapped on.
import Foundation
import Testing
import TraceExports
import TraceFormat
import TraceReader

@Suite struct HostileInputCommandTests {
    let cli = Repo.executable("asynctrace")!

    private func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    @Test func outputThatIsTheTraceIsRefusedAndTheTraceKept() throws {
        let dir = ScratchDirectory("same-output")
        let trace = dir.file("app.atrace")
        Synthetic.write(to: trace)
        let original = try #require(contents(trace))
        #expect(symlink(trace, dir.file("link.atrace")) == 0 && link(trace, dir.file("hard.atrace")) == 0)
        for out in [trace, dir.file("link.atrace"), dir.file("hard.atrace"), dir.file("./app.atrace")] {
            for args in [
                ["export", trace, "--format", "chrome", "-o", out], ["export", trace, "--format", "speedscope", "-o", out],
                ["flamegraph", trace, "-o", out], ["report", trace, "-o", out], ["report", trace, "--html", "-o", out],
                ["report", trace, "--json", "-o", out],
            ] {
                let r = try runTool([cli] + args, timeout: 60)
                #expect(r.status == 1, "\(args): \(r.stderr)")
                #expect(r.stderr.contains("is the trace file being read"), "\(args): \(r.stderr)")
                #expect(contents(trace) == original, "\(args) changed the trace")
            }
        }
        // Through the library too, and through standard output redirected onto the trace.
        let reader = try TraceReader(path: trace)
        #expect(throws: ExportError.self) { try TraceExport.run(reader: reader, format: .folded, outputPath: dir.file("hard.atrace")) }
        #expect(throws: ExportError.self) {
            try Flamegraph.write(reader: reader, to: dir.file("link.atrace"), grouping: .callback, weight: .busy)
        }
        let append = try runTool(["/bin/sh", "-c", "exec \"$0\" export \"$1\" --format folded -o - >> \"$1\"", cli, trace])
        #expect(append.status == 1 && append.stderr.contains("standard output is the trace file being read"), "\(append.stderr)")
        #expect(contents(trace) == original)
        // Another output still works, and replaces what was there.
        let other = dir.file("other.json")
        _ = FileManager.default.createFile(atPath: other, contents: Data(repeating: 0x41, count: 100_000))
        let ok = try runTool([cli, "export", trace, "--format", "chrome", "-o", other])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect((contents(other)?.count ?? 0) < 100_000 && contents(other)?.first == UInt8(ascii: "{"))
    }

    @Test func aFIFOAsTheTraceIsRefusedAtOnce() throws {
        let dir = ScratchDirectory("fifo")
        let fifo = dir.file("pipe.atrace")
        #expect(mkfifo(fifo, 0o600) == 0)
        for args in [
            ["report", fifo], ["report", fifo, "--json"], ["export", fifo, "--format", "perfetto", "-o", dir.file("o")],
            ["flamegraph", fifo, "-o", dir.file("f.svg")],
        ] {
            // Before: each of these waited forever for a writer. The timeout makes a hang a failure.
            let r = try runTool([cli] + args, timeout: 20)
            #expect(r.status == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.contains("is a FIFO (named pipe), not a trace file"), "\(args): \(r.stderr)")
        }
        let zero = try runTool([cli, "report", "/dev/zero"], timeout: 20)
        #expect(zero.status == 1 && zero.stderr.contains("is a character device") && !zero.stderr.contains("empty"))
        let proc = try runTool([cli, "report", "/proc/self/maps"], timeout: 20)
        #expect(proc.status == 1 && !proc.stderr.contains("recording wrote nothing"), "\(proc.stderr)")
    }

    @Test func flameGraphOfWeightsThatOverflowIsDrawn() throws {
        // Three threads, each inside one callback for ~2^64/3 ns: the tree's total used to wrap to a few ns, a
        // frame became ~10^18 times wider than the graph, and converting its width to a character count trapped.
        let dir = ScratchDirectory("fg-overflow")
        let path = dir.file("big.atrace")
        var bytes = FileHeader(pid: 5, monotonicStartNs: 0, realtimeStartNs: 0, program: "big").encode()
        let third = UInt64.max / 3 + 2
        for tid: UInt32 in 1...3 {
            var b = ChunkBuilder(pid: 5, tid: tid, startNs: 0, startTicks: 0)
            let type = b.intern("Timeout", ticks: 0)
            b.beginEvent(.initResource, ticks: 0); b.putAsyncID(UInt64(tid)); b.putStringID(type); b.putRelatedID(0)
            b.beginEvent(.before, ticks: 1); b.putAsyncID(UInt64(tid))
            b.beginEvent(.after, ticks: third); b.putAsyncID(UInt64(tid))
            bytes += b.seal(sequence: 0, endNs: third, endTicks: third, droppedCumulative: 0, flags: .final)
        }
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let reader = try TraceReader(path: path)
        #expect(reader.damage.isEmpty)
        let (tree, _) = Flamegraph.build(reader: reader, grouping: .callback, weight: .busy)
        #expect(tree.totalWeight == .max)
        let weights = tree.inclusiveWeights()
        #expect(weights[0] == .max && weights.allSatisfy { $0 <= weights[0] })
        let summary = try Flamegraph.write(reader: reader, to: dir.file("big.svg"), grouping: .callback, weight: .busy)
        #expect(summary.frames > 0)
        let svg = String(decoding: contents(dir.file("big.svg")) ?? Data(), as: UTF8.self)
        #expect(svg.contains("Timeout") && svg.hasSuffix("</svg>\n"))
    }
}

@Suite struct ManyThreadsExportTests {
    @Test func speedscopeOfMoreThreadsThanFilesCanBeOpenLeavesTheRestOutAndSaysSo() throws {
        // Each speedscope thread spools to an open file: a trace of 65,536 threads ran out of descriptors and the
        // fallback's try! trapped. Past 512 threads they are now left out and counted (this machine's descriptor
        // limit may be high enough for 1,100; the bound and the warning are what is checked).
        let dir = ScratchDirectory("many-threads")
        let path = dir.file("many.atrace")
        var bytes = FileHeader(pid: 5, monotonicStartNs: 0, realtimeStartNs: 0, program: "many").encode()
        for tid: UInt32 in 1...1_100 {
            var b = ChunkBuilder(pid: 5, tid: tid, startNs: 10, startTicks: 10, reserve: 64)
            b.beginEvent(.before, ticks: 10); b.putAsyncID(UInt64(tid))
            b.beginEvent(.after, ticks: 20); b.putAsyncID(UInt64(tid))
            bytes += b.seal(sequence: 0, endNs: 20, endTicks: 20, droppedCumulative: 0, flags: .final)
        }
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let summary = try export(path, .speedscope, to: dir.file("many.speedscope.json"))
        let left = 1_100 - SpeedscopeExporter.maxSpooledThreads
        #expect(summary.warnings.contains { $0.contains("speedscope: \(left) threads past the first") })
        let json = try JSONSerialization.jsonObject(with: FileManager.default.contents(atPath: dir.file("many.speedscope.json"))!) as? [String: Any]
        #expect((json?["profiles"] as? [Any])?.count == SpeedscopeExporter.maxSpooledThreads)
    }
}
