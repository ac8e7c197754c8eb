// An interactive flame graph as one self-contained SVG: hover for a frame's time, click to zoom into it,
// "Search" to highlight frames by regular expression, "Reset zoom" to go back. No network, no fonts to load.
import TraceFormat

/// An interactive flame graph as one self-contained SVG (hover, click to zoom, search), no network or fonts.
public enum FlamegraphSVG {
    /// Titles and layout of the drawing.
    public struct Options: Sendable {
        /// The title line.
        public var title: String
        /// The line under the title (empty: none).
        public var subtitle: String
        /// Width of the drawing in pixels.
        public var width: Int = 1200
        /// Height of one frame in pixels.
        public var frameHeight: Int = 16
        /// Frames narrower than this many pixels are left out (their time still counts in their parent).
        public var minFrameWidth: Double = 0.3
        /// What a weight unit is, for the hover text.
        public var unit: String = "ns"
        /// false: no XML declaration (for embedding in HTML).
        public var standalone = true

        /// Options with these titles and the default layout (1200 px wide, 16 px frames, unit "ns").
        public init(title: String, subtitle: String = "") {
            self.title = title
            self.subtitle = subtitle
        }
    }

    struct Frame {
        var node: Int
        var x: Double  // fraction of the total, 0...1
        var w: Double
        var depth: Int
    }

    /// The SVG document for `tree`.
    public static func render(_ tree: StackTree, options o: Options) -> String {
        let inclusive = tree.inclusiveWeights()
        let total = inclusive[0]
        var children = [[Int]](repeating: [], count: tree.nodes.count)
        for i in 1..<max(1, tree.nodes.count) { children[tree.nodes[i].parent].append(i) }
        // Depth-first layout, children sorted by label like flamegraph.pl.
        var frames: [Frame] = []
        var maxDepth = 0
        let minFraction = o.minFrameWidth / Double(o.width - 20)
        if total > 0 {
            var work: [(node: Int, x: Double, depth: Int)] = [(0, 0, 0)]
            while let (n, x, depth) = work.popLast() {
                let w = Double(inclusive[n]) / Double(total)
                if n != 0 {
                    frames.append(Frame(node: n, x: x, w: w, depth: depth))
                    maxDepth = max(maxDepth, depth)
                }
                var cx = x
                let sorted = children[n].sorted { tree.labels[tree.nodes[$0].label] < tree.labels[tree.nodes[$1].label] }
                for c in sorted {
                    let cw = Double(inclusive[c]) / Double(total)
                    if cw >= minFraction { work.append((c, cx, depth + 1)) }
                    cx += cw
                }
            }
        }
        let fh = o.frameHeight
        let top = 60
        let height = top + (maxDepth + 1) * fh + 30
        let width = o.width
        let usable = Double(width - 20)

        var s = o.standalone ? "<?xml version=\"1.0\" standalone=\"no\"?>\n" : ""
        s += """
            <svg version="1.1" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
            xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" class="flamegraph" \
            data-total="\(total)" data-unit="\(o.unit)">
            <style>
            .flamegraph text { font-family: Verdana, sans-serif; font-size: 12px; fill: #000; }
            .flamegraph .f text { pointer-events: none; font-size: 11px; }
            .flamegraph .f:hover rect { stroke: #000; stroke-width: 0.5; cursor: pointer; }
            .flamegraph .ctl { cursor: pointer; fill: #335; }
            .flamegraph .hidden { display: none; }
            </style>
            <rect x="0" y="0" width="100%" height="100%" fill="#f8f8f4"/>
            <text x="\(width / 2)" y="22" text-anchor="middle" style="font-size:16px">\(xml(o.title))</text>
            <text x="\(width / 2)" y="40" text-anchor="middle" style="font-size:11px;fill:#555">\(xml(o.subtitle))</text>
            <text class="ctl" id="fg-reset" x="10" y="22" style="opacity:0.3">Reset zoom</text>
            <text class="ctl" id="fg-search" x="\(width - 110)" y="22">Search</text>
            <text id="fg-matched" x="\(width - 110)" y="\(height - 10)"></text>
            <text id="fg-details" x="10" y="\(height - 10)"> </text>
            <g id="fg-frames">

            """
        if total == 0 {
            s += "<text x=\"\(width / 2)\" y=\"\(top + 20)\" text-anchor=\"middle\">(no time was recorded in callbacks)</text>\n"
        }
        for f in frames {
            let label = tree.labels[tree.nodes[f.node].label]
            let weight = inclusive[f.node]
            let x = 10 + f.x * usable
            let w = f.w * usable
            let y = height - 30 - f.depth * fh
            let pct = Double(weight) * 100 / Double(total)
            let title = "\(label) (\(formatWeight(weight, o.unit)), \(format(pct, 2))%)"
            let chars = Int.clamping((w - 6) / 7)  // w is a width in pixels; clamped all the same (no trap on any input)
            let text = chars < 3 ? "" : (label.count <= chars ? label : String(label.prefix(chars - 2)) + "..")
            s +=
                "<g class=\"f\" data-x=\"\(format(f.x, 6))\" data-w=\"\(format(f.w, 6))\" data-d=\"\(f.depth)\" "
                + "data-n=\"\(xml(label))\"><title>\(xml(title))</title>"
                + "<rect x=\"\(format(x, 2))\" y=\"\(y)\" width=\"\(format(max(w - 0.5, 0.1), 2))\" height=\"\(fh - 1)\" "
                + "fill=\"\(color(label))\" rx=\"2\"/>"
                + "<text x=\"\(format(x + 3, 2))\" y=\"\(y + fh - 5)\">\(xml(text))</text></g>\n"
        }
        s += "</g>\n<script type=\"text/ecmascript\"><![CDATA[\n" + script + "\n]]></script>\n</svg>\n"
        return s
    }

