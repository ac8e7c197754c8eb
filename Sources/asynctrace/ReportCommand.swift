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
import TraceText
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

    @Option(
        name: .shortAndLong,
        help: ArgumentHelp(
            "Write the report to this file ('-': standard output; default: standard output, or with --html the trace's name with .html).",
            valueName: "path"))
    var output: String?

    @Option(help: "How many slowest callbacks, blocking callbacks and gaps to list.")
    var top: Int = 10

    @Option(
        help: ArgumentHelp(
            "Callbacks at least this long are reported as blocking (e.g. 10ms, 500us, 1s).",
            valueName: "duration"))
    var threshold: String = "10ms"

    @Option(
        help: ArgumentHelp(
            "Count only events from this time on: an offset from the recording's start (+2s, +1.5s, 500ms), "
                + "a UTC wall-clock time (2026-12-05T18:31:05.5Z), or a CLOCK_MONOTONIC timestamp as the JSON prints it (@1234567890123).",
            valueName: "time"))
    var from: String?

    @Option(help: ArgumentHelp("Count only events up to this time (same forms as --from).", valueName: "time"))
    var to: String?

    func validate() throws {
        if json && html { throw ValidationError("--json and --html are alternatives; choose one") }
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, ReportWindow.parse(value) == nil {
                throw ValidationError(
                    "\(name) '\(value)' is not a time; use an offset from the recording's start (+2s, +500ms), "
                        + "a UTC time (2026-12-05T18:31:05Z) or a monotonic timestamp (@1234567890123)")
            }
        }
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
        // Opened before the long pass, so a bad output path (or the trace itself as output) fails at once.
        // The page is named after its trace (as flamegraph's SVG and export's files are): one fixed name
        // let the page of a second trace replace the first's.
        let destination = output ?? (html ? defaultOutput(file, "html") : "-")
        let out: OutputFile
        do {
            out = try OutputFile(path: destination, sparing: reader.fileIdentity)
        } catch {
            Self.fail("\(error)")
        }
        let thresholdNs = Self.parseDuration(threshold) ?? 10_000_000
        let progress = TerminalProgress(label: "reading trace")
        var options = AnalysisOptions()
        options.top = top
        options.blockingThresholdNs = thresholdNs
        if from != nil || to != nil {
            let h = reader.header
            let lower = from.flatMap(ReportWindow.parse).map { $0.ns(monotonicStart: h.monotonicStartNs, realtimeStart: h.realtimeStartNs) } ?? 0
            let upper = to.flatMap(ReportWindow.parse).map { $0.ns(monotonicStart: h.monotonicStartNs, realtimeStart: h.realtimeStartNs) } ?? .max
            guard lower <= upper else { Self.fail("--from is after --to: the window is empty") }
            options.window = lower...upper
        }
        let text: String
        if html {
            // The same analyses as text and JSON, plus the flame graph and the busiest second.
            text = HTMLReport.render(
                reader: reader, options: options,
                progress: progress.isEnabled ? { progress.update($0) } : nil)
        } else {
            let analysis = analyzeTrace(
                reader, options: options,
                progress: progress.isEnabled
                    ? { p in
                        progress.update(
                            p.bytesTotal == 0 ? 1 : Double(p.bytesRead) / Double(p.bytesTotal),
                            detail: "\(Formatting.fixed(Double(p.events) / 1e6, 1)) M events")
                    } : nil)
            text = json ? JSONReport.render(analysis) : TextReport.render(analysis)
        }
        progress.finish()
        do {
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

/// A point in time on the command line (`--from`, `--to`).
enum ReportWindow: Equatable {
    /// Nanoseconds after the recording's start.
    case offset(UInt64)
    /// Nanoseconds since the Unix epoch (UTC), mapped through the header's realtime calibration.
    case wallClock(UInt64)
    /// A CLOCK_MONOTONIC timestamp.
    case monotonic(UInt64)

    static func parse(_ text: String) -> ReportWindow? {
        let t = text.trimmingSpaces()
        if t.hasPrefix("@") { return UInt64(t.dropFirst()).map { .monotonic($0) } }
        if t.contains("T") && t.hasSuffix("Z") { return parseISO(String(t.dropLast())).map { .wallClock($0) } }
        let d = t.hasPrefix("+") ? String(t.dropFirst()) : t
        guard !d.hasPrefix("-") else { return nil }
        return ReportCommand.parseDuration(d).map { .offset($0) }
    }

    func ns(monotonicStart: UInt64, realtimeStart: UInt64) -> UInt64 {
        switch self {
        case .offset(let o):
            let (r, overflow) = monotonicStart.addingReportingOverflow(o)
            return overflow ? .max : r
        case .monotonic(let m):
            return m
        case .wallClock(let w):
            // monotonic = start + (wall − realtime start), saturating on either side.
            if w >= realtimeStart {
                let (r, overflow) = monotonicStart.addingReportingOverflow(w - realtimeStart)
                return overflow ? .max : r
            }
            return monotonicStart > realtimeStart - w ? monotonicStart - (realtimeStart - w) : 0
        }
    }

    /// "2026-12-05T18:31:05.25" (UTC) -> ns since the epoch.
    static func parseISO(_ s: String) -> UInt64? {
        let parts = s.split(separator: "T", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let date = parts[0].split(separator: "-", omittingEmptySubsequences: false)
        let time = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        guard date.count == 3, time.count == 3, let y = Int(date[0]), let mo = Int(date[1]), let d = Int(date[2]),
            let h = Int(time[0]), let mi = Int(time[1]), let sec = Double(time[2]),
            (1970...9999).contains(y), (1...12).contains(mo), (1...31).contains(d), (0...23).contains(h), (0...59).contains(mi),
            sec >= 0, sec < 61
        else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = yy / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = UInt64(days) * 86_400 + UInt64(h * 3_600 + mi * 60)
        return seconds * 1_000_000_000 + UInt64((sec * 1e9).rounded())
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
