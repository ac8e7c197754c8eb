import TraceFormat

/// Durations (or any UInt64s) in bounded memory: a log-linear histogram with 32 sub-buckets per power of
/// two, so a percentile is at most 1/32 (~3%) below the true value; values under 32 are exact.
public struct LogHistogram: Sendable {
    static let subBits = 5
    static let sub = 1 << subBits
    static let bucketCount = (64 - subBits + 1) * sub

    private var counts: [UInt64] = []  // allocated on the first value
    /// Values recorded.
    public private(set) var count: UInt64 = 0
    /// Their sum (saturates at `UInt64.max`).
    public private(set) var sum: UInt64 = 0
    /// The smallest value; `UInt64.max` while empty.
    public private(set) var min: UInt64 = .max
    /// The largest value; 0 while empty.
    public private(set) var max: UInt64 = 0

    /// An empty histogram (allocates on the first value).
    public init() {}

    @inline(__always)
    static func index(_ v: UInt64) -> Int {
        if v < UInt64(sub) { return Int(v) }
        let e = 63 - v.leadingZeroBitCount
        let s = Int((v >> UInt64(e - subBits)) & UInt64(sub - 1))
        return (e - subBits + 1) * sub + s
    }

    static func lowerBound(_ i: Int) -> UInt64 {
        if i < sub { return UInt64(i) }
        let e = i / sub + subBits - 1
        let s = UInt64(i % sub)
        return (UInt64(sub) + s) << UInt64(e - subBits)
    }

    /// Records one value.
    public mutating func record(_ v: UInt64) {
        if counts.isEmpty { counts = [UInt64](repeating: 0, count: Self.bucketCount) }
        counts[Self.index(v)] &+= 1
        count &+= 1
        sum = sum.addingSaturated(v)
        if v < min { min = v }
        if v > max { max = v }
    }

    /// Adds `o`'s values.
    public mutating func merge(_ o: LogHistogram) {
        guard o.count > 0 else { return }
        if counts.isEmpty { counts = [UInt64](repeating: 0, count: Self.bucketCount) }
        for i in 0..<Self.bucketCount where o.counts[i] > 0 { counts[i] &+= o.counts[i] }
        count &+= o.count
        sum = sum.addingSaturated(o.sum)
        min = Swift.min(min, o.min)
        max = Swift.max(max, o.max)
    }

    /// Nearest-rank percentile (p in 0...1): the lower bound of the bucket holding it; exact when that
    /// bucket also holds the smallest or largest value (then it is that value); 0 if empty.
    public func percentile(_ p: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = Swift.min(count, Swift.max(1, UInt64((p * Double(count)).rounded(.up))))
        let maxBucket = Self.index(max), minBucket = Self.index(min)
        var seen: UInt64 = 0
        for i in 0..<Self.bucketCount where counts[i] > 0 {
            seen += counts[i]
            if seen >= rank {
                if i == maxBucket { return max }
                if i == minBucket { return min }
                return Self.lowerBound(i)
            }
        }
        return max
    }

    /// The median (`percentile(0.50)`).
    public var p50: UInt64 { percentile(0.50) }
    /// The 99th percentile (`percentile(0.99)`).
    public var p99: UInt64 { percentile(0.99) }
    /// `sum / count` (exact up to saturation); 0 if empty.
    public var mean: UInt64 { count == 0 ? 0 : sum / count }
}

/// The N largest items by a key, in bounded memory (a min-heap of N).
package struct TopN<Item: Sendable>: Sendable {
    package let limit: Int
    private var heap: [(key: UInt64, item: Item)] = []

    package init(limit: Int) { self.limit = Swift.max(0, limit) }

    /// Whether an item with this key would be kept (check before building an expensive item).
    package func admits(_ key: UInt64) -> Bool { limit > 0 && (heap.count < limit || key > heap[0].key) }

    package mutating func offer(_ key: UInt64, _ item: @autoclosure () -> Item) {
        guard admits(key) else { return }
        if heap.count < limit {
            heap.append((key, item()))
            var i = heap.count - 1
            while i > 0 {
                let p = (i - 1) / 2
                if heap[p].key <= heap[i].key { break }
                heap.swapAt(p, i)
                i = p
            }
        } else {
            heap[0] = (key, item())
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && heap[l].key < heap[m].key { m = l }
                if r < heap.count && heap[r].key < heap[m].key { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
    }

    /// Largest first.
    package var sorted: [Item] { heap.sorted { $0.key > $1.key }.map(\.item) }
}
