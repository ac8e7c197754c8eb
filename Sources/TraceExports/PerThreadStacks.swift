// Per-thread stacks of plain values (no references) in raw memory: a push or pop is a few instructions,
// without the uniqueness checks and retains of an array of arrays touched per event.

struct PerThreadStacks<Element> {
    private struct Stack {
        var base: UnsafeMutablePointer<Element>
        var count: Int
        var capacity: Int
    }

    private var stacks: UnsafeMutablePointer<Stack> = .allocate(capacity: 8)
    private var capacity = 8
    private(set) var threads = 0

    /// Frees everything (the owner calls this from its deinit; a plain struct for speed).
    func deallocate() {
        for t in 0..<threads { stacks[t].base.deallocate() }
        stacks.deallocate()
    }

    mutating func addThread() {
        if threads == capacity { stacks = doubled(stacks, count: threads, capacity: &capacity) }
        // Small at first: a trace may have 65,536 threads, most of them a level or two deep.
        (stacks + threads).initialize(to: Stack(base: .allocate(capacity: 2), count: 0, capacity: 2))
        threads += 1
    }

    @inline(__always)
    mutating func push(_ t: Int, _ e: Element) {
        let s = stacks + t
        if s.pointee.count == s.pointee.capacity { grow(s) }
        (s.pointee.base + s.pointee.count).initialize(to: e)
        s.pointee.count += 1
    }

    @inline(__always)
    mutating func pop(_ t: Int) -> Element? {
        let s = stacks + t
        guard s.pointee.count > 0 else { return nil }
        s.pointee.count -= 1
        return s.pointee.base[s.pointee.count]
    }

    private func grow(_ s: UnsafeMutablePointer<Stack>) {
        s.pointee.base = doubled(s.pointee.base, count: s.pointee.count, capacity: &s.pointee.capacity)
    }
}

/// Moves the `count` elements at `base` into new memory of twice `capacity` (updated), frees the old.
@inline(never)
func doubled<T>(_ base: UnsafeMutablePointer<T>, count: Int, capacity: inout Int) -> UnsafeMutablePointer<T> {
    let bigger = UnsafeMutablePointer<T>.allocate(capacity: 2 * capacity)
    bigger.moveInitialize(from: base, count: count)
    base.deallocate()
    capacity *= 2
    return bigger
}
