// Where resources were created, from `resourceAttribute created_at=...` events: Node's preload sends
// the first JS frames of the stack captured at a resource's init ("fn (file:line:col)", one per
// line) for the resources that can be shown: those whose callback ran long, those alive for a while
// and those still alive at exit. The sites arrive after the callback they explain, so they are kept
// by resource and joined to the listed callbacks and open resources at the end.
import TraceSymbols

struct CreationSites {
    static let attributePrefix = "created_at="
    static let maxResources = 1 << 20
    /// Distinct sites, interned; `byResource` indexes this.
    private(set) var texts: [String] = []
    private var index: [String: Int32] = [:]
    private var byResource = FastMap<ResourceKey, Int32>(capacity: 64)
    private(set) var notKept: UInt64 = 0

    var isEmpty: Bool { texts.isEmpty }

    /// Resources the Node preload made no site for because its budget was spent (`created_at_missing=budget`).
    private var overBudget = Set<ResourceKey>()

    /// A resourceAttribute; false when it is not a creation site.
    mutating func attribute(_ key: ResourceKey, text: String) -> Bool {
        if text == "created_at_missing=budget" {
            if overBudget.count < Self.maxResources { overBudget.insert(key) } else { notKept &+= 1 }
            return true
        }
        guard text.hasPrefix(Self.attributePrefix) else { return false }
        let site = String(text.dropFirst(Self.attributePrefix.count))
        guard !site.isEmpty else { return true }
        guard byResource.count < Self.maxResources || byResource.contains(key) else {
            notKept &+= 1
            return true
        }
        var i = index[site] ?? -1
        if i < 0 {
            i = Int32(texts.count)
            texts.append(site)
            index[site] = i
        }
        byResource.set(key, i)
        return true
    }

    func site(_ key: ResourceKey) -> Int32? { byResource[key] }

    /// Why a resource of a trace with sites has none, where the trace says or its type does (nil: it does not).
    func missingReason(_ key: ResourceKey, type: String) -> String? {
        if !overBudget.isEmpty && overBudget.contains(key) {
            return "none recorded: made when the Node preload's budget of sites was spent (the first 64 of a type, "
                + "then 20 per 100 ms); record --node-all-sites records every one"
        }
        guard !texts.isEmpty else { return nil }
        switch type {
        case "TickObject": return "none recorded: of a thread's ticks only the first 256 get one"
        case "PROMISE", "Microtask": return "none recorded: never for a \(type), made per await"
        default: return nil
        }
    }

    func frames(_ key: ResourceKey) -> [CodeFrame] { site(key).map { Self.frames(texts[Int($0)]) } ?? [] }

    func frames(site: Int32) -> [CodeFrame] { Int(site) < texts.count && site >= 0 ? Self.frames(texts[Int(site)]) : [] }

    /// V8's frame lines ("fn (file:line:col)", "file:line:col", "new Foo (file:line:col)") as code
    /// frames of module "[js]"; a line that is neither keeps its text as the function.
    static func frames(_ text: String) -> [CodeFrame] {
        text.split(separator: "\n").prefix(8).map { raw in
            let line = Array(raw.drop { $0 == " " || $0 == "\t" })
            var function: String? = nil
            var location = line[...]
            // "fn (location)": the last " (" opens the location.
            if line.last == ")", let open = (0..<max(0, line.count - 1)).last(where: { line[$0] == " " && line[$0 + 1] == "(" }) {
                function = String(line[..<open])
                location = line[(open + 2)..<(line.count - 1)]
            }
            // file:line:col, the file possibly holding colons itself (node:net, C:\...).
            let parts = location.split(separator: ":", omittingEmptySubsequences: false)
            if parts.count >= 3, let l = Int(String(parts[parts.count - 2])), Int(String(parts[parts.count - 1])) != nil {
                let file = parts.dropLast(2).map { String($0) }.joined(separator: ":")
                return CodeFrame(function: function ?? "(anonymous)", file: file, line: l, module: "[js]", offset: 0)
            }
            return CodeFrame(function: function ?? String(location), module: "[js]", offset: 0)
        }
    }
}
