// What a runtime says of a resource in its `name=` and `kind=` attributes (Swift Concurrency: a task's name,
// given at its completion, and its kind: task, child, group child, async let), so a listed callback says which
// task it was, not only its async id. Kept by resource and joined to the listed callbacks at the end, as
// creation sites are.
struct ResourceLabels {
    static let maxResources = 1 << 20
    private var texts: [String] = []
    private var index: [String: Int32] = [:]
    private var names = FastMap<ResourceKey, Int32>(capacity: 64)
    private var kinds = FastMap<ResourceKey, Int32>(capacity: 64)
    /// Attributes not kept: past `maxResources` resources, or past 4096 distinct texts.
    private(set) var notKept: UInt64 = 0

    /// A resourceAttribute; false when it is neither a name nor a kind.
    mutating func attribute(_ key: ResourceKey, text: String) -> Bool {
        let isName = text.hasPrefix("name=")
        guard isName || text.hasPrefix("kind=") else { return false }
        let value = String(text.dropFirst(5).prefix(200))
        guard !value.isEmpty else { return true }
        guard let i = intern(value) else {
            notKept &+= 1
            return true
        }
        if isName {
            guard names.count < Self.maxResources || names.contains(key) else {
                notKept &+= 1
                return true
            }
            names.set(key, i)
        } else {
            guard kinds.count < Self.maxResources || kinds.contains(key) else {
                notKept &+= 1
                return true
            }
            kinds.set(key, i)
        }
        return true
    }

    private mutating func intern(_ text: String) -> Int32? {
        if let i = index[text] { return i }
        guard texts.count < 4096 else { return nil }
        let i = Int32(texts.count)
        texts.append(text)
        index[text] = i
        return i
    }

    /// `"fetch-user" group child`, `async let`, `"fetch-user"`; nil when the runtime said neither.
    func label(_ key: ResourceKey) -> String? {
        let name = names[key].map { "\"\(texts[Int($0)])\"" }
        let kind = kinds[key].map { texts[Int($0)] }
        switch (name, kind) {
        case (let n?, let k?): return n + " " + k
        case (let n?, nil): return n
        case (nil, let k?): return k
        default: return nil
        }
    }
}
