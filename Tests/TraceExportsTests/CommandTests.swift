// The CLI: `asynctrace export` and `asynctrace flamegraph`, including bad input.
import Foundation
import Testing

@Suite struct CommandTests {
    let cli = Repo.executable("asynctrace")!

    @Test func exportWritesEachFormatAndSaysWhatItWrote() throws {
        let dir = ScratchDirectory("cli")
        let trace = dir.file("app.atrace")
        Synthetic.write(to: trace)
        for format in ["perfetto", "chrome", "speedscope", "folded"] {
            let out = dir.file("out.\(format)")
            let r = try runTool([cli, "export", trace, "--format", format, "-o", out])
            #expect(r.status == 0, "\(format): \(r.stderr)")
            #expect(r.stderr.contains("\(out): ") && r.stderr.contains("4 callbacks, 6 syscalls, 3 threads"), "\(r.stderr)")
            #expect(((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0) > 0)
        }
        // Default output name: the trace's, with the format's extension; no progress line when stderr is a pipe.
        let r = try runTool([cli, "export", trace, "--format", "chrome"])
        #expect(r.status == 0)
        #expect(FileManager.default.fileExists(atPath: dir.file("app.json")))
        #expect(!r.stderr.contains("%"))
        // Folded to standard output.
        let folded = try runTool([cli, "export", trace, "--format", "folded", "-o", "-", "--by", "causal"])
        #expect(folded.stdout.contains("TCPSERVERWRAP #2 fd_5;TCPWRAP #3 fd_7 700\n"))
    }

    @Test func progressShowsOnATerminalOnly() throws {
        let dir = ScratchDirectory("cli-tty")
        let trace = dir.file("app.atrace")
        Synthetic.write(to: trace)
        // util-linux `script` gives the command a pseudo-terminal.
        let tty = try runTool(["script", "-q", "-e", "-c", "\(cli) export \(trace) --format perfetto -o \(dir.file("o"))", "/dev/null"])
        #expect(tty.status == 0)
        #expect(tty.stdout.contains("exporting perfetto: 100%"), "\(tty.stdout)")
        let pipe = try runTool([cli, "export", trace, "--format", "perfetto", "-o", dir.file("o")])
        #expect(!pipe.stderr.contains("exporting perfetto:"))
    }

    @Test func flamegraphWritesAnSVG() throws {
        let dir = ScratchDirectory("cli-svg")
        let trace = dir.file("app.atrace")
        Synthetic.write(to: trace)
        let r = try runTool([cli, "flamegraph", trace, "-o", dir.file("g.svg"), "--by", "causal", "--weight", "wall"])
        #expect(r.status == 0, "\(r.stderr)")
        let svg = try String(contentsOfFile: dir.file("g.svg"), encoding: .utf8)
        #expect(svg.hasPrefix("<?xml") && svg.contains("wall time"))
    }

    @Test func badInputFailsCleanly() throws {
        let dir = ScratchDirectory("cli-bad")
        let missing = try runTool([cli, "export", dir.file("nope.atrace"), "--format", "perfetto", "-o", dir.file("x")])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no such file"))
        let notTrace = dir.file("text.atrace")
        try "hello".write(toFile: notTrace, atomically: true, encoding: .utf8)
        let bad = try runTool([cli, "flamegraph", notTrace, "-o", dir.file("g.svg")])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("not an asynctrace trace file"))
        let format = try runTool([cli, "export", notTrace, "--format", "pdf"])
        #expect(format.status == 64)
        let trace = dir.file("ok.atrace")
        Synthetic.write(to: trace)
        let unwritable = try runTool([cli, "export", trace, "--format", "chrome", "-o", dir.file("no/such/dir/out.json")])
        #expect(unwritable.status == 1)
        #expect(unwritable.stderr.contains("cannot create"))
    }

    @Test func damagedTraceExportsWhatIsReadableAndSaysWhatWasLost() throws {
        let dir = ScratchDirectory("cli-damaged")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        // Cut the file inside its last chunk (the kernel stream).
        var bytes = try Data(contentsOf: URL(fileURLWithPath: trace))
        bytes.removeLast(20)
        try bytes.write(to: URL(fileURLWithPath: trace))
        let r = try runTool([cli, "export", trace, "--format", "perfetto", "-o", dir.file("t.pftrace")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: damaged trace"), "\(r.stderr)")
        #expect(r.stderr.contains("4 callbacks, 0 syscalls"), "\(r.stderr)")
        let v = try validate("perfetto_check.py", [dir.file("t.pftrace")])
        #expect(v["error"] == nil, "\(v["error"] ?? "")")
    }
}
