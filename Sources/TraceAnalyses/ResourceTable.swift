// Live resources (type, trigger, fd) in bounded memory: entries leave on destroy; a ring keeps the
// most recently destroyed ones so causal chains through short-lived ancestors still resolve.

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
}

package struct ResourceTable: Sendable {
    /// Interned resource type names; `ResourceInfo.type` indexes this.
    package private(set) var typeNames: [String] = []
    private var typeIndex: [String: Int32] = [:]
    package private(set) var live = FastMap<ResourceKey, ResourceInfo>(capacity: 1024)
    private var destroyed = FastMap<ResourceKey, ResourceInfo>(capacity: 1024)
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

    /// The type of the Node preload's own batch writes (-1 until seen): callbacks, but none of the program's.
    package private(set) var recorderWriteType: Int32 = -1
    package static let recorderWriteTypeName = "asynctrace (batch write)"

    package mutating func intern(_ type: String) -> Int32 {
        if let i = typeIndex[type] { return i }
        let i = Int32(typeNames.count)
        typeNames.append(type)
        typeIndex[type] = i
        if type == Self.recorderWriteTypeName { recorderWriteType = i }
        return i
    }

    package func typeName(_ t: Int32) -> String { t >= 0 && Int(t) < typeNames.count ? typeNames[Int(t)] : "(unknown)" }

    package mutating func initResource(_ key: ResourceKey, type: Int32, trigger: UInt64, ns: UInt64) {
        if live.count >= maxLive && !live.contains(key) {
            untracked += 1
            return
        }
        live.set(key, ResourceInfo(type: type, trigger: trigger, initNs: ns))
    }

    package mutating func setCreationStack(_ key: ResourceKey, _ stack: Int32) {
        live.modify(key) { $0.creationStack = stack }
    }

    package mutating func setFD(_ key: ResourceKey, fd: Int32) {
        live.modify(key) { $0.fd = fd }
    }

    /// Forgets `key` (keeping it among the recently destroyed); returns what it was.
    @discardableResult
    package mutating func destroy(_ key: ResourceKey) -> ResourceInfo? {
        guard let info = live.remove(key) else { return nil }
        guard recentlyDestroyedKept > 0 else { return info }
        if destroyedRing.count < recentlyDestroyedKept {
            destroyedRing.append(key)
        } else {
            destroyed.remove(destroyedRing[ringNext])
            destroyedRing[ringNext] = key
            ringNext = (ringNext + 1) % recentlyDestroyedKept
        }
        destroyed.set(key, info)
        return info
    }

    package func info(_ key: ResourceKey) -> ResourceInfo? { live[key] ?? destroyed[key] }

    /// Type names from the root cause down to `key`'s own type, e.g. ["TCPSERVERWRAP", "TCPWRAP", "Timeout"].
    /// Stops at the top level (trigger 0 or 1), at an unknown ancestor ("?"), or after 32 steps ("…" first:
    /// more ancestors, known, not shown; a stream of 20,000 Immediates read as if the first shown were the root).
    package func causalChain(_ key: ResourceKey) -> [String] {
        var chain: [String] = []
        var k = key
        var seen = Set<UInt64>()
        while chain.count < Self.causalChainSteps, let i = info(k) {
            chain.append(typeName(i.type))
            if i.trigger <= 1 || !seen.insert(k.asyncID).inserted { return chain.reversed() }
            k = ResourceKey(pid: k.pid, asyncID: i.trigger)
        }
        if info(k) == nil {
            if k.asyncID > 1 { chain.append("?") }
        } else {
            chain.append(Self.chainCut)
        }
        return chain.reversed()
    }

    static let causalChainSteps = 32
    /// The first element of a causal chain cut after `causalChainSteps`.
    package static let chainCut = "…"

}
