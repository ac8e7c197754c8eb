// Issue 13: ids and fds come from the file, so a crafted trace can choose them to share one slot of the
// analyses' hash tables under their fixed hash; every insertion and lookup would then walk all of them
// (quadratic: a file that never finishes). No key may sit more than `maxDisplacement` past its home (one that
// would rehashes the table with a random seed), so no operation walks further, whatever the keys.
import Testing
import TraceAnalyses

/// Inverse of the splitmix64 finalizer the analyses' FastMap hashes with: the keys a crafter would compute.
func unmix64(_ y: UInt64) -> UInt64 {
    func unxorshift(_ y: UInt64, _ s: UInt64) -> UInt64 {
        var x = y
        for _ in 0..<(64 / Int(s) + 1) { x = y ^ (x >> s) }
        return x
    }
    func inverse(_ a: UInt64) -> UInt64 {
        var x = a  // Newton's iteration for the inverse of an odd number mod 2^64
        for _ in 0..<6 { x = x &* (2 &- a &* x) }
        return x
    }
    var z = unxorshift(y, 31)
    z = z &* inverse(0x94D0_49BB_1331_11EB)
    z = unxorshift(z, 27)
    z = z &* inverse(0xBF58_476D_1CE4_E5B9)
    z = unxorshift(z, 30)
    return z &- 0x9E37_79B9_7F4A_7C15
}

@Suite struct HashFloodTests {
    /// Async ids whose FastMap hashes (seed 0) all end in 24 zero bits: one home slot for any table below 16 M slots.
    private func crafted(_ n: Int, pid: UInt32) -> [ResourceKey] {
        (1...n).map { i in ResourceKey(pid: pid, asyncID: unmix64(UInt64(i) << 24) ^ (UInt64(pid) << 40)) }
    }

    @Test func craftedKeysDoNotPileUpInOneRun() {
        let keys = crafted(20_000, pid: 7)
        #expect(Set(keys.map { mix64Home($0) }).count == 1)  // the crafting works: one home under seed 0
        var map = FastMap<ResourceKey, Int>()
        for (i, k) in keys.enumerated() { map.set(k, i) }
        #expect(map.seed != 0)
        #expect(map.maxDisplacementNow <= FastMap<ResourceKey, Int>.maxDisplacement, "displacement \(map.maxDisplacementNow)")
        #expect(map.count == keys.count)
        for (i, k) in keys.enumerated() { #expect(map[k] == i) }
        for k in keys.prefix(10_000) { #expect(map.remove(k) != nil) }
        #expect(map.count == 10_000 && keys.suffix(10_000).allSatisfy { map.contains($0) })
    }

    @Test func keysCraftedIntoOneLongRunStayCorrect() {
        // Homes 0, 1, 2, … 4,999 in a table of 16,384 slots: each key at its own home (none displaced), one run
        // of 5,000 occupied slots. A search for an absent key stops maxDisplacement slots on (no key sits
        // further from its home) instead of walking the run; removals stop as soon as nothing can move.
        let keys = (0..<5_000).map { unmix64(UInt64($0)) }
        var map = FastMap<UInt64, Int>(capacity: 8_192)
        for (n, k) in keys.enumerated() { map.set(k, n) }
        #expect(map.seed == 0 && map.maxDisplacementNow == 0)
        for (n, k) in keys.enumerated() { #expect(map[k] == n) }
        #expect(map[unmix64(16_384)] == nil && map[unmix64(16_384 + 17)] == nil)  // homes 0 and 17: absent
        for k in keys.prefix(2_500) { #expect(map.remove(k) != nil) }
        for (n, k) in keys.enumerated() { #expect(map[k] == (n < 2_500 ? nil : n)) }
        #expect(map.count == 2_500)
    }

    @Test func ordinaryIdsKeepTheFixedLayout() {
        // Sequential ids, as a runtime assigns them: no rehash, so a report is the same run to run.
        var map = FastMap<ResourceKey, Int>()
        for i in 0..<300_000 { map.set(ResourceKey(pid: 3, asyncID: UInt64(i)), i) }
        #expect(map.seed == 0 && map.count == 300_000)
    }

    private func mix64Home(_ k: ResourceKey) -> UInt64 {
        var z = k.fastHash &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return (z ^ (z >> 31)) & ((1 << 24) - 1)
    }
}
