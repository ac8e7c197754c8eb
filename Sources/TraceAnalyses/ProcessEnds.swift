// How a process ended, beyond its exit status: Node's preload says which handles and timers were unref'd
// (`ref=0`/`ref=1` resource attributes, sent when that changes) and in which callback the program called
// process.exit() (`process_exit=called`). A process killed by a signal, or that called process.exit(), was held
// by its ref'd resources; the unref'd ones held nothing, whatever the ending.
struct ProcessEnds {
    static let maxUnrefed = 1 << 20
    /// Resources whose last ref state was unref'd (a resource with no `ref=` attribute is ref'd).
    private(set) var unrefed = Set<ResourceKey>()
    /// pid -> the async id in whose callback the program first called process.exit() (the root id: at its top level).
    private(set) var exitCalls: [UInt32: (asyncID: UInt64, ns: UInt64)] = [:]
    /// Ref states not kept past `maxUnrefed` resources.
    private(set) var notKept: UInt64 = 0

    /// A resourceAttribute; false when it is neither a ref state nor a process.exit() call.
    mutating func attribute(_ key: ResourceKey, text: String, ns: UInt64) -> Bool {
        switch text {
        case "ref=0":
            if unrefed.count < Self.maxUnrefed { unrefed.insert(key) } else { notKept &+= 1 }
        case "ref=1":
            unrefed.remove(key)
        case "process_exit=called":
            if exitCalls[key.pid] == nil && exitCalls.count < ThreadTracker.maxThreads { exitCalls[key.pid] = (key.asyncID, ns) }
        default:
            return false
        }
        return true
    }

    func isUnrefed(_ key: ResourceKey) -> Bool { !unrefed.isEmpty && unrefed.contains(key) }
}
