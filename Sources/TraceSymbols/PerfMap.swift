/// JIT code names from a perf map (/tmp/perf-PID.map: "START SIZE NAME" per line, hex), as Node
/// writes them with --perf-basic-prof-only-functions.
public struct PerfMap: Sendable {
    /// One line: a code range and its name.
    public struct Entry: Sendable {
        /// The first address.
        public var start: UInt64
        /// The address after the last.
        public var end: UInt64
        /// The name as written ("JS:*handleHash /srv/server.js:17:20").
        public var name: String
    }

    /// Sorted by start; where code was moved or replaced, the later line wins.
    public private(set) var entries: [Entry] = []

    /// Files larger than this are read only up to it.
    public static let maxBytes = 256 << 20

    /// A map of these entries (sorted; of equal starts the later wins).
    public init(entries: [Entry]) { self.entries = Self.normalized(entries) }

    /// Parses the file's text; malformed lines are skipped.
    public init(text: [UInt8]) {
        var out: [Entry] = []
        for line in text.split(separator: UInt8(ascii: "\n")) {
            let parts = line.split(separator: UInt8(ascii: " "), maxSplits: 2)
            guard parts.count == 3, let start = Self.hex(parts[0]), let size = Self.hex(parts[1]), size > 0,
                start <= UInt64.max - size
            else { continue }
            out.append(Entry(start: start, end: start + size, name: String(decoding: parts[2], as: UTF8.self)))
        }
        entries = Self.normalized(out)
    }

    private static func normalized(_ list: [Entry]) -> [Entry] {
        // Stable order by start; of equal starts keep the last written.
        let indexed = list.enumerated().sorted { $0.element.start != $1.element.start ? $0.element.start < $1.element.start : $0.offset < $1.offset }
        var out: [Entry] = []
        for (_, e) in indexed {
            if let last = out.last, last.start == e.start { out[out.count - 1] = e } else { out.append(e) }
        }
        return out
    }

    static func hex(_ s: some Collection<UInt8>) -> UInt64? {
        var t = Substring(decoding: s, as: UTF8.self)
        if t.hasPrefix("0x") { t = t.dropFirst(2) }
        guard !t.isEmpty, t.count <= 16 else { return nil }
        return UInt64(t, radix: 16)
    }

    /// The entry whose range holds `address`, or nil.
    public func entry(at address: UInt64) -> Entry? {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].start <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0, address < entries[lo - 1].end else { return nil }
        return entries[lo - 1]
    }

    /// Node's "JS:*name file:line:col" as (name, file, line), CPython's "py::name:file" as (name, file,
    /// nil); other names as they are.
    public static func split(_ raw: String) -> (function: String, file: String?, line: Int?) {
        var s = Substring(raw)
        // CPython 3.12+ perf trampolines: "py::qualname:filename" (a qualified name holds no colon; the file may).
        if s.hasPrefix("py::") {
            let rest = s.dropFirst(4)
            guard let colon = rest.firstIndex(of: ":"), colon > rest.startIndex, rest.index(after: colon) < rest.endIndex else {
                return (rest.isEmpty ? "(anonymous)" : String(rest), nil, nil)
            }
            return (String(rest[..<colon]), String(rest[rest.index(after: colon)...]), nil)
        }
        for prefix in ["JS:", "LazyCompile:", "Function:", "Script:", "Eval:"] where s.hasPrefix(prefix) {
            s = s.dropFirst(prefix.count)
            break
        }
        if let first = s.first, "*~^+".contains(first) { s = s.dropFirst() }
        guard let space = s.lastIndex(of: " ") else { return (s.isEmpty ? "(anonymous)" : String(s), nil, nil) }
        let name = s[..<space].isEmpty ? "(anonymous)" : String(s[..<space])
        let location = s[s.index(after: space)...]
        // file:line:col (the file may itself hold colons, as in node:internal/... or file:///...)
        let parts = location.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count >= 3, let line = Int(parts[parts.count - 2]), Int(parts[parts.count - 1]) != nil {
            return (name, parts.dropLast(2).joined(separator: ":"), line)
        }
        if parts.count >= 2, let line = Int(parts[parts.count - 1]) {
            return (name, parts.dropLast(1).joined(separator: ":"), line)
        }
        return (String(s), nil, nil)
    }
}
