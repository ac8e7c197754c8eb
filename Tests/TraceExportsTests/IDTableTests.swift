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
}
