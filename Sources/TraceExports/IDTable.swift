// A hash table from async ids (or fds) to small values: open addressing with linear probing and
// backward-shift deletion, a multiplicative hash. Dictionary's SipHash was a tenth of the export
// pass. Ids come from the file, so they may be crafted to share one slot (every lookup would then
// walk them all: quadratic); a run of more than `maxRun` occupied slots rehashes with a random seed.

struct IDTable<Value> {
    private var keys: [UInt64]
    private var values: [Value?]
    private var used: [Bool]
    private var shift: UInt64
    private(set) var count = 0
    /// 0 (the same layout every run) until crafted ids crowd one run of slots; then random.
    private(set) var seed: UInt64 = 0
    static var maxRun: Int { 1024 }  // at 3/4 load, honest runs of a million ids reach a few hundred

    init() {
        keys = [UInt64](repeating: 0, count: 16)
        values = [Value?](repeating: nil, count: 16)
        used = [Bool](repeating: false, count: 16)
        shift = 64 - 4
    }

    @inline(__always) private var mask: Int { keys.count - 1 }

    @inline(__always) private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: ((key ^ seed) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always)
    private func find(_ key: UInt64) -> Int? {
        var i = slot(key)
        while used[i] {
            if keys[i] == key { return i }
            i = (i + 1) & mask
        }
        return nil
    }

    subscript(_ key: UInt64) -> Value? {
        @inline(__always) get {
            guard let i = find(key) else { return nil }
            return values[i]
        }
        set {
            if let v = newValue { insert(key, v) } else { remove(key) }
        }
    }

    mutating func insert(_ key: UInt64, _ value: Value) {
        if let i = find(key) {
            values[i] = value
            return
        }
        if (count + 1) * 4 > keys.count * 3 { grow() }
        var i = slot(key)
        while used[i] { i = (i + 1) & mask }
        used[i] = true
        keys[i] = key
        values[i] = value
        count += 1
        if runLength(through: i) > Self.maxRun {
            seed = UInt64.random(in: 1 ... .max)
            rebuild(slotCount: keys.count)
        }
    }

    /// Occupied slots in the run through slot `i`, counted up to `maxRun + 1`.
    @inline(__always)
    private func runLength(through i: Int) -> Int {
        var n = 1
        var j = i
        while n <= Self.maxRun {
            j = (j - 1) & mask
            if !used[j] { break }
            n += 1
        }
        j = i
        while n <= Self.maxRun {
            j = (j + 1) & mask
            if !used[j] { break }
            n += 1
        }
        return n
    }

    /// The longest run of occupied slots (a run may wrap round the end).
    var longestRun: Int {
        var longest = 0, run = 0
        for k in 0..<(used.count * 2) {
            run = used[k & mask] ? run + 1 : 0
            longest = max(longest, min(run, used.count))
        }
        return longest
    }

    /// Updates the value in place; false if the key is absent.
    @inline(__always)
    mutating func update(_ key: UInt64, _ body: (inout Value) -> Void) -> Bool {
        guard let i = find(key) else { return false }
        body(&values[i]!)
        return true
    }

    @discardableResult
    mutating func remove(_ key: UInt64) -> Value? {
        guard var i = find(key) else { return nil }
        let old = values[i]
        // Backward-shift: move later members of the probe run into the hole, so no tombstones are needed.
        var j = i
        while true {
            j = (j + 1) & mask
            if !used[j] { break }
            let home = slot(keys[j])
            // Move j to i unless its home lies cyclically in (i, j].
            let inRange = i <= j ? (home > i && home <= j) : (home > i || home <= j)
            if !inRange {
                keys[i] = keys[j]
                values[i] = values[j]
                i = j
            }
        }
        used[i] = false
        values[i] = nil
        count -= 1
        return old
    }

    private mutating func grow() { rebuild(slotCount: keys.count * 2) }

    /// Places every entry again in `slotCount` slots; while that leaves a run longer than `maxRun`
    /// (crafted ids), again with a new random seed.
    private mutating func rebuild(slotCount n: Int) {
        let oldKeys = keys, oldValues = values, oldUsed = used
        var bits: UInt64 = 0
        while (1 << bits) < n { bits += 1 }
        while true {
            keys = [UInt64](repeating: 0, count: n)
            values = [Value?](repeating: nil, count: n)
            used = [Bool](repeating: false, count: n)
            shift = 64 - bits
            count = 0
            for k in oldKeys.indices where oldUsed[k] {
                var i = slot(oldKeys[k])
                while used[i] { i = (i + 1) & mask }
                used[i] = true
                keys[i] = oldKeys[k]
                values[i] = oldValues[k]
                count += 1
            }
            if longestRun <= Self.maxRun { return }
            seed = UInt64.random(in: 1 ... .max)
        }
    }
}
