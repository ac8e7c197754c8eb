// The HTML report is a view of the same analyses as the text and JSON reports: for one trace and one set of
// options, its overview numbers and blocking list must equal theirs.
import Foundation
import Testing
import TraceAnalyses

/// The numbers the page carries (`data-key`/`data-value`) and its blocking rows.
struct HTMLReportNumbers {
    struct BlockingRow {
        var asyncID: UInt64
        var startNs: UInt64
        var durationNs: UInt64
        var kernelNs: UInt64
        /// The displayed cells: type, async id, thread, at, duration, in the kernel, caused by, syscalls.
        var cells: [String]
    }
    var values: [String: UInt64] = [:]
    var blocking: [BlockingRow] = []

    init(_ html: String) {
        for m in html.matches(of: /data-key="([^"]+)" data-value="(\d+)"/) { values[String(m.1)] = UInt64(m.2)! }
        let row = /<tr class="blocking" data-async-id="(\d+)" data-start-ns="(\d+)" data-duration-ns="(\d+)" data-kernel-ns="(\d+)">(.*)<\/tr>/
        for line in html.split(separator: "\n") {
            guard let m = line.wholeMatch(of: row) else { continue }
            let cells = m.5.matches(of: /<td[^>]*>(.*?)<\/td>/).map { String($0.1) }
            blocking.append(
                BlockingRow(
                    asyncID: UInt64(m.1)!, startNs: UInt64(m.2)!, durationNs: UInt64(m.3)!,
                    kernelNs: UInt64(m.4)!, cells: cells))
        }
    }
}

/// Runs `asynctrace report` three ways (text, JSON, HTML) with the same options and checks the HTML against
/// the other two; returns the HTML's path.
@discardableResult
func expectHTMLReportMatchesJSONAndText(
    _ trace: String, in dir: ScratchDirectory, name: String,
    options: [String] = []
) throws -> String {
    let cli = Repo.executable("asynctrace")!
    let htmlPath = dir.file("\(name).html")
    let html = try runTool([cli, "report", trace, "--html", "-o", htmlPath] + options)
    #expect(html.status == 0, "\(name): report --html: \(html.stderr)")
    let json = try runTool([cli, "report", trace, "--json"] + options)
    #expect(json.status == 0, "\(name): report --json: \(json.stderr)")
    let text = try runTool([cli, "report", trace] + options)
    #expect(text.status == 0, "\(name): report: \(text.stderr)")
    guard html.status == 0, json.status == 0,
        let j = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
    else {
        Issue.record("\(name): no report to compare")
        return htmlPath
    }
    let page = HTMLReportNumbers(try String(contentsOfFile: htmlPath, encoding: .utf8))
    func num(_ v: Any?) -> UInt64? { (v as? NSNumber)?.uint64Value }

    // Overview
    let t = j["trace"] as! [String: Any], events = j["events"] as! [String: Any]
    let dropped = j["dropped"] as! [String: Any], damage = j["damage"] as! [String: Any]
    #expect(page.values["duration_ns"] == num(t["duration_ns"]), "\(name): duration")
    #expect(page.values["events.total"] == num(events["total"]), "\(name): events")
    #expect(page.values["user_threads"] == num(t["user_threads"]), "\(name): threads")
    #expect(page.values["dropped.user"] == num(dropped["user"]) && page.values["dropped.kernel"] == num(dropped["kernel"]))
    #expect(page.values["damage.regions"] == UInt64((damage["regions"] as! [Any]).count), "\(name): damage")
    let byKind = events["by_kind"] as! [String: Any]
    for kind in Overview.headlineKinds {
        #expect(page.values["events.\(kind)"] == num(byKind[kind]), "\(name): \(kind) events")
    }

    // The busiest second the timeline draws is the analyses' (null in JSON when there were no callbacks).
    #expect(
        page.values["busiest_second.busy_ns"] == num((j["busiest_second"] as? [String: Any])?["busy_ns"]),
        "\(name): busiest second")

    // Blocking: same count, same total, same callbacks in the same order, same numbers, same text.
    let summary = j["blocking_summary"] as! [String: Any]
    let list = j["blocking"] as! [[String: Any]]
    if t["kind"] as? String != "kernel-only" {
        #expect(page.values["blocking.count"] == num(summary["count"]), "\(name): blocking count")
        if num(summary["count"])! > 0 { #expect(page.values["blocking.ns_total"] == num(summary["ns_total"])) }
    }
    #expect(page.blocking.count == list.count, "\(name): \(page.blocking.count) blocking rows, JSON has \(list.count)")
    // The text report's blocking lines, in order ("  ▶ TYPE (async id N) blocked THREAD for DURATION, at TIME").
    let textLines = text.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("  ▶ ") && $0.contains("(async id ") }
    #expect(textLines.count == page.blocking.count, "\(name): text lists \(textLines.count) blocking callbacks")
    for (i, (row, c)) in zip(page.blocking, list).enumerated() {
        #expect(row.asyncID == num(c["async_id"]) && row.startNs == num(c["start_ns"]), "\(name): blocking order")
        #expect(row.durationNs == num(c["duration_ns"]) && row.kernelNs == num(c["kernel_ns"]), "\(name): blocking times")
        #expect(
            row.cells.first
                == (c["type"] as? String)?.replacingOccurrences(of: "&", with: "&amp;")
                .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;"))
        // The text report's line for this callback shows the same duration and start, formatted the same way.
        // A callback still running at its process's end is "≥ 121 µs" in the HTML, "for at least 121 µs, at … (still
        // running when …)" in the text (the leak scenario exits inside a Timeout).
        let line = i < textLines.count ? textLines[i] : ""
        let atLeast = row.cells[4].hasPrefix("≥ ") ? String(row.cells[4].dropFirst(2)) : nil
        let when =
            atLeast.map { "for at least \($0), at \(row.cells[3]) (still running" } ?? "for \(row.cells[4]), at \(row.cells[3])"
        #expect(
            line.contains("(async id \(row.asyncID)) blocked")
                && (atLeast == nil ? line.hasSuffix(when) : line.contains(when)),
            "\(name): text says \(line) where the HTML has async id \(row.asyncID), \(row.cells[4]) at \(row.cells[3])")
    }
    return htmlPath
}

@Suite struct HTMLReportViewTests {
    @Test func syntheticTraceHTMLEqualsJSONAndText() throws {
        let dir = ScratchDirectory("html-view")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let html = try expectHTMLReportMatchesJSONAndText(trace, in: dir, name: "synthetic", options: ["--threshold", "500ns"])
        // Not vacuous: the three callbacks over 0.5 µs are there.
        let page = HTMLReportNumbers(try String(contentsOfFile: html, encoding: .utf8))
        #expect(page.blocking.map(\.asyncID) == [10, 3, 2])
        #expect(page.values["blocking.count"] == 3 && page.values["events.total"] == 40)
    }

    @Test func theTopOptionBoundsTheListInAllViews() throws {
        let dir = ScratchDirectory("html-view-top")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let html = try expectHTMLReportMatchesJSONAndText(trace, in: dir, name: "top1", options: ["--threshold", "500ns", "--top", "1"])
        let text = try String(contentsOfFile: html, encoding: .utf8)
        #expect(HTMLReportNumbers(text).blocking.map(\.asyncID) == [10])
        #expect(text.contains("and 2 more (see --top)"))
    }
}
