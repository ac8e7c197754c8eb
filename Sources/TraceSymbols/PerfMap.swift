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

    /// Sorted by start, none overlapping: where code was moved or replaced, the later line wins.
    public private(set) var entries: [Entry] = []

    /// Files larger than this are read only up to it.
    public static let maxBytes = 256 << 20

    /// A map of these entries, given in the order they were written (see `normalized`).
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

    /// V8 writes code only where no live code is, so a line whose range overlaps a later line's names code
    /// freed before the later one was written there, and is dropped: a start-up function's interpreter
    /// trampoline (`Eval:~ node:_http_agent:1:1` at ...3400, 0x378 bytes) whose space a request handler's
    /// baseline code later took (`JS:^ server.mjs:59:34` at ...3300) named the handler's frames
    /// `(anonymous) (node:_http_agent:1)` (the greater start won). A sweep over the boundaries finds the
    /// latest line on each stretch between two of them; a line lives if it is the latest on all of its own.
    /// O(n log n) for any input.
    private static func normalized(_ list: [Entry]) -> [Entry] {
        guard list.count > 1 else { return list }
        var bounds: [UInt64] = []
        bounds.reserveCapacity(list.count * 2)
        for e in list {
            bounds.append(e.start)
            bounds.append(e.end)
        }
        bounds.sort()
        var unique: [UInt64] = []
        unique.reserveCapacity(bounds.count)
        for b in bounds where unique.last != b { unique.append(b) }
        func firstIndex(notBelow x: UInt64) -> Int {
            var lo = 0, hi = unique.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if unique[mid] < x { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
        let order = list.indices.sorted { (list[$0].start, $0) < (list[$1].start, $1) }
        var latest = LatestFirst()
        var latestOn = [Int](repeating: 0, count: list.count)
        var next = 0
        for i in 0..<(unique.count - 1) {
            let at = unique[i]
            while next < order.count, list[order[next]].start <= at {
                latest.push(order[next])
                next += 1
            }
            while let top = latest.top, list[top].end <= at { latest.pop() }
            if let top = latest.top { latestOn[top] += 1 }
        }
        return order.filter { i in
            latestOn[i] == firstIndex(notBelow: list[i].end) - firstIndex(notBelow: list[i].start)
        }.map { list[$0] }
    }

    /// A max-heap of line numbers: the latest written on top.
    private struct LatestFirst {
        var items: [Int] = []
        var top: Int? { items.first }
        mutating func push(_ x: Int) {
            items.append(x)
            var i = items.count - 1
            while i > 0, items[(i - 1) / 2] < items[i] {
                items.swapAt(i, (i - 1) / 2)
                i = (i - 1) / 2
            }
        }
        mutating func pop() {
            guard !items.isEmpty else { return }
            items.swapAt(0, items.count - 1)
            items.removeLast()
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count, items[l] > items[m] { m = l }
                if r < items.count, items[r] > items[m] { m = r }
                if m == i { return }
                items.swapAt(i, m)
                i = m
            }
        }
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