    /// Zoom and search; frames carry their layout as fractions (data-x, data-w), so zooming is a re-scale.
    static let script = """
        (function () {
          var svg = document.currentScript ? document.currentScript.ownerSVGElement || document.querySelector('svg.flamegraph') : document.querySelector('svg.flamegraph');
          if (!svg) { svg = document.querySelector('svg.flamegraph'); }
          var root = svg;
          var frames = Array.prototype.slice.call(root.querySelectorAll('g.f'));
          var width = +root.getAttribute('width'), usable = width - 20;
          var details = root.querySelector('#fg-details'), matched = root.querySelector('#fg-matched');
          var reset = root.querySelector('#fg-reset'), search = root.querySelector('#fg-search');
          function label(g, w) {
            var t = g.querySelector('text'), n = g.getAttribute('data-n'), c = Math.floor((w - 6) / 7);
            t.textContent = c < 3 ? '' : (n.length <= c ? n : n.slice(0, c - 2) + '..');
          }
          function layout(x0, w0, d0) {
            frames.forEach(function (g) {
              var x = +g.getAttribute('data-x'), w = +g.getAttribute('data-w'), d = +g.getAttribute('data-d');
              var r = g.querySelector('rect'), t = g.querySelector('text');
              var inside = x >= x0 - 1e-9 && x + w <= x0 + w0 + 1e-9;
              var ancestor = d < d0 && x <= x0 + 1e-9 && x + w >= x0 + w0 - 1e-9;
              if (!inside && !ancestor) { g.classList.add('hidden'); return; }
              g.classList.remove('hidden');
              var nx = ancestor ? 10 : 10 + (x - x0) / w0 * usable;
              var nw = ancestor ? usable : w / w0 * usable;
              r.setAttribute('x', nx.toFixed(2)); r.setAttribute('width', Math.max(nw - 0.5, 0.1).toFixed(2));
              r.style.opacity = ancestor ? 0.5 : 1;
              t.setAttribute('x', (nx + 3).toFixed(2));
              label(g, nw);
            });
          }
          frames.forEach(function (g) {
            g.addEventListener('click', function () {
              layout(+g.getAttribute('data-x'), +g.getAttribute('data-w'), +g.getAttribute('data-d'));
              reset.style.opacity = 1;
            });
            g.addEventListener('mouseover', function () { details.textContent = g.querySelector('title').textContent; });
            g.addEventListener('mouseout', function () { details.textContent = ' '; });
          });
          reset.addEventListener('click', function () { layout(0, 1, 0); reset.style.opacity = 0.3; });
          search.addEventListener('click', function () {
            var term = window.prompt('Search frames (regular expression):', '');
            if (term === null) { return; }
            var re; try { re = new RegExp(term); } catch (e) { return; }
            var spans = [];
            frames.forEach(function (g) {
              var r = g.querySelector('rect');
              if (!r.getAttribute('data-fill')) { r.setAttribute('data-fill', r.getAttribute('fill')); }
              if (term !== '' && re.test(g.getAttribute('data-n'))) {
                r.setAttribute('fill', 'rgb(230,0,230)');
                spans.push([+g.getAttribute('data-x'), +g.getAttribute('data-w')]);
              } else { r.setAttribute('fill', r.getAttribute('data-fill')); }
            });
            // Matched share without double counting nested matches.
            spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
            var total = 0, end = -1;
            spans.forEach(function (s) { if (s[0] >= end - 1e-12) { total += s[1]; end = s[0] + s[1]; } });
            matched.textContent = term === '' ? '' : 'Matched: ' + (total * 100).toFixed(1) + '%';
          });
        })();
        """

    static func formatWeight(_ w: UInt64, _ unit: String) -> String {
        guard unit == "ns" else { return "\(w) \(unit)" }
        if w >= 1_000_000_000 { return format(Double(w) / 1e9, 3) + " s" }
        if w >= 1_000_000 { return format(Double(w) / 1e6, 3) + " ms" }
        if w >= 1_000 { return format(Double(w) / 1e3, 1) + " µs" }
        return "\(w) ns"
    }

    /// Warm colors for callbacks, cool ones for syscalls and the loop's own frames (stable per name).
    static func color(_ label: String) -> String {
        var h: UInt32 = 2_166_136_261
        for b in label.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        let v1 = Int(h % 55), v2 = Int((h >> 8) % 55), v3 = Int((h >> 16) % 55)
        if SyscallNames.table.values.contains(label) || label.hasPrefix("syscall_") {
            return "rgb(\(80 + v1),\(160 + v2),\(200 + v3 / 2))"
        }
        if label.hasSuffix(" phase") || label.hasPrefix("epoll wait") || label.hasPrefix("(") {
            return "rgb(\(150 + v1),\(150 + v1),\(170 + v2))"
        }
        return "rgb(\(200 + v1),\(90 + v2 * 2),\(30 + v3))"
    }

    static func xml(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                if c.value < 0x20 { out += " " } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    /// `v` with `decimals` digits after the point (no Foundation).
    static func format(_ v: Double, _ decimals: Int) -> String {
        var m = 1.0
        for _ in 0..<decimals { m *= 10 }
        let neg = v < 0
        let scaled = (abs(v) * m).rounded()
        guard scaled < 9e18 else { return String(v) }
        let i = UInt64(scaled)
        let whole = i / UInt64(m)
        var s = (neg && i != 0 ? "-" : "") + String(whole)
        if decimals > 0 {
            let frac = String(i % UInt64(m))
            s += "." + String(repeating: "0", count: decimals - frac.count) + frac
        }
        return s
    }
}
