// Numbers for people: durations, byte counts, counts with separators, shares; and aligned tables.
// Shared by the text/JSON reports and the exports (views only; no analysis here).

public enum Formatting {
    /// 4096 -> "4,096".
    public static func count(_ v: UInt64) -> String {
        let s = String(v)
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return out
    }

    /// Three significant digits: "850 ns", "12.3 µs", "198 ms", "2.51 s".
    public static func duration(_ ns: UInt64) -> String {
        func sig(_ v: Double, _ unit: String) -> String {
            let digits = v >= 100 ? 0 : v >= 10 ? 1 : 2
            return fixed(v, digits) + " " + unit
        }
        if ns < 1_000 { return "\(ns) ns" }
        if ns < 1_000_000 { return sig(Double(ns) / 1e3, "µs") }
        if ns < 1_000_000_000 { return sig(Double(ns) / 1e6, "ms") }
        return sig(Double(ns) / 1e9, "s")
    }

    /// The loss line for off-CPU episodes whose switch-in the kernel never delivered, shared by the reports and
    /// `record`'s summary: "1 off-CPU switch-in not seen by the kernel's sched_switch tracepoint (thread T, 3.20 ms
    /// unknown)". `threads`: the threads named, formatted; `moreThreads`: how many others had some.
    public static func switchInsNotSeen(_ count: UInt64, threads: [String], moreThreads: Int, unknownNs: UInt64) -> String {
        var named = threads.joined(separator: ", ")
        if moreThreads > 0 { named += (named.isEmpty ? "" : ", ") + "\(moreThreads) more" }
        let threadCount = threads.count + moreThreads
        return "\(Self.count(count)) off-CPU switch-in\(count == 1 ? "" : "s") not seen by the kernel's sched_switch tracepoint ("
            + (threadCount == 0 ? "" : "thread\(threadCount == 1 ? "" : "s") \(named), ")
            + "\(duration(unknownNs)) unknown)"
    }

    /// Time since the recording started: "+1.204 s".
    public static func at(_ ns: UInt64, from start: UInt64) -> String {
        guard ns >= start else { return "-" + fixed(Double(start - ns) / 1e9, 3) + " s" }
        return "+" + fixed(Double(ns - start) / 1e9, 3) + " s"
    }

    public static func bytes(_ b: UInt64) -> String {
        if b < 1024 { return "\(b) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var v = Double(b) / 1024
        var u = 0
        while v >= 1024 && u < units.count - 1 {
            v /= 1024
            u += 1
        }
        return fixed(v, v >= 100 ? 0 : 1) + " " + units[u]
    }

    /// 0.1234 -> "12.3%".
    public static func percent(_ share: Double) -> String { fixed(share * 100, 1) + "%" }

    /// `s` safe to print on a terminal: control characters (C0, DEL, C1: escape sequences start with them)
    /// and bidirectional overrides (they reorder what is shown) become visible escapes such as `\x1b`.
    /// Names in a trace (program, threads, resource types) are whatever the traced program wrote.
    public static func printable(_ s: String, keepingNewlines: Bool = false) -> String {
        guard s.unicodeScalars.contains(where: { needsEscape($0) && !(keepingNewlines && $0 == "\n") }) else { return s }
        var out = ""
        for u in s.unicodeScalars {
            if !needsEscape(u) || (keepingNewlines && u == "\n") {
                out.unicodeScalars.append(u)
            } else if u.value < 0x100 {
                let h = String(u.value, radix: 16)
                out += "\\x" + (h.count < 2 ? "0" : "") + h
            } else {
                out += "\\u{" + String(u.value, radix: 16) + "}"
            }
        }
        return out
    }

    @inline(__always)
    static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        return v < 0x20 || (v >= 0x7F && v <= 0x9F) || (v >= 0x202A && v <= 0x202E) || (v >= 0x2066 && v <= 0x2069)
    }

    /// A number with `digits` decimals, without Foundation (saturates far beyond any real value).
    public static func fixed(_ v: Double, _ digits: Int) -> String {
        guard v.isFinite else { return "n/a" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let neg = v < 0
        guard abs(v) * scale < 1.8e19 else { return (neg ? "-" : "") + String(abs(v)) }  // Swift's own shortest form
        let r = UInt64((abs(v) * scale).rounded())
        let whole = r / UInt64(scale)
        var s = (neg ? "-" : "") + String(whole)
        if digits > 0 {
            let frac = String(r % UInt64(scale))
            s += "." + String(repeating: "0", count: digits - frac.count) + frac
        }
        return s
    }
}

/// Left/right aligned columns with a header row, two spaces apart.
package struct Table {
    package enum Align { case left, right }
    package var columns: [(title: String, align: Align)]
    package var rows: [[String]] = []

    package init(_ columns: [(String, Align)]) { self.columns = columns.map { (title: $0.0, align: $0.1) } }

    /// Cells are escaped for the terminal here, before their widths are measured.
    package mutating func add(_ row: [String]) { rows.append(row.map { Formatting.printable($0) }) }

    package func render(indent: String = "  ") -> String {
        var widths = columns.map { $0.title.count }
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, c) in cells.enumerated() where i < columns.count {
                let pad = String(repeating: " ", count: widths[i] - c.count)
                let last = i == cells.count - 1
                parts.append(columns[i].align == .right ? pad + c : (last ? c : c + pad))
            }
            return indent + parts.joined(separator: "  ")
        }
        var out = [line(columns.map(\.title))]
        for r in rows { out.append(line(r)) }
        return out.joined(separator: "\n") + "\n"
    }
}
