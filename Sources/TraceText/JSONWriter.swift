// A small JSON writer with keys in the order written (stable output for diffs and tests).

package struct JSONWriter {
    package private(set) var out = ""
    private var needComma = [false]
    private let pretty: Bool
    private var depth = 0

    package init(pretty: Bool = true) { self.pretty = pretty }

    private mutating func separator() {
        if needComma[needComma.count - 1] { out += "," }
        needComma[needComma.count - 1] = true
        if pretty && depth > 0 { out += "\n" + String(repeating: "  ", count: depth) }
    }

    private mutating func key(_ k: String?) {
        separator()
        if let k { out += Self.quote(k) + (pretty ? ": " : ":") }
    }

    /// `s` as a JSON string literal, quotes included (used by the reports and the exports).
    package static func quote(_ s: String) -> String {
        var r = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            case "\r": r += "\\r"
            case "\t": r += "\\t"
            default:
                // Control characters, also DEL and C1 (a terminal may act on them when the JSON is printed),
                // and the bidirectional overrides, as \u escapes.
                if u.value < 0x20 || (u.value >= 0x7F && u.value <= 0x9F) || (u.value >= 0x202A && u.value <= 0x202E)
                    || (u.value >= 0x2066 && u.value <= 0x2069)
                {
                    let h = String(u.value, radix: 16)
                    r += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    r.unicodeScalars.append(u)
                }
            }
        }
        return r + "\""
    }

    package mutating func object(_ k: String? = nil, _ body: (inout JSONWriter) -> Void) { container(k, "{", "}", body) }

    package mutating func array(_ k: String? = nil, _ body: (inout JSONWriter) -> Void) { container(k, "[", "]", body) }

    private mutating func container(_ k: String?, _ open: String, _ close: String, _ body: (inout JSONWriter) -> Void) {
        key(k)
        out += open
        needComma.append(false)
        depth += 1
        body(&self)
        depth -= 1
        let had = needComma.removeLast()
        if pretty && had { out += "\n" + String(repeating: "  ", count: depth) }
        out += close
    }

    package mutating func field(_ k: String?, _ v: String) { key(k); out += Self.quote(v) }
    package mutating func field(_ k: String?, _ v: String?) { key(k); out += v.map(Self.quote) ?? "null" }
    package mutating func field(_ k: String?, _ v: UInt64) { key(k); out += String(v) }
    package mutating func field(_ k: String?, _ v: Int64) { key(k); out += String(v) }
    package mutating func field(_ k: String?, _ v: Int) { key(k); out += String(v) }
    package mutating func field(_ k: String?, _ v: Bool) { key(k); out += v ? "true" : "false" }
    /// Shares and ratios: 6 decimals.
    package mutating func field(_ k: String?, _ v: Double) { key(k); out += v.isFinite ? Formatting.fixed(v, 6) : "null" }
    package mutating func null(_ k: String?) { key(k); out += "null" }
    package mutating func strings(_ k: String?, _ v: [String]) { array(k) { a in for s in v { a.field(nil, s) } } }
}
