// Live resources (type, trigger, fd) in bounded memory: a destroyed entry stays, marked, while it is among
// the most recently destroyed (a ring), so causal chains through short-lived ancestors still resolve; one
// table for both, so a destroy marks the entry its callbacks just touched instead of moving it to another
// table (two cold hash operations per resource, which were ~14% of `top`'s analysis).

/// Async ids are unique per process; traces may hold several processes.
package struct ResourceKey: Hashable, Sendable, FastHashable {
    package var pid: UInt32
    package var asyncID: UInt64
    package init(pid: UInt32, asyncID: UInt64) {
        self.pid = pid
        self.asyncID = asyncID
    }
    package var fastHash: UInt64 { asyncID ^ (UInt64(pid) << 40) }
}

package struct ResourceInfo: Sendable {
    package var type: Int32
    package var trigger: UInt64
    package var fd: Int32 = -1
    package var initNs: UInt64
    /// Where it was created: an index into the analysis' creation stacks (-1: not recorded).
    package var creationStack: Int32 = -1
    /// Destroyed, kept among the recently destroyed.
    package var destroyed = false
}

package struct ResourceTable: Sendable {
    /// Interned resource type names; `ResourceInfo.type` indexes this.
    package private(set) var typeNames: [String] = []
    private var typeIndex: [String: Int32] = [:]
    /// Live and recently destroyed resources (`ResourceInfo.destroyed`).
    private var entries = FastMap<ResourceKey, ResourceInfo>(capacity: 1024)
    /// Resources not destroyed.
    package private(set) var liveCount = 0
    private var destroyedRing: [ResourceKey] = []
    private var ringNext = 0
    package let maxLive: Int
    package let recentlyDestroyedKept: Int
    /// Inits not tracked because `maxLive` was reached (their callbacks count as type "(untracked)").
    package private(set) var untracked: UInt64 = 0

    package init(maxLive: Int = 1_000_000, recentlyDestroyedKept: Int = 65_536) {
        self.maxLive = maxLive
        self.recentlyDestroyedKept = recentlyDestroyedKept
    }

    package mutating func intern(_ type: String) -> Int32 {
        if let i = typeIndex[type] { return i }
        let i = Int32(typeNames.count)
        typeNames.append(type)
        typeIndex[type] = i
        return i
    }

    package func typeName(_ t: Int32) -> String { t >= 0 && Int(t) < typeNames.count ? typeNames[Int(t)] : "(unknown)" }

    package mutating func initResource(_ key: ResourceKey, type: Int32, trigger: UInt64, ns: UInt64) {
        let wasLive = entries.peek(key) { !$0.pointee.destroyed }
        if wasLive == true {
            entries.set(key, ResourceInfo(type: type, trigger: trigger, initNs: ns))  // an id given twice: the newer
            return
        }
        guard liveCount < maxLive else {
            untracked += 1
            return
        }
        entries.set(key, ResourceInfo(type: type, trigger: trigger, initNs: ns))
        liveCount += 1
    }

    package mutating func setCreationStack(_ key: ResourceKey, _ stack: Int32) {
        entries.modify(key) { if !$0.destroyed { $0.creationStack = stack } }
    }

    package mutating func setFD(_ key: ResourceKey, fd: Int32) {
        entries.modify(key) { if !$0.destroyed { $0.fd = fd } }
    }

    /// Marks `key` destroyed (keeping it among the recently destroyed); returns what it was (nil: not live).
    @discardableResult
    package mutating func destroy(_ key: ResourceKey) -> ResourceInfo? {
        var info: ResourceInfo?
        entries.modify(key) {
            guard !$0.destroyed else { return }
            info = $0
            $0.destroyed = true
        }
        guard let info else { return nil }
        liveCount -= 1
        guard recentlyDestroyedKept > 0 else {
            entries.remove(key)
            return info
        }
        if destroyedRing.count < recentlyDestroyedKept {
            destroyedRing.append(key)
        } else {
            // The oldest destroyed leaves, unless its id was given again since (then it is live).
            let old = destroyedRing[ringNext]
            if entries.peek(old, { $0.pointee.destroyed }) == true { entries.remove(old) }
            destroyedRing[ringNext] = key
            ringNext = (ringNext + 1) % recentlyDestroyedKept
        }
        return info
    }

    /// A live resource (nil once destroyed).
    package func live(_ key: ResourceKey) -> ResourceInfo? {
        guard let i = entries[key], !i.destroyed else { return nil }
        return i
    }

    /// A live or recently destroyed resource.
    package func info(_ key: ResourceKey) -> ResourceInfo? { entries[key] }

    /// Each live resource, in no particular order.
    package func forEachLive(_ body: (ResourceKey, ResourceInfo) -> Void) {
        entries.forEach { k, i in if !i.destroyed { body(k, i) } }
    }

    /// Type names from the root cause down to `key`'s own type, e.g. ["TCPSERVERWRAP", "TCPWRAP", "Timeout"].
    /// Stops at the top level (trigger 0 or 1), at an unknown ancestor ("?"), or after 32 steps.
    package func causalChain(_ key: ResourceKey) -> [String] {
        var chain: [String] = []
        var k = key
        var seen = Set<UInt64>()
        while chain.count < 32, let i = info(k) {
            chain.append(typeName(i.type))
            if i.trigger <= 1 || !seen.insert(k.asyncID).inserted { return chain.reversed() }
            k = ResourceKey(pid: k.pid, asyncID: i.trigger)
        }
        if info(k) == nil && k.asyncID > 1 { chain.append("?") }
        return chain.reversed()
    }
}
