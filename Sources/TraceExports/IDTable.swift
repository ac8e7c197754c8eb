// A hash table from async ids (or fds) to small values: open addressing with linear probing and
// backward-shift deletion, a multiplicative hash. Dictionary's SipHash was a tenth of the export
// pass. Ids come from the file, so they may be crafted to share one slot (every lookup would then
// walk them all: quadratic): no key may sit more than `maxDisplacement` past its home slot; one that would
// rehashes the table with a random seed, and so no operation walks further, whatever the ids.

struct IDTable<Value> {
    private var keys: [UInt64]
    private var values: [Value?]
    private var used: [Bool]
    private var shift: UInt64
    private(set) var count = 0
    /// 0 (the same layout every run) until crafted ids crowd one run of slots; then random.
    private(set) var seed: UInt64 = 0
    static var maxDisplacement: Int { 1024 }  // at 3/4 load, honest displacements of a million ids reach a few hundred

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
        var walked = 0
        while used[i] {
            if keys[i] == key { return i }
            walked += 1
            if walked > Self.maxDisplacement { return nil }  // no key sits further from its home
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
        while true {
            var i = slot(key)
            var walked = 0
            while used[i] && walked <= Self.maxDisplacement {
                i = (i + 1) & mask
                walked += 1
            }
            if walked <= Self.maxDisplacement {
                used[i] = true
                keys[i] = key
                values[i] = value
                count += 1
                return
            }
            seed = UInt64.random(in: 1 ... .max)
            rebuild(slotCount: keys.count)
        }
    }

    /// The furthest any key sits past its home slot.
    var maxDisplacementNow: Int {
        var most = 0
        for i in keys.indices where used[i] { most = max(most, (i - slot(keys[i])) & mask) }
        return most
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
            // An entry more than maxDisplacement past the hole cannot have its home at or before it.
            if (j - i) & mask > Self.maxDisplacement || !used[j] { break }
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

    /// Places every entry again in `slotCount` slots; while that would put a key more than `maxDisplacement`
    /// past its home (crafted ids), again with a new random seed.
    private mutating func rebuild(slotCount n: Int) {
        let oldKeys = keys, oldValues = values, oldUsed = used
        var bits: UInt64 = 0
        while (1 << bits) < n { bits += 1 }
        rebuilding: while true {
            keys = [UInt64](repeating: 0, count: n)
            values = [Value?](repeating: nil, count: n)
            used = [Bool](repeating: false, count: n)
            shift = 64 - bits
            count = 0
            for k in oldKeys.indices where oldUsed[k] {
                var i = slot(oldKeys[k])
                var walked = 0
                while used[i] {
                    i = (i + 1) & mask
                    walked += 1
                    if walked > Self.maxDisplacement {
                        seed = UInt64.random(in: 1 ... .max)
                        continue rebuilding
                    }
                }
                used[i] = true
                keys[i] = oldKeys[k]
                values[i] = oldValues[k]
                count += 1
            }
            return
        }
    }
}
