// `asynctrace report`: reads a trace once, runs the analyses, prints text or JSON.
// Exit codes (docs/report.md): 0 report written (damage, if any, is described in it);
// 1 the trace cannot be read at all; 64 bad command line.
import ArgumentParser
import TraceAnalyses
import TraceExports
import TraceFormat
import TraceReader
import TraceReports
#if canImport(Glibc)
import Glibc
#endif

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarize a trace: blocking callbacks, loop utilization, callbacks by type, I/O per fd, resources open at exit.",
        discussion: """
            Without PATH, reads the newest *.atrace file in the current directory.

            Dropped events and any damage in the file are always reported; a damaged trace is read as far as possible and the report says what was lost.

            Exit status: 0 the report was written; 1 the trace could not be read (missing, not a trace, unreadable header, written by a newer asynctrace) or the output could not be written; 64 invalid arguments.
            """
    )

    @Argument(help: "The trace file (default: the newest *.atrace in the current directory).")
    var path: String?

    @Flag(help: "Print JSON (schema: docs/report.md) instead of text.")
    var json = false

    @Flag(help: "Write one self-contained HTML page (overview, blocking callbacks, flame graph, busiest second) instead of text.")
    var html = false

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the report to this file ('-': standard output; default: standard output, or report.html with --html).", valueName: "path"))
    var output: String?

    @Option(help: "How many slowest callbacks, blocking callbacks and gaps to list.")
    var top: Int = 10

    @Option(help: ArgumentHelp("Callbacks at least this long are reported as blocking (e.g. 10ms, 500us, 1s).",
                               valueName: "duration"))
    var threshold: String = "10ms"

    func validate() throws {
        if json && html { throw ValidationError("--json and --html are alternatives; choose one") }
        guard top >= 0 && top <= 100_000 else { throw ValidationError("--top must be between 0 and 100000") }
        guard Self.parseDuration(threshold) != nil else {
            throw ValidationError("--threshold '\(threshold)' is not a duration; use for example 10ms, 250us, 1.5s or 800ns")
        }
    }

    func run() throws {
        let file: String
        if let path {
            file = path
        } else if let newest = Self.newestTrace() {
            file = newest
        } else {
            Self.fail("no trace file given and no *.atrace file in the current directory")
        }
        let reader: TraceReader
        do {
            reader = try TraceReader(path: file)
        } catch {
            Self.fail("\(error)")
        }
        let thresholdNs = Self.parseDuration(threshold) ?? 10_000_000
        let progress = TerminalProgress(label: "reading trace")
        var options = AnalysisOptions()
        options.top = top
        options.blockingThresholdNs = thresholdNs
        let text: String
        if html {
            // The same analyses as text and JSON, plus the flame graph and the busiest second.
            text = HTMLReport.render(reader: reader, options: options,
                                     progress: progress.isEnabled ? { progress.update($0) } : nil)
        } else {
            let analysis = analyzeTrace(reader, options: options, progress: progress.isEnabled ? { p in
                progress.update(p.bytesTotal == 0 ? 1 : Double(p.bytesRead) / Double(p.bytesTotal),
                                detail: "\(Formatting.fixed(Double(p.events) / 1e6, 1)) M events")
            } : nil)
            text = json ? JSONReport.render(analysis) : TextReport.render(analysis)
        }
        progress.finish()
        let destination = output ?? (html ? "report.html" : "-")
        do {
            let out = try OutputFile(path: destination)
            out.write(text)
            try out.close()
        } catch {
            // A closed stdout (e.g. `| head`) is not worth a message.
            if destination == "-" { throw ExitCode(1) }
            Self.fail("\(error)")
        }
        if destination != "-" {
            var line = Array("asynctrace: wrote \(destination)\n".utf8)
            _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        }
    }

    static func fail(_ message: String) -> Never {
        var line = Array("asynctrace report: error: \(message)\n".utf8)
        _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        Glibc.exit(1)
    }

    /// "10ms", "250us", "250µs", "1.5s", "800ns": the same reading as every other duration
    /// (TraceFormat's Quantities); a bare number is refused rather than guessed.
    static func parseDuration(_ s: String) -> UInt64? { Quantities.duration(s) }

    static func newestTrace() -> String? {
        guard let dir = opendir(".") else { return nil }
        defer { closedir(dir) }
        var best: (String, Int)? = nil
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix(".atrace") else { continue }
            var st = stat()
            guard stat(name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if best == nil || st.st_mtim.tv_sec > best!.1 { best = (name, st.st_mtim.tv_sec) }
        }
        return best?.0
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

