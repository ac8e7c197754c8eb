import Foundation
import Testing
import TraceAnalyses
import TraceExports
import TraceReader

/// Headless Chromium (Debian's chromium-headless-shell, installed by tools/install-deps.sh).
enum Browser {
    static var binary: String? {
        for name in ["chromium-headless-shell", "chromium", "chromium-browser"] {
            for dir in ["/usr/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
                return "\(dir)/\(name)"
            }
        }
        return nil
    }

    static let flags = [
        "--no-sandbox", "--headless", "--disable-gpu", "--allow-file-access-from-files",
        "--virtual-time-budget=2000",
    ]

    /// The page's DOM after its scripts ran.
    static func dumpDOM(_ path: String) throws -> String {
        let r = try runTool([binary!] + flags + ["--dump-dom", "file://" + path])
        return r.stdout
    }

    static func screenshot(_ path: String, to png: String, height: Int = 2400) throws -> Bool {
        _ = try runTool([binary!] + flags + ["--screenshot=" + png, "--window-size=1300,\(height)", "file://" + path])
        return FileManager.default.fileExists(atPath: png)
    }

    /// Where screenshots are kept after the tests (.build/test-artifacts).
    static var artifacts: String {
        let dir = Repo.root + "/.build/test-artifacts"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

@Suite struct HTMLAndFlamegraphTests {
    @Test func flamegraphSVGIsWellFormedAndSizedByTime() throws {
        let dir = ScratchDirectory("svg")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let out = dir.file("t.svg")
        let s = try Flamegraph.write(reader: try TraceReader(path: trace), to: out, grouping: .callback, weight: .busy)
        #expect(s.totalWeight == 3_000)
        let r = try validate("svg_check.py", [out])
        #expect(r["error"] == nil, "\(r["error"] ?? "")")
        guard r["error"] == nil else { return }
        let frames = r["frames"] as! [String: Double]
        // Widths are proportional to inclusive time: TCPWRAP (900 ns) is 30% of the 3 µs in callbacks.
        #expect(abs(frames["TCPWRAP"]! - 0.3) < 0.001)
        #expect(abs(frames["read"]! - 200.0 / 3_000) < 0.001)
        #expect(abs(frames["(unknown resource)"]! - 1_000.0 / 3_000) < 0.001)
        #expect(r["titles"] as? Int == r["frame_count"] as? Int)
        #expect(r["has_script"] as? Bool == true)
    }

    @Test func flamegraphZoomsAndSearchesInABrowser() throws {
        let dir = ScratchDirectory("svg-browser")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        let svgPath = dir.file("t.svg")
        _ = try Flamegraph.write(reader: try TraceReader(path: trace), to: svgPath, grouping: .causal, weight: .busy)
        guard Browser.binary != nil else {
            Issue.record("headless Chromium is not installed (tools/install-deps.sh installs chromium-headless-shell)")
            return
        }
        // Wrap the SVG in a page whose script clicks a frame and runs a search, as a person would.
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        let page = dir.file("zoom.html")
        try """
        <!DOCTYPE html><html><body>\(svg.replacingOccurrences(of: "<?xml version=\"1.0\" standalone=\"no\"?>", with: ""))
        <script>
        var g = Array.prototype.find.call(document.querySelectorAll('g.f'), function (g) { return g.getAttribute('data-n').indexOf('TCPWRAP #3') === 0; });
        g.dispatchEvent(new MouseEvent('click'));
        var hidden = document.querySelectorAll('g.f.hidden').length;
        var w = g.querySelector('rect').getAttribute('width');
        window.prompt = function () { return 'read|write'; };
        document.getElementById('fg-search').dispatchEvent(new MouseEvent('click'));
        document.body.setAttribute('data-result', hidden + '|' + w + '|' + document.getElementById('fg-matched').textContent);
        </script></body></html>
        """.write(toFile: page, atomically: true, encoding: .utf8)
        let dom = try Browser.dumpDOM(page)
        guard let start = dom.range(of: "data-result=\""), let end = dom[start.upperBound...].firstIndex(of: "\"") else {
            Issue.record("the page's script did not run: \(dom.prefix(300))")
            return
        }
        let parts = dom[start.upperBound..<end].split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        // Zooming into the connection hides the frames outside it (the unknown worker callback, the server's own time)
        // and stretches the connection to the full width (1180 px, less the half pixel gap).
        #expect(Int(parts[0])! >= 2)
        #expect(parts[1] == "1179.50")
        // read (200 ns) + write (100 ns) of 3 µs = 10%.
        #expect(parts[2] == "Matched: 10.0%")
    }

    @Test func htmlReportRendersInHeadlessChromium() throws {
        let dir = ScratchDirectory("html")
        let trace = dir.file("t.atrace")
        Synthetic.write(to: trace)
        var o = AnalysisOptions()
        o.blockingThresholdNs = 500  // the synthetic callbacks are short: flag those of 0.5 µs or more
        let html = HTMLReport.render(reader: try TraceReader(path: trace), options: o)
        let path = dir.file("report.html")
        try html.write(toFile: path, atomically: true, encoding: .utf8)
        // Self-contained: nothing is loaded from anywhere.
        #expect(!html.contains("<link") && !html.contains(" src=") && !html.contains("url("))

        guard let dom = try expectHTMLReportRenders(path, "synthetic", screenshot: "report-synthetic.png") else { return }
        #expect(dom.contains("Blocking callbacks (500 ns or longer)"))
        #expect(dom.contains("./server --port 0"))
        // The blocking list: the three callbacks of 0.5 µs or more, longest first, with the syscalls made inside.
        let rows = dom.components(separatedBy: "<tr class=\"blocking\"").dropFirst().map { String($0.prefix(while: { $0 != "\n" })) }
        #expect(rows.count == 3)
        #expect(rows.first?.contains("1.00 µs") == true && rows.first?.contains("worker (tid 101 pid 4242)") == true)
        #expect(rows.contains { $0.contains("TCPWRAP") && $0.contains("read(fd 7) 200 ns, 100 B") })
        #expect(rows.contains { $0.contains("TCPSERVERWRAP") && $0.contains("accept4(fd 5) 100 ns") })
        // The busiest second is the whole (12 µs) trace: 3 µs in callbacks.
        #expect(dom.contains("data-key=\"busiest_second.busy_ns\" data-value=\"3000\""))
    }
}

/// Renders the report in headless Chromium and checks every section is on the page; returns the DOM
/// (nil when Chromium is missing, which is recorded as a failure: CI installs it).
@discardableResult
func expectHTMLReportRenders(_ path: String, _ name: String, screenshot: String? = nil, callbacks: Bool = true) throws -> String? {
    guard Browser.binary != nil else {
        Issue.record("headless Chromium is not installed (tools/install-deps.sh installs chromium-headless-shell)")
        return nil
    }
    let dom = try Browser.dumpDOM(path)
    for section in [
        "<h2 id=\"overview\">Overview</h2>", "<h2 id=\"blocking\">Blocking callbacks (",
        "<h2 id=\"loop\">Event loop", "<h2 id=\"callbacks\">Callbacks by resource type</h2>",
        "<h2 id=\"syscalls\">Syscalls</h2>",
        callbacks ? "<h2 id=\"flamegraph\">Where the time in callbacks went</h2>" : "<h2 id=\"flamegraph\">Where the time went</h2>",
        "<h2 id=\"timeline\">Timeline of the busiest second</h2>", "Generated by asynctrace.",
    ] {
        #expect(dom.contains(section), "\(name): the rendered page has no \(section)")
    }
    // Without callbacks (a kernel-only trace) the flame graph is each thread's wall time, and the busiest
    // second is the one with the most time between epoll waits.
    #expect(dom.contains("class=\"flamegraph\""), "\(name): no flame graph drawn")
    #expect(dom.contains("class=\"timeline\""), "\(name): no timeline of the busiest second drawn")
    #expect(
        dom.contains("between waits for events (no callbacks were recorded") == !callbacks,
        "\(name): the busiest second is measured \(callbacks ? "in callbacks" : "between epoll waits")")
    if let screenshot { #expect(try Browser.screenshot(path, to: Browser.artifacts + "/" + screenshot)) }
    return dom
}
