// A hash table from async ids (or fds) to small values: open addressing with linear probing and
// backward-shift deletion, a multiplicative hash. Dictionary's SipHash was a tenth of the export
// pass; ids are not adversarial input that needs a seeded hash (a long probe only costs time).

struct IDTable<Value> {
    private var keys: [UInt64]
    private var values: [Value?]
    private var used: [Bool]
    private var shift: UInt64
    private(set) var count = 0

    init() {
        keys = [UInt64](repeating: 0, count: 16)
        values = [Value?](repeating: nil, count: 16)
        used = [Bool](repeating: false, count: 16)
        shift = 64 - 4
    }

    @inline(__always) private var mask: Int { keys.count - 1 }

    @inline(__always) private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
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

    /// The first key whose value satisfies `match` (linear; for rare lookups by value).
    func firstKey(where match: (Value) -> Bool) -> UInt64? {
        for i in keys.indices where used[i] {
            if let v = values[i], match(v) { return keys[i] }
        }
        return nil
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values, oldUsed = used
        let n = keys.count * 2
        keys = [UInt64](repeating: 0, count: n)
        values = [Value?](repeating: nil, count: n)
        used = [Bool](repeating: false, count: n)
        shift -= 1
        count = 0
        for i in oldKeys.indices where oldUsed[i] { insert(oldKeys[i], oldValues[i]!) }
    }
}
