// Arithmetic on values read from a trace file: a crafted file can hold any number in any field, so
// sums of counts and durations saturate at the type's maximum instead of trapping.

extension UInt64 {
    /// `self + other`, or `UInt64.max` where that would overflow.
    @inlinable @inline(__always)
    public func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// `self - other`, or 0 where that would go below zero.
    @inlinable @inline(__always)
    public func subtractingSaturated(_ other: UInt64) -> UInt64 { self > other ? self - other : 0 }

    /// `self * other`, or `UInt64.max` where that would overflow.
    @inlinable @inline(__always)
    public func multipliedSaturated(_ other: UInt64) -> UInt64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? .max : product
    }

    /// A Double rounded toward zero into 0...UInt64.max (NaN and negatives: 0).
    @inlinable @inline(__always)
    public static func clamping(_ v: Double) -> UInt64 {
        guard v > 0 else { return 0 }
        return v < 18_446_744_073_709_551_616.0 ? UInt64(v) : .max
    }
}

extension Int {
    /// A Double rounded toward zero into Int's range (NaN: 0).
    @inlinable @inline(__always)
    public static func clamping(_ v: Double) -> Int {
        guard !v.isNaN else { return 0 }
        if v >= 9_223_372_036_854_775_807.0 { return .max }
        if v <= -9_223_372_036_854_775_808.0 { return .min }
        return Int(v)
    }
}
