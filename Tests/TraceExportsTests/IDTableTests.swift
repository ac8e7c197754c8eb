@testable import TraceExports
import Testing

@Suite struct IDTableTests {
    /// Random inserts, updates and removals (with many collisions in a small key space) against Dictionary.
    @Test func behavesLikeADictionary() {
        var rng = SystemRandomNumberGenerator()
        for keySpace in [UInt64(40), 1_000, 1 << 40] {
            var table = IDTable<Int>()
            var reference: [UInt64: Int] = [:]
            for step in 0..<20_000 {
                let key = UInt64.random(in: 0..<keySpace, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0:
                    table.insert(key, step)
                    reference[key] = step
                case 1:
                    #expect(table.remove(key) == reference.removeValue(forKey: key))
                default:
                    let updated = table.update(key) { $0 += 1 }
                    #expect(updated == (reference[key] != nil))
                    if updated { reference[key]! += 1 }
                }
                if step % 997 == 0 {
                    #expect(table.count == reference.count)
                    for (k, v) in reference { #expect(table[k] == v) }
                }
            }
            for (k, v) in reference { #expect(table[k] == v) }
            #expect(table.count == reference.count)
        }
    }

    /// Ids a crafter computes to share one slot under the fixed multiplicative hash (their products with
    /// the constant are 0, 2^40, 2·2^40, …: the same top bits for any table under 2^24 slots).
    @Test func craftedIdsDoNotPileUpInOneRun() {
        var inverse: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<6 { inverse = inverse &* (2 &- 0x9E37_79B9_7F4A_7C15 &* inverse) }
        let ids = (1...20_000).map { UInt64($0) << 24 &* inverse }
        var table = IDTable<Int>()
        for (i, id) in ids.enumerated() { table.insert(id, i) }
        #expect(table.seed != 0)
        #expect(table.maxDisplacementNow <= IDTable<Int>.maxDisplacement, "displacement \(table.maxDisplacementNow)")
        for (i, id) in ids.enumerated() { #expect(table[id] == i) }
        var sequential = IDTable<Int>()
        for i in 0..<300_000 { sequential.insert(UInt64(i), i) }
        #expect(sequential.seed == 0)
    }
}
