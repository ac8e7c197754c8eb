// LEB128 varints and zigzag, the framing every event argument uses.
// Written against raw pointers so the recorder's hot path can use them without allocation.

/// Zigzag: maps signed to unsigned so small magnitudes of either sign make short varints (0, -1, 1, -2 -> 0, 1, 2, 3).
@inline(__always)
public func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v &<< 1) ^ (v >> 63)) }

/// The inverse of `zigzag(_:)`.
@inline(__always)
public func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

/// The most bytes one varint can take (a UInt64 in 7-bit groups).
public let maxVarintBytes = 10

/// Writes `value` at `p` and returns the pointer past it. The caller guarantees 10 bytes of room.
@inline(__always)
public func putVarint(_ value: UInt64, at p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
    var v = value
    var q = p
    while v >= 0x80 {
        q.pointee = UInt8(truncatingIfNeeded: v) | 0x80
        q += 1
        v >>= 7
    }
    q.pointee = UInt8(truncatingIfNeeded: v)
    return q + 1
}

/// Appends `value` to a byte array (the slow, safe path used by non-hot writers and tests).
@inline(__always)
public func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
    var v = value
    while v >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
        v >>= 7
    }
    bytes.append(UInt8(truncatingIfNeeded: v))
}

/// Number of bytes `value` takes as a varint.
@inline(__always)
public func varintSize(_ value: UInt64) -> Int {
    let bits = 64 - value.leadingZeroBitCount
    return bits == 0 ? 1 : (bits + 6) / 7
}

/// A bounds-checked cursor over bytes; every read reports failure instead of trapping,
/// because the bytes may come from a damaged file.
public struct ByteCursor {
    /// The bytes read (must stay valid while the cursor is used).
    public let base: UnsafeRawBufferPointer
    /// The next byte to read.
    public var offset: Int

    /// A cursor over `base` starting at `offset`.
    @inlinable
    public init(_ base: UnsafeRawBufferPointer, offset: Int = 0) {
        self.base = base
        self.offset = offset
    }

    /// Bytes left from `offset` (negative if `offset` was set past the end).
    @inlinable public var remaining: Int { base.count - offset }
    /// Whether every byte has been read.
    @inlinable public var isAtEnd: Bool { offset >= base.count }

    /// The next byte, or nil at the end.
    @inlinable
    public mutating func readByte() -> UInt8? {
        guard offset < base.count else { return nil }
        let b = base[offset]
        offset += 1
        return b
    }

    /// The next varint, or nil when it runs past the end or does not fit 64 bits (the offset then stays put).
    @inlinable @inline(__always)
    public mutating func readVarint() -> UInt64? {
        // Most values (kinds' deltas, ids' deltas, small args) fit one byte.
        if offset < base.count, base[offset] < 0x80 {
            defer { offset += 1 }
            return UInt64(base[offset])
        }
        guard let p = base.baseAddress else { return nil }
        return decodeVarint(p.assumingMemoryBound(to: UInt8.self), count: base.count, offset: &offset)
    }

    /// The next `n` bytes (a view into `base`), or nil if fewer remain or `n` is negative.
    @inlinable
    public mutating func readBytes(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, n <= remaining else { return nil }
        let r = UnsafeRawBufferPointer(rebasing: base[offset..<(offset + n)])
        offset += n
        return r
    }
}

/// Decodes the varint at `offset` of the `count` bytes at `p` and moves `offset` past it; nil when it
/// runs past the end or does not fit 64 bits (not a varint we wrote). Every reader's general case.
@usableFromInline
func decodeVarint(_ p: UnsafePointer<UInt8>, count: Int, offset: inout Int) -> UInt64? {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    var i = offset
    while i < count {
        let b = p[i]
        i += 1
        if shift == 63 && b > 1 { return nil }  // overflow
        result |= UInt64(b & 0x7f) << shift
        if b < 0x80 {
            offset = i
            return result
        }
        shift += 7
        if shift > 63 { return nil }
    }
    return nil
}
