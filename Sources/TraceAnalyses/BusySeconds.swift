// Busy time per second of the trace, to find the busiest second (the HTML report draws it): time inside
// callbacks, or for kernel-only traces the time between epoll waits. Only outermost callbacks count,
// so nested time counts once; busy time on several threads adds up.

struct BusySecondsTracker {
    /// A callback longer than this many seconds counts only in its first ones: a corrupt timestamp
    /// must not make the map grow without bound.
    static let maxSecondsPerCallback: UInt64 = 3_600
    /// Seconds are counted from here (the earliest event seen when the first callback ended).
    private(set) var originNs: UInt64?
    private var busyNs: [UInt64: UInt64] = [:]
    // The second being filled, flushed to the map when another is touched (callbacks mostly end in order).
    private var current: UInt64 = 0
    private var currentNs: UInt64 = 0

    let measure: BusiestSecond.Measure
    init(_ measure: BusiestSecond.Measure) { self.measure = measure }

    mutating func busy(startNs: UInt64, endNs: UInt64, earliestNs: UInt64) {
        guard endNs > startNs else { return }
        let origin = originNs ?? earliestNs
        originNs = origin
        var s = startNs > origin ? startNs - origin : 0
        let e = endNs > origin ? endNs - origin : 0
        let lastSecond = s / 1_000_000_000 + Self.maxSecondsPerCallback
        while s < e {
            let second = s / 1_000_000_000
            guard second < lastSecond else { break }
            // Saturating: a corrupt timestamp near UInt64.max must not trap.
            let boundary = second >= UInt64.max / 1_000_000_000 ? UInt64.max : (second + 1) * 1_000_000_000
            let end = min(e, boundary)
            add(second: second, ns: end - s)
            s = end
        }
    }

    private mutating func add(second: UInt64, ns: UInt64) {
        if second != current {
            if currentNs > 0 { busyNs[current, default: 0] &+= currentNs }
            current = second
            currentNs = busyNs.removeValue(forKey: second) ?? 0
        }
        currentNs &+= ns
    }

    /// The second with the most busy time (the earliest of equals); nil without any.
    func busiest() -> BusiestSecond? {
        guard let origin = originNs else { return nil }
        var best: (second: UInt64, ns: UInt64)? = currentNs > 0 ? (current, currentNs) : nil
        for (second, ns) in busyNs where best == nil || ns > best!.ns || (ns == best!.ns && second < best!.second) {
            best = (second, ns)
        }
        guard let best else { return nil }
        return BusiestSecond(
            measure: measure, index: best.second, startNs: origin &+ best.second &* 1_000_000_000, busyNs: best.ns,
            secondsWithCallbacks: busyNs.count + (currentNs > 0 ? 1 : 0))
    }
}
