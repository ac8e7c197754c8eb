// An open-addressing hash map for the analyses' hot lookups (live resources, fds, threads).
// Swift's Dictionary hashes with SipHash; at tens of millions of events that is most of the
// analysis time, and these keys are small integers that a multiplicative hash spreads well.

package protocol FastHashable: Equatable {
    var fastHash: UInt64 { get }
}

@inline(__always)
func mix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

package struct FastMap<Key: FastHashable, Value> {
    private var slots: [(key: Key, value: Value)?]
    private var mask: Int
    package private(set) var count = 0
    /// 0 until an insertion would put a key more than `maxDisplacement` slots past its home, which keys from a
    /// real program never need (at most half the slots are used) but keys crafted against the fixed hash do
    /// (every operation would walk them all: quadratic, a file that never finishes). The table is then
    /// rehashed with a random seed the file cannot know. Honest traces keep 0, so their reports are the same
    /// run to run. With every key within `maxDisplacement` of its home, no lookup, insertion or removal walks
    /// further, whatever the keys.
    package private(set) var seed: UInt64 = 0
    /// How far past its home slot a key may sit.
    package static var maxDisplacement: Int { 256 }  // at 1/2 load, honest displacements stay under ~100 up to 2^30 keys
    package init(capacity: Int = 16) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        slots = Array(repeating: nil, count: n)
        mask = n - 1
    }

    @inline(__always)
    private func home(_ key: Key) -> Int { Int(truncatingIfNeeded: mix64(key.fastHash ^ seed)) & mask }

    @inline(__always)
    private func find(_ key: Key) -> Int? {
        var i = home(key)
        var walked = 0
        while let s = slots[i] {
            if s.key == key { return i }
            walked += 1
            if walked > Self.maxDisplacement { return nil }  // no key sits further from its home
            i = (i + 1) & mask
        }
        return nil
    }

    package subscript(key: Key) -> Value? {
        guard let i = find(key) else { return nil }
        return slots[i]!.value
    }

    package func contains(_ key: Key) -> Bool { find(key) != nil }

    /// Reads part of a value in place: `body` gets a pointer to it (valid only during the call), so a
    /// large value (strings, histograms) is not copied, retained and released to read one field.
    @inline(__always)
    package func peek<R>(_ key: Key, _ body: (UnsafePointer<Value>) -> R) -> R? {
        guard let i = find(key) else { return nil }
        return slots.withUnsafeBufferPointer { buffer in
            // An Optional of a payload with spare room keeps the payload at offset 0; a tuple lays out
            // its elements in order, each at its alignment (Swift's ABI).
            let valueOffset =
                (MemoryLayout<Key>.size + MemoryLayout<Value>.alignment - 1) / MemoryLayout<Value>.alignment * MemoryLayout<Value>.alignment
            let slot = UnsafeRawPointer(buffer.baseAddress! + i)
            return body((slot + valueOffset).assumingMemoryBound(to: Value.self))
        }
    }

    /// Changes the value in place; returns false if the key is absent.
    @inline(__always)
    @discardableResult
    package mutating func modify(_ key: Key, _ body: (inout Value) -> Void) -> Bool {
        guard let i = find(key) else { return false }
        body(&slots[i]!.value)
        return true
    }

    package mutating func set(_ key: Key, _ value: Value) {
        if let i = find(key) {
            slots[i]!.value = value
            return
        }
        if (count + 1) * 2 > slots.count { grow() }
        while true {
            var i = home(key)
            var walked = 0
            while slots[i] != nil && walked <= Self.maxDisplacement {
                i = (i + 1) & mask
                walked += 1
            }
            if walked <= Self.maxDisplacement {
                slots[i] = (key, value)
                count += 1
                return
            }
            seed = UInt64.random(in: 1 ... .max)
            rebuild(slotCount: slots.count)
        }
    }

    /// The furthest any key sits past its home slot.
    package var maxDisplacementNow: Int {
        var most = 0
        for i in slots.indices {
            guard let s = slots[i] else { continue }
            most = max(most, (i - home(s.key)) & mask)
        }
        return most
    }

    @discardableResult
    package mutating func remove(_ key: Key) -> Value? {
        guard var i = find(key) else { return nil }
        let value = slots[i]!.value
        slots[i] = nil
        count -= 1
        // Backward-shift deletion: pull later entries of the probe run into the hole. An entry more than
        // maxDisplacement past the hole cannot have its home at or before it, so the walk stops there.
        var j = i
        while true {
            j = (j + 1) & mask
            if (j - i) & mask > Self.maxDisplacement { break }
            guard let s = slots[j] else { break }
            let h = home(s.key)
            // Move s to i if its home is not cyclically within (i, j].
            let inRange = i <= j ? (h > i && h <= j) : (h > i || h <= j)
            if !inRange {
                slots[i] = s
                slots[j] = nil
                i = j
            }
        }
        return value
    }

    private mutating func grow() { rebuild(slotCount: slots.count * 2) }

    /// Places every entry again in `slotCount` slots; while that would put a key more than `maxDisplacement`
    /// past its home (crafted keys), again with a new random seed.
    private mutating func rebuild(slotCount: Int) {
        let old = slots
        rebuilding: while true {
            slots = Array(repeating: nil, count: slotCount)
            mask = slotCount - 1
            count = 0
            for case let s? in old {
                var i = home(s.key)
                var walked = 0
                while slots[i] != nil {
                    i = (i + 1) & mask
                    walked += 1
                    if walked > Self.maxDisplacement {
                        seed = UInt64.random(in: 1 ... .max)
                        continue rebuilding
                    }
                }
                slots[i] = s
                count += 1
            }
            return
        }
    }

    package func forEach(_ body: (Key, Value) -> Void) {
        for case let s? in slots { body(s.key, s.value) }
    }

    package var isEmpty: Bool { count == 0 }
}

extension FastMap: Sendable where Key: Sendable, Value: Sendable {}

extension UInt64: FastHashable {
    package var fastHash: UInt64 { self }
}
