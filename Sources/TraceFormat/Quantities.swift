/// The one reading of durations and byte sizes that every command line, environment variable and option
/// shares: the file stores ns and bytes, people type "10ms" and "64MiB".
public enum Quantities {
    /// The longest duration a UInt64 of nanoseconds holds, rounded down to whole years' worth of
    /// safety: anything longer is refused rather than wrapped.
    public static let maxDurationNs: UInt64 = 1 << 63

    /// "10ms", "250us", "250µs", "1.5s", "2m", "1h", "800ns" -> ns. A unit is required (a bare
    /// number would be seconds to some readers and milliseconds to others), except for "0".
    /// Negative, not finite, or longer than `maxDurationNs`: nil.
    public static func duration(_ text: String) -> UInt64? {
        let t = text.trimmingSpaces()
        if t == "0" { return 0 }
        let units: [(String, Double)] = [
            ("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9),
            ("min", 60e9), ("h", 3600e9),
        ]
        var best: (suffix: String, scale: Double)?
        for (suffix, scale) in units where t.hasSuffix(suffix) && suffix.count > (best?.suffix.count ?? 0) {
            best = (suffix, scale)
        }
        guard let best, t.count > best.suffix.count else { return nil }
        let number = t.dropLast(best.suffix.count).trimmingSpaces()
        guard number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let v = Double(number),
            v.isFinite, v >= 0
        else { return nil }
        let ns = v * best.scale
        guard ns < Double(maxDurationNs) else { return nil }
        return UInt64(ns)
    }

    /// "4096", "512K", "16M", "64MiB", "1G", "2GB" (binary multiples, any case) -> bytes; nil on
    /// anything else or on overflow.
    public static func byteSize(_ text: String) -> UInt64? {
        var t = Substring(text.trimmingSpaces().uppercased())
        if t.hasSuffix("IB") { t = t.dropLast(2) } else if t.hasSuffix("B") { t = t.dropLast(1) }
        var shift: UInt64 = 0
        if let last = t.last, let s = ["K": UInt64(10), "M": 20, "G": 30, "T": 40][String(last)] {
            shift = s
            t = t.dropLast()
        }
        t = Substring(String(t).trimmingSpaces())
        guard !t.isEmpty, t.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt64(t),
            v <= UInt64.max >> shift
        else { return nil }
        return v << shift
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
